package smtprelay_test

import (
	"bytes"
	"context"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mailgate/mailgate/adapters/smtprelay"
	"github.com/mailgate/mailgate/domain"
)

func TestCaptureWritesEnvelopeAndMessage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "captures")
	capture, err := smtprelay.NewCapture(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(dir)
	if err != nil || info.Mode().Perm() != 0o750 {
		t.Errorf("capture directory: %v, mode %v, want 0750", err, info.Mode().Perm())
	}
	env, data := buildMessage(t, "Hello\r\n.\r\n")

	replies := capture.Send(context.Background(), env, data)

	files := emlFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("files = %v, want one .eml", files)
	}
	path := files[0]
	assertReplies(t, replies, env.To, 250, "2.0.0 captured to "+path)
	if !strings.HasSuffix(path, "_relay-test@example.com.eml") {
		t.Errorf("file name %q does not carry the Message-ID", filepath.Base(path))
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(content, data) {
		t.Error("the file does not end with the message as given")
	}
	m, err := mail.ReadMessage(bytes.NewReader(content))
	if err != nil {
		t.Fatalf("the capture is not a readable message: %v", err)
	}
	if got := m.Header.Get("X-Mailgate-Envelope-From"); got != "<alice@example.com>" {
		t.Errorf("X-Mailgate-Envelope-From = %q", got)
	}
	wantTo := []string{"<bob@example.org>", "<carol@example.net>", "<dave@example.com>"}
	if got := m.Header["X-Mailgate-Envelope-To"]; strings.Join(got, ",") != strings.Join(wantTo, ",") {
		t.Errorf("X-Mailgate-Envelope-To = %q, want %q", got, wantTo)
	}
	if got := m.Header.Get("Subject"); got != "Relay test" {
		t.Errorf("Subject = %q, the message header did not survive", got)
	}
}

func TestCaptureFileNames(t *testing.T) {
	dir := t.TempDir()
	capture, err := smtprelay.NewCapture(dir)
	if err != nil {
		t.Fatal(err)
	}
	env := smtprelay.Envelope{From: "a@example.com", To: []string{"b@example.com"}}
	for _, data := range []string{
		"Message-ID: <../../../escape@example.com>\r\n\r\nx\r\n",
		"Subject: no id\r\n\r\nx\r\n",
		"not a message at all",
	} {
		replies := capture.Send(context.Background(), env, []byte(data))
		if replies[0].Code != 250 {
			t.Fatalf("reply %+v", replies[0])
		}
	}
	files := emlFiles(t, dir)
	if len(files) != 3 {
		t.Fatalf("files = %v, want three in the directory itself", files)
	}
	for _, f := range files {
		if filepath.Dir(f) != dir {
			t.Errorf("%s escaped the capture directory", f)
		}
	}
}

func TestCaptureKeepsEnvelopeOnOneLine(t *testing.T) {
	dir := t.TempDir()
	capture, err := smtprelay.NewCapture(dir)
	if err != nil {
		t.Fatal(err)
	}
	env := smtprelay.Envelope{From: "a@example.com\r\nX-Injected: yes", To: []string{"b@example.com"}}
	capture.Send(context.Background(), env, []byte("Subject: x\r\n\r\nbody\r\n"))
	content, err := os.ReadFile(emlFiles(t, dir)[0])
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(content, []byte("\nX-Injected")) {
		t.Errorf("envelope value broke out of its header line:\n%s", content)
	}
}

func TestCaptureConcurrentSends(t *testing.T) {
	dir := t.TempDir()
	capture, err := smtprelay.NewCapture(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			data := fmt.Sprintf("Message-ID: <m%d@example.com>\r\n\r\nbody %d\r\n", i, i)
			r := capture.Send(context.Background(), smtprelay.Envelope{To: []string{"b@example.com"}}, []byte(data))
			if r[0].Code != 250 {
				t.Errorf("reply %+v", r[0])
			}
		})
	}
	wg.Wait()
	if files := emlFiles(t, dir); len(files) != 20 {
		t.Errorf("%d files, want 20", len(files))
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 20 {
		t.Errorf("%d directory entries, want 20 (temporary files left behind?)", len(entries))
	}
}

func TestCaptureFailures(t *testing.T) {
	if _, err := smtprelay.NewCapture(""); err == nil {
		t.Error("NewCapture(\"\") succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := smtprelay.NewCapture(filepath.Join(file, "sub")); err == nil {
		t.Error("NewCapture under a regular file succeeded")
	}

	dir := t.TempDir()
	capture, err := smtprelay.NewCapture(dir)
	if err != nil {
		t.Fatal(err)
	}
	env := smtprelay.Envelope{To: []string{"a@example.com", "b@example.com"}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assertReplies(t, capture.Send(ctx, env, []byte("x")), env.To, 0, "cancel")

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	assertReplies(t, capture.Send(context.Background(), env, []byte("x")), env.To, 0, "capture")
	if got := capture.Send(context.Background(), smtprelay.Envelope{}, []byte("x")); len(got) != 0 {
		t.Errorf("replies for no recipients: %+v", got)
	}
}

// sender is what the delivery code will declare as its port.
type sender interface {
	Send(ctx context.Context, env smtprelay.Envelope, data []byte) []domain.RecipientReply
}

var (
	_ sender = (*smtprelay.Transport)(nil)
	_ sender = (*smtprelay.CaptureTransport)(nil)
)

func emlFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}
