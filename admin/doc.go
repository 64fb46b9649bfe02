// Package admin is wasmilter's admin HTTP API: what `wasmilter queue ...`
// and `wasmilter cache ...` talk to while the server runs. The retry ledger
// (bbolt) lets one process hold its file and the property cache lives in the
// server's memory, so tools cannot open them directly; they ask the server.
//
// It listens on loopback by default; a bearer token, when configured, is
// required on every request (compared in constant time) except the two
// probes, /healthz and /readyz, which a load balancer or systemd may call
// without the admin secret. Responses are JSON, errors JSON objects
// {"error": "..."} with a fitting status; the probes answer one line of
// text and /metrics the Prometheus exposition format.
//
//	GET  /v1/queue?state=S&limit=N&after=ID   records, in identity order
//	GET  /v1/queue/{id}                       one record, with its history
//	POST /v1/queue/{id}/release               the next attempt passes
//	POST /v1/queue/{id}/hold                  the next attempt is quarantined
//	POST /v1/queue/{id}/expire                the next attempt gets 550 5.4.7
//	POST /v1/queue/purge?older_than=D&state=S records not updated for D
//	GET  /v1/cache/stats                      the property cache's counters
//	POST /v1/cache/flush[?key=ID]             empty it, or drop one entry
//	GET  /metrics                             Prometheus metrics (package metrics)
//	GET  /healthz                             200 while the process runs (no token)
//	GET  /readyz                              200 while serving, else 503 and why (no token)
package admin
