package retry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wasmilter/wasmilter/stamp"
)

// The bbolt layout. Every change to a record and to its index entry happens
// in one write transaction.
var (
	// bucketRecords maps an identity (16 bytes) to its stored record.
	bucketRecords = []byte("records")
	// bucketByState is the secondary index: state name, NUL, identity ->
	// nothing. It lets List(state) and the sweeper visit only the records
	// in one state, in identity order, without decoding the others.
	bucketByState = []byte("by-state")
	// bucketMeta holds the schema version of the file.
	bucketMeta = []byte("meta")
	keySchema  = []byte("schema")
)

// boltSchema is the layout version written into new files; a file with
// another version is refused rather than misread.
const boltSchema = "1"

// BoltOptions configure OpenBolt. The zero value is the production default.
type BoltOptions struct {
	// Clock stamps UpdatedAt; nil means time.Now. Tests inject theirs.
	Clock func() time.Time
	// LockTimeout is how long OpenBolt waits for the file lock another
	// process holds before giving up; 0 means DefaultLockTimeout.
	LockTimeout time.Duration
	// BatchDelay is how long a deferral waits for others to share its
	// commit (bbolt's DB.MaxBatchDelay); 0 means DefaultBatchDelay.
	BatchDelay time.Duration
	// BatchSize is the most deferrals one commit carries (bbolt's
	// DB.MaxBatchSize); 0 means bbolt's default (1000).
	BatchSize int
}

// Bolt defaults.
const (
	DefaultLockTimeout = time.Second
	DefaultBatchDelay  = time.Millisecond
)

// Bolt is the embedded ledger: one bbolt file, for a single node.
//
// bbolt allows one process at a time to open a file for writing, and holds
// an exclusive lock on it for as long as it is open. The server is that
// process; tools that want to see or change the ledger (the admin CLI) go
// through the server's admin API, never to the file.
type Bolt struct {
	db     *bolt.DB
	path   string
	clock  func() time.Time
	closed atomic.Bool
	// sessions counts batched calls in progress: a call that finds no
	// other commits at once instead of waiting BatchDelay for company.
	sessions atomic.Int32
}

var _ Ledger = (*Bolt)(nil)

// OpenBolt opens the ledger file at path, creating it and its parent
// directories if needed.
func OpenBolt(path string, opts BoltOptions) (*Bolt, error) {
	if path == "" {
		return nil, fmt.Errorf("retry ledger: %w: empty path", ErrInvalid)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("retry ledger %s: %w", path, err)
	}
	db, err := openBoltFile(path, orDefault(opts.LockTimeout, DefaultLockTimeout))
	if err != nil {
		return nil, err
	}
	if err := db.Update(initSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("retry ledger %s: %w", path, err)
	}
	db.MaxBatchDelay = orDefault(opts.BatchDelay, DefaultBatchDelay)
	if opts.BatchSize > 0 {
		db.MaxBatchSize = opts.BatchSize
	}
	b := &Bolt{db: db, path: path, clock: opts.Clock}
	if b.clock == nil {
		b.clock = time.Now
	}
	return b, nil
}

// openBoltFile opens the file and turns bbolt's failures into errors that
// say what to do. bbolt validates both meta pages with checksums, but a
// damaged file can still make it panic while mapping pages; a panic here
// becomes an error, never a crashed server.
func openBoltFile(path string, lockTimeout time.Duration) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("retry ledger %s: the file is damaged or not a bbolt database: %v", path, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, bolt.ErrTimeout):
		return nil, fmt.Errorf("retry ledger %s: another process holds the file lock (bbolt allows one process at a time; use the running server's admin API): %w", path, err)
	case errors.Is(err, bolt.ErrInvalid), errors.Is(err, bolt.ErrChecksum), errors.Is(err, bolt.ErrVersionMismatch):
		return nil, fmt.Errorf("retry ledger %s: the file is damaged or not a bbolt database; move it aside to start an empty ledger: %w", path, err)
	default:
		return nil, fmt.Errorf("retry ledger %s: %w", path, err)
	}
}

// initSchema creates the buckets of a new file, or checks that an existing
// file is a ledger of the version this code reads.
func initSchema(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if err := tx.ForEach(func([]byte, *bolt.Bucket) error { return errors.New("stop") }); err != nil {
			return errors.New("the file is a bbolt database but not a wasmilter retry ledger")
		}
		return createSchema(tx)
	}
	if v := meta.Get(keySchema); string(v) != boltSchema {
		return fmt.Errorf("ledger schema %q, this wasmilter reads %q", v, boltSchema)
	}
	if tx.Bucket(bucketRecords) == nil || tx.Bucket(bucketByState) == nil {
		return errors.New("the ledger file lacks its buckets; it is damaged")
	}
	return nil
}

func createSchema(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketMeta, bucketRecords, bucketByState} {
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return tx.Bucket(bucketMeta).Put(keySchema, []byte(boltSchema))
}

// Path returns the file the ledger is kept in.
func (b *Bolt) Path() string { return b.path }

// Close closes the file and releases its lock. Closing twice is harmless.
func (b *Bolt) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("retry ledger %s: close: %w", b.path, err)
	}
	return nil
}

// usable checks what every call checks before touching the file.
func (b *Bolt) usable(ctx context.Context) error {
	if b.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// storeErr wraps a failure of the store itself with the operation and file.
func (b *Bolt) storeErr(what string, err error) error {
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		err = ErrClosed
	}
	return fmt.Errorf("retry ledger %s: %s: %w", b.path, what, err)
}

// Get implements Ledger.
func (b *Bolt) Get(ctx context.Context, id stamp.Identity) (Record, error) {
	if err := b.usable(ctx); err != nil {
		return Record{}, err
	}
	var rec *Record
	err := b.db.View(func(tx *bolt.Tx) (err error) {
		rec, err = getRecord(tx, id)
		return err
	})
	if err != nil {
		return Record{}, b.storeErr("get "+id.String(), err)
	}
	if rec == nil {
		return Record{}, fmt.Errorf("get %s: %w", id, ErrNotFound)
	}
	return *rec, nil
}

// Defer implements Ledger. It returns after bbolt committed the
// transaction, which includes fdatasync of the file: the record survives a
// crash or power loss from then on. Concurrent deferrals share commits
// (DB.Batch), so one fsync serves many sessions.
func (b *Bolt) Defer(ctx context.Context, d Deferral) (Record, error) {
	if err := validateDeferral(d); err != nil {
		return Record{}, fmt.Errorf("defer: %w", err)
	}
	return b.change(ctx, opDefer, d.ID, deferTransition(d), true)
}

// Pass implements Ledger. Like Defer it is on the sessions' path and shares
// commits.
func (b *Bolt) Pass(ctx context.Context, id stamp.Identity, a Attempt) (Record, error) {
	if err := validateID(id); err != nil {
		return Record{}, fmt.Errorf("pass: %w", err)
	}
	if err := validateAttempt(a, 2, true); err != nil {
		return Record{}, fmt.Errorf("pass %s: %w", id, err)
	}
	return b.change(ctx, opPass, id, passTransition(id, a), true)
}

// Release implements Ledger.
func (b *Bolt) Release(ctx context.Context, id stamp.Identity) (Record, error) {
	if err := validateID(id); err != nil {
		return Record{}, fmt.Errorf("release: %w", err)
	}
	return b.change(ctx, opRelease, id, adminTransition(opRelease, id), false)
}

// Hold implements Ledger.
func (b *Bolt) Hold(ctx context.Context, id stamp.Identity) (Record, error) {
	if err := validateID(id); err != nil {
		return Record{}, fmt.Errorf("hold: %w", err)
	}
	return b.change(ctx, opHold, id, adminTransition(opHold, id), false)
}

// Expire implements Ledger.
func (b *Bolt) Expire(ctx context.Context, id stamp.Identity, at time.Time, r Reason) (Record, error) {
	if err := validateExpiry(id, at, r); err != nil {
		return Record{}, fmt.Errorf("expire: %w", err)
	}
	return b.change(ctx, opExpire, id, expireTransition(id, at, r), false)
}

// ClaimNotice implements Ledger. The claim is committed (and fsynced)
// before it returns, so a node that sends after a won claim holds a lease
// every other node sees, even if it crashes mid-send.
func (b *Bolt) ClaimNotice(ctx context.Context, id stamp.Identity, step int, node string, lease time.Duration, now time.Time) (Record, bool, error) {
	if err := validateClaim(id, step, node, lease, now); err != nil {
		return Record{}, false, fmt.Errorf("%s: %w", opClaim, err)
	}
	var won bool
	rec, err := b.change(ctx, opClaim, id, claimTransition(id, step, node, lease, now, &won), false)
	if err != nil {
		return Record{}, false, err
	}
	return rec, won, nil
}

// CompleteNotice implements Ledger.
func (b *Bolt) CompleteNotice(ctx context.Context, id stamp.Identity, step int, node string, now time.Time, o NoticeOutcome) (Record, error) {
	if err := validateNoticeCall(id, step, node, now); err != nil {
		return Record{}, fmt.Errorf("%s: %w", opComplete, err)
	}
	if err := validateOutcome(o); err != nil {
		return Record{}, fmt.Errorf("%s: %w", opComplete, err)
	}
	return b.change(ctx, opComplete, id, completeTransition(id, step, node, now, o), false)
}

// ReleaseNotice implements Ledger.
func (b *Bolt) ReleaseNotice(ctx context.Context, id stamp.Identity, step int, node string, now, retryAt time.Time, cause string) (Record, error) {
	if err := validateNoticeCall(id, step, node, now); err != nil {
		return Record{}, fmt.Errorf("%s: %w", opReleaseNotice, err)
	}
	return b.change(ctx, opReleaseNotice, id, releaseNoticeTransition(id, step, node, now, retryAt, cause), false)
}

// change runs one transition in one write transaction: read, decide,
// write record and index. batched transactions may share a commit with
// concurrent ones; bbolt may then call the function more than once, so it
// sets its results afresh each time. A refused transition writes nothing
// and returns nil to bbolt, so it never rolls back the others' batch.
func (b *Bolt) change(ctx context.Context, o op, id stamp.Identity, t transition, batched bool) (Record, error) {
	if err := b.usable(ctx); err != nil {
		return Record{}, err
	}
	var out Record
	var refused error
	fn := func(tx *bolt.Tx) error {
		out, refused = Record{}, nil
		cur, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		next, changed, err := applyTransition(t, cur, b.clock())
		if err != nil {
			refused = err
			return nil
		}
		if changed {
			if err := putRecord(tx, cur, next); err != nil {
				return err
			}
		}
		out = next
		return nil
	}
	if err := b.commit(fn, batched); err != nil {
		return Record{}, b.storeErr(fmt.Sprintf("%s %s", o, id), err)
	}
	if refused != nil {
		return Record{}, refused
	}
	return out, nil
}

// commit runs fn in a write transaction. A batched call shares its commit,
// and so its fsyncs, with the batched calls made at the same time (DB.Batch
// waits up to BatchDelay for them); a batched call that is alone commits at
// once, since waiting for company that is not there would only add latency.
func (b *Bolt) commit(fn func(*bolt.Tx) error, batched bool) error {
	if !batched {
		return b.db.Update(fn)
	}
	defer b.sessions.Add(-1)
	if b.sessions.Add(1) == 1 {
		return b.db.Update(fn)
	}
	return b.db.Batch(fn)
}

// getRecord returns the stored record of id, or nil if there is none.
func getRecord(tx *bolt.Tx, id stamp.Identity) (*Record, error) {
	v := tx.Bucket(bucketRecords).Get(id[:])
	if v == nil {
		return nil, nil
	}
	rec, err := decodeRecord(v)
	if err != nil {
		return nil, err
	}
	if rec.ID != id {
		return nil, fmt.Errorf("record stored under %s says it is %s: the file is damaged", id, rec.ID)
	}
	return &rec, nil
}

// putRecord stores next and moves its index entry if the state changed.
func putRecord(tx *bolt.Tx, cur *Record, next Record) error {
	v, err := encodeRecord(next)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketRecords).Put(next.ID[:], v); err != nil {
		return fmt.Errorf("put record: %w", err)
	}
	if cur != nil && cur.State == next.State {
		return nil
	}
	idx := tx.Bucket(bucketByState)
	if cur != nil {
		if err := idx.Delete(indexKey(cur.State, cur.ID)); err != nil {
			return fmt.Errorf("index: %w", err)
		}
	}
	if err := idx.Put(indexKey(next.State, next.ID), nil); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	return nil
}

// indexKey is "state\x00identity": the NUL ends the state name, so one
// state's keys are one contiguous range ordered by identity.
func indexKey(s State, id stamp.Identity) []byte {
	k := make([]byte, 0, len(s)+1+len(id))
	k = append(append(k, s...), 0)
	return append(k, id[:]...)
}

func indexPrefix(s State) []byte { return append([]byte(s), 0) }

// List implements Ledger: records in identity order, one state through the
// index or every state through the records themselves.
func (b *Bolt) List(ctx context.Context, f Filter) ([]Record, error) {
	if err := validateFilter(f); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit == 0 {
		limit = DefaultListLimit
	}
	var out []Record
	err := b.db.View(func(tx *bolt.Tx) error {
		out = nil
		return eachID(tx, f.State, f.After, func(id stamp.Identity) (bool, error) {
			rec, err := getRecord(tx, id)
			if err != nil {
				return false, err
			}
			if rec == nil {
				return false, fmt.Errorf("index names %s, which has no record: the file is damaged", id)
			}
			out = append(out, *rec)
			return len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, b.storeErr("list", err)
	}
	return out, nil
}

// eachID calls fn with the identities after `after` in state s (all states
// if s is ""), in order, until fn says stop or fails.
func eachID(tx *bolt.Tx, s State, after stamp.Identity, fn func(stamp.Identity) (more bool, err error)) error {
	bucket, prefix := tx.Bucket(bucketRecords), []byte(nil)
	if s != "" {
		bucket, prefix = tx.Bucket(bucketByState), indexPrefix(s)
	}
	seek := append(slices.Clone(prefix), after[:]...)
	c := bucket.Cursor()
	for k, _ := c.Seek(seek); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		var id stamp.Identity
		if len(k) != len(prefix)+len(id) {
			return fmt.Errorf("malformed key %x: the file is damaged", k)
		}
		copy(id[:], k[len(prefix):])
		if id == after {
			continue // the cursor is exclusive
		}
		more, err := fn(id)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// Purge implements Ledger. It visits only the named states, through the
// index, and deletes records and index entries in one transaction.
func (b *Bolt) Purge(ctx context.Context, p PurgeFilter) (int, error) {
	if err := validatePurge(p); err != nil {
		return 0, fmt.Errorf("purge: %w", err)
	}
	if err := b.usable(ctx); err != nil {
		return 0, err
	}
	before := ledgerTime(p.UpdatedBefore)
	states := slices.Compact(slices.Sorted(slices.Values(p.States)))
	n := 0
	err := b.db.Update(func(tx *bolt.Tx) error {
		n = 0
		for _, s := range states {
			victims, err := purgeable(tx, s, before)
			if err != nil {
				return err
			}
			for _, id := range victims {
				if err := deleteRecord(tx, s, id); err != nil {
					return err
				}
			}
			n += len(victims)
		}
		return nil
	})
	if err != nil {
		return 0, b.storeErr("purge", err)
	}
	return n, nil
}

// purgeable collects first and deletes after: deleting under a live bbolt
// cursor makes it skip keys.
func purgeable(tx *bolt.Tx, s State, before time.Time) ([]stamp.Identity, error) {
	var ids []stamp.Identity
	err := eachID(tx, s, stamp.Identity{}, func(id stamp.Identity) (bool, error) {
		rec, err := getRecord(tx, id)
		if err != nil {
			return false, err
		}
		if rec == nil {
			return false, fmt.Errorf("index names %s, which has no record: the file is damaged", id)
		}
		if rec.UpdatedAt.Before(before) {
			ids = append(ids, id)
		}
		return true, nil
	})
	return ids, err
}

func deleteRecord(tx *bolt.Tx, s State, id stamp.Identity) error {
	if err := tx.Bucket(bucketRecords).Delete(id[:]); err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	if err := tx.Bucket(bucketByState).Delete(indexKey(s, id)); err != nil {
		return fmt.Errorf("delete %s from index: %w", id, err)
	}
	return nil
}
