package retry

import (
	"maps"
	"os"
	"strings"
	"testing"
)

// TestDocumentedMachineIsTheMachine keeps the table in doc.go and the table
// the code runs from in step.
func TestDocumentedMachineIsTheMachine(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[op]map[State]State{}
	for _, line := range strings.Split(string(src), "\n") {
		f := strings.Fields(strings.TrimPrefix(line, "//"))
		if !strings.HasPrefix(line, "//\t") || len(f) < 3 {
			continue
		}
		o := op(strings.ToLower(f[0]))
		if _, known := machine[o]; !known {
			continue
		}
		from := State(f[1])
		if f[1] == "(none)" {
			from = none
		}
		if documented[o] == nil {
			documented[o] = map[State]State{}
		}
		documented[o][from] = State(f[2])
	}
	if len(documented) != len(machine) {
		t.Fatalf("doc.go documents %d operations, the machine has %d", len(documented), len(machine))
	}
	for o, rows := range machine {
		if !maps.Equal(rows, documented[o]) {
			t.Errorf("%s: doc.go says %v, the code does %v", o, documented[o], rows)
		}
	}
}
