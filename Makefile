# Conveniences over the go command; `go test ./...` remains the way to test.

.PHONY: demo

# The newcomer demo: a throwaway Postfix and wasmilter on loopback, a
# message, a greylisted one, its delay notice and its retry (demo/doc.go).
# Needs root and Debian's postfix and swaks; WASMILTER_E2E=1 turns a
# missing one into an error that says how to get it, not a skip.
demo:
	WASMILTER_DEMO=1 WASMILTER_E2E=1 go test -run '^TestDemo$$' -v -count=1 ./demo/
