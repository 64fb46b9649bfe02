package pipeline

import (
	"log/slog"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/wasmilter/wasmilter/cache"
	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/plugins"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/stamp"
)

// Options configure a Pipeline.
type Options struct {
	Chain  *plugins.Chain
	Stamps *stamp.Codec
	// Ledger records deferrals and answers first-seen times; nil keeps no
	// records (a retried message then gets a new first-seen time).
	Ledger retry.Ledger
	// Policy holds the ledger's time rules (maximum age, expiry text).
	Policy retry.Policy
	// AcceptOnStoreError lets a message through unrecorded when the ledger
	// fails; false (the default) defers it instead.
	AcceptOnStoreError bool
	// Cache keeps each message's parsed header properties under its
	// identity; nil parses every header afresh.
	Cache      *cache.Cache
	Clock      func() time.Time // nil: time.Now
	Logger     *slog.Logger     // nil: slog.Default()
	MaxHeaders int              // headers kept per message; 0: 10,000
	// Limits bound a message's header bytes and body, and say what a
	// message over any limit (MaxHeaders included) gets.
	Limits Limits
	// Observer is told about sessions, messages and ledger failures, for
	// metrics; nil counts nothing.
	Observer Observer
}

// Pipeline implements milter.Backend.
type Pipeline struct {
	chain         *plugins.Chain
	stamps        *stamp.Codec
	ledger        retry.Ledger
	policy        retry.Policy
	acceptOnError bool
	cache         *cache.Cache
	clock         func() time.Time
	log           *slog.Logger
	maxHeaders    int
	limits        Limits
	obs           Observer
	counters      *messageCounters
}

// New returns a pipeline running opts.Chain.
func New(opts Options) *Pipeline {
	p := &Pipeline{chain: opts.Chain, stamps: opts.Stamps, ledger: opts.Ledger, policy: opts.Policy,
		acceptOnError: opts.AcceptOnStoreError, cache: opts.Cache, clock: opts.Clock, log: opts.Logger, maxHeaders: opts.MaxHeaders}
	if p.clock == nil {
		p.clock = time.Now
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.maxHeaders == 0 {
		p.maxHeaders = 10_000
	}
	p.limits = opts.Limits.withDefaults()
	p.obs = opts.Observer
	if p.obs == nil {
		p.obs = nopObserver{}
	}
	p.counters = resolveCounters(p.obs)
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
