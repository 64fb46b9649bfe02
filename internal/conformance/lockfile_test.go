package conformance

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLockFilesNameNoRegistry keeps registry addresses out of the npm lock
// files: .npmrc's omit-lockfile-registry-resolved leaves "resolved" out for
// registry packages, and a lock regenerated without it would bring URLs
// back. Linked packages keep a relative "resolved" path, which is fine.
func TestLockFilesNameNoRegistry(t *testing.T) {
	root := moduleRoot(t)
	for _, dir := range []string{"sdk/assemblyscript", "examples/assemblyscript"} {
		data, err := os.ReadFile(filepath.Join(root, dir, "package-lock.json"))
		if err != nil {
			t.Fatal(err)
		}
		var lock struct {
			Packages map[string]struct {
				Version   string `json:"version"`
				Resolved  string `json:"resolved"`
				Integrity string `json:"integrity"`
			} `json:"packages"`
		}
		if err := json.Unmarshal(data, &lock); err != nil {
			t.Fatalf("%s/package-lock.json: %v", dir, err)
		}
		for name, p := range lock.Packages {
			if strings.Contains(p.Resolved, "://") {
				t.Errorf("%s/package-lock.json: %s resolved from %q; regenerate the lock with the directory's .npmrc", dir, name, p.Resolved)
			}
			if strings.HasPrefix(name, "node_modules/") && p.Resolved == "" && p.Integrity == "" {
				t.Errorf("%s/package-lock.json: %s has no integrity hash", dir, name)
			}
		}
	}
}
