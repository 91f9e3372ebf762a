package smtprelay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailgate/mailgate/domain"
)

// CaptureTransport writes each message to an .eml file instead of sending
// it, so a developer can open exactly what would have gone out. It is safe
// for concurrent use.
type CaptureTransport struct {
	dir string
}

// NewCapture returns a CaptureTransport writing into dir, which it creates
// (mode 0750) when missing.
func NewCapture(dir string) (*CaptureTransport, error) {
	if dir == "" {
		return nil, errors.New("smtprelay: capture directory is empty")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("smtprelay: create capture directory: %w", err)
	}
	return &CaptureTransport{dir: dir}, nil
}

// Send writes one file holding the envelope, as X-Mailgate-Envelope-From and
// X-Mailgate-Envelope-To header lines, followed by data. Every recipient gets
// 250 "2.0.0 captured to <path>", or code 0 when the file could not be
// written. With no recipients nothing is written, as no SMTP DATA would be sent.
func (c *CaptureTransport) Send(ctx context.Context, env Envelope, data []byte) []domain.RecipientReply {
	tx := newTransaction(env.To)
	if len(env.To) == 0 {
		return tx.replies
	}
	if err := ctx.Err(); err != nil {
		tx.failRest(0, fmt.Sprintf("cancelled: %v", context.Cause(ctx)))
		return tx.replies
	}
	if env.BeforeData != nil {
		if err := env.BeforeData(ctx, env.To); err != nil {
			tx.failRest(0, "not captured: "+err.Error())
			return tx.replies
		}
	}
	path, err := c.write(env, data)
	if err != nil {
		tx.failRest(0, err.Error())
		return tx.replies
	}
	tx.failRest(250, "2.0.0 captured to "+path)
	return tx.replies
}

// write stores the file under a temporary name and renames it, so a reader
// watching the directory never sees half a message.
func (c *CaptureTransport) write(env Envelope, data []byte) (path string, err error) {
	name, err := captureName(time.Now(), data)
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(c.dir, ".capture-*.tmp")
	if err != nil {
		return "", fmt.Errorf("capture: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriter(tmp)
	fmt.Fprintf(w, "X-Mailgate-Envelope-From: <%s>\r\n", headerSafe(env.From))
	for _, rcpt := range env.To {
		fmt.Fprintf(w, "X-Mailgate-Envelope-To: <%s>\r\n", headerSafe(rcpt))
	}
	if _, err := w.Write(data); err != nil {
		return "", fmt.Errorf("capture: write %s: %w", tmp.Name(), err)
	}
	if err := w.Flush(); err != nil {
		return "", fmt.Errorf("capture: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("capture: close %s: %w", tmp.Name(), err)
	}
	path = filepath.Join(c.dir, name)
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("capture: %w", err)
	}
	return path, nil
}

// headerSafe keeps an envelope address on its header line.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

// maxIDInName keeps file names well under file system limits.
const maxIDInName = 80

// captureName is the time, sortable to the nanosecond, and the message's
// Message-ID reduced to characters safe in a file name, or random hex when
// the message has none.
func captureName(now time.Time, data []byte) (string, error) {
	id := ""
	if m, err := mail.ReadMessage(bytes.NewReader(data)); err == nil {
		id = sanitizeForFileName(m.Header.Get("Message-Id"))
	}
	if id == "" {
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return "", fmt.Errorf("capture: random name: %w", err)
		}
		id = hex.EncodeToString(b)
	}
	return now.UTC().Format("20060102T150405.000000000Z") + "_" + id + ".eml", nil
}

// sanitizeForFileName keeps letters, digits and ._-@ and replaces anything
// else, path separators included, with an underscore.
func sanitizeForFileName(id string) string {
	id = strings.Trim(strings.TrimSpace(id), "<>")
	var b strings.Builder
	for _, r := range id {
		if b.Len() >= maxIDInName {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '@':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
