// Package mailbuild renders a domain.Message as an RFC 5322 message ready for
// SMTP DATA: CRLF line endings throughout, 7-bit headers (RFC 2047 encoded
// words for non-ASCII text) and a quoted-printable UTF-8 body. An HTML body
// travels as multipart/alternative with a plain-text rendering first;
// attachments make the message multipart/mixed, each one a base64 part.
// Bcc recipients never appear in the output; they belong to the SMTP
// envelope only. A Renderer builds and then signs with DKIM (RFC 6376, on
// go-msgauth; RSA-SHA256 and Ed25519-SHA256 per RFC 8463), and the package
// generates the keys and DNS records a tenant publishes for its domain.
package mailbuild

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	netmail "net/mail"
	"strings"
	"time"

	"github.com/mailgate/mailgate/domain"
)

// Options carries what Build needs beyond the message itself.
type Options struct {
	// Date is the Date header. The zero value means the time of the call;
	// callers that retry should pass the first attempt's time so every
	// attempt sends the same bytes.
	Date time.Time
	// Attachments are added after the body, in order, each as a base64
	// part with its filename and content type.
	Attachments []domain.AttachmentContent
	// Downgrade writes every UTF-8 address (RFC 6531) of From, To and Cc as
	// an empty group named by the encoded address (as RFC 6857 downgrades
	// them), so the header stays 7-bit for a relay without SMTPUTF8.
	// Without it such addresses are written as UTF-8 (RFC 6532).
	Downgrade bool
}

// dateLayout is RFC 5322's date-time with a numeric zone, which every reader accepts.
const dateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// undisclosedRecipients is the empty group used when every recipient is Bcc,
// so the message still carries a To header that filters expect.
const undisclosedRecipients = "undisclosed-recipients:;"

// Build returns msg as a complete Internet message with CRLF line endings.
// It fails when a header-bound field is missing or malformed instead of
// emitting a message that could break header framing.
func Build(msg *domain.Message, opts Options) ([]byte, error) {
	if msg == nil {
		return nil, errors.New("mailbuild: nil message")
	}
	fields, err := headerFields(msg, opts)
	if err != nil {
		return nil, fmt.Errorf("mailbuild: %w", err)
	}
	body, err := bodyEntity(msg, opts.Attachments)
	if err != nil {
		return nil, fmt.Errorf("mailbuild: %w", err)
	}

	var buf bytes.Buffer
	const headerHint = 2048 // a header of a dozen fields, some folded
	buf.Grow(headerHint + body.sizeHint())
	if err := writeMessage(&buf, fields, body, boundarySeed(msg)); err != nil {
		return nil, fmt.Errorf("mailbuild: write message %s: %w", msg.MessageID, err)
	}
	out := buf.Bytes()
	// The encoders below us are trusted to emit CRLF only, but a bare CR or LF
	// reaching SMTP enables smuggling attacks, so verify rather than assume.
	if i := bareLineBreak(out); i >= 0 {
		return nil, fmt.Errorf("mailbuild: internal error: bare CR or LF at byte %d of message %s", i, msg.MessageID)
	}
	return out, nil
}

// field is one header field, kept in the order it should appear.
type field struct {
	key, value string
	// raw, when set, is the whole field already folded, CRLF included; it
	// replaces key and value when the header is written.
	raw []byte
}

// headerFields validates msg's header-bound fields and returns the message
// header, without the MIME fields that describe the body.
func headerFields(msg *domain.Message, opts Options) ([]field, error) {
	date := opts.Date
	if date.IsZero() {
		date = time.Now()
	}
	from, err := formatAddress("sender", msg.SenderDisplayName, msg.SenderEmail, opts.Downgrade)
	if err != nil {
		return nil, err
	}
	fields := []field{
		{key: "Date", value: date.Format(dateLayout)},
		{key: "From", value: from},
	}

	to, err := addressList(msg, domain.KindTo, opts.Downgrade)
	if err != nil {
		return nil, err
	}
	cc, err := addressList(msg, domain.KindCc, opts.Downgrade)
	if err != nil {
		return nil, err
	}
	switch {
	case to != "":
		fields = append(fields, field{key: "To", value: to})
	case cc == "":
		fields = append(fields, field{key: "To", value: undisclosedRecipients})
	}
	if cc != "" {
		fields = append(fields, field{key: "Cc", value: cc})
	}
	if msg.ReplyTo != "" {
		replyTo, err := formatAddress("reply_to", "", msg.ReplyTo, opts.Downgrade)
		if err != nil {
			return nil, err
		}
		fields = append(fields, field{key: "Reply-To", value: replyTo})
	}

	if err := domain.CheckHeaderText("subject", msg.Subject, domain.MaxSubjectLength); err != nil {
		return nil, err
	}
	fields = append(fields, field{key: "Subject", value: encodeText(msg.Subject)})

	if err := domain.CheckMessageID("message_id", msg.MessageID); err != nil {
		return nil, err
	}
	fields = append(fields, idField("Message-ID", []string{msg.MessageID}))
	if msg.InReplyTo != "" {
		if err := domain.CheckMessageID("in_reply_to", msg.InReplyTo); err != nil {
			return nil, err
		}
		fields = append(fields, idField("In-Reply-To", []string{msg.InReplyTo}))
	}
	if msg.References != "" {
		refs, err := domain.ParseReferences("references", msg.References)
		if err != nil {
			return nil, err
		}
		if len(refs) > 0 {
			fields = append(fields, idField("References", refs))
		}
	}

	importance, priority, err := importanceValues(msg.Importance)
	if err != nil {
		return nil, err
	}
	fields = append(fields, field{key: "Importance", value: importance}, field{key: "X-Priority", value: priority})
	return fields, nil
}

// idField writes msg-ids folded between ids only, never inside one: go-message
// folds a long value anywhere, even inside "<left@right>", and a reader
// then sees a different id and threading breaks. The ids are checked, so
// each fits a line with the field name (domain.MaxMessageIDLength).
func idField(key string, ids []string) field {
	var b strings.Builder
	line := key + ":"
	for _, id := range ids {
		if len(line) > len(key)+1 && len(line)+1+len(id) > maxFieldLine {
			b.WriteString(line)
			b.WriteString("\r\n")
			line = ""
		}
		line += " " + id
	}
	b.WriteString(line)
	b.WriteString("\r\n")
	return field{key: key, raw: []byte(b.String())}
}

// importanceValues maps the importance to the Importance header (RFC 2156)
// and the older X-Priority header, which Outlook and others still read.
func importanceValues(i domain.Importance) (importance, priority string, err error) {
	switch i {
	case domain.ImportanceLow:
		return "low", "5", nil
	case domain.ImportanceNormal:
		return "normal", "3", nil
	case domain.ImportanceHigh:
		return "high", "1", nil
	}
	return "", "", domain.FieldError("importance", "has unknown value %d", int(i))
}

// addressList formats the recipients of one kind for a To or Cc header, or
// returns "" when there are none.
func addressList(msg *domain.Message, kind domain.RecipientKind, downgrade bool) (string, error) {
	var list []string
	for _, r := range msg.RecipientsOf(kind) {
		addr, err := formatAddress(string(kind), r.DisplayName, r.Email, downgrade)
		if err != nil {
			return "", err
		}
		list = append(list, addr)
	}
	return strings.Join(list, ", "), nil
}

// formatAddress returns `name <email>` with the name quoted or encoded as
// RFC 5322 and RFC 2047 require; a UTF-8 address, when downgraded, becomes
// `=?utf-8?b?...?= :;`, a group with no members whose encoded name is the
// whole original, so the reader still sees who it was.
func formatAddress(field, name, email string, downgrade bool) (string, error) {
	if email == "" {
		return "", domain.FieldError(field, "has no email address")
	}
	if err := domain.CheckHeaderText(field+".email", email, domain.MaxAddressLength); err != nil {
		return "", err
	}
	if err := domain.CheckHeaderText(field+".display_name", name, domain.MaxDisplayNameLength); err != nil {
		return "", err
	}
	if strings.ContainsAny(email, "<>") {
		return "", domain.FieldError(field+".email", "must be a bare address")
	}
	if downgrade && !domain.IsASCII(email) {
		original := "<" + email + ">"
		if name != "" {
			original = name + " " + original
		}
		return bEncode(original) + " :;", nil
	}
	if encoded := encodeText(name); encoded != name {
		return encoded + " " + (&netmail.Address{Address: email}).String(), nil
	}
	// net/mail quotes the local part and the name where needed.
	return (&netmail.Address{Name: name, Address: email}).String(), nil
}

// maxPlainWord is the longest run without white space left unencoded: longer
// runs could not be folded without adding a space, while encoded words may be
// split anywhere.
const maxPlainWord = 60

// encodeText returns s unchanged when it can travel as plain ASCII header
// text, and as RFC 2047 encoded words otherwise. Base64 words are used even
// for mostly-ASCII text because they are valid in display names and subjects
// alike, where Q-encoding restricts which characters may appear raw.
func encodeText(s string) string {
	if !needsEncoding(s) {
		return s
	}
	return bEncode(s)
}

// needsEncoding reports whether s contains anything but printable ASCII and
// tabs, text a decoder would take for an encoded word, or a word too long to fold.
func needsEncoding(s string) bool {
	if !isPrintableASCII(s) || strings.Contains(s, "=?") {
		return true
	}
	for _, word := range strings.Fields(s) {
		if len(word) > maxPlainWord {
			return true
		}
	}
	return false
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if (s[i] < ' ' || s[i] > '~') && s[i] != '\t' {
			return false
		}
	}
	return true
}

// bEncodeChunk is the most input bytes per encoded word: 36 bytes become 48
// base64 characters, 60 with the "=?utf-8?b?" and "?=" framing. RFC 2047
// allows 75, but shorter words let "Subject: " plus one word stay within the
// 76 columns at which go-message folds.
const bEncodeChunk = 36

// bEncode encodes s as base64 encoded words separated by spaces (where the
// header may fold), never splitting a UTF-8 sequence across two words as
// RFC 2047 section 5 requires.
func bEncode(s string) string {
	var words []string
	for len(s) > 0 {
		n := min(len(s), bEncodeChunk)
		for n < len(s) && n > 0 && !startsRune(s[n]) {
			n--
		}
		if n == 0 { // not valid UTF-8; split anyway rather than loop forever
			n = min(len(s), bEncodeChunk)
		}
		// Built by hand: mime.BEncoding leaves printable ASCII unencoded.
		words = append(words, "=?utf-8?b?"+base64.StdEncoding.EncodeToString([]byte(s[:n]))+"?=")
		s = s[n:]
	}
	return strings.Join(words, " ")
}

// startsRune reports whether b is the first byte of a UTF-8 sequence.
func startsRune(b byte) bool { return b&0xC0 != 0x80 }

// normalizeLineEndings turns CRLF, bare CR and bare LF into CRLF. It goes a
// line at a time with IndexByte, which is vectorised: a byte-at-a-time or
// IndexAny scan was a quarter of rendering a 100 KB body.
func normalizeLineEndings(s string) []byte {
	// Room for a CR before every LF and for the final CRLF textEntity may
	// add, so neither grows (copies) a large body.
	out := make([]byte, 0, len(s)+strings.Count(s, "\n")+2)
	for {
		i := strings.IndexByte(s, '\n')
		line := s
		if i >= 0 {
			line = strings.TrimSuffix(s[:i], "\r")
		}
		for {
			j := strings.IndexByte(line, '\r') // a bare CR
			if j < 0 {
				break
			}
			out = append(out, line[:j]...)
			out = append(out, '\r', '\n')
			line = line[j+1:]
		}
		out = append(out, line...)
		if i < 0 {
			return out
		}
		out = append(out, '\r', '\n')
		s = s[i+1:]
	}
}

// bareLineBreak returns the index of the first CR not followed by LF or LF
// not preceded by CR in b, or -1 if every line break is CRLF.
func bareLineBreak(b []byte) int {
	// The common answer, none, from three vectorised counts.
	if crlf := bytes.Count(b, []byte("\r\n")); crlf == bytes.Count(b, []byte("\r")) && crlf == bytes.Count(b, []byte("\n")) {
		return -1
	}
	for i, c := range b {
		switch {
		case c == '\r' && (i+1 == len(b) || b[i+1] != '\n'):
			return i
		case c == '\n' && (i == 0 || b[i-1] != '\r'):
			return i
		}
	}
	return -1
}
