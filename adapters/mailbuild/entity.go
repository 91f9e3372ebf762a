package mailbuild

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"strconv"
	"strings"

	"github.com/emersion/go-message/textproto"

	"github.com/mailgate/mailgate/domain"
)

// entity is one node of the MIME tree: a leaf with content, or a multipart
// container of further entities.
type entity struct {
	mediaType string
	params    []param
	// disposition is the Content-Disposition value, "" for none.
	disposition       string
	dispositionParams []param
	// transferEncoding and content are set on leaves only.
	transferEncoding string
	content          []byte
	parts            []entity
}

// param is one formatted parameter of a MIME field, such as `charset=utf-8`,
// split into fragments that may go on separate lines when the field is
// folded. Only values whose unfolding is unambiguous are split: a run of
// encoded words, where the white space between words is not part of the text.
type param []string

func (e *entity) multipart() bool { return len(e.parts) > 0 }

// bodyEntity lays out the message body: plain text alone, or HTML as a
// multipart/alternative with a derived plain-text part first so that readers
// without HTML show something sensible; either wrapped in multipart/mixed
// when attachments follow.
func bodyEntity(msg *domain.Message, attachments []domain.AttachmentContent) (entity, error) {
	body := textEntity("text/plain", msg.Body)
	if LooksLikeHTML(msg.Body) {
		body = entity{
			mediaType: "multipart/alternative",
			parts: []entity{
				textEntity("text/plain", htmlToText(msg.Body)),
				textEntity("text/html", msg.Body),
			},
		}
	}
	if len(attachments) == 0 {
		return body, nil
	}
	mixed := entity{mediaType: "multipart/mixed", parts: []entity{body}}
	for i, a := range attachments {
		part, err := attachmentEntity(i, a)
		if err != nil {
			return entity{}, err
		}
		mixed.parts = append(mixed.parts, part)
	}
	return mixed, nil
}

// textEntity is text as a UTF-8 quoted-printable leaf. Line endings are made
// CRLF first: quoted-printable keeps them as hard line breaks, and SMTP
// requires CRLF everywhere.
func textEntity(mediaType, text string) entity {
	content := normalizeLineEndings(text)
	// SMTP ends the data with CRLF "." CRLF, so a body without a final line
	// break would reach the server with one added; adding it here keeps the
	// bytes we hand to SMTP identical to those the server stores.
	if len(content) > 0 && !bytes.HasSuffix(content, []byte("\r\n")) {
		content = append(content, '\r', '\n')
	}
	return entity{
		mediaType:        mediaType,
		params:           []param{{"charset=utf-8"}},
		transferEncoding: "quoted-printable",
		content:          content,
	}
}

// boundarySeed makes multipart boundaries a function of the message, so that
// building the same message twice gives the same bytes.
func boundarySeed(msg *domain.Message) string {
	sum := sha256.Sum256([]byte(msg.MessageID))
	return hex.EncodeToString(sum[:12])
}

// mimeWriter writes an entity tree, numbering its multipart boundaries.
//
// Every boundary starts with "=_", which can never occur in the encoded
// content: quoted-printable writes "=" only before two hex digits or a line
// break, and base64 has no "_". The number after it keeps nested boundaries
// from being prefixes of one another.
type mimeWriter struct {
	seed string
	n    int
}

// header returns e's own header fields and, for a multipart entity, the
// boundary its body must use.
func (mw *mimeWriter) header(e *entity) (fields []field, boundary string) {
	params := e.params
	if e.multipart() {
		boundary = "=_" + strconv.Itoa(mw.n) + "_" + mw.seed
		mw.n++
		params = append(params[:len(params):len(params)], param{formatParam("boundary", boundary)})
	}
	fields = append(fields, paramField("Content-Type", e.mediaType, params))
	if e.disposition != "" {
		fields = append(fields, paramField("Content-Disposition", e.disposition, e.dispositionParams))
	}
	if !e.multipart() {
		fields = append(fields, field{key: "Content-Transfer-Encoding", value: e.transferEncoding})
	}
	return fields, boundary
}

// maxFieldLine is where fields are folded, the same column as go-message uses.
const maxFieldLine = 76

// paramField formats "key: value; param; ..." folded between parameters,
// never inside one: go-message folds at any space, including one inside a
// quoted filename, and some readers (Go's among them) unfold that as a
// different name. Only a value or parameter fragment longer than a line
// makes a longer line.
func paramField(key, value string, params []param) field {
	var b strings.Builder
	line := key + ": " + value
	for i, p := range params {
		line += ";"
		for j, fragment := range p {
			reserve := 0 // for the ";" that will follow this fragment
			if j == len(p)-1 && i < len(params)-1 {
				reserve = 1
			}
			if len(line)+1+len(fragment)+reserve > maxFieldLine {
				b.WriteString(line)
				b.WriteString("\r\n")
				line = ""
			}
			line += " " + fragment
		}
	}
	b.WriteString(line)
	b.WriteString("\r\n")
	return field{key: key, raw: []byte(b.String())}
}

// formatParam returns `key=value` quoted, or RFC 2231 encoded when not
// ASCII, as mime.FormatMediaType writes it; "" when key is not a token.
func formatParam(key, value string) string {
	s := mime.FormatMediaType("x/x", map[string]string{key: value})
	return strings.TrimPrefix(s, "x/x; ")
}

// body writes e's encoded content, or its parts between boundary lines.
func (mw *mimeWriter) body(w io.Writer, e *entity, boundary string) error {
	if !e.multipart() {
		return encodeContent(w, e.transferEncoding, e.content)
	}
	parts := textproto.NewMultipartWriter(w)
	if err := parts.SetBoundary(boundary); err != nil {
		return fmt.Errorf("boundary %q: %w", boundary, err)
	}
	for i := range e.parts {
		child := &e.parts[i]
		fields, childBoundary := mw.header(child)
		pw, err := parts.CreatePart(newHeader(fields))
		if err != nil {
			return fmt.Errorf("part %d header: %w", i, err)
		}
		if err := mw.body(pw, child, childBoundary); err != nil {
			return fmt.Errorf("part %d: %w", i, err)
		}
	}
	return parts.Close()
}

// writeMessage writes the message header fields, the MIME fields of body and
// then body itself.
func writeMessage(w io.Writer, fields []field, body entity, seed string) error {
	mw := &mimeWriter{seed: seed}
	own, boundary := mw.header(&body)
	fields = append(fields, field{key: "MIME-Version", value: "1.0"})
	fields = append(fields, own...)
	if err := textproto.WriteHeader(w, newHeader(fields)); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	if err := mw.body(w, &body, boundary); err != nil {
		return fmt.Errorf("write body: %w", err)
	}
	return nil
}

// newHeader returns the fields as a header that writes them in order.
func newHeader(fields []field) textproto.Header {
	var h textproto.Header
	// go-message writes fields in the reverse order of Add, newest first.
	for i := len(fields) - 1; i >= 0; i-- {
		if fields[i].raw != nil {
			h.AddRaw(fields[i].raw)
		} else {
			h.Add(fields[i].key, fields[i].value)
		}
	}
	return h
}

// qpSizeHint is room for content quoted-printable encoded: text that needs
// no escapes plus a soft break every 75 characters (4 %), and some escapes.
func qpSizeHint(content []byte) int { return len(content) + len(content)/16 + 64 }

// sizeHint estimates e's encoded size, so the message's buffer is allocated
// once instead of doubling (and copying) its way up to a large body.
func (e *entity) sizeHint() int {
	const perPart = 512 // MIME fields and boundary lines
	n := perPart
	switch e.transferEncoding {
	case "quoted-printable":
		n += qpSizeHint(e.content)
	case "base64":
		n += base64.StdEncoding.EncodedLen(len(e.content)) * 78 / 76
	}
	for i := range e.parts {
		n += e.parts[i].sizeHint()
	}
	return n
}

// base64LineBytes is the input that encodes to one 76-character line, the
// longest RFC 2045 allows.
const base64LineBytes = 57

// encodeContent writes content in the given transfer encoding, with CRLF
// line breaks and no line longer than 76 characters.
func encodeContent(w io.Writer, transferEncoding string, content []byte) error {
	switch transferEncoding {
	case "quoted-printable":
		// Encoded straight into the message's buffer when w is it (a
		// single-part body): one copy of a large body fewer.
		var dst []byte
		if b, ok := w.(*bytes.Buffer); ok {
			b.Grow(qpSizeHint(content))
			dst = b.AvailableBuffer()
		} else {
			dst = make([]byte, 0, qpSizeHint(content))
		}
		_, err := w.Write(appendQuotedPrintable(dst, content))
		return err
	case "base64":
		line := make([]byte, base64.StdEncoding.EncodedLen(base64LineBytes)+2)
		for len(content) > 0 {
			n := min(len(content), base64LineBytes)
			base64.StdEncoding.Encode(line, content[:n])
			out := line[:base64.StdEncoding.EncodedLen(n)]
			content = content[n:]
			if len(content) > 0 {
				out = append(out, '\r', '\n')
			}
			if _, err := w.Write(out); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown transfer encoding %q", transferEncoding)
}
