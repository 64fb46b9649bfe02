// Package e2e holds wasmilter's end-to-end tests: a real Postfix 3.7 or
// Sendmail 8.17 (Debian packages, started by the tests on loopback in temp
// dirs) filters through a real wasmilter server, relays what it accepts over
// SMTP to an in-process sink, and the tests look at what arrived and at what
// the SMTP client was told. They skip with a clear message when an MTA is
// missing, and fail instead when WASMILTER_E2E=1 (as CI sets it).
package e2e
