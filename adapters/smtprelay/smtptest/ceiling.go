package smtptest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one prebuilt message with its envelope, for SendCeiling.
type Message struct {
	From string
	To   []string
	// Data is the message, CRLF line endings, not dot-stuffed.
	Data []byte
}

// CeilingOptions configure SendCeiling.
type CeilingOptions struct {
	// Conns is how many connections send at once; zero means 1.
	Conns int
	// Pipelining sends MAIL FROM, every RCPT TO and DATA in one write
	// (RFC 2920) and needs a server that offers it; otherwise each command
	// waits for its reply, with go-smtp's client.
	Pipelining bool
	// HeloName is sent with EHLO; the default is "ceiling.localhost".
	HeloName string
}

// CeilingResult is what SendCeiling measured.
type CeilingResult struct {
	Messages int
	// Elapsed runs from the first connection attempt to the last reply,
	// so it includes opening the sessions, as a real client's run would.
	Elapsed time.Duration
}

// Rate returns messages per second.
func (r CeilingResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Messages) / r.Elapsed.Seconds()
}

// SendCeiling sends msgs to the SMTP server at addr (plain text, no AUTH)
// over opts.Conns connections, each taking the next unsent message, and
// measures how long it took: the most a client of that server can get
// through, against which a relay client is measured. Every message must be
// accepted; the first failure stops the run and is returned.
func SendCeiling(ctx context.Context, addr string, msgs []Message, opts CeilingOptions) (CeilingResult, error) {
	conns := max(opts.Conns, 1)
	helo := opts.HeloName
	if helo == "" {
		helo = "ceiling.localhost"
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	take := func() (Message, bool) {
		i := next.Add(1) - 1
		if i >= int64(len(msgs)) || ctx.Err() != nil {
			return Message{}, false
		}
		return msgs[i], true
	}
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Go(func() {
			var err error
			if opts.Pipelining {
				err = sendPipelined(ctx, addr, helo, take)
			} else {
				err = sendLockStep(ctx, addr, helo, take)
			}
			if err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	result := CeilingResult{Messages: len(msgs), Elapsed: time.Since(start)}
	if err := context.Cause(ctx); err != nil {
		return result, err
	}
	return result, nil
}

// dialWatched connects to addr and closes the connection when ctx ends,
// which interrupts whatever step is in progress; stop ends the watch.
func dialWatched(ctx context.Context, addr string) (conn net.Conn, stop func() bool, err error) {
	var d net.Dialer
	if conn, err = d.DialContext(ctx, "tcp", addr); err != nil {
		return nil, nil, fmt.Errorf("smtptest: connect to %s: %w", addr, err)
	}
	return conn, context.AfterFunc(ctx, func() { _ = conn.Close() }), nil
}

// sendLockStep sends messages over one connection with go-smtp's client,
// which waits for each reply before the next command.
func sendLockStep(ctx context.Context, addr, helo string, take func() (Message, bool)) error {
	conn, stop, err := dialWatched(ctx, addr)
	if err != nil {
		return err
	}
	defer stop()
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello(helo); err != nil {
		return fmt.Errorf("smtptest: EHLO: %w", err)
	}
	for m, ok := take(); ok; m, ok = take() {
		if err := c.SendMail(m.From, m.To, bytes.NewReader(m.Data)); err != nil {
			return fmt.Errorf("smtptest: send: %w", err)
		}
	}
	return c.Quit()
}

// sendPipelined sends messages over one connection with PIPELINING: one
// write for the envelope and DATA, one for the message.
func sendPipelined(ctx context.Context, addr, helo string, take func() (Message, bool)) error {
	conn, stop, err := dialWatched(ctx, addr)
	if err != nil {
		return err
	}
	defer stop()
	c := textproto.NewConn(conn)
	defer c.Close()
	if _, _, err := c.ReadResponse(220); err != nil {
		return fmt.Errorf("smtptest: greeting: %w", err)
	}
	id, err := c.Cmd("EHLO %s", helo)
	if err != nil {
		return fmt.Errorf("smtptest: EHLO: %w", err)
	}
	c.StartResponse(id)
	_, ehlo, err := c.ReadResponse(250)
	c.EndResponse(id)
	if err != nil {
		return fmt.Errorf("smtptest: EHLO: %w", err)
	}
	if !strings.Contains(strings.ToUpper(ehlo), "\nPIPELINING") {
		return errors.New("smtptest: the server does not offer PIPELINING")
	}
	for m, ok := take(); ok; m, ok = take() {
		if err := sendOnePipelined(c, m); err != nil {
			return err
		}
	}
	if _, err := c.Cmd("QUIT"); err != nil {
		return err
	}
	_, _, err = c.ReadResponse(221)
	return err
}

func sendOnePipelined(c *textproto.Conn, m Message) error {
	fmt.Fprintf(c.W, "MAIL FROM:<%s>\r\n", m.From)
	for _, rcpt := range m.To {
		fmt.Fprintf(c.W, "RCPT TO:<%s>\r\n", rcpt)
	}
	_, _ = c.W.WriteString("DATA\r\n")
	if err := c.W.Flush(); err != nil {
		return fmt.Errorf("smtptest: send envelope: %w", err)
	}
	if _, _, err := c.ReadResponse(250); err != nil {
		return fmt.Errorf("smtptest: MAIL FROM: %w", err)
	}
	for range m.To {
		if _, _, err := c.ReadResponse(25); err != nil {
			return fmt.Errorf("smtptest: RCPT TO: %w", err)
		}
	}
	if _, _, err := c.ReadResponse(354); err != nil {
		return fmt.Errorf("smtptest: DATA: %w", err)
	}
	w := c.DotWriter()
	if _, err := w.Write(m.Data); err != nil {
		return fmt.Errorf("smtptest: send message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtptest: send message: %w", err)
	}
	if _, _, err := c.ReadResponse(250); err != nil {
		return fmt.Errorf("smtptest: after the message: %w", err)
	}
	return nil
}
