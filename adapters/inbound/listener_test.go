package inbound_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/adapters/inbound"
	"github.com/mailgate/mailgate/domain"
)

// memoryStore stands in for PostgreSQL here; the app's tests run the
// listener against the real database.
type memoryStore struct {
	mu       sync.Mutex
	received []domain.InboundMail
	fail     bool
	// entered, when set, is told each time a store begins, which then
	// waits for release.
	entered, release chan struct{}
}

func (m *memoryStore) IsReturnPathDomain(_ context.Context, d string) (bool, error) {
	return d == "rp.tenant.example", nil
}

func (m *memoryStore) ReceiveInbound(_ context.Context, mail domain.InboundMail) error {
	if m.entered != nil {
		m.entered <- struct{}{}
		<-m.release
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("database down")
	}
	m.received = append(m.received, mail)
	return nil
}

func (m *memoryStore) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.received)
}

func startListener(t *testing.T, store *memoryStore, configure func(*inbound.Options)) string {
	t.Helper()
	opts := inbound.Options{Domains: []string{"bounces.gw.example"}, Hostname: "mx.gw.example", MaxMessageBytes: 1 << 16,
		MaxConnections: 10, MaxPerIP: 3, RatePerIP: 100, Timeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if configure != nil {
		configure(&opts)
	}
	l := inbound.New(store, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := l.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func send(c *smtp.Client, rcpt string) error {
	if err := c.Mail("", nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte("Subject: x\r\n\r\nbody\r\n")); err != nil {
		return err
	}
	return w.Close()
}

func TestListenerStartTLS(t *testing.T) {
	server, client := tlsConfigs(t)
	store := &memoryStore{}
	addr := startListener(t, store, func(o *inbound.Options) { o.TLS = server })
	c, err := smtp.DialStartTLS(addr, client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.TLSConnectionState(); !ok {
		t.Fatal("no TLS after STARTTLS")
	}
	if err := send(c, "bounce+x@rp.tenant.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if store.count() != 1 {
		t.Fatalf("stored %d", store.count())
	}
}

// TestListenerStoreFailureIsTemporary: nothing is acknowledged that isn't
// stored; the sender is told to retry.
func TestListenerStoreFailureIsTemporary(t *testing.T) {
	store := &memoryStore{fail: true}
	addr := startListener(t, store, nil)
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = send(c, "bounce+x@bounces.gw.example")
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 451 {
		t.Fatalf("store failure answered %v, want 451", err)
	}
}

// TestListenerBoundsSessions: idle sessions time out, one address holds
// at most MaxPerIP connections.
func TestListenerBoundsSessions(t *testing.T) {
	store := &memoryStore{}
	addr := startListener(t, store, func(o *inbound.Options) { o.Timeout = 300 * time.Millisecond; o.MaxPerIP = 2 })
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	r := bufio.NewReader(idle)
	if greeting, _ := r.ReadString('\n'); !strings.HasPrefix(greeting, "220 ") {
		t.Fatalf("greeting %q", greeting)
	}
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if bye, _ := r.ReadString('\n'); !strings.HasPrefix(bye, "421 ") {
		t.Fatalf("an idle session got %q, want 421", bye)
	}

	var open []*smtp.Client
	defer func() {
		for _, c := range open {
			_ = c.Close()
		}
	}()
	for range 2 {
		c, err := smtp.Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Hello("a.example"); err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Hello("a.example")
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 421 {
		t.Fatalf("third connection from one address: %v, want 421", err)
	}
}

func tlsConfigs(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx.gw.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"mx.gw.example"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool, ServerName: "mx.gw.example"}
}

// TestListenerBoundsMessagesInFlight: while one message is being received
// (here: held in the store), a second sender waits at most half the
// timeout, then is told to retry; memory never holds more than
// MaxConcurrentData messages.
func TestListenerBoundsMessagesInFlight(t *testing.T) {
	store := &memoryStore{entered: make(chan struct{}), release: make(chan struct{})}
	addr := startListener(t, store, func(o *inbound.Options) { o.MaxConcurrentData = 1; o.Timeout = time.Second })
	first := make(chan error, 1)
	go func() {
		c, err := smtp.Dial(addr)
		if err != nil {
			first <- err
			return
		}
		defer c.Close()
		first <- send(c, "postmaster@bounces.gw.example")
	}()
	<-store.entered // the first message holds the only slot
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = send(c, "postmaster@bounces.gw.example")
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 451 {
		t.Fatalf("second message while the slot is held: %v, want 451", err)
	}
	close(store.release)
	if err := <-first; err != nil {
		t.Fatalf("first message: %v", err)
	}
	if store.count() != 1 {
		t.Fatalf("stored %d, want the first sender's one", store.count())
	}
}
