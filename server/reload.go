package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/wasmilter/wasmilter/config"
)

// currentGeneration is the generation new sessions start on.
func (s *Server) currentGeneration() *generation {
	s.genMu.Lock()
	defer s.genMu.Unlock()
	return s.current
}

// enterCurrent counts a new session into the current generation.
func (s *Server) enterCurrent() *generation {
	for {
		g := s.currentGeneration()
		if g.enter() {
			return g
		}
		// g was retired and released between the two steps: the current
		// generation has changed since; take it.
	}
}

// startServing marks the server as serving and starts the current
// generation's delay notices.
func (s *Server) startServing() *generation {
	s.genMu.Lock()
	defer s.genMu.Unlock()
	s.serving = true
	s.current.notices.start()
	return s.current
}

// Reload builds the plugins, the pipeline and the delay notices of cfg
// the way Caddy reloads: build the new set, check it, swap it in, let
// what is in flight finish on the old set. New MTA sessions start on the
// new set at once; sessions already open finish on the old one, which is
// released when the last of them ends. If anything of the new set fails
// to build, nothing changes: the old set keeps serving and the error says
// what is wrong, with file, line and key.
//
// A reload replaces everything under [[plugins]], [notify], [stamp] and
// the policy keys of [retry]. Settings the running server cannot change
// in place (listeners, the ledger's store, the cache's size, the Wasm
// compilation cache, the log) are left as they are; Reload returns them
// as restartNeeded, for the caller to report.
func (s *Server) Reload(ctx context.Context, cfg *config.Config) (restartNeeded []string, err error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.currentGeneration()
	next, err := buildGeneration(ctx, cfg, s.shared)
	if err != nil {
		return nil, fmt.Errorf("reload of %s: %w; the running configuration stays", cfg.Source, err)
	}
	s.genMu.Lock()
	s.current = next
	s.generations = append(s.dropReleased(), next)
	if s.serving {
		next.notices.start()
	}
	s.genMu.Unlock()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), old.cfg.Milter.ShutdownTimeout.Duration)
	go func() {
		defer cancel()
		old.retire(shutdownCtx)
	}()
	restartNeeded = staticChanges(old.cfg, cfg)
	s.log.Info("configuration reloaded", "config", cfg.Source, "plugins", len(next.chain.Plugins()),
		"hooks", next.chain.Hooks().String(), "restart_needed", restartNeeded)
	return restartNeeded, nil
}

// ReloadConfig reads the configuration again (Options.LoadConfig) and
// reloads it; see Reload.
func (s *Server) ReloadConfig(ctx context.Context) ([]string, error) {
	if s.shared.opts.LoadConfig == nil {
		return nil, errors.New("reload: this server was not given a way to read its configuration again")
	}
	cfg, err := s.shared.opts.LoadConfig()
	if err != nil {
		return nil, fmt.Errorf("reload: %w; the running configuration stays", err)
	}
	return s.Reload(ctx, cfg)
}

// staticChanges lists the settings that differ between two configs and
// take effect only at a restart.
func staticChanges(old, cfg *config.Config) []string {
	var changed []string
	for _, c := range []struct {
		key     string
		changed bool
	}{
		{"milter", old.Milter != cfg.Milter},
		{"admin", old.Admin != cfg.Admin},
		{"log", old.Log != cfg.Log},
		{"runtime", old.Runtime != cfg.Runtime},
		{"cache", old.Cache != cfg.Cache},
		{"retry.store", old.Retry.Store != cfg.Retry.Store || old.Retry.RedisPrefix != cfg.Retry.RedisPrefix},
	} {
		if c.changed {
			changed = append(changed, c.key)
		}
	}
	return changed
}
