package mailbuild_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"net/textproto"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/adapters/mailbuild"
	"github.com/mailgate/mailgate/domain"
)

// leaf is one non-multipart entity of a parsed message, its content decoded.
type leaf struct {
	// path is the media types from the top level down, joined by " > ".
	path   string
	header textproto.MIMEHeader
	data   []byte
}

// walkMessage parses raw with net/mail and mime/multipart alone, descending
// into every multipart entity, and returns the leaves in order.
func walkMessage(raw []byte) (*netmail.Message, []leaf, error) {
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, fmt.Errorf("net/mail: %w", err)
	}
	leaves, err := walkEntity(textproto.MIMEHeader(m.Header), m.Body, "")
	return m, leaves, err
}

func walkEntity(h textproto.MIMEHeader, body io.Reader, path string) ([]leaf, error) {
	mediaType, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return nil, fmt.Errorf("%s: Content-Type %q: %w", path, h.Get("Content-Type"), err)
	}
	if path != "" {
		path += " > "
	}
	path += mediaType
	if !strings.HasPrefix(mediaType, "multipart/") {
		data, err := decodeContent(h.Get("Content-Transfer-Encoding"), body)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return []leaf{{path: path, header: h, data: data}}, nil
	}
	if params["boundary"] == "" {
		return nil, fmt.Errorf("%s: no boundary", path)
	}
	r := multipart.NewReader(body, params["boundary"])
	var leaves []leaf
	for {
		// NextRawPart, unlike NextPart, leaves quoted-printable for us to decode.
		p, err := r.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: part %d: %w", path, len(leaves), err)
		}
		sub, err := walkEntity(p.Header, p, path)
		if err != nil {
			return nil, err
		}
		leaves = append(leaves, sub...)
	}
	if len(leaves) == 0 {
		return nil, fmt.Errorf("%s: no parts", path)
	}
	return leaves, nil
}

func decodeContent(transferEncoding string, body io.Reader) ([]byte, error) {
	switch strings.ToLower(transferEncoding) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	default:
		return nil, fmt.Errorf("unexpected Content-Transfer-Encoding %q", transferEncoding)
	}
	return io.ReadAll(body)
}

func mustWalk(t *testing.T, raw []byte) (*netmail.Message, []leaf) {
	t.Helper()
	m, leaves, err := walkMessage(raw)
	if err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	return m, leaves
}

func paths(leaves []leaf) []string {
	var out []string
	for _, l := range leaves {
		out = append(out, l.path)
	}
	return out
}

func buildWith(t *testing.T, msg *domain.Message, attachments ...domain.AttachmentContent) []byte {
	t.Helper()
	raw, err := mailbuild.Build(msg, mailbuild.Options{Date: testDate, Attachments: attachments})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if i := bareLineBreak(raw); i >= 0 {
		t.Fatalf("output has a bare CR or LF at byte %d:\n%q", i, raw)
	}
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Fatalf("output does not end with CRLF: %q", raw[max(0, len(raw)-20):])
	}
	return raw
}

func attachment(filename, contentType string, data []byte) domain.AttachmentContent {
	return domain.AttachmentContent{
		Attachment: domain.Attachment{Filename: filename, ContentType: contentType, Size: int64(len(data))},
		Data:       data,
	}
}

const htmlBody = "<p>Hello <b>Bob</b>,</p><p>see the <a href=\"https://example.com/q3\">report</a>.</p>"

func TestBuildLayout(t *testing.T) {
	t.Parallel()
	pdf := attachment("report.pdf", "application/pdf", []byte("%PDF-1.4\x00\xff"))
	png := attachment("chart.png", "image/png", []byte("\x89PNG\r\n\x1a\n"))
	tests := []struct {
		name        string
		body        string
		attachments []domain.AttachmentContent
		top         string
		want        []string
	}{
		{"plain", "Hello", nil, "text/plain", []string{"text/plain"}},
		{"html", htmlBody, nil, "multipart/alternative", []string{
			"multipart/alternative > text/plain",
			"multipart/alternative > text/html",
		}},
		{"plain with attachments", "Hello", []domain.AttachmentContent{pdf, png}, "multipart/mixed", []string{
			"multipart/mixed > text/plain",
			"multipart/mixed > application/pdf",
			"multipart/mixed > image/png",
		}},
		{"html with attachments", htmlBody, []domain.AttachmentContent{pdf, png}, "multipart/mixed", []string{
			"multipart/mixed > multipart/alternative > text/plain",
			"multipart/mixed > multipart/alternative > text/html",
			"multipart/mixed > application/pdf",
			"multipart/mixed > image/png",
		}},
		{"empty body with attachment", "", []domain.AttachmentContent{pdf}, "multipart/mixed", []string{
			"multipart/mixed > text/plain",
			"multipart/mixed > application/pdf",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			msg := newMessage(func(m *domain.Message) { m.Body = tt.body })
			raw := buildWith(t, msg, tt.attachments...)
			if again := buildWith(t, msg, tt.attachments...); !bytes.Equal(raw, again) {
				t.Errorf("two builds differ:\n%s\n---\n%s", raw, again)
			}
			assertHeaderBlockASCII(t, raw)
			assertLineLengths(t, raw)
			m, leaves := mustWalk(t, raw)
			if got, _, _ := mime.ParseMediaType(m.Header.Get("Content-Type")); got != tt.top {
				t.Errorf("top-level Content-Type = %q, want %s", m.Header.Get("Content-Type"), tt.top)
			}
			if got := m.Header.Get("Mime-Version"); got != "1.0" {
				t.Errorf("MIME-Version = %q", got)
			}
			if got := paths(leaves); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("parts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			// Whatever the layout, the message header is unchanged.
			if _, ok := m.Header["Bcc"]; ok || bytes.Contains(raw, []byte("dave.secret")) {
				t.Error("bcc recipient leaked")
			}
			for _, key := range []string{"From", "To", "Cc", "Subject", "Date", "Message-Id", "Importance", "X-Priority"} {
				if m.Header.Get(key) == "" {
					t.Errorf("%s header missing", key)
				}
			}
			// The plain body, or the HTML one, arrives unchanged; the text
			// derived from HTML is checked in TestBuildHTMLBody.
			for _, l := range leaves {
				if l.path == "text/plain" || l.path == "multipart/mixed > text/plain" || strings.HasSuffix(l.path, "text/html") {
					if got := string(l.data); got != wantBody(tt.body) {
						t.Errorf("%s = %q, want %q", l.path, got, wantBody(tt.body))
					}
				}
			}
		})
	}
}

// assertLineLengths checks every line, header and body, against the 78
// columns RFC 5322 recommends. A longer header line is allowed only when it
// holds a single token, such as a long media type, that cannot be folded.
func assertLineLengths(t *testing.T, raw []byte) {
	t.Helper()
	for _, line := range strings.Split(string(raw), "\r\n") {
		if len(line) <= 78 {
			continue
		}
		if _, value, ok := strings.Cut(line, ": "); ok && !strings.ContainsAny(value, " \t") {
			continue
		}
		t.Errorf("line of %d bytes: %q", len(line), line)
	}
}

// TestBuildBoundaryCannotBeForged puts the boundary the builder uses for a
// message into that message's body and attachments: the encodings must keep
// it from ending a part early.
func TestBuildBoundaryCannotBeForged(t *testing.T) {
	t.Parallel()
	probe := buildWith(t, newMessage(func(m *domain.Message) { m.Body = htmlBody }), attachment("a.txt", "text/plain", nil))
	m, _ := mustWalk(t, probe)
	_, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	outer := params["boundary"]
	if !strings.HasPrefix(outer, "=_") {
		t.Fatalf("boundary %q", outer)
	}
	inner := strings.Replace(outer, "=_0_", "=_1_", 1)

	forged := fmt.Sprintf("\r\n--%s\r\nContent-Type: text/plain\r\n\r\nevil\r\n--%s--\r\n--%s--\r\n", inner, inner, outer)
	body := "<p>x</p>" + forged
	data := []byte(forged)
	raw := buildWith(t, newMessage(func(m *domain.Message) { m.Body = body }), attachment("a.txt", "text/plain", data))
	_, leaves := mustWalk(t, raw)
	if len(leaves) != 3 {
		t.Fatalf("parts %q, want 3", paths(leaves))
	}
	if got := string(leaves[1].data); got != wantBody(body) {
		t.Errorf("html = %q, want %q", got, wantBody(body))
	}
	if !bytes.Equal(leaves[2].data, data) {
		t.Errorf("attachment = %q, want %q", leaves[2].data, data)
	}
}

func TestBuildNoBareLineBreaks(t *testing.T) {
	t.Parallel()
	bodies := []string{
		"", "\r", "\n", "\r\r\n\n", "a\rb\nc\r\nd", "<p>a\rb</p>\n<br>\r", "<pre>x\ry\nz</pre>\r\n.\r\n",
		"<div>\u2028line separator\u2029</div>", "\x00<b>nul</b>\x00",
	}
	datas := [][]byte{nil, []byte("\r"), []byte("\n"), []byte("a\rb\nc"), bytes.Repeat([]byte("\r\n."), 100)}
	for i, body := range bodies {
		for j, data := range datas {
			t.Run(fmt.Sprintf("body%d/data%d", i, j), func(t *testing.T) {
				t.Parallel()
				// buildWith fails on any bare CR or LF and on a missing final CRLF.
				raw := buildWith(t, newMessage(func(m *domain.Message) { m.Body = body }))
				mustWalk(t, raw)
				raw = buildWith(t, newMessage(func(m *domain.Message) { m.Body = body }), attachment("x\u00e9.bin", "application/octet-stream", data))
				_, leaves := mustWalk(t, raw)
				if got := leaves[len(leaves)-1].data; !bytes.Equal(got, data) {
					t.Errorf("attachment = %q, want %q", got, data)
				}
			})
		}
	}
}
