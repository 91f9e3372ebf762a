//go:build reliability

package reliability

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// delivery is one (Message-ID, recipient) pair the sink accepted.
type delivery struct {
	MessageID string
	Recipient string
}

// sink is the relay the worker delivers to (through the fault proxy). It
// appends every accepted (Message-ID, recipient) to its log, file and memory,
// before it answers 250, so the log is a lower bound of what "the world" got.
type sink struct {
	server   *smtp.Server
	listener net.Listener
	logFile  *os.File

	mu     sync.Mutex
	counts map[delivery]int
	total  int

	// replyDelay holds each DATA reply this long after logging it, so a
	// delivery can be made to outlast a shutdown grace.
	replyDelay atomic.Int64
	// inData counts sessions currently inside DATA (reading or delayed).
	inData atomic.Int64
}

func startSink(logPath string) (*sink, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("sink log: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("sink listen: %w", err)
	}
	s := &sink{listener: l, logFile: f, counts: map[delivery]int{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{sink: s}, nil }))
	srv.Domain = "sink.test"
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxRecipients = 100
	srv.ErrorLog = discardLogger{}
	s.server = srv
	go func() { _ = srv.Serve(l) }()
	return s, nil
}

func (s *sink) addr() string { return s.listener.Addr().String() }

func (s *sink) close() {
	_ = s.server.Close()
	_ = s.logFile.Close()
}

// record logs one accepted message for each of its recipients.
func (s *sink) record(messageID string, rcpts []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, r := range rcpts {
		d := delivery{MessageID: messageID, Recipient: strings.ToLower(r)}
		s.counts[d]++
		s.total++
		fmt.Fprintf(&b, "%s\t%s\t%s\n", time.Now().UTC().Format(time.RFC3339Nano), d.MessageID, d.Recipient)
	}
	_, err := s.logFile.WriteString(b.String())
	return err
}

// snapshot copies the per-pair counts.
func (s *sink) snapshot() map[delivery]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[delivery]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// received is how many recipient deliveries the sink has logged.
func (s *sink) received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

type sinkSession struct {
	sink  *sink
	rcpts []string
}

func (ss *sinkSession) Reset()                               { ss.rcpts = nil }
func (ss *sinkSession) Logout() error                        { return nil }
func (ss *sinkSession) Mail(string, *smtp.MailOptions) error { ss.rcpts = nil; return nil }
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	ss.sink.inData.Add(1)
	defer ss.sink.inData.Add(-1)
	br := bufio.NewReader(r)
	header, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil && !errors.Is(err, io.EOF) {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "unreadable header"}
	}
	// The body must be read to the final dot before the message counts as
	// received; a connection lost before it is no delivery.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return err
	}
	id := strings.TrimSpace(header.Get("Message-Id"))
	if id == "" {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "no Message-ID"}
	}
	if err := ss.sink.record(id, ss.rcpts); err != nil {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "sink log: " + err.Error()}
	}
	if d := time.Duration(ss.sink.replyDelay.Load()); d > 0 {
		// Fault injection, not synchronisation: the reply is late on purpose.
		time.Sleep(d)
	}
	return nil
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}
