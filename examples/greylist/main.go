//go:build wasip1

// Command greylist is a greylisting policy keyed on the message, not on the
// client.
//
// Classic greylisters (postgrey, milter-greylist) remember the triplet
// (client IP, sender, recipient) and defer until the same triplet comes
// back. Large senders retry from a pool of addresses, so the triplet rarely
// matches and mail is delayed again and again. This policy asks the host for
// the message's retry record instead: the record is keyed on the message's
// identity (Message-ID, sender, recipients), which a retry from any address
// of the pool repeats, and carries the time the message was first seen.
//
// At the headers hook (the first point where the identity is known):
//
//   - a client in allow.networks, or a sender whose domain is in
//     allow.sender_domains, passes;
//   - a message with no record (never seen) is deferred with 451 4.7.1;
//     the host records the deferral durably before the client hears it;
//   - a message seen less than min_delay ago is deferred again;
//   - a message seen at least min_delay ago, or released by the admin
//     (`wasmilter queue release`), passes.
//
// Config ([plugins.config]):
//
//	min_delay            = "5m"     how long a new message waits
//	allow.networks       = []       client networks that are never greylisted (CIDR)
//	allow.sender_domains = []       envelope sender domains never greylisted
//	code                 = 451      the deferral's reply code
//	enhanced             = "4.7.1"
//	text                 = "Greylisted: please try again in a few minutes"
package main

import (
	"net/netip"
	"strings"
	"time"

	"github.com/wasmilter/wasmilter/sdk"
)

func main() {}

type policy struct {
	minDelay time.Duration
	networks []netip.Prefix
	domains  map[string]bool
	code     int
	enhanced string
	text     string
}

var p policy

func init() {
	sdk.Register(sdk.Plugin{Init: configure, Headers: decide})
}

func configure(cfg sdk.Config) error {
	p = policy{
		minDelay: cfg.Duration("min_delay", 5*time.Minute),
		domains:  map[string]bool{},
		code:     cfg.Int("code", 451),
		enhanced: cfg.String("enhanced", "4.7.1"),
		text:     cfg.String("text", "Greylisted: please try again in a few minutes"),
	}
	for _, n := range cfg.Strings("allow.networks", nil) {
		prefix, err := netip.ParsePrefix(n)
		if err != nil {
			return err
		}
		p.networks = append(p.networks, prefix.Masked())
	}
	for _, d := range cfg.Strings("allow.sender_domains", nil) {
		p.domains[strings.ToLower(d)] = true
	}
	return cfg.Err()
}

func decide(m *sdk.Message) sdk.Verdict {
	if allowed(m) {
		return sdk.Continue()
	}
	rec, seen := m.Record()
	switch {
	case !seen:
		return sdk.TempFail(p.code, p.enhanced, p.text)
	case rec.State == "released" || rec.State == "passed":
		return sdk.Continue()
	}
	waited := m.Now().Sub(time.Unix(rec.FirstSeen, 0))
	if waited < p.minDelay {
		m.Logf(sdk.LogInfo, "greylist: %s retried after %s, before %s", rec.ID, waited.Round(time.Second), p.minDelay)
		return sdk.TempFail(p.code, p.enhanced, p.text)
	}
	return sdk.Continue()
}

func allowed(m *sdk.Message) bool {
	if ip, err := netip.ParseAddr(m.Client().Addr); err == nil {
		for _, n := range p.networks {
			if n.Contains(ip.Unmap()) {
				return true
			}
		}
	}
	_, domain, ok := strings.Cut(m.From(), "@")
	return ok && p.domains[strings.ToLower(domain)]
}
