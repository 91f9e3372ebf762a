package mailbuild_test

import (
	"bytes"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/adapters/mailbuild"
	"github.com/mailgate/mailgate/domain"
)

// everyByte holds each byte value, then a longer pseudo-random run, so that
// encoding spans many lines and both line and padding boundaries.
func everyByte() []byte {
	b := make([]byte, 0, 256+10000)
	for i := range 256 {
		b = append(b, byte(i))
	}
	x := uint32(2463534242)
	for range 10000 {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b = append(b, byte(x))
	}
	return b
}

func TestBuildAttachments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		attachment domain.AttachmentContent
		mediaType  string
		params     map[string]string
	}{
		{"binary", attachment("data.bin", "application/octet-stream", everyByte()),
			"application/octet-stream", nil},
		{"nul and ff", attachment("edges.bin", "application/octet-stream", []byte{0x00, 0xff, 0x00, 0xff, 0xff}),
			"application/octet-stream", nil},
		{"text file", attachment("notes.txt", "text/plain; charset=utf-8", []byte("line 1\nline 2\r\nlast\rline\n.\n")),
			"text/plain", map[string]string{"charset": "utf-8"}},
		{"legacy charset", attachment("old.txt", "text/plain; charset=iso-8859-1", []byte("caf\xe9\n")),
			"text/plain", map[string]string{"charset": "iso-8859-1"}},
		{"non-ascii filename", attachment("Zoë résumé.pdf", "application/pdf", []byte("%PDF-1.7\n\x00\xff%%EOF")),
			"application/pdf", nil},
		{"long non-ascii filename", attachment(strings.Repeat("Ω", 100)+".png", "image/png", []byte("\x89PNG\r\n\x1a\n")),
			"image/png", nil},
		{"long ascii filename", attachment(strings.Repeat("quarterly-report-", 14)+".csv", "text/csv", []byte("a,b\r\n1,2\r\n")),
			"text/csv", nil},
		{"long name with double spaces", attachment(strings.Repeat("quarterly report  ", 5)+".csv", "text/csv", []byte("a")),
			"text/csv", nil},
		{"short name with spaces", attachment("  two  spaces .txt", "text/plain", []byte("a")),
			"text/plain", nil},
		{"quotes and backslash", attachment(`my "best" \ file.txt`, "text/plain", []byte("x")),
			"text/plain", nil},
		{"looks encoded", attachment("=?utf-8?b?SGk=?=.txt", "text/plain", []byte("x")),
			"text/plain", nil},
		{"cjk", attachment("議事録.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", []byte("PK\x03\x04")),
			"application/vnd.openxmlformats-officedocument.wordprocessingml.document", nil},
		{"empty file", attachment("empty.txt", "text/plain", nil),
			"text/plain", nil},
		{"upper-case type", attachment("a.png", "Image/PNG", []byte("p")),
			"image/png", nil},
		{"no type", attachment("a", "", []byte("p")),
			"application/octet-stream", nil},
		{"malformed type", attachment("a", "not a type", []byte("p")),
			"application/octet-stream", nil},
		{"multipart type", attachment("a", "multipart/mixed; boundary=x", []byte("--x\r\n")),
			"application/octet-stream", nil},
		{"message type", attachment("mail.eml", "message/rfc822", []byte("Subject: hi\r\n\r\nbody\r\n")),
			"application/octet-stream", nil},
		{"declared name replaced", attachment("real.txt", "text/plain; name=fake.exe", []byte("p")),
			"text/plain", nil},
		{"encoded parameter", attachment("a.txt", "text/plain; charset*=utf-8''%0D%0A--x%0D%0A", []byte("p")),
			"text/plain", map[string]string{"charset": "\r\n--x\r\n"}},
	}

	// One message carries every attachment, so their boundaries and order are tested too.
	var all []domain.AttachmentContent
	for _, tt := range tests {
		all = append(all, tt.attachment)
	}
	raw := buildWith(t, newMessage(), all...)
	assertHeaderBlockASCII(t, raw)
	assertLineLengths(t, raw)
	for _, line := range strings.Split(string(raw), "\r\n") {
		for _, c := range []byte(line) {
			if c > '~' {
				t.Fatalf("8-bit byte %#x in output line %q", c, line)
			}
		}
	}
	m, leaves := mustWalk(t, raw)
	if got, _, _ := mime.ParseMediaType(m.Header.Get("Content-Type")); got != "multipart/mixed" {
		t.Fatalf("Content-Type = %q, want multipart/mixed", m.Header.Get("Content-Type"))
	}
	if len(leaves) != len(tests)+1 {
		t.Fatalf("parts %q, want the body and %d attachments", paths(leaves), len(tests))
	}
	if got := string(leaves[0].data); leaves[0].path != "multipart/mixed > text/plain" || got != wantBody(newMessage().Body) {
		t.Errorf("first part %s = %q, want the text body", leaves[0].path, got)
	}

	for i, tt := range tests {
		part := leaves[i+1]
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assertAttachmentPart(t, part, tt.attachment, tt.mediaType, tt.params)
		})
	}
}

func assertAttachmentPart(t *testing.T, part leaf, want domain.AttachmentContent, mediaType string, params map[string]string) {
	t.Helper()
	if !bytes.Equal(part.data, want.Data) {
		t.Errorf("data differs: got %d bytes, want %d", len(part.data), len(want.Data))
	}
	if got := part.header.Get("Content-Transfer-Encoding"); got != "base64" {
		t.Errorf("Content-Transfer-Encoding = %q, want base64", got)
	}

	gotType, gotParams, err := mime.ParseMediaType(part.header.Get("Content-Type"))
	if err != nil || gotType != mediaType {
		t.Errorf("Content-Type = %q (%v), want %s", part.header.Get("Content-Type"), err, mediaType)
	}
	if name := decodeText(t, gotParams["name"]); name != want.Filename {
		t.Errorf("Content-Type name = %q, want %q", name, want.Filename)
	}
	delete(gotParams, "name")
	if len(gotParams) != len(params) {
		t.Errorf("Content-Type parameters %q, want name and %q", gotParams, params)
	}
	for k, v := range params {
		if gotParams[k] != v {
			t.Errorf("Content-Type %s = %q, want %q", k, gotParams[k], v)
		}
	}

	disposition, dispParams, err := mime.ParseMediaType(part.header.Get("Content-Disposition"))
	if err != nil || disposition != "attachment" {
		t.Errorf("Content-Disposition = %q (%v), want attachment", part.header.Get("Content-Disposition"), err)
	}
	if dispParams["filename"] != want.Filename {
		t.Errorf("filename = %q, want %q", dispParams["filename"], want.Filename)
	}
	// mime/multipart's own accessor agrees (it also strips any directory).
	p := &multipart.Part{Header: textproto.MIMEHeader(part.header)}
	if !strings.Contains(want.Filename, "/") && p.FileName() != want.Filename {
		t.Errorf("Part.FileName() = %q, want %q", p.FileName(), want.Filename)
	}
}

func TestBuildHTMLWithAttachments(t *testing.T) {
	t.Parallel()
	files := []domain.AttachmentContent{
		attachment("Zoë résumé.pdf", "application/pdf", []byte{0x00, '%', 'P', 'D', 'F', 0xff}),
		attachment("notes.txt", "text/plain; charset=utf-8", []byte("hello\nworld\n")),
	}
	raw := buildWith(t, newMessage(func(m *domain.Message) { m.Body = htmlBody }), files...)
	assertLineLengths(t, raw)
	_, leaves := mustWalk(t, raw)
	want := []string{
		"multipart/mixed > multipart/alternative > text/plain",
		"multipart/mixed > multipart/alternative > text/html",
		"multipart/mixed > application/pdf",
		"multipart/mixed > text/plain",
	}
	if got := paths(leaves); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("parts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got, want := string(leaves[0].data), "Hello Bob,\r\n\r\nsee the report (https://example.com/q3).\r\n"; got != want {
		t.Errorf("text = %q, want %q", got, want)
	}
	if got := string(leaves[1].data); got != wantBody(htmlBody) {
		t.Errorf("html = %q, want %q", got, wantBody(htmlBody))
	}
	assertAttachmentPart(t, leaves[2], files[0], "application/pdf", nil)
	assertAttachmentPart(t, leaves[3], files[1], "text/plain", map[string]string{"charset": "utf-8"})
}

func TestBuildRejectsBadFilenames(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"newline":      "a\r\nContent-Type: text/html.txt",
		"nul":          "a\x00.txt",
		"invalid utf8": "a\xff.txt",
		"too long":     strings.Repeat("a", 256),
	}
	for name, filename := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			files := []domain.AttachmentContent{attachment("ok.txt", "text/plain", nil), attachment(filename, "text/plain", []byte("x"))}
			raw, err := mailbuild.Build(newMessage(), mailbuild.Options{Date: testDate, Attachments: files})
			if err == nil {
				t.Fatalf("Build succeeded:\n%s", raw)
			}
			if domain.ErrorCodeOf(err) != domain.CodeInvalid {
				t.Errorf("error %v has code %q, want %q", err, domain.ErrorCodeOf(err), domain.CodeInvalid)
			}
			if !strings.Contains(err.Error(), "attachments[1].filename") {
				t.Errorf("error %q does not name the attachment", err)
			}
		})
	}
}

func TestBuildAttachmentWithoutFilename(t *testing.T) {
	t.Parallel()
	file := attachment("", "image/png", []byte("\x89PNG"))
	_, leaves := mustWalk(t, buildWith(t, newMessage(), file))
	part := leaves[1]
	if got := part.header.Get("Content-Disposition"); got != "attachment" {
		t.Errorf("Content-Disposition = %q, want attachment", got)
	}
	if got := part.header.Get("Content-Type"); got != "image/png" {
		t.Errorf("Content-Type = %q, want image/png", got)
	}
	if !bytes.Equal(part.data, file.Data) {
		t.Errorf("data = %q, want %q", part.data, file.Data)
	}
}
