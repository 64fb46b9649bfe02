package plugins

import (
	"fmt"
	"strings"
)

// OnError is what a plugin's failure means for the message, like Postfix's
// milter_default_action. The zero value is [OnErrorTempFail]: a broken policy
// should delay mail, not let it through or bounce it.
type OnError int

const (
	// OnErrorTempFail answers 451 4.3.0: the client retries later.
	OnErrorTempFail OnError = iota
	// OnErrorAccept accepts the message; later plugins are not asked.
	OnErrorAccept
	// OnErrorReject refuses the message with 550 5.7.0.
	OnErrorReject
	// OnErrorContinue skips the failed plugin as if it answered Continue.
	OnErrorContinue
)

var onErrorNames = [...]string{"tempfail", "accept", "reject", "continue"}

// ParseOnError parses "tempfail", "accept", "reject" or "continue"
// (case-insensitive, surrounding space ignored).
func ParseOnError(s string) (OnError, error) {
	want := strings.ToLower(strings.TrimSpace(s))
	for i, name := range onErrorNames {
		if want == name {
			return OnError(i), nil
		}
	}
	return OnErrorTempFail, fmt.Errorf("on_error %q: want one of %s", s, strings.Join(onErrorNames[:], ", "))
}

func (o OnError) String() string {
	if o >= 0 && int(o) < len(onErrorNames) {
		return onErrorNames[o]
	}
	return fmt.Sprintf("on_error(%d)", int(o))
}
