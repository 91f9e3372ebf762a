package smtprelay

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
)

// The client side of SMTP is written here on net/textproto rather than with
// go-smtp's Client because a pooled connection needs RSET without a new EHLO
// (go-smtp v0.25 greets again after every Reset, and some relays forget AUTH
// on EHLO), because the transport must tell a final dot that never left
// from one whose reply never came, and because go-smtp v0.25's Client has
// no PIPELINING (RFC 2920): it waits for each reply before the next command.

// maxReply caps the bytes of one reply, so a misbehaving relay can't grow a
// line or a multi-line reply without bound; EHLO replies are well below it.
const maxReply = 64 << 10

// connection is one SMTP session with the relay, greeted and, as configured,
// encrypted and authenticated. One Send uses it at a time; between Sends it
// waits in the Transport's pool.
type connection struct {
	// raw is the TCP socket; closing it interrupts any step in progress.
	raw net.Conn
	// conn is raw, or TLS over raw.
	conn  net.Conn
	text  *textproto.Conn
	limit *replyLimit
	// ext holds the extensions of the last EHLO reply, keywords upper-cased.
	ext    map[string]string
	opened time.Time
	// sends counts the Sends this connection served.
	sends int
	// inTransaction marks a session where MAIL FROM may have been accepted
	// and no final reply to the message ended the transaction: it needs
	// RSET before the next MAIL FROM.
	inTransaction bool
	// broken marks a session that must not be reused or even sent QUIT: an
	// I/O error, a malformed or out-of-sequence reply, a 421, or a step cut
	// short may have left client and server disagreeing about its state.
	broken bool

	// stopWatch stops the watcher that closes raw when the current Send's
	// context ends; it reports false when the watcher has already fired.
	stopWatch func() bool
	// idleSince and idleTimer are set while the connection is in the pool,
	// under the Transport's lock.
	idleSince time.Time
	idleTimer *time.Timer
}

// dial connects and prepares a session for MAIL FROM: greeting, EHLO,
// STARTTLS and AUTH as configured. The connection watches ctx until release.
func (t *Transport) dial(ctx context.Context) (*connection, error) {
	addr := t.cfg.Addr()
	dialer := &net.Dialer{Timeout: t.cfg.Timeout}
	raw, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	c := &connection{raw: raw, opened: time.Now()}
	// Deadlines bound each step; closing the socket is what interrupts a
	// step in progress when ctx ends.
	c.stopWatch = context.AfterFunc(ctx, func() { _ = raw.Close() })
	if err := t.open(ctx, c); err != nil {
		c.stopWatch()
		c.quit(t.cfg.Timeout)
		return nil, err
	}
	return c, nil
}

// open runs the session's preamble on a connected socket.
func (t *Transport) open(ctx context.Context, c *connection) error {
	if t.cfg.ImplicitTLS {
		if err := c.handshake(ctx, t.tlsConfig, t.cfg.Timeout); err != nil {
			return fmt.Errorf("TLS handshake with %s: %w", t.cfg.Addr(), err)
		}
	} else {
		c.use(c.raw)
	}
	c.setDeadline(t.cfg.Timeout)
	if _, _, err := c.readReply(220); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if err := c.hello(t.helo, t.cfg.Timeout); err != nil {
		return err
	}
	encrypted := t.cfg.ImplicitTLS
	if !t.cfg.ImplicitTLS && t.cfg.TLSMode != TLSNone {
		var err error
		if encrypted, err = t.startTLS(ctx, c); err != nil {
			return err
		}
	}
	if t.cfg.Username != "" {
		return t.authenticate(c, encrypted)
	}
	return nil
}

// startTLS upgrades with STARTTLS as the mode asks and reports whether the
// session is now encrypted.
func (t *Transport) startTLS(ctx context.Context, c *connection) (bool, error) {
	if _, offered := c.ext["STARTTLS"]; !offered {
		if t.cfg.TLSMode == TLSRequired {
			return false, errors.New("the relay does not offer STARTTLS, which tls=required demands")
		}
		return false, nil
	}
	if _, _, err := c.cmd(t.cfg.Timeout, 220, "STARTTLS"); err != nil {
		if _, _, replied := serverReply(err); replied && !c.broken && t.cfg.TLSMode == TLSOpportunistic {
			return false, nil // RFC 3207 lets the client carry on in clear after a refusal
		}
		return false, fmt.Errorf("STARTTLS: %w", err)
	}
	if c.text.R.Buffered() > 0 {
		// Anything already sent would be read as if it came over TLS: the
		// STARTTLS command injection of CVE-2011-0411.
		c.broken = true
		return false, errors.New("STARTTLS: the relay sent data before the TLS handshake; refusing to continue")
	}
	if err := c.handshake(ctx, t.tlsConfig, t.cfg.Timeout); err != nil {
		return false, fmt.Errorf("STARTTLS handshake with %s: %w", t.cfg.Addr(), err)
	}
	// RFC 3207: forget what the relay said in clear and ask again.
	return true, c.hello(t.helo, t.cfg.Timeout)
}

// handshake starts TLS over raw and speaks SMTP over it from then on.
func (c *connection) handshake(ctx context.Context, config *tls.Config, timeout time.Duration) error {
	tlsConn := tls.Client(c.raw, config)
	_ = c.raw.SetDeadline(time.Now().Add(timeout))
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		c.broken = true
		return err
	}
	c.use(tlsConn)
	return nil
}

// use speaks SMTP over conn, dropping any reader on the previous layer; the
// callers make sure nothing was left unread in it.
func (c *connection) use(conn net.Conn) {
	c.conn = conn
	c.limit = &replyLimit{r: conn}
	c.text = textproto.NewConn(struct {
		io.Reader
		io.Writer
		io.Closer
	}{c.limit, conn, conn})
}

// hello sends EHLO, falling back to HELO for a relay that knows no EHLO, and
// records the extensions offered.
func (c *connection) hello(name string, timeout time.Duration) error {
	_, msg, err := c.cmd(timeout, 250, "EHLO %s", name)
	if code, _, replied := serverReply(err); replied && (code == 500 || code == 502) {
		c.ext = nil
		if _, _, err := c.cmd(timeout, 250, "HELO %s", name); err != nil {
			return fmt.Errorf("HELO: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	c.ext = parseExtensions(msg)
	return nil
}

// parseExtensions reads an EHLO reply: the first line is the server's name,
// each further line a keyword with optional parameters.
func parseExtensions(ehlo string) map[string]string {
	lines := strings.Split(ehlo, "\n")
	ext := make(map[string]string, len(lines))
	for _, line := range lines[1:] {
		keyword, params, _ := strings.Cut(strings.TrimSpace(line), " ")
		if keyword != "" {
			ext[strings.ToUpper(keyword)] = strings.TrimSpace(params)
		}
	}
	return ext
}

// authenticate logs in with PLAIN, or LOGIN when that is all the relay offers.
func (t *Transport) authenticate(c *connection, encrypted bool) error {
	if !encrypted && t.cfg.TLSMode != TLSNone && !isLoopback(t.cfg.Host) {
		// In opportunistic mode an attacker can strip STARTTLS from the EHLO
		// reply to harvest the password; only an explicit tls=none (or a
		// loopback relay) allows sending it in clear.
		return errors.New("AUTH: refusing to send the relay password unencrypted because the relay did not offer STARTTLS; use tls=required, or tls=none to allow it")
	}
	mechanisms, ok := c.ext["AUTH"]
	if !ok {
		return errors.New("AUTH: credentials are configured but the relay does not offer AUTH")
	}
	var mech sasl.Client
	switch offered := strings.Fields(strings.ToUpper(mechanisms)); {
	case containsWord(offered, sasl.Plain):
		mech = sasl.NewPlainClient("", t.cfg.Username, t.cfg.Password)
	case containsWord(offered, sasl.Login):
		mech = sasl.NewLoginClient(t.cfg.Username, t.cfg.Password)
	default:
		return fmt.Errorf("AUTH: the relay offers %q but neither PLAIN nor LOGIN", mechanisms)
	}
	err := c.auth(mech, t.cfg.Timeout)
	if err != nil && !c.broken {
		// A rejected login is the gateway's misconfiguration, not the
		// recipients' fault: the relay's 5xx is kept as text only, so the
		// attempt counts as "no reply" and is retried instead of bouncing mail.
		return fmt.Errorf("AUTH rejected, check the relay credentials: %s", err.Error())
	}
	if err != nil {
		return fmt.Errorf("AUTH: %w", err)
	}
	return nil
}

// auth runs one SASL exchange (RFC 4954).
func (c *connection) auth(mech sasl.Client, timeout time.Duration) error {
	name, resp, err := mech.Start()
	if err != nil {
		return err
	}
	line := "AUTH " + name
	if resp != nil {
		line += " " + encodeSASL(resp, "=")
	}
	for {
		code, msg, err := c.cmd(timeout, 0, "%s", line)
		switch {
		case err != nil:
			return err
		case code == 235:
			return nil
		case code != 334:
			return c.unexpected(code, msg)
		}
		challenge, err := base64.StdEncoding.DecodeString(msg)
		if err == nil {
			resp, err = mech.Next(challenge)
		}
		if err != nil {
			// Cancel the exchange so the session stays usable for QUIT.
			_, _, _ = c.cmd(timeout, 501, "*")
			return err
		}
		line = encodeSASL(resp, "")
	}
}

// encodeSASL encodes a SASL response; empty is how an empty one is written.
func encodeSASL(resp []byte, empty string) string {
	if len(resp) == 0 {
		return empty
	}
	return base64.StdEncoding.EncodeToString(resp)
}

// unexpected turns a reply the exchange has no place for into an error: a
// server refusal (4xx, 5xx) as a *textproto.Error, anything else as a
// protocol error that breaks the session.
func (c *connection) unexpected(code int, msg string) error {
	if code >= 400 {
		if code == 421 {
			c.broken = true
		}
		return &textproto.Error{Code: code, Msg: msg}
	}
	c.broken = true
	return fmt.Errorf("unexpected reply %d %s", code, replyText(msg))
}

// cmd sends one command line and reads its reply, each within timeout. A
// refusal comes back as a *textproto.Error; see readReply.
func (c *connection) cmd(timeout time.Duration, expect int, format string, args ...any) (int, string, error) {
	line := fmt.Sprintf(format, args...)
	if strings.ContainsAny(line, "\r\n") {
		return 0, "", errors.New("not sent: the command contains a line break")
	}
	c.setDeadline(timeout)
	if err := c.text.PrintfLine("%s", line); err != nil {
		c.broken = true
		return 0, "", err
	}
	return c.readReply(expect)
}

// pipelining reports whether the relay offered PIPELINING (RFC 2920) in
// its last EHLO reply.
func (c *connection) pipelining() bool {
	_, ok := c.ext["PIPELINING"]
	return ok
}

// sendBatch writes command lines in one flush, within timeout, for
// PIPELINING; the caller reads their replies in order with readReply.
func (c *connection) sendBatch(timeout time.Duration, lines []string) error {
	for _, line := range lines {
		if strings.ContainsAny(line, "\r\n") {
			return errors.New("not sent: a command contains a line break")
		}
	}
	c.setDeadline(timeout)
	for _, line := range lines {
		_, _ = c.text.W.WriteString(line)
		_, _ = c.text.W.WriteString("\r\n")
	}
	if err := c.text.W.Flush(); err != nil {
		c.broken = true
		return err
	}
	return nil
}

// readReply reads one reply and checks its code against expect as
// textproto.Reader.ReadResponse does. A 4xx or 5xx other than expected comes
// back as a *textproto.Error; any other code is a protocol error. The
// session breaks on every failure except a refusal other than 421.
func (c *connection) readReply(expect int) (int, string, error) {
	c.limit.left = maxReply
	code, msg, err := c.text.ReadResponse(expect)
	var protoErr *textproto.Error
	if errors.As(err, &protoErr) {
		return code, msg, c.unexpected(protoErr.Code, protoErr.Msg)
	}
	if err != nil {
		c.broken = true
	}
	return code, msg, err
}

func (c *connection) setDeadline(timeout time.Duration) {
	_ = c.conn.SetDeadline(time.Now().Add(timeout))
}

// quit ends a healthy session with QUIT, then closes the socket either way.
func (c *connection) quit(timeout time.Duration) {
	if !c.broken && c.text != nil {
		// The outcome is known by now, so a slow goodbye must not hold anyone up.
		_, _, _ = c.cmd(min(timeout, quitTimeout), 221, "QUIT")
	}
	c.close()
}

// close drops the connection without a word. Closing raw rather than the
// TLS layer skips close_notify, which could block on a stalled connection.
func (c *connection) close() {
	_ = c.raw.Close()
}

// replyLimit caps what is read for one reply at maxReply bytes; readReply
// refills it.
type replyLimit struct {
	r    io.Reader
	left int
}

func (l *replyLimit) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, fmt.Errorf("the relay's reply is longer than %d bytes", maxReply)
	}
	if len(p) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= n
	return n, err
}

func containsWord(words []string, w string) bool {
	for _, x := range words {
		if x == w {
			return true
		}
	}
	return false
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
