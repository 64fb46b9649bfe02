package loadgen

import (
	"fmt"
	"strconv"
	"strings"
)

// The envelope and macros follow Postfix's defaults (milter_*_macros) for a
// TLS-protected inbound session at an MX. Addresses are documentation
// ranges; nothing is ever sent to them, they are only data in packets.
const (
	mtaHostname = "mx1.example.org"
	mtaVersion  = "Postfix 3.7.11"
	mtaAddr     = "203.0.113.25"
	sender      = "bounces@news.example.com"
	rcptDomain  = "example.org"
)

// client is the SMTP client of one simulated session.
type client struct {
	name, addr string
	port       uint16
}

func newClient(session uint64) client {
	return client{
		name: fmt.Sprintf("mta-out-%02d.news.example.com", session%64),
		addr: fmt.Sprintf("198.51.100.%d", 1+session%254),
		port: uint16(32768 + session%28000),
	}
}

func (c client) connectMacros() []string {
	return []string{"j", mtaHostname, "{daemon_name}", "smtpd", "{daemon_addr}", mtaAddr,
		"v", mtaVersion, "_", c.name + " [" + c.addr + "]"}
}

func heloMacros() []string {
	return []string{"{tls_version}", "TLSv1.3", "{cipher}", "TLS_AES_256_GCM_SHA384", "{cipher_bits}", "256"}
}

// envelope is one message's transaction data.
type envelope struct {
	queueID   string
	rcpts     []string
	messageID string   // value (with leading space) replacing the Message-ID
	queue     []string // the DATA, end-of-header and end-of-message macros
	size      string   // the SIZE= ESMTP argument
}

// newEnvelope numbers the message: its queue ID, recipients and
// Message-ID are unique, as in real traffic, so a milter that caches by
// message identity is not flattered by one message seen ten thousand times.
func newEnvelope(run string, seq uint64, rcpts int, msg *Message) envelope {
	e := envelope{
		queueID:   strings.ToUpper(fmt.Sprintf("%s%07x", run, seq&0xfffffff)),
		messageID: fmt.Sprintf(" <%d.%s.bench@news.example.com>", seq, run),
		size:      "SIZE=" + strconv.Itoa(msg.Size),
	}
	e.queue = []string{"i", e.queueID}
	for i := range rcpts {
		e.rcpts = append(e.rcpts, fmt.Sprintf("user%d@%s", (int(seq)*rcpts+i)%100000, rcptDomain))
	}
	return e
}

func (e envelope) mailMacros() []string {
	return []string{"i", e.queueID, "{mail_addr}", sender, "{mail_host}", "news.example.com", "{mail_mailer}", "smtp"}
}

func (e envelope) rcptMacros(rcpt string) []string {
	return []string{"i", e.queueID, "{rcpt_addr}", rcpt, "{rcpt_host}", rcptDomain, "{rcpt_mailer}", "local"}
}
