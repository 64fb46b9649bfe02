package server

import (
	"context"
	"time"
)

// janitorInterval is how often finished ledger records are purged. Records
// only need to go some time after keep_passed; an hour keeps the work small
// and the file from growing between runs.
const janitorInterval = time.Hour

// runJanitor purges passed and expired records older than the policy keeps
// them, at start and then every janitorInterval, until ctx ends.
func (s *Server) runJanitor(ctx context.Context) {
	if s.ledger == nil {
		return
	}
	t := time.NewTicker(janitorInterval)
	defer t.Stop()
	for {
		s.purgeFinished(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// purgeFinished runs one round of the janitor.
func (s *Server) purgeFinished(ctx context.Context) {
	now := s.clock()
	for _, f := range retryPolicy(s.currentGeneration().cfg).Purges(now) {
		n, err := s.ledger.Purge(ctx, f)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("retry ledger: purging finished records failed", "states", f.States, "err", err)
			}
			return
		}
		if n > 0 {
			s.log.Info("retry ledger: purged finished records", "records", n, "states", f.States,
				"not_updated_since", f.UpdatedBefore.Format(time.RFC3339))
		}
	}
}
