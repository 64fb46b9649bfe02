package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wasmilter/wasmilter/config"
	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/server"
)

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Defaults()
	}
	return config.Load(path)
}

func runServe(args []string, _, stderr io.Writer) error {
	fs, cfgPath := newFlagSet("serve", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := server.NewLogger(cfg.Log, stderr)
	slog.SetDefault(log)
	ctx := context.Background()
	reread := func() (*config.Config, error) { return loadConfig(*cfgPath) }
	srv, err := server.Build(ctx, cfg, server.Options{Logger: log, LoadConfig: reread})
	if err != nil {
		return err
	}
	ln, err := srv.Listen()
	if err != nil {
		srv.Release()
		return err
	}
	adminLn, err := srv.ListenAdmin()
	if err != nil {
		ln.Close()
		srv.Release()
		return err
	}
	log.Info("wasmilter starting", "config", cfg.Source)
	served := make(chan error, 2)
	go func() { served <- srv.Serve(ln) }()
	if adminLn != nil {
		go func() {
			if err := srv.ServeAdmin(adminLn); !errors.Is(err, http.ErrServerClosed) {
				served <- fmt.Errorf("admin API: %w", err)
			}
		}()
	}
	return waitForSignals(srv, cfg, log, served)
}

// waitForSignals runs until SIGTERM/SIGINT (drain, then exit) or until the
// server fails.
func waitForSignals(srv *server.Server, cfg *config.Config, log *slog.Logger, served <-chan error) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for {
		select {
		case err := <-served:
			srv.Close()
			return err
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				reload(srv, log)
				continue
			}
			return drain(srv, cfg, log, sig, served)
		}
	}
}

func drain(srv *server.Server, cfg *config.Config, log *slog.Logger, sig os.Signal, served <-chan error) error {
	log.Info("shutting down: waiting for open MTA sessions", "signal", sig.String(),
		"timeout", cfg.Milter.ShutdownTimeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Milter.ShutdownTimeout.Duration)
	defer cancel()
	err := srv.Shutdown(ctx)
	if err != nil {
		log.Warn("shutdown timeout reached; open sessions were closed", "err", err)
	}
	if serr := <-served; serr != nil && !errors.Is(serr, milter.ErrServerClosed) {
		return serr
	}
	log.Info("stopped")
	return nil
}

// reload applies SIGHUP: read the config again and swap in what it builds.
// A config that does not build changes nothing, and the error is logged;
// the server never stops over a reload.
func reload(srv *server.Server, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	restart, err := srv.ReloadConfig(ctx)
	if err != nil {
		log.Error("SIGHUP: reload refused", "err", err)
		return
	}
	if len(restart) > 0 {
		log.Warn("SIGHUP: reloaded; these settings changed but take effect only after a restart", "settings", restart)
	}
}
