package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/wasmilter/wasmilter/config"
	"github.com/wasmilter/wasmilter/server"
)

// runCheck validates the config and builds everything `serve` would,
// without listening: the same code path, so a config that passes check
// does not fail at start for a reason check could have seen.
func runCheck(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlagSet("check", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError{1}
	}
	quiet := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ledger, closeLedger, err := throwawayLedger(nil)
	if err != nil {
		return err
	}
	defer closeLedger()
	srv, err := server.Build(context.Background(), cfg, server.Options{Logger: quiet, Ledger: ledger})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError{1}
	}
	defer srv.Release()
	fmt.Fprintf(stdout, "config %s: ok\n", cfg.Source)
	fmt.Fprintf(stdout, "listen %s\n", cfg.Milter.Listen)
	fmt.Fprintf(stdout, "stamp header %s, %s\n", cfg.Stamp.Header, signedText(len(cfg.Stamp.Keys)))
	fmt.Fprintf(stdout, "retry ledger %s, max_age %s, on_store_error %s\n", ledgerText(cfg.Retry.Store),
		cfg.Retry.MaxAge, cfg.Retry.OnStoreError)
	fmt.Fprintf(stdout, "property cache %d entries, %s, ttl %s\n", cfg.Cache.MaxEntries, cfg.Cache.MaxBytes, cfg.Cache.TTL)
	fmt.Fprintf(stdout, "admin API %s\n", adminText(cfg.Admin))
	fmt.Fprintf(stdout, "MTA stages asked for: %s\n", srv.Chain().Hooks())
	for i, p := range srv.Chain().Plugins() {
		spec := p.Spec()
		fmt.Fprintf(stdout, "plugin %d %q (%s)\n", i+1, p.Name(), spec.Source)
		fmt.Fprintf(stdout, "  hooks     %s\n", strings.ReplaceAll(p.Hooks().String(), ",", ", "))
		fmt.Fprintf(stdout, "  limits    timeout %s, memory %s, instances %s\n", spec.Timeout,
			cfg.Plugins[i].Memory, instancesText(spec.MaxInstances))
		fmt.Fprintf(stdout, "  on_error  %s\n", spec.OnError)
	}
	fmt.Fprintf(stdout, "delay notices %s\n", noticesText(cfg, srv.Notifier() != nil))
	return nil
}

func noticesText(cfg *config.Config, on bool) string {
	n := &cfg.Notify
	switch {
	case cfg.Retry.Store == "":
		return "off (no retry ledger)"
	case !on:
		return "off (no notify.policy)"
	case !n.Enabled:
		return fmt.Sprintf("policy %q (%s) expires messages, sends nothing (notify.enabled = false)", n.Policy.Name, n.Policy.Path)
	}
	return fmt.Sprintf("policy %q (%s), every %s, via %s, at most %d per sender per %s", n.Policy.Name, n.Policy.Path,
		n.SweepInterval, n.SMTP, n.RateLimit, n.RateWindow)
}

func signedText(keys int) string {
	if keys == 0 {
		return "unsigned (no keys)"
	}
	return fmt.Sprintf("HMAC-signed (%d key(s))", keys)
}

func ledgerText(store string) string {
	if store == "" {
		return "off (deferrals are not remembered)"
	}
	return store
}

func adminText(a config.Admin) string {
	switch {
	case a.Listen == "":
		return "off"
	case a.Token == "":
		return a.Listen + " (no token)"
	}
	return a.Listen + " (token required)"
}

func instancesText(n int) string {
	if n == 0 {
		return "automatic"
	}
	return fmt.Sprint(n)
}
