package smtprelay

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mailgate/mailgate/domain"
)

// Envelope is the SMTP envelope of one transaction: the reverse path and the
// recipients, Bcc included, exactly as they go into MAIL FROM and RCPT TO.
type Envelope struct {
	// From is the reverse path; "" sends the null sender <>.
	From string
	To   []string
	// BeforeData, when set, runs once the relay has answered RCPT and
	// accepted DATA, with the recipients it accepted, before the first byte
	// of the message goes out (the delivery's attempt journal). When it
	// fails the connection is dropped before the final dot, so the relay
	// discards the transaction, and the accepted recipients get code 0.
	BeforeData func(ctx context.Context, accepted []string) error
	// Downgraded, when set, is the message with its UTF-8 header addresses
	// written in 7 bits, sent instead of the data when the relay does not
	// offer SMTPUTF8 (RFC 6531); see utf8Plan.
	Downgraded []byte
}

// quitTimeout bounds QUIT: the outcome is known by then, so a slow goodbye
// must not hold up the caller.
const quitTimeout = 5 * time.Second

// checkTimeout bounds the RSET that checks an idle connection before reuse:
// a relay that stopped answering is cheaper to replace than to wait for.
const checkTimeout = 5 * time.Second

// writeChunk is how much of the message is written per deadline, so a slow
// but moving connection is not cut off while a stalled one fails within Timeout.
const writeChunk = 64 << 10

// Transport delivers messages through one relay, reusing greeted connections
// between Sends (see the pool fields of Config). It is safe for concurrent
// use; Close releases the idle connections.
type Transport struct {
	cfg       Config
	tlsConfig *tls.Config
	helo      string

	// slots holds a token for each connection in use, when MaxConns caps them.
	slots chan struct{}

	mu sync.Mutex
	// idle holds the pooled connections, the most recently used last.
	idle   []*connection
	closed bool
	// expiring counts idle connections being closed by their timers, so
	// Close can wait for them.
	expiring sync.WaitGroup
}

// NewTransport returns a Transport for cfg, filling in defaults.
func NewTransport(cfg Config) *Transport {
	cfg = cfg.withDefaults()
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
	t := &Transport{cfg: cfg, tlsConfig: tlsConfig, helo: helo}
	if cfg.MaxConns > 0 {
		t.slots = make(chan struct{}, cfg.MaxConns)
	}
	return t
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
// server's code when it sent one, else code 0 (no reply, retry). A
// connection lost after the message was sent, whose outcome is unknown,
// gives the accepted recipients code 451 with PossibleDuplicate set. When
// the relay offers PIPELINING the envelope and DATA go out in one write;
// the replies are the same as without it.
func (t *Transport) Send(ctx context.Context, env Envelope, data []byte) []domain.RecipientReply {
	tx := newTransaction(env.To)
	switch {
	case len(env.To) == 0:
		return tx.replies
	case strings.ContainsAny(env.From, "\r\n"):
		tx.failRest(0, "not sent: the sender address contains a line break")
		return tx.replies
	case ctx.Err() != nil:
		tx.failRest(0, fmt.Sprintf("cancelled before sending: %v", context.Cause(ctx)))
		return tx.replies
	}
	if t.slots != nil {
		// A connection goes back to the pool before its slot is freed, so
		// the next Send reuses it rather than dialling.
		select {
		case t.slots <- struct{}{}:
			defer func() { <-t.slots }()
		case <-ctx.Done():
			tx.failRest(0, fmt.Sprintf("not sent: all %d relay connections stayed busy (%v)", t.cfg.MaxConns, context.Cause(ctx)))
			return tx.replies
		}
	}
	c, reused, err := t.acquire(ctx)
	if err != nil {
		tx.failRest(failure(ctx, err))
		return tx.replies
	}
	stale := t.transact(ctx, c, tx, env, data)
	t.release(c)
	if !stale || !reused || ctx.Err() != nil {
		return tx.replies
	}
	// The pooled connection was gone (or going) before the relay answered
	// any of this transaction, so nothing was delivered: one more try on a
	// new connection costs the message nothing.
	tx = newTransaction(env.To)
	if c, err = t.dial(ctx); err != nil {
		tx.failRest(failure(ctx, err))
		return tx.replies
	}
	t.transact(ctx, c, tx, env, data)
	t.release(c)
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

// unknownOutcome marks the accepted recipients of a message whose data went
// out but whose reply never came: 451, so it is retried, flagged as a
// possible duplicate because the relay may have taken it.
func (tx *transaction) unknownOutcome(detail string) {
	tx.failRest(451, "no reply after the message was sent, so the delivery outcome is unknown and a retry may deliver it twice: "+detail)
	for i := range tx.replies {
		if !tx.refused[i] {
			tx.replies[i].PossibleDuplicate = true
		}
	}
}

// transact runs one transaction on a connection ready for MAIL FROM and
// leaves it ready for the next one, or marked broken. It reports stale when
// the connection failed before the relay answered any of it (lost, or
// closing with 421): nothing happened, so a pooled connection's loss can be
// retried on a new one at no risk of a duplicate.
func (t *Transport) transact(ctx context.Context, c *connection, tx *transaction, env Envelope, data []byte) (stale bool) {
	stale = t.transactOnce(ctx, c, tx, env, data)
	if c.inTransaction && !c.broken {
		// A refusal left MAIL FROM (and perhaps recipients) in place; clear
		// it now so a pooled connection is always ready for MAIL FROM.
		if _, _, err := c.cmd(min(t.cfg.Timeout, checkTimeout), 250, "RSET"); err != nil {
			c.broken = true
		}
		c.inTransaction = false
	}
	return stale
}

func (t *Transport) transactOnce(ctx context.Context, c *connection, tx *transaction, env Envelope, data []byte) (stale bool) {
	data, smtputf8, ok := c.utf8Plan(tx, env, data)
	if !ok {
		return false
	}
	mailLine := c.mailLine(env, len(data), smtputf8)
	valid := make([]int, 0, len(env.To))
	for i, rcpt := range env.To {
		if tx.refused[i] {
			continue
		}
		if strings.ContainsAny(rcpt, "\r\n") {
			// Don't let one bad address abort the rest.
			tx.refuse(i, 0, "not sent: the recipient address contains a line break")
			continue
		}
		valid = append(valid, i)
	}
	if len(valid) == 0 {
		return false
	}
	var dataAccepted bool
	if c.pipelining() {
		dataAccepted, stale = t.pipelinedEnvelope(ctx, c, tx, env, mailLine, valid)
	} else {
		dataAccepted, stale = t.lockStepEnvelope(ctx, c, tx, env, mailLine, valid)
	}
	if dataAccepted && env.BeforeData != nil {
		accepted := make([]string, 0, tx.accepted)
		for i, rcpt := range env.To {
			if !tx.refused[i] {
				accepted = append(accepted, rcpt)
			}
		}
		if err := env.BeforeData(ctx, accepted); err != nil {
			// Mid-DATA there is no RSET: without the final dot the relay
			// drops the transaction with the connection.
			c.broken = true
			tx.failRest(0, "not sent: "+err.Error())
			return false
		}
	}
	if dataAccepted {
		t.sendData(ctx, c, tx, data)
	}
	return stale
}

// lockStepEnvelope sends MAIL FROM, each RCPT TO and DATA, waiting for
// each reply before the next command, as RFC 5321 has it without
// PIPELINING. It reports whether DATA was accepted (354), and stale as
// transact does.
func (t *Transport) lockStepEnvelope(ctx context.Context, c *connection, tx *transaction, env Envelope, mailLine string, valid []int) (dataAccepted, stale bool) {
	timeout := t.cfg.Timeout
	if _, _, err := c.cmd(timeout, 250, "%s", mailLine); err != nil {
		tx.failRest(failure(ctx, fmt.Errorf("MAIL FROM: %w", err)))
		return false, lostOrClosing(err)
	}
	c.inTransaction = true
	for _, i := range valid {
		_, _, err := c.cmd(timeout, 25, "RCPT TO:<%s>", env.To[i])
		if !tx.rcptReply(ctx, i, err) {
			return false, false
		}
	}
	if tx.accepted == 0 {
		return false, false
	}
	if _, _, err := c.cmd(timeout, 354, "DATA"); err != nil {
		tx.failRest(failure(ctx, fmt.Errorf("DATA: %w", err)))
		return false, false
	}
	return true, false
}

// pipelinedEnvelope sends MAIL FROM, every RCPT TO and DATA in one write
// and then reads their replies in order (RFC 2920), so the envelope costs
// one round trip however many recipients there are. Every reply is read,
// even after a refusal, so commands and replies stay paired. It reports as
// lockStepEnvelope does.
func (t *Transport) pipelinedEnvelope(ctx context.Context, c *connection, tx *transaction, env Envelope, mailLine string, valid []int) (dataAccepted, stale bool) {
	timeout := t.cfg.Timeout
	lines := make([]string, 0, len(valid)+2)
	lines = append(lines, mailLine)
	for _, i := range valid {
		lines = append(lines, "RCPT TO:<"+env.To[i]+">")
	}
	lines = append(lines, "DATA")
	if err := c.sendBatch(timeout, lines); err != nil {
		tx.failRest(failure(ctx, fmt.Errorf("MAIL FROM: %w", err)))
		return false, c.broken
	}
	// From here the relay may hold a transaction whatever its replies say;
	// transact clears it unless the final reply to the message does.
	c.inTransaction = true

	_, _, mailErr := c.readReply(250)
	if mailErr != nil {
		tx.failRest(failure(ctx, fmt.Errorf("MAIL FROM: %w", mailErr)))
		if c.broken {
			return false, lostOrClosing(mailErr)
		}
		// The relay answers the RCPTs and DATA of a refused MAIL too
		// (503 as a rule); read them, and end a DATA it still accepted.
		for range valid {
			c.setDeadline(timeout)
			if _, _, _ = c.readReply(25); c.broken {
				return false, false
			}
		}
		c.setDeadline(timeout)
		if _, _, err := c.readReply(354); err == nil {
			c.endEmptyData(timeout)
		}
		return false, false
	}
	for _, i := range valid {
		c.setDeadline(timeout)
		_, _, err := c.readReply(25)
		if !tx.rcptReply(ctx, i, err) {
			// Lost or closing: no further reply will come.
			return false, false
		}
	}
	c.setDeadline(timeout)
	_, _, err := c.readReply(354)
	if tx.accepted == 0 {
		// RFC 2920 3.1: with every RCPT refused, the relay should refuse
		// DATA (554 or 503) and each recipient keeps its RCPT reply; if it
		// accepted DATA anyway, a lone dot ends the empty message.
		if err == nil {
			c.endEmptyData(timeout)
		}
		return false, false
	}
	if err != nil {
		// The accepted recipients get DATA's refusal.
		tx.failRest(failure(ctx, fmt.Errorf("DATA: %w", err)))
		return false, false
	}
	return true, false
}

// endEmptyData ends a DATA the relay accepted although no recipient was:
// the lone dot, whose reply, whatever it is, does not concern anyone.
func (c *connection) endEmptyData(timeout time.Duration) {
	c.setDeadline(timeout)
	_, _ = c.text.W.WriteString(".\r\n")
	if err := c.text.W.Flush(); err != nil {
		c.broken = true
		return
	}
	_, _, _ = c.readReply(0)
}

// sendData writes the message after DATA was accepted and reads the final
// reply, which every accepted recipient gets.
func (t *Transport) sendData(ctx context.Context, c *connection, tx *transaction, data []byte) {
	timeout := t.cfg.Timeout
	stuffed := dotStuffed(data)
	for off := 0; off < len(stuffed); off += writeChunk {
		_ = c.conn.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := c.text.W.Write(stuffed[off:min(off+writeChunk, len(stuffed))]); err != nil {
			c.broken = true
			tx.failRest(failure(ctx, fmt.Errorf("sending the message: %w", err)))
			return
		}
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(timeout))
	if err := c.text.W.Flush(); err != nil {
		// The final dot did not get out, so the relay cannot have taken it.
		c.broken = true
		tx.failRest(failure(ctx, fmt.Errorf("sending the message: %w", err)))
		return
	}
	// RFC 5321 recommends waiting long here: servers may scan the message
	// before answering. Any 2xx counts: a message accepted with an odd
	// code must not be retried as if its outcome were unknown.
	_ = c.conn.SetReadDeadline(time.Now().Add(t.cfg.DataTimeout))
	code, msg, err := c.readReply(2)
	if err == nil {
		c.inTransaction = false
		tx.failRest(code, replyText(msg))
		return
	}
	if code, text, replied := serverReply(err); replied {
		// Whatever the reply, it ends the transaction (RFC 5321 4.1.1.4).
		c.inTransaction = false
		tx.failRest(code, text)
		return
	}
	_, detail := failure(ctx, err)
	tx.unknownOutcome(detail)
}

// rcptReply records the reply to RCPT TO for recipient i and reports
// whether the transaction can go on.
func (tx *transaction) rcptReply(ctx context.Context, i int, err error) bool {
	if err == nil {
		tx.accepted++
		return true
	}
	code, text, replied := serverReply(err)
	if !replied {
		tx.failRest(failure(ctx, fmt.Errorf("RCPT TO: %w", err)))
		return false
	}
	if code == 421 {
		// The server is closing the connection; nobody else will get through.
		tx.refuse(i, code, text)
		tx.failRest(code, text)
		return false
	}
	code, text = tooManyRecipients(code, text)
	tx.refuse(i, code, text)
	return true
}

// lostOrClosing reports whether err means the relay sent no reply at all,
// or 421: it dropped the session or is about to.
func lostOrClosing(err error) bool {
	code, _, replied := serverReply(err)
	return !replied || code == 421
}

// noSMTPUTF8 is the reply given locally to what needs SMTPUTF8 when the
// relay lacks it: 5.6.7 is RFC 6531's status for exactly this, and as a
// permanent failure it is not retried against a relay that won't change.
const noSMTPUTF8 = 553

// utf8Plan decides how a message with UTF-8 addresses (RFC 6531) goes to
// this relay. With SMTPUTF8 offered it goes as it is, flagged SMTPUTF8.
// Without it, a UTF-8 sender fails everyone and UTF-8 recipients fail alone,
// each with the reason; the others get the downgraded message, or fail too
// when none can keep the header 7-bit. It returns the data to send, whether
// to ask for SMTPUTF8, and false when nobody is left to send to.
func (c *connection) utf8Plan(tx *transaction, env Envelope, data []byte) ([]byte, bool, bool) {
	if domain.IsASCII(env.From) && allASCII(env.To) && headerIsASCII(data) {
		return data, false, true
	}
	if _, offered := c.ext["SMTPUTF8"]; offered {
		return data, true, true
	}
	if !domain.IsASCII(env.From) {
		tx.failRest(noSMTPUTF8, "5.6.7 not sent: the sender address has a UTF-8 local part, which needs SMTPUTF8 (RFC 6531), and the relay does not offer it")
		return nil, false, false
	}
	left := 0
	for i, rcpt := range env.To {
		if domain.IsASCII(rcpt) {
			left++
			continue
		}
		tx.refuse(i, noSMTPUTF8, "5.6.7 not sent: this address has a UTF-8 local part, which needs SMTPUTF8 (RFC 6531), and the relay does not offer it")
	}
	if left == 0 {
		return nil, false, false
	}
	if !headerIsASCII(data) {
		if env.Downgraded == nil || !headerIsASCII(env.Downgraded) {
			tx.failRest(noSMTPUTF8, "5.6.7 not sent: the message header holds UTF-8 addresses, which need SMTPUTF8 (RFC 6531), and the relay does not offer it")
			return nil, false, false
		}
		data = env.Downgraded
	}
	return data, false, true
}

// headerIsASCII reports whether the header section of data is 7-bit.
func headerIsASCII(data []byte) bool {
	end := bytes.Index(data, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(data)
	}
	for _, b := range data[:end] {
		if b >= 0x80 {
			return false
		}
	}
	return true
}

// mailLine builds MAIL FROM with the parameters the relay understands.
func (c *connection) mailLine(env Envelope, size int, smtputf8 bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "MAIL FROM:<%s>", env.From)
	if _, ok := c.ext["8BITMIME"]; ok {
		b.WriteString(" BODY=8BITMIME")
	}
	if _, ok := c.ext["SIZE"]; ok {
		fmt.Fprintf(&b, " SIZE=%d", size)
	}
	if smtputf8 {
		b.WriteString(" SMTPUTF8")
	}
	return b.String()
}

// tooManyRecipients reads a RCPT refusal with status 5.5.3 (too many
// recipients) as the 452 it should have been: RFC 5321 section 4.5.3.1.10
// asks clients to treat that 552 as temporary, since the recipient is fine
// and only this transaction is full.
func tooManyRecipients(code int, text string) (int, string) {
	if code == 552 && strings.HasPrefix(text, "5.5.3 ") {
		return 452, "relay replied 552, taken as 452 (too many recipients in one transaction, RFC 5321 4.5.3.1.10): " + text
	}
	return code, text
}

// serverReply extracts the SMTP reply an error carries, if the server sent one.
func serverReply(err error) (code int, text string, ok bool) {
	var protoErr *textproto.Error
	if errors.As(err, &protoErr) {
		return protoErr.Code, replyText(protoErr.Msg), true
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

// replyText joins a multi-line reply so it stores and logs as one line,
// dropping the enhanced status code that RFC 2034 repeats on every line.
func replyText(msg string) string {
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	if first, _, ok := strings.Cut(lines[0], " "); ok && isEnhancedCode(first) {
		for i := 1; i < len(lines); i++ {
			lines[i] = strings.TrimPrefix(lines[i], first+" ")
		}
	}
	return strings.Join(lines, " ")
}

// isEnhancedCode reports whether s looks like an RFC 3463 status code such
// as 5.1.1.
func isEnhancedCode(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || !strings.Contains("245", parts[0]) {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) == 0 || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

func allASCII(list []string) bool {
	for _, s := range list {
		if !domain.IsASCII(s) {
			return false
		}
	}
	return true
}
