package smtptest_test

import (
	"encoding/base64"
	"errors"
	"net"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

const message = "Subject: hi\r\n\r\n.line\r\nbody\r\n"

func send(t *testing.T, c *smtp.Client, from string, to ...string) error {
	t.Helper()
	return c.SendMail(from, to, strings.NewReader(message))
}

func dial(t *testing.T, s *smtptest.Server) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRecordsAcceptedMessages(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{})
	c := dial(t, s)
	if err := send(t, c, "a@example.com", "b@example.com", "c@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	msgs := s.WaitForMessages(t, 1, time.Second)
	got := msgs[0]
	if got.From != "a@example.com" || strings.Join(got.To, ",") != "b@example.com,c@example.com" || string(got.Data) != message || got.TLS || got.AuthUser != "" {
		t.Errorf("received %+v", got)
	}
	if s.Sessions() != 1 || s.DataAttempts() != 1 || s.RcptAttempts("b@example.com") != 1 {
		t.Errorf("Sessions=%d DataAttempts=%d RcptAttempts=%d", s.Sessions(), s.DataAttempts(), s.RcptAttempts("b@example.com"))
	}
	msgs[0].Data[0] = 'X'
	if s.Messages()[0].Data[0] == 'X' {
		t.Error("Messages shares memory with the caller")
	}
	if s.URL() != "smtp://"+s.Addr() || s.ClientTLSConfig() != nil {
		t.Errorf("URL=%q ClientTLSConfig=%v", s.URL(), s.ClientTLSConfig())
	}
}

func TestHooksSeeAttempts(t *testing.T) {
	var mu sync.Mutex // hooks run on the server's goroutines
	var mailAttempts, rcptAttempts, dataAttempts []int
	s := smtptest.Start(t, smtptest.Options{
		Mail: func(_ string, attempt int) *smtp.SMTPError {
			mu.Lock()
			defer mu.Unlock()
			mailAttempts = append(mailAttempts, attempt)
			return nil
		},
		Rcpt: func(_ string, attempt int) *smtp.SMTPError {
			mu.Lock()
			defer mu.Unlock()
			rcptAttempts = append(rcptAttempts, attempt)
			if attempt == 1 {
				return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "later"}
			}
			return nil
		},
		Data: func(attempt int) *smtp.SMTPError {
			mu.Lock()
			defer mu.Unlock()
			dataAttempts = append(dataAttempts, attempt)
			if attempt == 1 {
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "again"}
			}
			return nil
		},
	})
	c := dial(t, s)
	var smtpErr *smtp.SMTPError
	if err := send(t, c, "a@example.com", "b@example.com"); !errors.As(err, &smtpErr) || smtpErr.Code != 450 {
		t.Fatalf("first send: %v, want 450", err)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := send(t, c, "a@example.com", "b@example.com"); !errors.As(err, &smtpErr) || smtpErr.Code != 451 {
		t.Fatalf("second send: %v, want 451", err)
	}
	if err := send(t, c, "a@example.com", "b@example.com"); err != nil {
		t.Fatalf("third send: %v", err)
	}
	if len(s.Messages()) != 1 || s.RcptAttempts("b@example.com") != 3 || s.DataAttempts() != 2 {
		t.Errorf("messages=%d rcpt=%d data=%d", len(s.Messages()), s.RcptAttempts("b@example.com"), s.DataAttempts())
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(mailAttempts, []int{1, 2, 3}) || !slices.Equal(rcptAttempts, []int{1, 2, 3}) || !slices.Equal(dataAttempts, []int{1, 2}) {
		t.Errorf("attempts mail=%v rcpt=%v data=%v", mailAttempts, rcptAttempts, dataAttempts)
	}
}

func TestDropAfterData(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{DropAfterData: func(int) bool { return true }})
	c := dial(t, s)
	err := send(t, c, "a@example.com", "b@example.com")
	var smtpErr *smtp.SMTPError
	if err == nil || errors.As(err, &smtpErr) {
		t.Fatalf("send: %v, want a connection error without reply", err)
	}
	if len(s.Messages()) != 0 || s.DataAttempts() != 1 {
		t.Errorf("messages=%d data=%d", len(s.Messages()), s.DataAttempts())
	}
}

func TestSTARTTLSAndAuth(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{TLS: true, Username: "u", Password: "p"})
	u, err := url.Parse(s.URL())
	if err != nil || u.User.Username() != "u" {
		t.Fatalf("URL() = %q", s.URL())
	}
	c := dial(t, s)
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH offered before STARTTLS")
	}
	c.Close()

	c, err = smtp.DialStartTLS(s.Addr(), s.ClientTLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var smtpErr *smtp.SMTPError
	if err := send(t, c, "a@example.com", "b@example.com"); !errors.As(err, &smtpErr) || smtpErr.Code != 530 {
		t.Fatalf("send without AUTH: %v, want 530", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "u", "wrong")); !errors.As(err, &smtpErr) || smtpErr.Code != 535 {
		t.Fatalf("AUTH with a wrong password: %v, want 535", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "u", "p")); err != nil {
		t.Fatal(err)
	}
	if err := send(t, c, "a@example.com", "b@example.com"); err != nil {
		t.Fatal(err)
	}
	if got := s.WaitForMessages(t, 1, time.Second)[0]; !got.TLS || got.AuthUser != "u" {
		t.Errorf("TLS=%v AuthUser=%q", got.TLS, got.AuthUser)
	}
	if s.Sessions() != 2 {
		t.Errorf("Sessions() = %d, want 2 connections", s.Sessions())
	}
}

func TestLoginWithoutInitialResponse(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Username: "u", Password: "p", AuthMechanisms: []string{"LOGIN"}})
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := textproto.NewConn(conn)
	expect := func(code int, cmd string) string {
		t.Helper()
		if cmd != "" {
			if err := c.PrintfLine("%s", cmd); err != nil {
				t.Fatal(err)
			}
		}
		_, msg, err := c.ReadResponse(code)
		if err != nil {
			t.Fatalf("%q: %v", cmd, err)
		}
		return msg
	}
	b64 := base64.StdEncoding.EncodeToString
	expect(220, "")
	if ehlo := expect(250, "EHLO client"); !strings.Contains(ehlo, "AUTH LOGIN") || strings.Contains(ehlo, "PLAIN") {
		t.Errorf("EHLO reply %q, want AUTH LOGIN only", ehlo)
	}
	if got := expect(334, "AUTH LOGIN"); got != b64([]byte("Username:")) {
		t.Errorf("challenge %q", got)
	}
	if got := expect(334, b64([]byte("u"))); got != b64([]byte("Password:")) {
		t.Errorf("challenge %q", got)
	}
	expect(235, b64([]byte("p")))
}

func TestImplicitTLS(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{ImplicitTLS: true})
	if !strings.HasPrefix(s.URL(), "smtps://") {
		t.Errorf("URL() = %q", s.URL())
	}
	c, err := smtp.DialTLS(s.Addr(), s.ClientTLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := send(t, c, "a@example.com", "b@example.com"); err != nil {
		t.Fatal(err)
	}
	if !s.WaitForMessages(t, 1, time.Second)[0].TLS {
		t.Error("TLS = false over implicit TLS")
	}
}

func TestWaitForMessagesWaits(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{})
	go func() {
		time.Sleep(50 * time.Millisecond)
		c, err := smtp.Dial(s.Addr())
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SendMail("a@example.com", []string{"b@example.com"}, strings.NewReader(message))
		_ = c.Quit()
	}()
	if got := s.WaitForMessages(t, 1, 5*time.Second); len(got) != 1 {
		t.Errorf("got %d messages", len(got))
	}
}

func TestConnectionNumbers(t *testing.T) {
	for _, opts := range []smtptest.Options{{}, {TLS: true}} {
		s := smtptest.Start(t, opts)
		for want := 1; want <= 2; want++ {
			dial := smtp.Dial
			if opts.TLS {
				dial = func(addr string) (*smtp.Client, error) { return smtp.DialStartTLS(addr, s.ClientTLSConfig()) }
			}
			c, err := dial(s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := send(t, c, "a@example.com", "b@example.com"); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Quit(); err != nil {
				t.Fatal(err)
			}
			for _, m := range s.WaitForMessages(t, 2*want, time.Second)[2*want-2:] {
				if m.Connection != want {
					t.Errorf("TLS=%v: message over connection %d, want %d", opts.TLS, m.Connection, want)
				}
			}
		}
	}
}

func TestDropConnections(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{})
	c := dial(t, s)
	if err := c.Noop(); err != nil {
		t.Fatal(err)
	}
	if n := s.OpenConnections(); n != 1 {
		t.Fatalf("OpenConnections() = %d, want 1", n)
	}
	if n := s.DropConnections(); n != 1 {
		t.Errorf("DropConnections() = %d, want 1", n)
	}
	var smtpErr *smtp.SMTPError
	if err := c.Noop(); err == nil || errors.As(err, &smtpErr) {
		t.Errorf("NOOP on a dropped connection: %v, want a connection error", err)
	}
	if n := s.OpenConnections(); n != 0 {
		t.Errorf("OpenConnections() = %d after the drop, want 0", n)
	}
}

func TestReadTimeoutHangsUpWith421(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{ReadTimeout: 50 * time.Millisecond})
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	c := textproto.NewConn(conn)
	if _, _, err := c.ReadResponse(220); err != nil {
		t.Fatal(err)
	}
	// Say nothing: the server gives up on us.
	if _, msg, err := c.ReadResponse(421); err != nil || !strings.Contains(msg, "Idle timeout") {
		t.Errorf("after idling: %q, %v; want 421 idle timeout", msg, err)
	}
	if _, err := c.ReadLine(); err == nil {
		t.Error("connection still open after the 421")
	}
}
