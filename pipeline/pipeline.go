package pipeline

import (
	"context"
	"log/slog"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/plugins"
	"github.com/wasmilter/wasmilter/stamp"
)

// FirstSeener answers when a message identity was first seen. The retry
// ledger answers durably, across restarts and nodes; without one, a
// message's first-seen time is the time of the attempt at hand.
type FirstSeener interface {
	FirstSeen(ctx context.Context, id stamp.Identity, now time.Time) (time.Time, error)
}

// attemptTime is the FirstSeener used when no ledger is configured.
type attemptTime struct{}

func (attemptTime) FirstSeen(_ context.Context, _ stamp.Identity, now time.Time) (time.Time, error) {
	return now, nil
}

// Options configure a Pipeline.
type Options struct {
	Chain      *plugins.Chain
	Stamps     *stamp.Codec
	FirstSeen  FirstSeener      // nil: the attempt's own time
	Clock      func() time.Time // nil: time.Now
	Logger     *slog.Logger     // nil: slog.Default()
	MaxHeaders int              // headers kept per message; 0: 10,000
}

// Pipeline implements milter.Backend.
type Pipeline struct {
	chain      *plugins.Chain
	stamps     *stamp.Codec
	firstSeen  FirstSeener
	clock      func() time.Time
	log        *slog.Logger
	maxHeaders int
}

// New returns a pipeline running opts.Chain.
func New(opts Options) *Pipeline {
	p := &Pipeline{chain: opts.Chain, stamps: opts.Stamps, firstSeen: opts.FirstSeen,
		clock: opts.Clock, log: opts.Logger, maxHeaders: opts.MaxHeaders}
	if p.firstSeen == nil {
		p.firstSeen = attemptTime{}
	}
	if p.clock == nil {
		p.clock = time.Now
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.maxHeaders == 0 {
		p.maxHeaders = 10_000
	}
	return p
}

// Chain returns the plugin chain the pipeline runs.
func (p *Pipeline) Chain() *plugins.Chain { return p.chain }

// NewSession implements milter.Backend.
func (p *Pipeline) NewSession(c *milter.Conn) milter.Session { return p.newSession(c) }

// Macros is where a session looks up MTA macros; *milter.Conn is one.
type Macros interface {
	Macro(name string) (string, bool)
}

// NewOfflineSession returns a session that is driven directly rather than
// by the milter server: `wasmilter replay` runs messages through it.
func (p *Pipeline) NewOfflineSession(m Macros) milter.Session { return p.newSession(m) }

// wantedActions are every modification a plugin may ask for; the MTA
// grants what it supports.
const wantedActions = gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine |
	gomilter.OptChangeFrom | gomilter.OptAddRcpt | gomilter.OptAddRcptWithArgs | gomilter.OptRemoveRcpt
