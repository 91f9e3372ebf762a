package mailbuild_test

import (
	"bytes"
	"mime"
	"testing"

	"github.com/mailgate/mailgate/adapters/mailbuild"
	"github.com/mailgate/mailgate/domain"
)

// FuzzBuild feeds arbitrary bodies, subjects and display names to Build. With
// attach set, the body's bytes also travel as an attachment named after the
// display name and typed with the subject, which reaches the filename and
// content-type handling too. Build may refuse the input; what it returns
// must parse back with net/mail and mime/multipart, carry no bare CR or LF,
// and give back the body and attachment unchanged.
func FuzzBuild(f *testing.F) {
	f.Add("Hello Bob,\r\n\r\nsee attached.\r\n", "Quarterly report", "Alice Example", false)
	f.Add(htmlBody, "Réunion à 10h", "Zoë", true)
	f.Add("a < b\r.\r\n.\nMAIL FROM:<x@example.com>", "text/plain; charset=iso-8859-1", "Zoë résumé.pdf", true)
	f.Add("<ul><li>x<br>y</ul><pre>\r\n  z</pre><a href=x>y</a>", "multipart/mixed; boundary=x", "", true)

	f.Fuzz(func(t *testing.T, body, subject, name string, attach bool) {
		msg := newMessage(func(m *domain.Message) {
			m.Body = body
			m.Subject = subject
			m.SenderDisplayName = name
			m.Recipients[0].DisplayName = name
		})
		opts := mailbuild.Options{Date: testDate}
		if attach {
			opts.Attachments = []domain.AttachmentContent{attachment(name, subject, []byte(body))}
		}
		raw, err := mailbuild.Build(msg, opts)
		if err != nil {
			return
		}
		if i := bareLineBreak(raw); i >= 0 {
			t.Fatalf("bare CR or LF at byte %d:\n%q", i, raw)
		}
		if !bytes.HasSuffix(raw, []byte("\r\n")) {
			t.Fatalf("output does not end with CRLF: %q", raw)
		}
		_, leaves, err := walkMessage(raw)
		if err != nil {
			t.Fatalf("%v\n%s", err, raw)
		}

		want := 1
		if mailbuild.LooksLikeHTML(body) {
			want = 2
		}
		if attach {
			want++
		}
		if len(leaves) != want {
			t.Fatalf("parts %q, want %d", paths(leaves), want)
		}
		// The body is the last text leaf before any attachment: the plain
		// text itself, or the HTML after its derived text.
		text := leaves[want-1]
		if attach {
			text = leaves[want-2]
		}
		if got := string(text.data); got != wantBody(body) {
			t.Fatalf("%s = %q, want %q", text.path, got, wantBody(body))
		}
		if attach {
			file := leaves[want-1]
			if !bytes.Equal(file.data, []byte(body)) {
				t.Fatalf("attachment = %q, want %q", file.data, body)
			}
			_, params, err := mime.ParseMediaType(file.header.Get("Content-Disposition"))
			if err != nil || params["filename"] != name {
				t.Fatalf("filename = %q (%v), want %q", params["filename"], err, name)
			}
		}
	})
}
