// Package inbound is Mailgate's inbound SMTP side: a go-smtp listener that
// accepts mail for the bounce and reply domains only and commits it before
// answering 250, and the parsers that read what arrived (RFC 3464 delivery
// status notifications, the plain-text bounces some MTAs still send, RFC
// 5965 feedback reports, and replies with their bodies and attachments).
package inbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/uuid"
	"golang.org/x/net/netutil"

	"github.com/mailgate/mailgate/domain"
)

// Store is what the listener needs from persistence.
type Store interface {
	// IsReturnPathDomain reports whether a tenant's own return-path domain is d.
	IsReturnPathDomain(ctx context.Context, d string) (bool, error)
	// ReceiveInbound commits the mail and its processing job together.
	ReceiveInbound(ctx context.Context, mail domain.InboundMail) error
}

// Observer counts what the listener accepts and refuses.
type Observer interface {
	ObserveInbound(outcome string)
}

// Refusal reasons, as counted.
const (
	OutcomeAccepted     = "accepted"
	RefusedDomain       = "domain"
	RefusedRate         = "rate"
	RefusedSize         = "size"
	RefusedConnections  = "connections"
	RefusedStoreFailure = "store"
	RefusedBusy         = "busy"
)

// Options configure a Listener.
type Options struct {
	// Domains are accepted at RCPT besides tenants' return-path domains.
	Domains  []string
	Hostname string
	// MaxMessageBytes bounds one message; more is refused with 552 and
	// never held in memory past the bound.
	MaxMessageBytes int64
	// MaxRecipients bounds RCPT commands per message.
	MaxRecipients int
	// MaxConnections bounds concurrent connections overall; MaxPerIP per
	// sending address.
	MaxConnections int
	MaxPerIP       int
	// RatePerIP is how many messages one address may hand over a minute.
	RatePerIP int
	// MaxConcurrentData bounds the messages being received at once, so
	// memory stays under MaxConcurrentData × MaxMessageBytes whatever the
	// number of connections; a session that finds none free within half of
	// Timeout is told to retry (451).
	MaxConcurrentData int
	// Timeout bounds each read and write; a whole session gets 10 times it.
	Timeout time.Duration
	// TLS, when set, is offered with STARTTLS.
	TLS      *tls.Config
	Observer Observer
	Logger   *slog.Logger
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

// Listener is the running inbound SMTP server.
type Listener struct {
	opts    Options
	store   Store
	server  *smtp.Server
	limiter *ipLimiter
	addr    net.Addr
	domains map[string]bool
	// dataSlots holds one token per message being received.
	dataSlots chan struct{}
}

// New returns a listener; Serve starts it.
func New(store Store, opts Options) *Listener {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxRecipients <= 0 {
		opts.MaxRecipients = 50
	}
	if opts.MaxPerIP <= 0 {
		opts.MaxPerIP = 10
	}
	if opts.MaxConcurrentData <= 0 {
		opts.MaxConcurrentData = 8
	}
	l := &Listener{opts: opts, store: store, limiter: newIPLimiter(opts.RatePerIP, opts.MaxPerIP, opts.Now), domains: map[string]bool{},
		dataSlots: make(chan struct{}, opts.MaxConcurrentData)}
	for _, d := range opts.Domains {
		if d != "" {
			l.domains[strings.ToLower(d)] = true
		}
	}
	s := smtp.NewServer(backend{l})
	s.Domain = opts.Hostname
	s.MaxMessageBytes = opts.MaxMessageBytes
	s.MaxRecipients = opts.MaxRecipients
	s.MaxLineLength = 4096
	s.ReadTimeout, s.WriteTimeout = opts.Timeout, opts.Timeout
	s.TLSConfig = opts.TLS
	s.ErrorLog = slogLogger{opts.Logger}
	l.server = s
	return l
}

// Serve accepts connections on ln until Close.
func (l *Listener) Serve(ln net.Listener) error {
	l.addr = ln.Addr()
	if l.opts.MaxConnections > 0 {
		ln = netutil.LimitListener(ln, l.opts.MaxConnections)
	}
	err := l.server.Serve(ln)
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits for open sessions until ctx ends, then closes them.
func (l *Listener) Shutdown(ctx context.Context) error {
	err := l.server.Shutdown(ctx)
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	if err != nil {
		return errors.Join(err, l.server.Close())
	}
	return nil
}

func (l *Listener) observe(outcome string) {
	if l.opts.Observer != nil {
		l.opts.Observer.ObserveInbound(outcome)
	}
}

type backend struct{ l *Listener }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	ip := remoteIP(c.Conn().RemoteAddr())
	if !b.l.limiter.open(ip) {
		b.l.observe(RefusedConnections)
		return nil, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "too many connections from your address, try again later"}
	}
	s := &session{l: b.l, conn: c, ip: ip}
	// Read and write deadlines are per command; this bounds a whole
	// session that trickles commands in just inside them.
	if b.l.opts.Timeout > 0 {
		s.deadline = time.AfterFunc(10*b.l.opts.Timeout, func() { _ = c.Close() })
	}
	return s, nil
}

// session is one SMTP connection's state.
type session struct {
	l        *Listener
	conn     *smtp.Conn
	ip       string
	deadline *time.Timer
	from     string
	rcpts    []string
}

func (s *session) AuthPlain(string, string) error { return smtp.ErrAuthUnsupported }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if !s.l.limiter.allowMessage(s.ip) {
		s.l.observe(RefusedRate)
		return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "rate limit for your address exceeded, try again later"}
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	d := strings.ToLower(to[strings.LastIndexByte(to, '@')+1:])
	ok := s.l.domains[d]
	if !ok && strings.Contains(to, "@") {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		found, err := s.l.store.IsReturnPathDomain(ctx, d)
		if err != nil {
			s.l.opts.Logger.Warn("inbound: look up return-path domain", "error", err)
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "temporary failure, try again later"}
		}
		ok = found
	}
	if !ok {
		s.l.observe(RefusedDomain)
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "relay access denied: this server accepts mail for its own domains only"}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	// The sender has had 354 and is writing; answer well inside its own
	// read timeout.
	wait := time.NewTimer(max(s.l.opts.Timeout/2, 10*time.Millisecond))
	defer wait.Stop()
	select {
	case s.l.dataSlots <- struct{}{}:
		defer func() { <-s.l.dataSlots }()
	case <-wait.C:
		s.l.observe(RefusedBusy)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "too busy receiving other messages, try again later"}
	}
	// go-smtp's reader stops at MaxMessageBytes with ErrDataTooLarge, so
	// this never holds more than the bound.
	raw, err := io.ReadAll(r)
	if errors.Is(err, smtp.ErrDataTooLarge) {
		s.l.observe(RefusedSize)
		return err
	}
	if err != nil {
		return err
	}
	mail := domain.InboundMail{ID: uuid.New(), ReceivedAt: s.l.opts.Now().UTC(), RemoteAddr: s.ip, Helo: s.conn.Hostname(),
		MailFrom: s.from, RcptTo: append([]string(nil), s.rcpts...), Raw: raw}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The same durability rule as the API: committed before the 250.
	if err := s.l.store.ReceiveInbound(ctx, mail); err != nil {
		s.l.opts.Logger.Error("inbound: store message", "error", err, "remote", s.ip)
		s.l.observe(RefusedStoreFailure)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "temporary failure storing the message, try again later"}
	}
	s.l.observe(OutcomeAccepted)
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: fmt.Sprintf("OK: queued as %s", mail.ID)}
}

func (s *session) Reset() { s.from, s.rcpts = "", nil }

func (s *session) Logout() error {
	if s.deadline != nil {
		s.deadline.Stop()
	}
	s.l.limiter.close(s.ip)
	return nil
}

func remoteIP(a net.Addr) string {
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// slogLogger routes go-smtp's connection errors to the structured log.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Printf(format string, v ...any) {
	s.l.Debug("inbound smtp: " + fmt.Sprintf(format, v...))
}
func (s slogLogger) Println(v ...any) { s.l.Debug("inbound smtp: " + fmt.Sprint(v...)) }

// ipLimiter bounds each sending address: concurrent connections, and
// messages a minute as a token bucket. It is the listener's own (no
// package state); addresses idle for a while are forgotten, so a flood from
// many addresses can't grow it without bound past maxTracked.
type ipLimiter struct {
	mu      sync.Mutex
	perMin  int
	maxConn int
	now     func() time.Time
	ips     map[string]*ipState
}

type ipState struct {
	conns  int
	tokens float64
	seen   time.Time
}

const maxTrackedIPs = 100000

func newIPLimiter(perMin, maxConn int, now func() time.Time) *ipLimiter {
	return &ipLimiter{perMin: perMin, maxConn: maxConn, now: now, ips: map[string]*ipState{}}
}

func (l *ipLimiter) state(ip string) *ipState {
	st := l.ips[ip]
	now := l.now()
	if st == nil {
		if len(l.ips) >= maxTrackedIPs {
			for k, v := range l.ips {
				if v.conns == 0 && now.Sub(v.seen) > time.Minute {
					delete(l.ips, k)
				}
			}
		}
		st = &ipState{tokens: float64(l.perMin), seen: now}
		l.ips[ip] = st
	}
	if l.perMin > 0 {
		st.tokens = min(float64(l.perMin), st.tokens+now.Sub(st.seen).Minutes()*float64(l.perMin))
	}
	st.seen = now
	return st
}

func (l *ipLimiter) open(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.state(ip)
	if st.conns >= l.maxConn {
		return false
	}
	st.conns++
	return true
}

func (l *ipLimiter) close(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st := l.ips[ip]; st != nil && st.conns > 0 {
		st.conns--
	}
}

func (l *ipLimiter) allowMessage(ip string) bool {
	if l.perMin <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.state(ip)
	if st.tokens < 1 {
		return false
	}
	st.tokens--
	return true
}
