// Package mailbuild renders a domain.Message as an RFC 5322 message ready for
// SMTP DATA: CRLF line endings throughout, 7-bit headers (RFC 2047 encoded
// words for non-ASCII text) and a quoted-printable UTF-8 body. An HTML body
// travels as multipart/alternative with a plain-text rendering first;
// attachments make the message multipart/mixed, each one a base64 part.
// Bcc recipients never appear in the output; they belong to the SMTP
// envelope only.
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
	from, err := formatAddress("sender", msg.SenderDisplayName, msg.SenderEmail)
	if err != nil {
		return nil, err
	}
	fields := []field{
		{key: "Date", value: date.Format(dateLayout)},
		{key: "From", value: from},
	}

	to, err := addressList(msg, domain.KindTo)
	if err != nil {
		return nil, err
	}
	cc, err := addressList(msg, domain.KindCc)
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
		replyTo, err := formatAddress("reply_to", "", msg.ReplyTo)
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
	fields = append(fields, field{key: "Message-ID", value: msg.MessageID})
	if msg.InReplyTo != "" {
		if err := domain.CheckMessageID("in_reply_to", msg.InReplyTo); err != nil {
			return nil, err
		}
		fields = append(fields, field{key: "In-Reply-To", value: msg.InReplyTo})
	}
	if msg.References != "" {
		refs, err := domain.ParseReferences("references", msg.References)
		if err != nil {
			return nil, err
		}
		fields = append(fields, field{key: "References", value: strings.Join(refs, " ")})
	}

	importance, priority, err := importanceValues(msg.Importance)
	if err != nil {
		return nil, err
	}
	fields = append(fields, field{key: "Importance", value: importance}, field{key: "X-Priority", value: priority})
	return fields, nil
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
func addressList(msg *domain.Message, kind domain.RecipientKind) (string, error) {
	var list []string
	for _, r := range msg.RecipientsOf(kind) {
		addr, err := formatAddress(string(kind), r.DisplayName, r.Email)
		if err != nil {
			return "", err
		}
		list = append(list, addr)
	}
	return strings.Join(list, ", "), nil
}

// formatAddress returns `name <email>` with the name quoted or encoded as
// RFC 5322 and RFC 2047 require.
func formatAddress(field, name, email string) (string, error) {
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

// normalizeLineEndings turns CRLF, bare CR and bare LF into CRLF.
func normalizeLineEndings(s string) []byte {
	out := make([]byte, 0, len(s)+len(s)/32)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\r':
			out = append(out, '\r', '\n')
			if i+1 < len(s) && s[i+1] == '\n' {
				i++
			}
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, s[i])
		}
	}
	return out
}

// bareLineBreak returns the index of the first CR not followed by LF or LF
// not preceded by CR, or -1 when every line break is CRLF.
func bareLineBreak(b []byte) int {
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
