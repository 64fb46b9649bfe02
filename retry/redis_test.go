package retry_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmilter/wasmilter/internal/redistest"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/retry/ledgertest"
	"github.com/wasmilter/wasmilter/stamp"
)

// openRedis opens a ledger on srv under prefix and closes it when t ends.
func openRedis(t testing.TB, srv *redistest.Server, opts retry.RedisOptions) *retry.Redis {
	t.Helper()
	l, err := retry.OpenRedis(context.Background(), srv.URL(), opts)
	if err != nil {
		t.Fatalf("OpenRedis: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// TestRedisLedger runs the whole suite on one real redis-server; each test
// gets an empty store of its own through a key prefix of its own.
func TestRedisLedger(t *testing.T) {
	srv := redistest.Start(t)
	var stores atomic.Int64
	ledgertest.Run(t, func(t *testing.T) ledgertest.Opener {
		prefix := fmt.Sprintf("suite%d:", stores.Add(1))
		return func(clock *ledgertest.Clock) retry.Ledger {
			return openRedis(t, srv, retry.RedisOptions{Prefix: prefix, Clock: clock.Now})
		}
	})
}

// client is a plain go-redis client on srv, to look at or tamper with the
// keys behind the ledger's back.
func client(t *testing.T, srv *redistest.Server) *redis.Client {
	opt, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

func testID(n int) stamp.Identity {
	return stamp.Derive(stamp.Facts{Sender: fmt.Sprintf("s%d@example.org", n), Recipients: []string{"r@example.net"}})
}

func testDeferral(id stamp.Identity, at time.Time) retry.Deferral {
	return retry.Deferral{ID: id, Sender: "s@example.org", Recipients: []string{"r@example.net"},
		Attempt: retry.Attempt{At: at, QueueID: "Q1", Reason: retry.Reason{Code: 451, Enhanced: "4.7.1", Text: "Greylisted"}}}
}

// TestRedisKeyLayout pins the layout docs/REDIS.md shows: every key under
// the prefix, in the hash slot of the tag "ledger", the record under the
// identity admins see, the index members in hex.
func TestRedisKeyLayout(t *testing.T) {
	srv := redistest.Start(t)
	l := openRedis(t, srv, retry.RedisOptions{})
	ctx := context.Background()
	id := testID(1)
	if _, err := l.Defer(ctx, testDeferral(id, time.Now())); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Hold(ctx, id); err != nil {
		t.Fatal(err)
	}
	c := client(t, srv)
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"wasmilter:{ledger}:schema":             "string",
		"wasmilter:{ledger}:rec:" + id.String(): "string",
		"wasmilter:{ledger}:state:held":         "zset",
	}
	if len(keys) != len(want) {
		t.Errorf("keys %v, want %d keys", keys, len(want))
	}
	for _, k := range keys {
		typ, err := c.Type(ctx, k).Result()
		if err != nil || typ != want[k] {
			t.Errorf("key %s: %s, %v; want %q", k, typ, err, want[k])
		}
		if tag := hashTag(k); tag != "ledger" {
			t.Errorf("key %s hashes on %q, not the shared tag", k, tag)
		}
	}
	members, err := c.ZRangeWithScores(ctx, "wasmilter:{ledger}:state:held", 0, -1).Result()
	if err != nil || len(members) != 1 || members[0].Member != fmt.Sprintf("%x", id[:]) || members[0].Score != 0 {
		t.Errorf("held index: %+v, %v; want the identity in hex with score 0", members, err)
	}
}

// hashTag is the part of a key Redis Cluster hashes: the text inside the
// first {...} if it is not empty, else the whole key.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// TestRedisOpenRefusals: OpenRedis says what is wrong, naming the
// address, and never leaves a half-open ledger behind.
func TestRedisOpenRefusals(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	c := client(t, srv)
	set := func(args ...string) {
		t.Helper()
		if _, err := srv.Do(args...); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name, url string
		opts      retry.RedisOptions
		setup     func()
		want      string
		invalid   bool
	}{
		{name: "not a Redis URL", url: "http://" + srv.Addr(), want: "invalid", invalid: true},
		{name: "a brace in the prefix", url: srv.URL(), opts: retry.RedisOptions{Prefix: "a{b}:"}, want: "brace", invalid: true},
		{name: "eviction of any key", url: srv.URL(), setup: func() { set("CONFIG", "SET", "maxmemory-policy", "allkeys-lru") }, want: "noeviction"},
		{name: "no append-only file", url: srv.URL(), setup: func() { set("CONFIG", "SET", "appendonly", "no") }, want: "appendonly yes"},
		{name: "another layout version", url: srv.URL(), opts: retry.RedisOptions{Prefix: "v9:"},
			setup: func() { set("SET", "v9:{ledger}:schema", "9") }, want: `layout "9"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			set("CONFIG", "SET", "maxmemory-policy", "noeviction")
			set("CONFIG", "SET", "appendonly", "yes")
			if tc.setup != nil {
				tc.setup()
			}
			l, err := retry.OpenRedis(ctx, tc.url, tc.opts)
			if err == nil {
				l.Close()
				t.Fatal("OpenRedis accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) || errors.Is(err, retry.ErrInvalid) != tc.invalid {
				t.Errorf("error %q: want it to say %q (and ErrInvalid: %v)", err, tc.want, tc.invalid)
			}
			t.Logf("%s: %v", tc.name, err)
		})
	}
	// Without an append-only file, a user who accepts the loss may still go on.
	set("CONFIG", "SET", "appendonly", "no")
	l := openRedis(t, srv, retry.RedisOptions{AllowNoAppendOnly: true})
	if _, err := l.Defer(ctx, testDeferral(testID(1), time.Now())); err != nil {
		t.Errorf("Defer with AllowNoAppendOnly: %v", err)
	}
	if n, err := c.Exists(ctx, "v9:{ledger}:schema").Result(); err != nil || n != 1 {
		t.Errorf("a refused open touched another version's keys: %d, %v", n, err)
	}
}

// TestRedisUnreachableAtOpen: a Redis that is not there is an error at
// once, naming its address.
func TestRedisUnreachableAtOpen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	start := time.Now()
	l, err := retry.OpenRedis(context.Background(), "redis://:secret@"+addr+"/0", retry.RedisOptions{})
	if err == nil {
		l.Close()
		t.Fatal("OpenRedis succeeded with nothing listening")
	}
	if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "cannot reach Redis") {
		t.Errorf("error does not name the address: %v", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error shows the password: %v", err)
	}
	if d := time.Since(start); d > 2*retry.DefaultRedisTimeout {
		t.Errorf("refusal took %v", d)
	}
}

// bounded runs op and fails unless it returns an error naming Redis within
// limit: a down or stalled Redis must not stall a mail session.
func bounded(t *testing.T, what, addr string, limit time.Duration, op func() error) {
	t.Helper()
	start := time.Now()
	err := op()
	d := time.Since(start)
	switch {
	case err == nil:
		t.Errorf("%s succeeded with Redis down", what)
	case !strings.Contains(err.Error(), "redis "+addr):
		t.Errorf("%s: error does not name Redis and its address: %v", what, err)
	case d > limit:
		t.Errorf("%s took %v to fail, more than %v: %v", what, d, limit, err)
	default:
		t.Logf("%s failed after %v: %v", what, d.Round(time.Millisecond), err)
	}
}

// TestRedisDownAndBack: with Redis killed, or frozen, every call fails
// within the timeouts (default ones) with an error naming Redis; once it
// is back, the same ledger works again without being reopened, and what
// it acknowledged before the kill is still there.
func TestRedisDownAndBack(t *testing.T) {
	srv := redistest.Start(t)
	l := openRedis(t, srv, retry.RedisOptions{})
	ctx := context.Background()
	before := testID(1)
	if _, err := l.Defer(ctx, testDeferral(before, time.Now())); err != nil {
		t.Fatal(err)
	}
	calls := func(limit time.Duration, n int) {
		t.Helper()
		bounded(t, "Get", srv.Addr(), limit, func() error { _, err := l.Get(ctx, before); return err })
		bounded(t, "Defer", srv.Addr(), limit, func() error { _, err := l.Defer(ctx, testDeferral(testID(n), time.Now())); return err })
		bounded(t, "List", srv.Addr(), limit, func() error { _, err := l.List(ctx, retry.Filter{State: retry.Deferred}); return err })
		bounded(t, "ClaimNotice", srv.Addr(), limit, func() error {
			_, _, err := l.ClaimNotice(ctx, before, 1, "node-a", time.Minute, time.Now())
			return err
		})
	}
	back := func(n int) {
		t.Helper()
		if rec, err := l.Get(ctx, before); err != nil || rec.Attempts != 1 {
			t.Fatalf("Get after Redis came back: %+v, %v; want the record acknowledged before", rec, err)
		}
		if _, err := l.Defer(ctx, testDeferral(testID(n), time.Now())); err != nil {
			t.Fatalf("Defer after Redis came back: %v", err)
		}
	}

	srv.Kill()
	// A refused connection fails at once; allow one timeout for slow machines.
	calls(retry.DefaultRedisTimeout, 2)
	srv.Restart()
	back(3)

	srv.Pause()
	// A frozen Redis accepts connections and answers nothing: each call
	// waits out one read timeout (a new connection: dial, then read).
	calls(2*retry.DefaultRedisTimeout+500*time.Millisecond, 4)
	srv.Resume()
	back(5)
}

// TestRedisTwoNodes: two ledgers on one Redis, as two MX hosts would have,
// racing on the same identity: no attempt is counted twice or lost, and
// of all their claims on a notice step exactly one wins.
func TestRedisTwoNodes(t *testing.T) {
	srv := redistest.Start(t)
	nodes := []*retry.Redis{openRedis(t, srv, retry.RedisOptions{}), openRedis(t, srv, retry.RedisOptions{})}
	ctx := context.Background()
	id := testID(1)
	first := time.Now()
	const perNode, each = 8, 15
	var wg sync.WaitGroup
	errs := make(chan error, 2*perNode*each)
	for g := range 2 * perNode {
		l := nodes[g%2]
		wg.Go(func() {
			for i := range each {
				if _, err := l.Defer(ctx, testDeferral(id, first.Add(time.Duration(g*each+i)*time.Millisecond))); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, l := range nodes {
		rec, err := l.Get(ctx, id)
		if err != nil || rec.Attempts != 2*perNode*each {
			t.Fatalf("node %d sees %d attempts, %v; want %d", i, rec.Attempts, err, 2*perNode*each)
		}
	}

	now := time.Now()
	for step := 1; step <= 10; step++ {
		var wins atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := range 2 * perNode {
			l, node := nodes[g%2], fmt.Sprintf("node-%d", g%2)
			wg.Go(func() {
				<-start
				_, won, err := l.ClaimNotice(ctx, id, step, node, time.Minute, now)
				if err != nil {
					t.Error(err)
				}
				if won {
					wins.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Errorf("step %d: %d claims won, want exactly 1", step, n)
		}
	}
	rec, err := nodes[1].Get(ctx, id)
	if err != nil || len(rec.Outbox) != 10 {
		t.Fatalf("outbox after the races: %+v, %v", rec.Outbox, err)
	}
	for _, e := range rec.Outbox {
		if e.Claims != 1 || e.Status != retry.NoticeLeased {
			t.Errorf("step %d: %+v, want one claim leased", e.Step, e)
		}
	}
}

func openRedisBench(b *testing.B) *retry.Redis {
	srv := redistest.Start(b)
	l, err := retry.OpenRedis(context.Background(), srv.URL(), retry.RedisOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

// BenchmarkRedisDefer is BenchmarkDefer on Redis: acknowledged deferrals
// (appendfsync always: Redis fsyncs its append-only file before it
// answers, once per event-loop round for all clients) from 1, 8 and 64
// sessions, each a new identity with a ~2 KiB header.
func BenchmarkRedisDefer(b *testing.B) {
	for _, sessions := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) {
			l := openRedisBench(b)
			var next atomic.Uint64
			b.ResetTimer()
			err := spread(b.N, sessions, func() error {
				_, err := l.Defer(context.Background(), benchDeferral(benchID(next.Add(1))))
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deferrals/s")
		})
	}
}

// BenchmarkRedisGet is BenchmarkGet on Redis: lookups of existing records
// from parallel sessions.
func BenchmarkRedisGet(b *testing.B) {
	l := openRedisBench(b)
	const records = 10_000
	var next atomic.Uint64
	err := spread(records, 64, func() error {
		_, err := l.Defer(context.Background(), benchDeferral(benchID(next.Add(1))))
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := uint64(0)
		for pb.Next() {
			i++
			if _, err := l.Get(context.Background(), benchID(i%records+1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

// TestRedisThroughSentinel: a ledger whose URL names a Sentinel finds the
// master through it, and after the master dies and Sentinel promotes the
// replica, the same ledger goes on working on the new master, with what it
// wrote before (replicated) still there.
func TestRedisThroughSentinel(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	sentinel := redistest.StartSentinel(t, master, "ledger")
	url := retry.RedisSentinelScheme + sentinel.Addr() + "/0?master_name=ledger"
	l, err := retry.OpenRedis(context.Background(), url, retry.RedisOptions{})
	if err != nil {
		t.Fatalf("OpenRedis through Sentinel: %v", err)
	}
	defer l.Close()
	ctx := context.Background()
	now := time.Now()
	before := testID(1)
	if _, err := l.Defer(ctx, testDeferral(before, now)); err != nil {
		t.Fatal(err)
	}
	// The replica has every key before the master goes: replication is
	// asynchronous, and losing the last writes to a failover is not what
	// this test is about (docs/REDIS.md says what it means).
	want, err := master.Do("DBSIZE")
	if err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if got, _ := replica.Do("DBSIZE"); got == want {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the replica did not catch up with the master's %s keys", want)
		}
	}

	master.Kill()
	var rec retry.Record
	deadline := time.Now().Add(30 * time.Second)
	for {
		rec, err = l.Get(ctx, before)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failover within 30s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if rec.Sender != "s@example.org" {
		t.Fatalf("after failover: %+v", rec)
	}
	after := testID(2)
	if _, err := l.Defer(ctx, testDeferral(after, now)); err != nil {
		t.Fatalf("a deferral after failover: %v", err)
	}
}

func TestRedisSentinelURLNeedsMasterName(t *testing.T) {
	_, err := retry.OpenRedis(context.Background(), retry.RedisSentinelScheme+"127.0.0.1:1/0", retry.RedisOptions{})
	if !errors.Is(err, retry.ErrInvalid) || !strings.Contains(err.Error(), "master_name") {
		t.Fatalf("a Sentinel URL without master_name: %v", err)
	}
}
