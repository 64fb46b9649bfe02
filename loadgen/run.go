package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/wasmilter/wasmilter/milter"
)

// Config is one load run. Zero values take the defaults noted.
type Config struct {
	// Milter is the milter's socket in Postfix notation
	// ("inet:127.0.0.1:8897", "unix:/path") or Sendmail's ("inet:8897@host",
	// "local:/path").
	Milter string
	// Concurrency is the number of milter connections open at once
	// (simulated SMTP sessions in parallel); default 8.
	Concurrency int
	// Messages bounds the run by count and Duration by time; the run stops
	// at whichever comes first. At least one must be set.
	Messages int
	Duration time.Duration
	// MessagesPerConn is how many messages one SMTP session (one milter
	// connection) carries before QUIT; default 10.
	MessagesPerConn int
	// Rcpts is the number of recipients per message; default 1.
	Rcpts int
	// Message is the mail sent; nil is the built-in newsletter.
	Message *Message
	// NoBody sends the message with an empty body: headers only.
	NoBody bool
	// Offer is the negotiation offer; zero is Postfix's for protocol 6.
	Offer Offer
	// Timeout bounds connecting, each write and the wait for each reply;
	// default 10s (Postfix's milter_command_timeout is 30s).
	Timeout time.Duration
	// MaxErrors is how many failed messages are tolerated before the run
	// stops; 0 stops at the first, as a result with errors is not a
	// measurement of the milter.
	MaxErrors int
	// ServerPID, when set, is the milter process whose CPU time is
	// sampled from /proc before and after the run.
	ServerPID int
	// NoDelay sets TCP_NODELAY on TCP connections. Postfix leaves Nagle's
	// algorithm on for milter sockets, so the default does too.
	NoDelay bool
}

func (c *Config) setDefaults() error {
	if c.Milter == "" {
		return errors.New("no milter address")
	}
	if c.Messages <= 0 && c.Duration <= 0 {
		return errors.New("neither a message count nor a duration bounds the run")
	}
	c.Concurrency = intOr(c.Concurrency, 8)
	c.MessagesPerConn = intOr(c.MessagesPerConn, 10)
	c.Rcpts = intOr(c.Rcpts, 1)
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Message == nil {
		c.Message = DefaultMessage()
	}
	if c.Offer == (Offer{}) {
		c.Offer, _ = PostfixOffer(6)
	}
	return nil
}

func intOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// maxErrorSamples is how many distinct error texts a result keeps.
const maxErrorSamples = 5

// runner is the state shared by the workers of one run.
type runner struct {
	cfg     Config
	network string
	address string
	tag     string // distinguishes this run's queue IDs and Message-IDs
	cancel  context.CancelFunc

	claimed  atomic.Int64
	sessions atomic.Uint64
	seq      atomic.Uint64
	failed   atomic.Int64

	mu         sync.Mutex
	samples    []string
	negotiated *Negotiation
}

// Run puts the load on the milter and reports. It returns an error, with
// the result so far, when messages failed (protocol errors, timeouts, a
// closed connection), and an error without a result when the run could not
// start (a bad address, an unreadable /proc entry).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	network, address, err := milter.ParseAddress(cfg.Milter)
	if err != nil {
		return nil, err
	}
	if network != "unix" {
		network = "tcp" // the Sendmail "inet6:" form parses as tcp6; dialing does not mind
	}
	r := &runner{cfg: cfg, network: network, address: address,
		tag: strconv.FormatInt(time.Now().UnixNano()%0xfffff, 16)}
	var serverBefore time.Duration
	if cfg.ServerPID > 0 {
		if serverBefore, err = processCPU(cfg.ServerPID); err != nil {
			return nil, err
		}
	}
	runCtx, cancel := boundedContext(ctx, cfg.Duration)
	defer cancel()
	r.cancel = cancel

	selfBefore, start := selfCPU(), time.Now()
	stats := r.work(runCtx)
	elapsed, selfUsed := time.Since(start), selfCPU()-selfBefore

	res := r.result(stats, elapsed, ctx, runCtx)
	res.ClientCPU = cpuReport(0, selfUsed, res.Messages)
	if cfg.ServerPID > 0 {
		after, err := processCPU(cfg.ServerPID)
		if err != nil {
			return res, err
		}
		res.ServerCPU = cpuReport(cfg.ServerPID, after-serverBefore, res.Messages)
	}
	if res.Errors > 0 {
		return res, fmt.Errorf("%d message(s) failed; first: %s", res.Errors, res.ErrorSamples[0])
	}
	return res, nil
}

// boundedContext ends at the duration, if there is one.
func boundedContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

// work runs the workers until the bounds stop them and merges their stats.
func (r *runner) work(ctx context.Context) *workerStats {
	all := make([]*workerStats, r.cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range all {
		all[i] = newWorkerStats()
		wg.Add(1)
		go func(st *workerStats) {
			defer wg.Done()
			for r.claim(ctx) {
				r.session(ctx, st)
			}
		}(all[i])
	}
	wg.Wait()
	total := newWorkerStats()
	for _, st := range all {
		total.merge(st)
	}
	return total
}

// claim reserves the next message, or reports that the run is over.
func (r *runner) claim(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	n := r.claimed.Add(1)
	return r.cfg.Messages <= 0 || n <= int64(r.cfg.Messages)
}

// session plays one SMTP session: it already holds one claimed message
// and claims more up to MessagesPerConn.
func (r *runner) session(ctx context.Context, st *workerStats) {
	id := r.sessions.Add(1)
	start := time.Now()
	s, err := r.dial(id, st)
	if err != nil {
		r.fail(err)
		return
	}
	v, err := s.open(newClient(id))
	if err != nil {
		r.fail(err)
		s.w.close()
		return
	}
	if v.final() { // a session-level verdict answers the message that came
		st.record(v.action, time.Since(start))
		s.quit()
		return
	}
	for i := 0; i == 0 || (i < r.cfg.MessagesPerConn && r.claim(ctx)); i++ {
		env := newEnvelope(r.tag, r.seq.Add(1), r.cfg.Rcpts, r.cfg.Message)
		action, latency, err := s.transaction(env, r.cfg.Message, !r.cfg.NoBody)
		if err != nil {
			r.fail(err)
			s.w.close() // as Postfix does after a milter error: no QUIT
			return
		}
		st.record(action, latency)
		if action == ActionShutdown {
			break
		}
	}
	s.quit()
}

func (r *runner) dial(id uint64, st *workerStats) (*session, error) {
	d := net.Dialer{Timeout: r.cfg.Timeout}
	c, err := d.Dial(r.network, r.address)
	if err != nil {
		return nil, fmt.Errorf("connecting to milter %s: %w", r.cfg.Milter, err)
	}
	if tc, ok := c.(*net.TCPConn); ok && !r.cfg.NoDelay {
		tc.SetNoDelay(false)
	}
	s := &session{w: newWire(c, r.cfg.Timeout), stats: st, offer: r.cfg.Offer}
	if err := s.negotiate(); err != nil {
		c.Close()
		return nil, fmt.Errorf("milter %s, session %d: %w", r.cfg.Milter, id, err)
	}
	r.mu.Lock()
	if r.negotiated == nil {
		n := s.negotiated()
		r.negotiated = &n
	}
	r.mu.Unlock()
	return s, nil
}

// fail counts a failed message and stops the run past MaxErrors.
func (r *runner) fail(err error) {
	n := r.failed.Add(1)
	r.mu.Lock()
	if text := err.Error(); len(r.samples) < maxErrorSamples && !slices.Contains(r.samples, text) {
		r.samples = append(r.samples, text)
	}
	r.mu.Unlock()
	if n > int64(r.cfg.MaxErrors) {
		r.cancel()
	}
}

// workerStats is one worker's tally, merged at the end (no shared locks
// on the hot path).
type workerStats struct {
	hist     *hdrhistogram.Histogram
	max      time.Duration
	messages int64
	actions  map[string]int64
	mods     map[string]int64
}

// Latencies are recorded in microseconds up to 10 minutes, with three
// significant digits.
const histMaxMicros = int64(10 * time.Minute / time.Microsecond)

func newWorkerStats() *workerStats {
	return &workerStats{hist: hdrhistogram.New(1, histMaxMicros, 3),
		actions: map[string]int64{}, mods: map[string]int64{}}
}

func (st *workerStats) record(action string, latency time.Duration) {
	st.messages++
	st.actions[action]++
	st.max = max(st.max, latency)
	us := min(max(latency.Microseconds(), 1), histMaxMicros)
	_ = st.hist.RecordValue(us) // in range by construction
}

func (st *workerStats) merge(o *workerStats) {
	st.hist.Merge(o.hist)
	st.max = max(st.max, o.max)
	st.messages += o.messages
	for k, v := range o.actions {
		st.actions[k] += v
	}
	for k, v := range o.mods {
		st.mods[k] += v
	}
}
