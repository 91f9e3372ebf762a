package smtprelay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/domain"
)

// Envelope is the SMTP envelope of one transaction: the reverse path and the
// recipients, Bcc included, exactly as they go into MAIL FROM and RCPT TO.
type Envelope struct {
	// From is the reverse path; "" sends the null sender <>.
	From string
	To   []string
}

// quitTimeout bounds QUIT: the outcome is known by then, so a slow goodbye
// must not hold up the caller.
const quitTimeout = 5 * time.Second

// writeChunk is how much of the message is written per deadline, so a slow
// but moving connection is not cut off while a stalled one fails within Timeout.
const writeChunk = 64 << 10

// Transport delivers messages through one relay, opening a new connection
// for every Send. It is safe for concurrent use.
type Transport struct {
	cfg       Config
	tlsConfig *tls.Config
	helo      string
}

// NewTransport returns a Transport for cfg, filling in defaults.
func NewTransport(cfg Config) *Transport {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.DataTimeout <= 0 {
		cfg.DataTimeout = DefaultDataTimeout
	}
	tlsConfig := &tls.Config{}
	if cfg.TLSConfig != nil {
		tlsConfig = cfg.TLSConfig.Clone()
	}
	if tlsConfig.ServerName == "" {
		tlsConfig.ServerName = cfg.Host
	}
	helo := cfg.HeloName
	if helo == "" {
		helo = defaultHeloName()
	}
	return &Transport{cfg: cfg, tlsConfig: tlsConfig, helo: helo}
}

// defaultHeloName is the host name when it is fully qualified; relays
// commonly reject a bare one, while "localhost" is at least well-formed.
func defaultHeloName() string {
	name, err := os.Hostname()
	if err != nil || !strings.Contains(name, ".") || strings.ContainsAny(name, " \t\r\n") {
		return "localhost"
	}
	return name
}

// Send runs one SMTP transaction and returns exactly one reply per
// env.To entry, in order, with Email as given. A recipient refused at RCPT
// keeps that reply; every accepted recipient gets the reply to the message
// data. A failure before RCPT gives every recipient the same reply: the
// server's code when it sent one, else code 0 (no reply, retry), as does a
// connection lost after the message was sent, whose outcome is unknown.
func (t *Transport) Send(ctx context.Context, env Envelope, data []byte) []domain.RecipientReply {
	tx := newTransaction(env.To)
	if len(env.To) == 0 {
		return tx.replies
	}
	conn, err := t.open(ctx)
	if err != nil {
		tx.failRest(failure(ctx, err))
		return tx.replies
	}
	err = t.transact(ctx, conn, tx, env, data)
	conn.close(err)
	return tx.replies
}

// transaction tracks the reply of each recipient of one Send.
type transaction struct {
	replies []domain.RecipientReply
	// refused marks recipients that already have their final reply from RCPT.
	refused  []bool
	accepted int
}

func newTransaction(to []string) *transaction {
	tx := &transaction{
		replies: make([]domain.RecipientReply, len(to)),
		refused: make([]bool, len(to)),
	}
	for i, rcpt := range to {
		tx.replies[i].Email = rcpt
	}
	return tx
}

// refuse records the final reply for recipient i.
func (tx *transaction) refuse(i, code int, text string) {
	tx.replies[i].Code, tx.replies[i].Text = code, text
	tx.refused[i] = true
}

// failRest gives every recipient not refused at RCPT the same reply; after
// RCPT those are exactly the accepted ones.
func (tx *transaction) failRest(code int, text string) {
	for i := range tx.replies {
		if !tx.refused[i] {
			tx.replies[i].Code, tx.replies[i].Text = code, text
		}
	}
}

// transact runs MAIL, RCPT and DATA on an open connection and returns the
// error that ended it early, if any, so the caller knows whether to QUIT.
func (t *Transport) transact(ctx context.Context, conn *connection, tx *transaction, env Envelope, data []byte) error {
	opts := &smtp.MailOptions{Size: int64(len(data))}
	if !isASCII(env.From) || !allASCII(env.To) {
		opts.UTF8 = true
	}
	if err := conn.client.Mail(env.From, opts); err != nil {
		tx.failRest(failure(ctx, fmt.Errorf("MAIL FROM: %w", err)))
		return err
	}
	for i, rcpt := range env.To {
		if strings.ContainsAny(rcpt, "\r\n") {
			// go-smtp would refuse it locally; don't let one bad address abort the rest.
			tx.refuse(i, 0, "not sent: the recipient address contains a line break")
			continue
		}
		err := conn.client.Rcpt(rcpt, nil)
		if err == nil {
			tx.accepted++
			continue
		}
		code, text, replied := serverReply(err)
		if !replied {
			tx.failRest(failure(ctx, fmt.Errorf("RCPT TO: %w", err)))
			return err
		}
		tx.refuse(i, code, text)
		if code == 421 {
			// The server is closing the connection; nobody else will get through.
			tx.failRest(code, text)
			return err
		}
	}
	if tx.accepted == 0 {
		return nil
	}

	w, err := conn.client.Data()
	if err != nil {
		tx.failRest(failure(ctx, fmt.Errorf("DATA: %w", err)))
		return err
	}
	for off := 0; off < len(data); off += writeChunk {
		_ = conn.raw.SetWriteDeadline(time.Now().Add(t.cfg.Timeout))
		if _, err := w.Write(data[off:min(off+writeChunk, len(data))]); err != nil {
			tx.failRest(failure(ctx, fmt.Errorf("sending the message: %w", err)))
			return err
		}
	}
	// The deadline also covers the final dot; go-smtp then sets DataTimeout
	// for the reply.
	_ = conn.raw.SetWriteDeadline(time.Now().Add(t.cfg.Timeout))
	resp, err := w.CloseWithResponse()
	if err != nil {
		code, text := failure(ctx, err)
		if _, _, replied := serverReply(err); !replied {
			text = "no reply after the message was sent, so the delivery outcome is unknown: " + text
		}
		tx.failRest(code, text)
		return err
	}
	tx.failRest(250, oneLine(resp.StatusText))
	return nil
}

// connection is an SMTP session ready for MAIL FROM.
type connection struct {
	raw    net.Conn
	client *smtp.Client
	// stopWatch stops the context watcher that closes raw on cancellation.
	stopWatch func() bool
}

// close ends the session: QUIT while the server is still talking to us
// (lastErr is nil or a server reply), else just the socket.
func (c *connection) close(lastErr error) {
	defer c.stopWatch()
	if _, _, replied := serverReply(lastErr); lastErr == nil || replied {
		c.client.CommandTimeout = min(c.client.CommandTimeout, quitTimeout)
		if c.client.Quit() == nil {
			return
		}
	}
	_ = c.client.Close()
	_ = c.raw.Close()
}

// open connects, greets, negotiates TLS and authenticates.
func (t *Transport) open(ctx context.Context) (*connection, error) {
	addr := t.cfg.Addr()
	dialer := &net.Dialer{Timeout: t.cfg.Timeout}
	raw, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	// Deadlines bound each step; closing the socket is what interrupts a
	// step in progress when ctx ends.
	stopWatch := context.AfterFunc(ctx, func() { _ = raw.Close() })
	fail := func(err error) (*connection, error) {
		stopWatch()
		_ = raw.Close()
		return nil, err
	}

	var conn net.Conn = raw
	encrypted := false
	switch {
	case t.cfg.ImplicitTLS:
		tlsConn := tls.Client(raw, t.tlsConfig)
		_ = raw.SetDeadline(time.Now().Add(t.cfg.Timeout))
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			return fail(fmt.Errorf("TLS handshake with %s: %w", addr, err))
		}
		conn, encrypted = tlsConn, true
	case t.cfg.TLSMode != TLSNone:
		if conn, encrypted, err = t.startTLS(ctx, raw); err != nil {
			return fail(err)
		}
	}
	_ = raw.SetDeadline(time.Time{})

	client := smtp.NewClient(conn)
	client.CommandTimeout = t.cfg.Timeout
	client.SubmissionTimeout = t.cfg.DataTimeout
	c := &connection{raw: raw, client: client, stopWatch: stopWatch}
	if err := client.Hello(t.helo); err != nil {
		c.close(err)
		return nil, fmt.Errorf("EHLO: %w", err)
	}
	if t.cfg.Username != "" {
		if err := t.authenticate(client, encrypted); err != nil {
			c.close(err)
			return nil, err
		}
	}
	return c, nil
}

// startTLS reads the greeting, sends EHLO and upgrades with STARTTLS as the
// mode asks. go-smtp v0.25 offers STARTTLS only through NewClientStartTLS,
// which drops the connection when the server lacks STARTTLS, so we negotiate
// it here and give go-smtp the connection with the greeting replayed. It
// returns the connection to use and whether it is encrypted.
func (t *Transport) startTLS(ctx context.Context, raw net.Conn) (net.Conn, bool, error) {
	step := func() { _ = raw.SetDeadline(time.Now().Add(t.cfg.Timeout)) }
	// Never Close tp: that would close raw.
	tp := textproto.NewConn(raw)

	step()
	_, greeting, err := tp.ReadResponse(220)
	if err != nil {
		return nil, false, fmt.Errorf("greeting: %w", err)
	}
	plain := func() (net.Conn, bool, error) { return newGreetedConn(raw, greeting), false, nil }

	step()
	if err := tp.PrintfLine("EHLO %s", t.helo); err != nil {
		return nil, false, fmt.Errorf("EHLO: %w", err)
	}
	offered := false
	_, ehlo, err := tp.ReadResponse(250)
	var protoErr *textproto.Error
	switch {
	case err == nil:
		offered = hasExtension(ehlo, "STARTTLS")
	case errors.As(err, &protoErr) && (protoErr.Code == 500 || protoErr.Code == 502):
		// A server without EHLO has no STARTTLS either; go-smtp falls back to HELO.
	default:
		return nil, false, fmt.Errorf("EHLO: %w", err)
	}
	if !offered {
		if t.cfg.TLSMode == TLSRequired {
			return nil, false, errors.New("the relay does not offer STARTTLS, which tls=required demands")
		}
		return plain()
	}

	step()
	if err := tp.PrintfLine("STARTTLS"); err != nil {
		return nil, false, fmt.Errorf("STARTTLS: %w", err)
	}
	if _, _, err := tp.ReadResponse(220); err != nil {
		if errors.As(err, &protoErr) && t.cfg.TLSMode == TLSOpportunistic {
			return plain() // RFC 3207 lets the client carry on in clear after a refusal
		}
		return nil, false, fmt.Errorf("STARTTLS: %w", err)
	}
	if tp.R.Buffered() > 0 {
		// Anything already sent would be read as if it came over TLS: the
		// STARTTLS command injection of CVE-2011-0411.
		return nil, false, errors.New("STARTTLS: the relay sent data before the TLS handshake; refusing to continue")
	}
	tlsConn := tls.Client(raw, t.tlsConfig)
	step()
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		return nil, false, fmt.Errorf("STARTTLS handshake with %s: %w", t.cfg.Addr(), err)
	}
	return newGreetedConn(tlsConn, greeting), true, nil
}

// hasExtension reports whether an EHLO reply lists the extension.
func hasExtension(ehlo, name string) bool {
	lines := strings.Split(ehlo, "\n")
	for _, line := range lines[1:] { // the first line is the server's name
		if fields := strings.Fields(line); len(fields) > 0 && strings.EqualFold(fields[0], name) {
			return true
		}
	}
	return false
}

// greetedConn serves a greeting we already read before anything from the
// network, because a new go-smtp client insists on reading one.
type greetedConn struct {
	net.Conn
	greeting []byte
}

func newGreetedConn(conn net.Conn, greeting string) *greetedConn {
	first, _, _ := strings.Cut(greeting, "\n")
	if first == "" {
		first = "ready"
	}
	return &greetedConn{Conn: conn, greeting: []byte("220 " + first + "\r\n")}
}

func (c *greetedConn) Read(p []byte) (int, error) {
	if len(c.greeting) > 0 {
		n := copy(p, c.greeting)
		c.greeting = c.greeting[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// authenticate logs in with PLAIN, or LOGIN when that is all the relay offers.
func (t *Transport) authenticate(client *smtp.Client, encrypted bool) error {
	if !encrypted && t.cfg.TLSMode != TLSNone && !isLoopback(t.cfg.Host) {
		// In opportunistic mode an attacker can strip STARTTLS from the EHLO
		// reply to harvest the password; only an explicit tls=none (or a
		// loopback relay) allows sending it in clear.
		return errors.New("AUTH: refusing to send the relay password unencrypted because the relay did not offer STARTTLS; use tls=required, or tls=none to allow it")
	}
	ok, mechanisms := client.Extension("AUTH")
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
	if err := client.Auth(mech); err != nil {
		// A rejected login is the gateway's misconfiguration, not the
		// recipients' fault: the relay's 5xx is kept as text only, so the
		// attempt counts as "no reply" and is retried instead of bouncing mail.
		return fmt.Errorf("AUTH rejected, check the relay credentials: %s", err.Error())
	}
	return nil
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

// serverReply extracts the SMTP reply an error carries, if the server sent one.
func serverReply(err error) (code int, text string, ok bool) {
	var smtpErr *smtp.SMTPError
	if errors.As(err, &smtpErr) {
		text := oneLine(smtpErr.Message)
		if ec := smtpErr.EnhancedCode; ec != smtp.EnhancedCodeNotSet && ec != smtp.NoEnhancedCode {
			text = fmt.Sprintf("%d.%d.%d %s", ec[0], ec[1], ec[2], text)
		}
		return smtpErr.Code, text, true
	}
	var protoErr *textproto.Error
	if errors.As(err, &protoErr) {
		return protoErr.Code, oneLine(protoErr.Msg), true
	}
	return 0, "", false
}

// failure turns an error into a reply: the server's when it sent one, else
// code 0 with text saying what went wrong, or that ctx ended the attempt.
func failure(ctx context.Context, err error) (int, string) {
	if code, text, ok := serverReply(err); ok {
		return code, text
	}
	if ctx.Err() != nil {
		return 0, fmt.Sprintf("cancelled: %v (%v)", context.Cause(ctx), err)
	}
	return 0, err.Error()
}

// oneLine joins a multi-line reply so it stores and logs as one line.
func oneLine(s string) string {
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", " ")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allASCII(list []string) bool {
	for _, s := range list {
		if !isASCII(s) {
			return false
		}
	}
	return true
}
