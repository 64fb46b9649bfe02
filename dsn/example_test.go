package dsn_test

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-message"

	"github.com/wasmilter/wasmilter/dsn"
)

// A delay notice for a greylisted recipient, made from what the retry ledger
// keeps about the message; the delivery-status part is printed.
func ExampleCompose() {
	first := time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)
	msg, err := dsn.Compose(dsn.Notice{
		ReportingMTA: "mx.example.org",
		To:           "alice@example.com",
		ArrivalDate:  first,
		Recipients: []dsn.Recipient{{
			Address:        "bob@example.net",
			Action:         dsn.Delayed,
			Status:         "4.7.1",
			Diagnostic:     dsn.SMTPDiagnostic(451, "4.7.1", "Greylisted"),
			WillRetryUntil: first.Add(5 * 24 * time.Hour),
		}},
		OriginalHeader: []dsn.Header{{Name: "Subject", Value: "Quarterly figures"}},
		Date:           first.Add(4 * time.Hour),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	e, _ := message.Read(bytes.NewReader(msg))
	parts := e.MultipartReader()
	parts.NextPart() // the human-readable text
	status, _ := parts.NextPart()
	body, _ := io.ReadAll(status.Body)
	fmt.Print(string(bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))))
	// Output:
	// Reporting-MTA: dns; mx.example.org
	// Arrival-Date: Wed, 01 May 2024 09:00:00 +0000
	//
	// Final-Recipient: rfc822; bob@example.net
	// Action: delayed
	// Status: 4.7.1
	// Diagnostic-Code: smtp; 451 4.7.1 Greylisted
	// Will-Retry-Until: Mon, 06 May 2024 09:00:00 +0000
}
