package dsn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-smtp"
)

// Submitter hands notices to an MTA over SMTP (RFC 5321), normally the local
// one, which then delivers them like any other mail. The zero value is not
// usable: Addr is required.
type Submitter struct {
	// Addr is the MTA's host:port, e.g. "127.0.0.1:25".
	Addr string
	// HeloName is the name this host gives in EHLO; empty means
	// "localhost" (go-smtp's default). An MTA that checks HELO names needs
	// the real one.
	HeloName string
	// StartTLS makes TLS required, not opportunistic: the session stops,
	// before MAIL FROM, when the MTA does not offer STARTTLS or the
	// handshake fails. An admin who asks for TLS to a remote relay must not
	// be silently downgraded (the STRIPTLS attack); to the local MTA on
	// loopback, TLS buys nothing and StartTLS stays false.
	//
	// go-smtp sends the EHLO before STARTTLS as "localhost"; HeloName is
	// used for the EHLO after it, the one RFC 3207 §4.2 says counts.
	StartTLS bool
	// TLSConfig is used with StartTLS; nil means the defaults, verifying
	// the certificate against the host name in Addr.
	TLSConfig *tls.Config
	// Timeout bounds the connect and every command, the DATA transfer
	// included; zero means go-smtp's defaults, which follow RFC 5321
	// §4.5.3.2 (minutes). Without StartTLS the whole session is bounded by
	// this per step; with it, the part up to the handshake is bounded by
	// three times Timeout (greeting, EHLO, STARTTLS).
	Timeout time.Duration
}

// SubmitError is a failed submission: the MTA's reply, or a connection
// problem (Code 0). Temporary says what to do with the notice: true, try it
// again later (a 4xx reply, a refused or broken connection, a timeout, a
// cancelled context); false, give up on it (a 5xx reply: the MTA will never
// take it).
type SubmitError struct {
	Addr      string // the MTA
	Op        string // what failed: "connect", "EHLO", "STARTTLS", "MAIL FROM", "RCPT TO", "DATA", "message"
	Code      int    // the SMTP reply code; 0 when there was no reply
	Enhanced  string // the RFC 3463 enhanced status code of the reply, e.g. "4.7.1"; "" when none
	Message   string // the reply's text
	Temporary bool
	Err       error // the underlying error: *smtp.SMTPError, a network error, or the context's error
}

func (e *SubmitError) Error() string {
	kind := "permanent"
	if e.Temporary {
		kind = "temporary"
	}
	if e.Code == 0 {
		return fmt.Sprintf("dsn: submit to %s: %s: %v (%s)", e.Addr, e.Op, e.Err, kind)
	}
	reply := fmt.Sprintf("%d", e.Code)
	if e.Enhanced != "" {
		reply += " " + e.Enhanced
	}
	return fmt.Sprintf("dsn: submit to %s: %s: %s %s (%s)", e.Addr, e.Op, reply, e.Message, kind)
}

func (e *SubmitError) Unwrap() error { return e.Err }

// Submit sends msg (a complete message, as Compose returns it) to the
// recipient to, from the null sender: MAIL FROM:<>, always, so that a notice
// that cannot be delivered is dropped rather than answered with another
// notice (RFC 3461 §6.2, RFC 5321 §4.5.5). Errors from the MTA or the
// network are *SubmitError; input Submit refuses without connecting (the
// null sender as to, a line break, an empty message, no Addr) gives an
// error wrapping ErrInvalid.
func (s *Submitter) Submit(ctx context.Context, to string, msg []byte) error {
	if err := s.checkInput(to, msg); err != nil {
		return fmt.Errorf("dsn: submit: %w", err)
	}
	conn, err := s.dial(ctx)
	if err != nil {
		return s.failure(ctx, "connect", err)
	}
	// A cancelled context closes the connection: that interrupts whatever
	// read or write is blocked, where a deadline would be overwritten by
	// go-smtp's next command.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()

	c, err := s.session(ctx, conn)
	if err != nil {
		return err
	}
	if err := s.transact(ctx, c, conn, to, msg); err != nil {
		var refused *SubmitError
		if errors.As(err, &refused) && refused.Code != 0 {
			// The MTA answered, so the session is sound: end it properly
			// rather than leave a "lost connection" in its log.
			_ = c.Quit()
		}
		return err
	}
	// The MTA took the notice with its reply to the final dot; a failed
	// QUIT no longer changes that.
	_ = c.Quit()
	return nil
}

func (s *Submitter) checkInput(to string, msg []byte) error {
	if s.Addr == "" {
		return invalid("Submitter.Addr is required")
	}
	if err := checkEnvelopeAddress("recipient", to); err != nil {
		return err
	}
	if len(msg) == 0 {
		return invalid("empty message")
	}
	return nil
}

func (s *Submitter) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: s.Timeout}
	if d.Timeout == 0 {
		d.Timeout = 30 * time.Second // go-smtp's own Dial default
	}
	return d.DialContext(ctx, "tcp", s.Addr)
}

// session greets the MTA (EHLO, and STARTTLS if required) and returns the
// client, ready for MAIL FROM.
func (s *Submitter) session(ctx context.Context, conn net.Conn) (*smtp.Client, error) {
	var c *smtp.Client
	if s.StartTLS {
		var err error
		if c, err = s.startTLS(ctx, conn); err != nil {
			return nil, s.failure(ctx, "STARTTLS", err)
		}
	} else {
		c = smtp.NewClient(conn)
	}
	s.applyTimeouts(c)
	if err := c.Hello(s.heloName()); err != nil {
		return nil, s.failure(ctx, "EHLO", err)
	}
	return c, nil
}

// startTLS runs go-smtp's greeting, EHLO and STARTTLS. go-smtp gives these
// its default five-minute timeouts before the caller can set any, so a
// timer closes the connection if they take longer than three Timeouts.
func (s *Submitter) startTLS(ctx context.Context, conn net.Conn) (*smtp.Client, error) {
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 3*s.Timeout)
		defer cancel()
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c, err := smtp.NewClientStartTLS(conn, s.tlsConfig())
	if err != nil && ctx.Err() != nil {
		// Name the cause instead of the closed connection it left.
		return nil, fmt.Errorf("%w: %v", ctx.Err(), err)
	}
	return c, err
}

func (s *Submitter) tlsConfig() *tls.Config {
	if s.TLSConfig != nil {
		return s.TLSConfig
	}
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		host = s.Addr
	}
	return &tls.Config{ServerName: host}
}

func (s *Submitter) applyTimeouts(c *smtp.Client) {
	if s.Timeout > 0 {
		c.CommandTimeout = s.Timeout
		c.SubmissionTimeout = s.Timeout
	}
}

func (s *Submitter) heloName() string {
	if s.HeloName == "" {
		return "localhost"
	}
	return s.HeloName
}

// transact runs one mail transaction: MAIL FROM:<>, RCPT TO:<to>, DATA.
func (s *Submitter) transact(ctx context.Context, c *smtp.Client, conn net.Conn, to string, msg []byte) error {
	if err := c.Mail("", nil); err != nil {
		return s.failure(ctx, "MAIL FROM", err)
	}
	if err := c.Rcpt(to, nil); err != nil {
		return s.failure(ctx, "RCPT TO", err)
	}
	w, err := c.Data()
	if err != nil {
		return s.failure(ctx, "DATA", err)
	}
	// go-smtp bounds the replies but not the writes of the message
	// itself; an MTA that stops reading must not hang the sweeper.
	_ = conn.SetDeadline(time.Now().Add(c.SubmissionTimeout))
	if _, err := w.Write(msg); err != nil {
		return s.failure(ctx, "message", err)
	}
	if err := w.Close(); err != nil {
		return s.failure(ctx, "message", err)
	}
	return nil
}

// failure turns an error of step op into a *SubmitError. A cancelled or
// expired context is reported as such, not as the broken connection it
// caused.
func (s *Submitter) failure(ctx context.Context, op string, err error) error {
	e := &SubmitError{Addr: s.Addr, Op: op, Temporary: true, Err: err}
	if ctxErr := ctx.Err(); ctxErr != nil {
		e.Err = ctxErr
		return e
	}
	var reply *smtp.SMTPError
	if errors.As(err, &reply) {
		e.Code, e.Message, e.Enhanced = reply.Code, reply.Message, enhancedCode(reply.EnhancedCode)
		// Only a 5xx is final; a 4xx, or a reply that makes no sense at
		// this point, may go better next time.
		e.Temporary = reply.Code/100 != 5
	}
	return e
}

// enhancedCode formats go-smtp's parsed enhanced code, "" when the reply
// had none.
func enhancedCode(c smtp.EnhancedCode) string {
	if c == (smtp.EnhancedCode{}) || c == smtp.NoEnhancedCode {
		return ""
	}
	return fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
}
