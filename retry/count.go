package retry

import (
	"bytes"
	"context"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"
)

// StateCounter is a ledger that can count its records per state from its
// state index, without reading a record: what metrics scrape. Bolt and
// Redis implement it.
type StateCounter interface {
	// CountByState returns how many records are in each state; every
	// state of States is present, zero included.
	CountByState(ctx context.Context) (map[State]int, error)
}

var (
	_ StateCounter = (*Bolt)(nil)
	_ StateCounter = (*Redis)(nil)
)

// CountByState implements StateCounter by walking the keys of the state
// index in one read transaction: no record is decoded, and readers do not
// block writers in bbolt, so deferrals go on while it counts.
func (b *Bolt) CountByState(ctx context.Context) (map[State]int, error) {
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	counts := make(map[State]int, len(States))
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketByState).Cursor()
		for _, s := range States {
			prefix := indexPrefix(s)
			n := 0
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				n++
			}
			counts[s] = n
		}
		return nil
	})
	if err != nil {
		return nil, b.storeErr("count by state", err)
	}
	return counts, nil
}

// CountByState implements StateCounter: one ZCARD per state index, O(1)
// each, sent in one pipeline.
func (r *Redis) CountByState(ctx context.Context) (map[State]int, error) {
	if err := r.usable(ctx); err != nil {
		return nil, err
	}
	cmds := make([]*redis.IntCmd, len(States))
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, s := range States {
			cmds[i] = p.ZCard(ctx, r.indexKey(s))
		}
		return nil
	})
	if err != nil {
		return nil, r.storeErr("count by state", err)
	}
	counts := make(map[State]int, len(States))
	for i, s := range States {
		counts[s] = int(cmds[i].Val())
	}
	return counts, nil
}
