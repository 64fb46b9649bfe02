package notify

import (
	"strconv"
	"strings"
	"time"
)

// rateNamespace is the counters' namespace in the key/value store. A ':'
// cannot occur in a plugin name, so no plugin's namespace collides with it.
const rateNamespace = "wasmilter:notify-rate"

// rateLimit allows at most limit notices per sender in a fixed window.
// The counters live in this node's key/value store: with several nodes, a
// sender may get up to limit notices from each.
type rateLimit struct {
	limit   int64
	window  time.Duration
	counter Counter
}

// allow counts a notice to sender and reports whether it is within the
// limit. A store that fails allows it: one notice too many is better than
// a sender left in silence.
func (r *rateLimit) allow(sender string) bool {
	n, err := r.counter.KVIncr(rateNamespace, strings.ToLower(sender), 1, r.window)
	return err != nil || n <= r.limit
}

func (r *rateLimit) String() string {
	return strconv.FormatInt(r.limit, 10) + " per " + r.window.String()
}
