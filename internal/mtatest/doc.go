// Package mtatest starts real mail transfer agents for wasmilter's
// end-to-end tests: a Postfix 3.7 and a Sendmail 8.17 on loopback, each with
// its own configuration, queue and log under a temporary directory, plus an
// in-process SMTP sink that stands in for "the next hop" and a swaks-based
// SMTP client that sends mail the way a real client would.
//
// Everything here exists so that a test can say "this message, sent to a real
// MTA that talks to our milter, arrives like this (or is refused like that)"
// without mocking the MTA: the milter protocol quirks that matter (macros,
// negotiation, Nagle, per-message state) only show up against the real thing.
//
// The helpers need root (MTAs bind ports, drop privileges and create queue
// directories owned by their own users), the Debian packages postfix and
// swaks, and for Sendmail an unpacked sendmail tree (see Require and
// SendmailRoot). Without them a test is skipped, unless WASMILTER_E2E=1 says
// the environment promised them, in which case it fails: CI must never turn a
// broken install into a green run of skips.
//
// Network traffic stays on 127.0.0.1. Every process a helper starts is
// stopped in t.Cleanup.
package mtatest
