package main

import (
	"os"
	"testing"
	"time"
)

// origWD is the package directory; tests chdir away from it.
var origWD, _ = os.Getwd()

func mustTime(t *testing.T) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, "2026-11-20T10:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	return tm
}
