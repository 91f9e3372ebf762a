// Package smtptest runs a real, scriptable SMTP server in-process for tests
// and benchmarks: it listens on 127.0.0.1, can require AUTH and offer
// STARTTLS with a throwaway certificate, lets a test decide each MAIL, RCPT
// and DATA reply, and records what it accepted, or only counts it as a
// discarding sink. A delaying proxy (StartProxy) puts latency and faults
// between a client and it, and SendCeiling measures what a plain SMTP
// client gets through, the ceiling a relay client is compared with.
package smtptest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options script the server. The zero value accepts every message without
// TLS or authentication. The hooks run on the server's goroutines, so what
// they share with the test needs a lock.
type Options struct {
	// Username and Password, when Username is set, make AUTH mandatory
	// before MAIL (530 otherwise). With TLS, AUTH is offered only after
	// STARTTLS, as real servers do.
	Username, Password string
	// AuthMechanisms limits the SASL mechanisms offered; the default is
	// PLAIN and LOGIN.
	AuthMechanisms []string
	// TLS offers STARTTLS with a self-signed certificate for 127.0.0.1 and
	// localhost; clients trust it through ClientTLSConfig.
	TLS bool
	// ImplicitTLS speaks TLS from the first byte, as on port 465 (smtps),
	// with the same kind of certificate as TLS.
	ImplicitTLS bool
	// Mail decides the reply to MAIL FROM; nil or a nil result accepts.
	// attempt counts MAIL commands seen by the server, from 1.
	Mail func(from string, attempt int) *smtp.SMTPError
	// Rcpt decides the reply to RCPT TO; nil or a nil result accepts.
	// attempt counts how often this recipient was seen, from 1.
	Rcpt func(rcpt string, attempt int) *smtp.SMTPError
	// Data decides the reply after the message was read; nil or a nil
	// result accepts. attempt counts DATA transfers, from 1.
	Data func(attempt int) *smtp.SMTPError
	// DropAfterData, when it returns true, closes the connection after
	// reading the message without replying, so the client cannot know
	// whether it was delivered. attempt is shared with Data.
	DropAfterData func(attempt int) bool
	// ReadTimeout is how long the server waits for each line from the
	// client before it replies "421 4.4.2 Idle timeout" and hangs up, as
	// relays do with idle clients. Zero means 10 seconds.
	ReadTimeout time.Duration
	// NoPipelining leaves PIPELINING (RFC 2920) out of the EHLO reply, so
	// clients wait for each reply; commands sent ahead are still served.
	// It cannot be combined with TLS or ImplicitTLS.
	NoPipelining bool
	// NoSMTPUTF8 leaves SMTPUTF8 (RFC 6531) out of the EHLO reply.
	NoSMTPUTF8 bool
	// Discard makes a sink for benchmarks: accepted messages are counted
	// (see Delivered) but not kept, so Messages stays empty.
	Discard bool
	// OnDeliver, when set, is called for each recipient of an accepted
	// message, with the message's Message-ID header, before the server
	// answers 250: whoever logs these knows the relay had the message.
	OnDeliver func(messageID, rcpt string)
}

// Received is one message the server accepted.
type Received struct {
	From string
	To   []string
	// Data is the message as received, dot-unstuffed, line endings untouched.
	Data []byte
	// TLS reports whether the message came over TLS, STARTTLS or implicit.
	TLS bool
	// AuthUser is the user that authenticated, "" without AUTH.
	AuthUser string
	// SMTPUTF8 reports whether MAIL FROM asked for SMTPUTF8.
	SMTPUTF8 bool
	// Connection numbers the connection the message came over, from 1 in
	// the order the server accepted them, so a test can tell reused
	// connections apart.
	Connection int
}

// Server is a running test SMTP server. Its methods are safe for concurrent use.
type Server struct {
	opts      Options
	addr      string
	clientTLS *tlsPair

	mu           sync.Mutex
	messages     []Received
	changed      chan struct{} // closed and replaced whenever messages grows
	sessions     int
	open         map[int]*trackedConn // by connection number
	mailAttempts int
	dataAttempts int
	rcptAttempts map[string]int
	delivered    Delivered
	closed       bool
}

// Delivered counts the messages a server accepted and their recipients,
// kept or discarded.
type Delivered struct {
	Messages, Recipients int
}

// Start starts a server on 127.0.0.1 with a free port and stops it when the
// test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.NoPipelining && (opts.TLS || opts.ImplicitTLS) {
		// The EHLO reply is rewritten on the socket, where TLS hides it.
		t.Fatalf("smtptest: NoPipelining cannot be combined with TLS")
	}
	s := &Server{
		opts:         opts,
		changed:      make(chan struct{}),
		rcptAttempts: make(map[string]int),
		open:         make(map[int]*trackedConn),
	}
	srv := smtp.NewServer(&backend{server: s})
	srv.Domain = "smtptest.localhost"
	srv.ReadTimeout = 10 * time.Second
	if opts.ReadTimeout > 0 {
		srv.ReadTimeout = opts.ReadTimeout
	}
	srv.WriteTimeout = 10 * time.Second
	srv.EnableSMTPUTF8 = !opts.NoSMTPUTF8
	srv.ErrorLog = &testLogger{t: t, server: s}
	if opts.TLS || opts.ImplicitTLS {
		pair, err := newTLSPair()
		if err != nil {
			t.Fatalf("smtptest: %v", err)
		}
		s.clientTLS = pair
		srv.TLSConfig = pair.server
	} else {
		// Credentials in clear are fine on loopback and needed to test AUTH
		// without TLS; with TLS on, AUTH waits for STARTTLS like a real server.
		srv.AllowInsecureAuth = true
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	s.addr = ln.Addr().String()
	counted := &countingListener{Listener: ln, server: s}
	var served net.Listener = counted
	if opts.ImplicitTLS {
		served = tls.NewListener(counted, srv.TLSConfig)
	}
	serving := make(chan struct{})
	go func() {
		defer close(serving)
		_ = srv.Serve(served)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		// Close can run before Serve has registered the listener with the
		// server, so close it directly too or Serve may block in Accept forever.
		_ = served.Close()
		<-serving
		// go-smtp's Close does not wait for its connection goroutines, so
		// wait for their connections to close before the test is over.
		if !counted.waitClosed(5 * time.Second) {
			t.Errorf("smtptest: connections still open 5s after Close")
		}
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
	})
	return s
}

// Addr returns the host:port the server listens on.
func (s *Server) Addr() string { return s.addr }

// URL returns smtp://[user:pass@]127.0.0.1:port for the server, smtps:// with
// ImplicitTLS. It carries no TLS setting: a client reading it negotiates
// STARTTLS when offered, and needs ClientTLSConfig to trust the certificate.
func (s *Server) URL() string {
	u := url.URL{Scheme: "smtp", Host: s.addr}
	if s.opts.ImplicitTLS {
		u.Scheme = "smtps"
	}
	if s.opts.Username != "" {
		u.User = url.UserPassword(s.opts.Username, s.opts.Password)
	}
	return u.String()
}

// ClientTLSConfig returns a client configuration that trusts the server's
// certificate, or nil when TLS is off. Each call returns a new copy.
func (s *Server) ClientTLSConfig() *tls.Config {
	if s.clientTLS == nil {
		return nil
	}
	return s.clientTLS.client.Clone()
}

// Messages returns the messages accepted so far, in order.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneMessages(s.messages)
}

// WaitForMessages waits until at least n messages were accepted and returns
// them, failing the test after timeout. Call it from the test goroutine.
func (s *Server) WaitForMessages(t testing.TB, n int, timeout time.Duration) []Received {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if len(s.messages) >= n {
			msgs := cloneMessages(s.messages)
			s.mu.Unlock()
			return msgs
		}
		got, changed := len(s.messages), s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("smtptest: %d messages accepted after %v, want %d", got, timeout, n)
			return nil
		}
	}
}

// RcptAttempts returns how many RCPT commands named addr, accepted or not.
func (s *Server) RcptAttempts(addr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcptAttempts[addr]
}

// Delivered returns how many messages the server accepted, and the
// recipients they had, whether kept or discarded.
func (s *Server) Delivered() Delivered {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.delivered
}

// DataAttempts returns how many messages were transferred with DATA,
// whatever the reply.
func (s *Server) DataAttempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dataAttempts
}

// Sessions returns how many connections the server accepted.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// OpenConnections returns how many accepted connections are still open.
func (s *Server) OpenConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// DropConnections closes every open connection without a word, as a
// restarting relay or a broken network would, and returns how many it
// closed. A session in the middle of a command sees its connection vanish.
func (s *Server) DropConnections() int {
	s.mu.Lock()
	open := make([]*trackedConn, 0, len(s.open))
	for _, c := range s.open {
		open = append(open, c)
	}
	s.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
	return len(open)
}

func cloneMessages(in []Received) []Received {
	out := make([]Received, len(in))
	for i, m := range in {
		m.To = slices.Clone(m.To)
		m.Data = slices.Clone(m.Data)
		out[i] = m
	}
	return out
}

func (s *Server) record(m Received) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delivered.Messages++
	s.delivered.Recipients += len(m.To)
	if s.opts.Discard {
		return
	}
	s.messages = append(s.messages, m)
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) nextMailAttempt() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mailAttempts++
	return s.mailAttempts
}

func (s *Server) nextRcptAttempt(addr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcptAttempts[addr]++
	return s.rcptAttempts[addr]
}

func (s *Server) nextDataAttempt() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dataAttempts++
	return s.dataAttempts
}

// countingListener counts connections, because go-smtp starts a second
// session after STARTTLS, and tracks them so cleanup can wait until they
// close and DropConnections can find them.
type countingListener struct {
	net.Listener
	server *Server
	open   sync.WaitGroup
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.open.Add(1)
	l.server.mu.Lock()
	defer l.server.mu.Unlock()
	l.server.sessions++
	tc := &trackedConn{Conn: c, number: l.server.sessions, hidePipelining: l.server.opts.NoPipelining}
	tc.done = func() {
		l.server.mu.Lock()
		delete(l.server.open, tc.number)
		l.server.mu.Unlock()
		l.open.Done()
	}
	l.server.open[tc.number] = tc
	return tc, nil
}

// waitClosed reports whether every accepted connection closed within timeout.
func (l *countingListener) waitClosed(timeout time.Duration) bool {
	closed := make(chan struct{})
	go func() {
		l.open.Wait()
		close(closed)
	}()
	select {
	case <-closed:
		return true
	case <-time.After(timeout):
		return false
	}
}

// trackedConn reports its first Close to the listener and, when asked,
// drops PIPELINING from the EHLO reply.
type trackedConn struct {
	net.Conn
	number         int
	hidePipelining bool
	once           sync.Once
	done           func()
}

// pipeliningLine is the EHLO line go-smtp v0.25 always sends second; it
// flushes every reply line on its own, so the line is one Write.
const pipeliningLine = "250-PIPELINING\r\n"

func (c *trackedConn) Write(p []byte) (int, error) {
	if c.hidePipelining && string(p) == pipeliningLine {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// connectionNumber finds the number of the accepted connection under conn,
// which may be TLS over it.
func connectionNumber(conn net.Conn) int {
	for {
		switch c := conn.(type) {
		case *trackedConn:
			return c.number
		case interface{ NetConn() net.Conn }:
			conn = c.NetConn()
		default:
			return 0
		}
	}
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.done)
	return err
}

// testLogger forwards go-smtp's internal errors to the test log until the
// server is closed; logging after a test ends would panic.
type testLogger struct {
	t      testing.TB
	server *Server
}

func (l *testLogger) Printf(format string, v ...any) {
	l.server.mu.Lock()
	defer l.server.mu.Unlock()
	if !l.server.closed {
		l.t.Logf("smtptest: "+format, v...)
	}
}

func (l *testLogger) Println(v ...any) { l.Printf("%s", fmt.Sprintln(v...)) }

type backend struct {
	server *Server
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &session{server: b.server, conn: c, tls: isTLS, number: connectionNumber(c.Conn())}, nil
}

// session is one SMTP session; go-smtp starts a new one after STARTTLS.
type session struct {
	server   *Server
	conn     *smtp.Conn
	tls      bool
	number   int
	authUser string
	from     string
	smtputf8 bool
	to       []string
}

func (s *session) AuthMechanisms() []string {
	opts := s.server.opts
	if opts.Username == "" {
		return nil
	}
	if opts.AuthMechanisms != nil {
		return opts.AuthMechanisms
	}
	return []string{sasl.Plain, sasl.Login}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	if !slices.Contains(s.AuthMechanisms(), mech) {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return smtp.ErrAuthFailed
			}
			return s.authenticate(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{authenticate: s.authenticate}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *session) authenticate(username, password string) error {
	opts := s.server.opts
	if username != opts.Username || password != opts.Password {
		return smtp.ErrAuthFailed
	}
	s.authUser = username
	return nil
}

func (s *session) Mail(from string, mailOpts *smtp.MailOptions) error {
	if s.server.opts.Username != "" && s.authUser == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	attempt := s.server.nextMailAttempt()
	if hook := s.server.opts.Mail; hook != nil {
		if err := hook(from, attempt); err != nil {
			return err
		}
	}
	s.from = from
	s.smtputf8 = mailOpts != nil && mailOpts.UTF8
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	attempt := s.server.nextRcptAttempt(to)
	if hook := s.server.opts.Rcpt; hook != nil {
		if err := hook(to, attempt); err != nil {
			return err
		}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	opts := s.server.opts
	data, messageID, err := readMessage(r, opts.Discard, opts.OnDeliver != nil)
	if err != nil {
		return err
	}
	attempt := s.server.nextDataAttempt()
	if opts.DropAfterData != nil && opts.DropAfterData(attempt) {
		// Closing the network connection directly, before go-smtp writes
		// its reply, is what a crash or network cut looks like to the client.
		_ = s.conn.Conn().Close()
		return errors.New("smtptest: connection dropped on purpose")
	}
	if opts.Data != nil {
		if err := opts.Data(attempt); err != nil {
			return err
		}
	}
	if opts.OnDeliver != nil {
		for _, rcpt := range s.to {
			opts.OnDeliver(messageID, rcpt)
		}
	}
	s.server.record(Received{
		From:       s.from,
		To:         slices.Clone(s.to),
		Data:       data,
		TLS:        s.tls,
		AuthUser:   s.authUser,
		SMTPUTF8:   s.smtputf8,
		Connection: s.number,
	})
	return nil
}

// readMessage reads the message data, keeping it unless discard is set,
// and finds its Message-ID when wantID is set.
func readMessage(r io.Reader, discard, wantID bool) (data []byte, messageID string, err error) {
	if !discard {
		if data, err = io.ReadAll(r); err != nil {
			return nil, "", err
		}
		if wantID {
			messageID = headerMessageID(bufio.NewReader(bytes.NewReader(data)))
		}
		return data, messageID, nil
	}
	br := bufio.NewReader(r)
	if wantID {
		messageID = headerMessageID(br)
	}
	_, err = io.Copy(io.Discard, br)
	return nil, messageID, err
}

// headerMessageID reads the header section from r and returns its
// Message-ID, "" when it has none or is malformed.
func headerMessageID(r *bufio.Reader) string {
	header, err := textproto.NewReader(r).ReadMIMEHeader()
	if err != nil && len(header) == 0 {
		return ""
	}
	return header.Get("Message-Id")
}

func (s *session) Reset() {
	s.from, s.to, s.smtputf8 = "", nil, false
}

func (s *session) Logout() error { return nil }

// loginServer implements the server side of the obsolete LOGIN mechanism,
// which go-sasl only provides as a client. It accepts the user name as an
// initial response, as go-sasl's client sends it.
type loginServer struct {
	authenticate func(username, password string) error
	username     string
	step         int
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step++
		if response == nil {
			return []byte("Username:"), false, nil
		}
		l.username = string(response)
		l.step++
		return []byte("Password:"), false, nil
	case 1:
		l.username = string(response)
		l.step++
		return []byte("Password:"), false, nil
	case 2:
		l.step++
		return nil, true, l.authenticate(l.username, string(response))
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}
