package retry

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/wasmilter/wasmilter/stamp"
)

// The Redis layout (docs/REDIS.md shows it to operators). Every key starts
// with the prefix and the hash tag "{ledger}", so all of one ledger's keys
// live in one hash slot: a MULTI/EXEC over a record and its index entries,
// and the WATCH before it, touch a single slot, which Redis Cluster
// requires. Sentinel and Cluster are not wired up yet; the layout is ready
// for them.
//
//	<prefix>{ledger}:schema         string "1": the layout version
//	<prefix>{ledger}:rec:<id>       string: the record in the stored form of
//	                                codec.go; <id> is the identity as shown
//	                                to admins (26 base32 characters)
//	<prefix>{ledger}:state:<state>  sorted set, every score 0; members are
//	                                the identities in hex
//
// The index members are hex, not the base32 text form: ZRANGEBYLEX orders
// members bytewise, and hex keeps the identities' byte order (the order
// bbolt's index and the suite use), while the base32 alphabet puts its
// digits 2-7 (values 26-31) before the letters.
const (
	redisHashTag = "{ledger}:"
	redisSchema  = "1"
)

// Redis defaults.
const (
	// DefaultRedisPrefix starts every key; several ledgers (say, a test and
	// a production one) can share a Redis under different prefixes.
	DefaultRedisPrefix = "wasmilter:"
	// DefaultRedisTimeout bounds a dial, a read and a write. A mail session
	// waits for the ledger, so a Redis that is down or stalled must answer
	// with an error within about a second (the pipeline then applies
	// on_store_error), not hold the SMTP client for go-redis's default 5 s.
	DefaultRedisTimeout = time.Second
)

// Bounds of the optimistic retry loop (see change).
const (
	// redisMaxTxAttempts bounds how often one operation retries after a
	// conflicting change to its record. Conflicts need two changes of one
	// identity within a round trip of each other; the suite's 16 sessions
	// deferring one identity at once are the worst case seen.
	redisMaxTxAttempts = 200
	redisBackoffBase   = 50 * time.Microsecond
	redisBackoffMax    = 5 * time.Millisecond
	// redisPage is how many index members one read fetches while purging.
	redisPage = 256
)

// RedisOptions configure OpenRedis. The zero value is the production
// default.
type RedisOptions struct {
	// Prefix starts every key; "" means DefaultRedisPrefix. It may not
	// contain '{' or '}': the ledger adds its own hash tag after it.
	Prefix string
	// Clock stamps UpdatedAt; nil means time.Now. Tests inject theirs.
	Clock func() time.Time
	// DialTimeout, ReadTimeout and WriteTimeout bound each network step;
	// 0 means the URL's dial_timeout (etc.) if it has one, else
	// DefaultRedisTimeout.
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
	// PoolSize is the most connections to Redis at once; 0 means the URL's
	// pool_size or go-redis's default (10 per CPU).
	PoolSize int
	// AllowNoAppendOnly lets OpenRedis use a Redis whose append-only file
	// is off. Without it such a Redis is refused: its acknowledged writes
	// are lost back to the last snapshot on a restart, and a deferral the
	// MTA was told about must not be.
	AllowNoAppendOnly bool
	// Logger receives go-redis's own log lines (a failed dial, a dropped
	// connection). go-redis has one logger per process: the last ledger
	// opened with a Logger sets it. nil leaves go-redis's default.
	Logger *slog.Logger
}

// redisLogger hands go-redis's log lines to slog.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "retry ledger: redis client", "msg", fmt.Sprintf(format, v...))
}

// Redis is the shared ledger: records and their state index in one Redis,
// so several nodes (MX hosts) see and change the same records.
//
// Each change is one optimistic transaction: WATCH the record, GET it, run
// the transition of transition.go or outbox.go in Go, then MULTI/EXEC the
// new record and its index move. If another node changed the record in
// between, EXEC fails and the whole step runs again on the new record. The
// rules thus live in one place for every backend (RATIONALE.md says why
// this rather than Lua).
type Redis struct {
	client *redis.Client
	addr   string
	prefix string // the configured prefix with the hash tag
	clock  func() time.Time
	closed atomic.Bool
}

var _ Ledger = (*Redis)(nil)

// OpenRedis connects to the Redis at url (redis://[[user]:password@]host:port/db
// or rediss:// for TLS), checks that it answers and is fit to keep a
// ledger, and returns the ledger. An unreachable Redis is an error naming
// its address.
func OpenRedis(ctx context.Context, url string, opts RedisOptions) (*Redis, error) {
	client, addr, err := newRedisClient(url, opts)
	if err != nil {
		return nil, err
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		client.Close()
		return nil, fmt.Errorf("retry ledger redis %s: %w: key prefix %q contains a brace; the ledger adds its own hash tag", addr, ErrInvalid, prefix)
	}
	if opts.Logger != nil {
		redis.SetLogger(redisLogger{opts.Logger})
	}
	r := &Redis{client: client, addr: addr, prefix: prefix + redisHashTag, clock: opts.Clock}
	if r.clock == nil {
		r.clock = time.Now
	}
	if err := r.prepare(ctx, opts.AllowNoAppendOnly); err != nil {
		r.client.Close()
		return nil, err
	}
	return r, nil
}

// RedisSentinelScheme starts the URL of a Redis reached through Sentinel:
// redis+sentinel://[:PASSWORD@]SENTINEL:PORT/DB?master_name=NAME[&addr=SENTINEL2:PORT...].
// The password is the master's; sentinel_password is not taken from the
// URL (go-redis's rule), so Sentinels must not require one.
const RedisSentinelScheme = "redis+sentinel://"

// newRedisClient makes the client the URL asks for: one Redis, or the
// master that Sentinel names (go-redis follows a failover by asking the
// Sentinels again). addr names it in errors.
func newRedisClient(url string, opts RedisOptions) (*redis.Client, string, error) {
	rest, sentinel := strings.CutPrefix(url, RedisSentinelScheme)
	if !sentinel {
		ro, err := redisClientOptions(url, opts)
		if err != nil {
			return nil, "", err
		}
		return redis.NewClient(ro), ro.Addr, nil
	}
	fo, err := redis.ParseFailoverURL("redis://" + rest)
	if err != nil {
		return nil, "", fmt.Errorf("retry ledger redis: %w: %v", ErrInvalid, err)
	}
	if fo.MasterName == "" {
		return nil, "", fmt.Errorf("retry ledger redis: %w: a Sentinel URL needs ?master_name=NAME", ErrInvalid)
	}
	fo.DialTimeout = firstSet(opts.DialTimeout, fo.DialTimeout, DefaultRedisTimeout)
	fo.ReadTimeout = firstSet(opts.ReadTimeout, fo.ReadTimeout, DefaultRedisTimeout)
	fo.WriteTimeout = firstSet(opts.WriteTimeout, fo.WriteTimeout, DefaultRedisTimeout)
	if opts.PoolSize > 0 {
		fo.PoolSize = opts.PoolSize
	}
	// The same choices as for one Redis (see redisClientOptions).
	fo.MaxRetries, fo.DialerRetries, fo.ContextTimeoutEnabled = -1, 1, true
	addr := "master " + fo.MasterName + " via sentinel " + strings.Join(fo.SentinelAddrs, ",")
	return redis.NewFailoverClient(fo), addr, nil
}

// redisClientOptions parses the URL and applies the ledger's choices on
// top of it.
func redisClientOptions(url string, opts RedisOptions) (*redis.Options, error) {
	ro, err := redis.ParseURL(url)
	if err != nil {
		// ParseURL's errors never echo the URL, so a password stays out of
		// the log.
		return nil, fmt.Errorf("retry ledger redis: %w: %v", ErrInvalid, err)
	}
	ro.DialTimeout = firstSet(opts.DialTimeout, ro.DialTimeout, DefaultRedisTimeout)
	ro.ReadTimeout = firstSet(opts.ReadTimeout, ro.ReadTimeout, DefaultRedisTimeout)
	ro.WriteTimeout = firstSet(opts.WriteTimeout, ro.WriteTimeout, DefaultRedisTimeout)
	if opts.PoolSize > 0 {
		ro.PoolSize = opts.PoolSize
	}
	// go-redis would resend a command whose connection failed. That is
	// unsafe for EXEC (a lost reply to an applied EXEC would count an
	// attempt twice or lose a won claim), so the ledger sends each command
	// once and decides itself what to run again: only a transaction Redis
	// refused (see change).
	ro.MaxRetries = -1
	// One dial per attempt: go-redis's default of 5 dials with backoff
	// would make a down Redis cost several DialTimeouts per call.
	ro.DialerRetries = 1
	// A session's own deadline, when it has one, bounds the call too.
	ro.ContextTimeoutEnabled = true
	// Maintenance notifications are a managed-service feature a ledger
	// does not need; "auto" would try a command older servers refuse on
	// every new connection.
	ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return ro, nil
}

func firstSet(ds ...time.Duration) time.Duration {
	for _, d := range ds {
		if d != 0 {
			return d
		}
	}
	return 0
}

// prepare checks that Redis answers, that it keeps what it acknowledges,
// and that the keys under the prefix are a ledger this code reads.
func (r *Redis) prepare(ctx context.Context, allowNoAOF bool) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("retry ledger redis %s: cannot reach Redis: %w", r.addr, err)
	}
	if err := r.checkPersistence(ctx, allowNoAOF); err != nil {
		return fmt.Errorf("retry ledger redis %s: %w", r.addr, err)
	}
	key := r.prefix + "schema"
	if err := r.client.SetNX(ctx, key, redisSchema, 0).Err(); err != nil {
		return r.storeErr("write the layout version", err)
	}
	v, err := r.client.Get(ctx, key).Result()
	if err != nil {
		return r.storeErr("read the layout version", err)
	}
	if v != redisSchema {
		return fmt.Errorf("retry ledger redis %s: key %s says layout %q, this wasmilter reads %q", r.addr, key, v, redisSchema)
	}
	return nil
}

// checkPersistence refuses a Redis that would silently drop records: one
// that evicts keys without a TTL under memory pressure (the ledger's keys
// have none), or, unless allowed, one that does not log writes to an
// append-only file. A Redis whose INFO is disabled (some managed services
// rename it) is taken on trust; docs/REDIS.md says what it needs.
func (r *Redis) checkPersistence(ctx context.Context, allowNoAOF bool) error {
	info, err := r.client.Info(ctx, "persistence", "memory").Result()
	if err != nil {
		var rerr redis.Error
		if errors.As(err, &rerr) {
			return nil
		}
		return fmt.Errorf("INFO: %w", err)
	}
	fields := infoFields(info)
	if p := fields["maxmemory_policy"]; strings.HasPrefix(p, "allkeys-") {
		return fmt.Errorf("maxmemory-policy is %s, which evicts ledger records under memory pressure; set it to noeviction (see docs/REDIS.md)", p)
	}
	if fields["aof_enabled"] == "0" && !allowNoAOF {
		return errors.New("appendonly is off, so a restart loses the deferrals acknowledged since the last snapshot; set appendonly yes (see docs/REDIS.md)")
	}
	return nil
}

// infoFields parses INFO's "name:value" lines.
func infoFields(info string) map[string]string {
	fields := map[string]string{}
	for line := range strings.Lines(info) {
		if name, value, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[name] = value
		}
	}
	return fields
}

// Addr returns the address of the Redis the ledger is kept in.
func (r *Redis) Addr() string { return r.addr }

// Close closes the connections. Closing twice is harmless.
func (r *Redis) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	if err := r.client.Close(); err != nil {
		return fmt.Errorf("retry ledger redis %s: close: %w", r.addr, err)
	}
	return nil
}

// usable checks what every call checks before talking to Redis.
func (r *Redis) usable(ctx context.Context) error {
	if r.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// storeErr wraps a failure of Redis itself with the operation and address.
func (r *Redis) storeErr(what string, err error) error {
	if errors.Is(err, redis.ErrClosed) {
		err = ErrClosed
	}
	return fmt.Errorf("retry ledger redis %s: %s: %w", r.addr, what, err)
}

func (r *Redis) recordKey(id stamp.Identity) string { return r.prefix + "rec:" + id.String() }
func (r *Redis) indexKey(s State) string            { return r.prefix + "state:" + string(s) }

// member is an identity as it is kept in the state index: hex, whose
// bytewise order is the identities' order.
func member(id stamp.Identity) string { return hex.EncodeToString(id[:]) }

func parseMember(m string) (stamp.Identity, error) {
	var id stamp.Identity
	b, err := hex.DecodeString(m)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("index member %q is not an identity: the ledger's keys are damaged", m)
	}
	copy(id[:], b)
	return id, nil
}

// decodeStored decodes the value of id's record key.
func decodeStored(id stamp.Identity, v []byte) (*Record, error) {
	rec, err := decodeRecord(v)
	if err != nil {
		return nil, err
	}
	if rec.ID != id {
		return nil, fmt.Errorf("record stored under %s says it is %s: the ledger's keys are damaged", id, rec.ID)
	}
	return &rec, nil
}

// getter is what getRecord reads with: the client, or a transaction's
// connection after its WATCH.
type getter interface {
	Get(ctx context.Context, key string) *redis.StringCmd
}

// getRecord reads id's record; nil when there is none.
func (r *Redis) getRecord(ctx context.Context, cmd getter, id stamp.Identity) (*Record, error) {
	v, err := cmd.Get(ctx, r.recordKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeStored(id, v)
}

// Get implements Ledger.
func (r *Redis) Get(ctx context.Context, id stamp.Identity) (Record, error) {
	if err := r.usable(ctx); err != nil {
		return Record{}, err
	}
	rec, err := r.getRecord(ctx, r.client, id)
	if err != nil {
		return Record{}, r.storeErr("get "+id.String(), err)
	}
	if rec == nil {
		return Record{}, fmt.Errorf("get %s: %w", id, ErrNotFound)
	}
	return *rec, nil
}

// Defer implements Ledger. It returns once Redis acknowledged the EXEC
// that wrote the record; how durable that is depends on Redis's appendfsync
// setting (docs/REDIS.md).
func (r *Redis) Defer(ctx context.Context, d Deferral) (Record, error) {
	if err := validateDeferral(d); err != nil {
		return Record{}, fmt.Errorf("defer: %w", err)
	}
	return r.change(ctx, opDefer, d.ID, deferTransition(d))
}

// Pass implements Ledger.
func (r *Redis) Pass(ctx context.Context, id stamp.Identity, a Attempt) (Record, error) {
	if err := validateID(id); err != nil {
		return Record{}, fmt.Errorf("pass: %w", err)
	}
	if err := validateAttempt(a, 2, true); err != nil {
		return Record{}, fmt.Errorf("pass %s: %w", id, err)
	}
	return r.change(ctx, opPass, id, passTransition(id, a))
}

// Release implements Ledger.
func (r *Redis) Release(ctx context.Context, id stamp.Identity) (Record, error) {
	if err := validateID(id); err != nil {
		return Record{}, fmt.Errorf("release: %w", err)
	}
	return r.change(ctx, opRelease, id, adminTransition(opRelease, id))
}

// Hold implements Ledger.
func (r *Redis) Hold(ctx context.Context, id stamp.Identity) (Record, error) {
	if err := validateID(id); err != nil {
		return Record{}, fmt.Errorf("hold: %w", err)
	}
	return r.change(ctx, opHold, id, adminTransition(opHold, id))
}

// Expire implements Ledger.
func (r *Redis) Expire(ctx context.Context, id stamp.Identity, at time.Time, reason Reason) (Record, error) {
	if err := validateExpiry(id, at, reason); err != nil {
		return Record{}, fmt.Errorf("expire: %w", err)
	}
	return r.change(ctx, opExpire, id, expireTransition(id, at, reason))
}

// ClaimNotice implements Ledger. A won claim has been acknowledged by Redis
// before it returns, so every other node sees the lease.
func (r *Redis) ClaimNotice(ctx context.Context, id stamp.Identity, step int, node string, lease time.Duration, now time.Time) (Record, bool, error) {
	if err := validateClaim(id, step, node, lease, now); err != nil {
		return Record{}, false, fmt.Errorf("%s: %w", opClaim, err)
	}
	// claimTransition sets won afresh on every run, so a run repeated
	// after a conflict reports its own outcome, not an earlier one.
	var won bool
	rec, err := r.change(ctx, opClaim, id, claimTransition(id, step, node, lease, now, &won))
	if err != nil {
		return Record{}, false, err
	}
	return rec, won, nil
}

// CompleteNotice implements Ledger.
func (r *Redis) CompleteNotice(ctx context.Context, id stamp.Identity, step int, node string, now time.Time, o NoticeOutcome) (Record, error) {
	if err := validateNoticeCall(id, step, node, now); err != nil {
		return Record{}, fmt.Errorf("%s: %w", opComplete, err)
	}
	if err := validateOutcome(o); err != nil {
		return Record{}, fmt.Errorf("%s: %w", opComplete, err)
	}
	return r.change(ctx, opComplete, id, completeTransition(id, step, node, now, o))
}

// ReleaseNotice implements Ledger.
func (r *Redis) ReleaseNotice(ctx context.Context, id stamp.Identity, step int, node string, now, retryAt time.Time, cause string) (Record, error) {
	if err := validateNoticeCall(id, step, node, now); err != nil {
		return Record{}, fmt.Errorf("%s: %w", opReleaseNotice, err)
	}
	return r.change(ctx, opReleaseNotice, id, releaseNoticeTransition(id, step, node, now, retryAt, cause))
}

// change runs one transition as one atomic change of the record and its
// index entry: WATCH the record, read it, decide in Go, MULTI/EXEC the
// result. EXEC fails (TxFailedErr) if any other client changed the record
// after the WATCH; then nothing was written and the whole step runs again
// on the record as it now is, a bounded number of times with a short
// random backoff so that racing nodes do not collide in lockstep. Any other
// failure is reported as is and never repeated here: after a lost reply to
// an EXEC, Redis may have applied it.
func (r *Redis) change(ctx context.Context, o op, id stamp.Identity, t transition) (Record, error) {
	if err := r.usable(ctx); err != nil {
		return Record{}, err
	}
	what := fmt.Sprintf("%s %s", o, id)
	for attempt := range redisMaxTxAttempts {
		if attempt > 0 {
			if err := sleepCtx(ctx, redisBackoff(attempt)); err != nil {
				return Record{}, r.storeErr(what, err)
			}
		}
		out, refused, err := r.tryChange(ctx, id, t)
		switch {
		case errors.Is(err, redis.TxFailedErr):
			continue
		case err != nil:
			return Record{}, r.storeErr(what, err)
		case refused != nil:
			return Record{}, refused
		default:
			return out, nil
		}
	}
	return Record{}, r.storeErr(what, fmt.Errorf("gave up after %d attempts, each overtaken by a concurrent change of the record", redisMaxTxAttempts))
}

// tryChange is one optimistic attempt of change. refused is the
// transition's own error: nothing was written, and it is the answer.
func (r *Redis) tryChange(ctx context.Context, id stamp.Identity, t transition) (out Record, refused, err error) {
	key := r.recordKey(id)
	err = r.client.Watch(ctx, func(tx *redis.Tx) error {
		cur, err := r.getRecord(ctx, tx, id)
		if err != nil {
			return err
		}
		next, changed, err := applyTransition(t, cur, r.clock())
		if err != nil {
			refused = err
			return nil
		}
		if changed {
			if err := r.putRecord(ctx, tx, cur, next); err != nil {
				return err
			}
		}
		out = next
		return nil
	}, key)
	return out, refused, err
}

// putRecord writes next and moves its index entry, if its state changed,
// in one MULTI/EXEC on the transaction's connection.
func (r *Redis) putRecord(ctx context.Context, tx *redis.Tx, cur *Record, next Record) error {
	v, err := encodeRecord(next)
	if err != nil {
		return err
	}
	_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, r.recordKey(next.ID), v, 0)
		if cur != nil && cur.State == next.State {
			return nil
		}
		m := member(next.ID)
		if cur != nil {
			p.ZRem(ctx, r.indexKey(cur.State), m)
		}
		p.ZAdd(ctx, r.indexKey(next.State), redis.Z{Score: 0, Member: m})
		return nil
	})
	return err
}

// redisBackoff is the pause before retry number attempt: random within a
// window that doubles from redisBackoffBase up to redisBackoffMax.
func redisBackoff(attempt int) time.Duration {
	window := redisBackoffBase << min(attempt, 10)
	window = min(window, redisBackoffMax)
	return window/2 + rand.N(window/2+1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// List implements Ledger: records in identity order, one state through its
// index, or every state through all the indexes merged.
//
// The index and the records are read in two steps, without a lock: a
// record that changed state or was purged in between is left out (it is
// listed as of the moment after the change), and the page is topped up
// from further on in the index, so a short page still means the end.
func (r *Redis) List(ctx context.Context, f Filter) ([]Record, error) {
	if err := validateFilter(f); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	if err := r.usable(ctx); err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit == 0 {
		limit = DefaultListLimit
	}
	states := States
	if f.State != "" {
		states = []State{f.State}
	}
	var out []Record
	after := member(f.After)
	for len(out) < limit {
		ids, exhausted, err := r.scanIndex(ctx, states, after, limit-len(out))
		if err != nil {
			return nil, r.storeErr("list", err)
		}
		if len(ids) == 0 {
			break
		}
		recs, err := r.getRecords(ctx, ids)
		if err != nil {
			return nil, r.storeErr("list", err)
		}
		for _, rec := range recs {
			if rec != nil && (f.State == "" || rec.State == f.State) {
				out = append(out, *rec)
			}
		}
		after = member(ids[len(ids)-1])
		if exhausted {
			break
		}
	}
	return out, nil
}

// scanIndex returns up to n identities after the member `after` in the
// indexes of states, merged in identity order. The indexes are read in one
// MULTI/EXEC, so a record moving between two of them is seen in exactly
// one. exhausted reports that no identity follows the ones returned.
func (r *Redis) scanIndex(ctx context.Context, states []State, after string, n int) (ids []stamp.Identity, exhausted bool, err error) {
	by := &redis.ZRangeBy{Min: "(" + after, Max: "+", Count: int64(n)}
	cmds := make([]*redis.StringSliceCmd, len(states))
	_, err = r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, s := range states {
			cmds[i] = p.ZRangeByLex(ctx, r.indexKey(s), by)
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	var members []string
	exhausted = true
	for _, c := range cmds {
		members = append(members, c.Val()...)
		exhausted = exhausted && len(c.Val()) < n
	}
	slices.Sort(members)
	members = slices.Compact(members)
	if len(members) > n {
		members, exhausted = members[:n], false
	}
	ids = make([]stamp.Identity, len(members))
	for i, m := range members {
		if ids[i], err = parseMember(m); err != nil {
			return nil, false, err
		}
	}
	return ids, exhausted, nil
}

// getRecords reads the records of ids with one MGET; a record that is gone
// is nil.
func (r *Redis) getRecords(ctx context.Context, ids []stamp.Identity) ([]*Record, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = r.recordKey(id)
	}
	vals, err := r.client.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	recs := make([]*Record, len(ids))
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // deleted since the index was read
		}
		if recs[i], err = decodeStored(ids[i], []byte(s)); err != nil {
			return nil, err
		}
	}
	return recs, nil
}

// Purge implements Ledger. It walks only the named states' indexes and
// deletes each record that qualifies, with its index entry, in a
// transaction of its own that checks the record again under WATCH: a
// record another node changed meanwhile (a retry of a passed message, say)
// is not deleted. Unlike bbolt's Purge it is not one transaction over all
// the records, which nothing needs: each record is purged or not, whole.
func (r *Redis) Purge(ctx context.Context, p PurgeFilter) (int, error) {
	if err := validatePurge(p); err != nil {
		return 0, fmt.Errorf("purge: %w", err)
	}
	if err := r.usable(ctx); err != nil {
		return 0, err
	}
	before := ledgerTime(p.UpdatedBefore)
	n := 0
	for _, s := range slices.Compact(slices.Sorted(slices.Values(p.States))) {
		k, err := r.purgeState(ctx, s, before)
		n += k
		if err != nil {
			return n, r.storeErr(fmt.Sprintf("purge %s", s), err)
		}
	}
	return n, nil
}

// purgeState purges the records in state s changed before `before`, a page
// of the index at a time.
func (r *Redis) purgeState(ctx context.Context, s State, before time.Time) (int, error) {
	n := 0
	after := member(stamp.Identity{})
	for {
		ids, exhausted, err := r.scanIndex(ctx, []State{s}, after, redisPage)
		if err != nil || len(ids) == 0 {
			return n, err
		}
		recs, err := r.getRecords(ctx, ids)
		if err != nil {
			return n, err
		}
		for _, rec := range recs {
			if rec == nil || !purgeDue(rec, s, before) {
				continue
			}
			deleted, err := r.purgeOne(ctx, rec.ID, s, before)
			if err != nil {
				return n, err
			}
			if deleted {
				n++
			}
		}
		if exhausted {
			return n, nil
		}
		after = member(ids[len(ids)-1])
	}
}

func purgeDue(rec *Record, s State, before time.Time) bool {
	return rec.State == s && rec.UpdatedAt.Before(before)
}

// purgeOne deletes id's record and index entry if it still qualifies,
// retrying like change when another client changed it meanwhile.
func (r *Redis) purgeOne(ctx context.Context, id stamp.Identity, s State, before time.Time) (bool, error) {
	key := r.recordKey(id)
	for attempt := range redisMaxTxAttempts {
		if attempt > 0 {
			if err := sleepCtx(ctx, redisBackoff(attempt)); err != nil {
				return false, err
			}
		}
		deleted := false
		err := r.client.Watch(ctx, func(tx *redis.Tx) error {
			rec, err := r.getRecord(ctx, tx, id)
			if err != nil || rec == nil || !purgeDue(rec, s, before) {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Del(ctx, key)
				p.ZRem(ctx, r.indexKey(s), member(id))
				return nil
			})
			deleted = err == nil
			return err
		}, key)
		if !errors.Is(err, redis.TxFailedErr) {
			return deleted, err
		}
	}
	return false, fmt.Errorf("delete %s: gave up after %d attempts, each overtaken by a concurrent change of the record", id, redisMaxTxAttempts)
}
