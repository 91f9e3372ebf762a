package inbound

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"net/textproto"
	"regexp"
	"strings"

	"github.com/emersion/go-message"
	// Registers the character sets replies arrive in (ISO-8859-*, Windows-125x, ...).
	_ "github.com/emersion/go-message/charset"

	"github.com/mailgate/mailgate/domain"
)

// Bounds on what the parsers walk; the listener already bounds the size.
const (
	maxDepth         = 8
	maxParts         = 200
	maxDSNRecipients = 1000
	maxTextPart      = 4 << 20
)

// ErrMalformed is an inbound message the parsers can't read as what it
// claims to be; it is kept for the operator.
var ErrMalformed = errors.New("malformed inbound message")

// Parsed is what an inbound message turned out to be.
type Parsed = domain.ParsedInbound

// Parse reads an inbound message: an RFC 3464 delivery status
// notification, an RFC 5965 feedback report, a plain-text bounce, or else
// a reply with its bodies and attachments.
func Parse(raw []byte) (Parsed, error) {
	entity, err := readEntity(bytes.NewReader(raw))
	if err != nil {
		return Parsed{}, err
	}
	mediaType, params, _ := entity.Header.ContentType()
	if mediaType == "multipart/report" {
		switch strings.ToLower(params["report-type"]) {
		case "delivery-status", "global-delivery-status":
			dsn, err := parseDSN(entity)
			if err != nil {
				return Parsed{}, err
			}
			return Parsed{Kind: domain.InboundBounce, DSN: dsn}, nil
		case "feedback-report":
			c, err := parseARF(entity)
			if err != nil {
				return Parsed{}, err
			}
			return Parsed{Kind: domain.InboundComplaint, Complaint: c}, nil
		}
	}
	reply, err := parseReply(entity)
	if err != nil {
		return Parsed{}, err
	}
	if looksLikeBounce(entity.Header, reply.TextBody) {
		if dsn := parsePlainBounce(reply.TextBody); dsn != nil {
			return Parsed{Kind: domain.InboundBounce, DSN: dsn}, nil
		}
	}
	return Parsed{Kind: domain.InboundReply, Reply: reply}, nil
}

func readEntity(r io.Reader) (*message.Entity, error) {
	e, err := message.Read(r)
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return e, nil
}

// walk calls fn for every leaf part of e, depth first, within the bounds.
func walk(e *message.Entity, fn func(*message.Entity) error) error {
	parts := 0
	var visit func(e *message.Entity, depth int) error
	visit = func(e *message.Entity, depth int) error {
		if parts++; parts > maxParts {
			return fmt.Errorf("%w: more than %d MIME parts", ErrMalformed, maxParts)
		}
		mr := e.MultipartReader()
		if mr == nil {
			return fn(e)
		}
		if depth >= maxDepth {
			return fmt.Errorf("%w: MIME nested deeper than %d", ErrMalformed, maxDepth)
		}
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
				return fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			if err := visit(p, depth+1); err != nil {
				return err
			}
		}
	}
	return visit(e, 0)
}

// parseDSN reads a multipart/report; report-type=delivery-status.
func parseDSN(e *message.Entity) (*domain.DSNReport, error) {
	report := &domain.DSNReport{Standard: true}
	found := false
	err := walk(e, func(p *message.Entity) error {
		t, _, _ := p.Header.ContentType()
		switch t {
		case "message/delivery-status", "message/global-delivery-status":
			blocks, err := fieldBlocks(p.Body)
			if err != nil {
				return err
			}
			if len(blocks) == 0 {
				return nil
			}
			found = true
			report.ReportingMTA = typedValue(blocks[0].Get("Reporting-MTA"))
			for _, b := range blocks[1:] {
				if len(report.Recipients) >= maxDSNRecipients {
					break
				}
				rcpt := domain.DSNRecipient{
					FinalRecipient:    typedValue(b.Get("Final-Recipient")),
					OriginalRecipient: typedValue(b.Get("Original-Recipient")),
					Action:            domain.DSNAction(strings.ToLower(firstWord(b.Get("Action")))),
					Status:            firstWord(b.Get("Status")),
					DiagnosticCode:    oneLine(b.Get("Diagnostic-Code")),
					RemoteMTA:         typedValue(b.Get("Remote-MTA")),
				}
				if rcpt.FinalRecipient == "" && rcpt.OriginalRecipient == "" {
					continue
				}
				report.Recipients = append(report.Recipients, rcpt)
			}
		case "message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers":
			report.OriginalMessageID = originalMessageID(p.Body)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !found || len(report.Recipients) == 0 {
		return nil, fmt.Errorf("%w: a delivery-status report without recipient fields", ErrMalformed)
	}
	return report, nil
}

// parseARF reads a multipart/report; report-type=feedback-report.
func parseARF(e *message.Entity) (*domain.Complaint, error) {
	var c *domain.Complaint
	originalID := ""
	err := walk(e, func(p *message.Entity) error {
		t, _, _ := p.Header.ContentType()
		switch t {
		case "message/feedback-report":
			blocks, err := fieldBlocks(p.Body)
			if err != nil || len(blocks) == 0 {
				return fmt.Errorf("%w: unreadable feedback-report part", ErrMalformed)
			}
			h := blocks[0]
			c = &domain.Complaint{
				FeedbackType:     strings.ToLower(firstWord(h.Get("Feedback-Type"))),
				UserAgent:        oneLine(h.Get("User-Agent")),
				OriginalMailFrom: bareAddress(h.Get("Original-Mail-From")),
				ReportedDomain:   oneLine(h.Get("Reported-Domain")),
				SourceIP:         oneLine(h.Get("Source-IP")),
			}
			for _, r := range h.Values("Original-Rcpt-To") {
				if a := bareAddress(r); a != "" && len(c.OriginalRcptTo) < maxDSNRecipients {
					c.OriginalRcptTo = append(c.OriginalRcptTo, a)
				}
			}
		case "message/rfc822", "text/rfc822-headers":
			originalID = originalMessageID(p.Body)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if c == nil || c.FeedbackType == "" {
		return nil, fmt.Errorf("%w: a feedback report without Feedback-Type", ErrMalformed)
	}
	c.OriginalMessageID = originalID
	return c, nil
}

// fieldBlocks reads RFC 822-style field groups separated by blank lines,
// the shape of message/delivery-status and message/feedback-report.
func fieldBlocks(r io.Reader) ([]textproto.MIMEHeader, error) {
	br := bufio.NewReader(io.LimitReader(r, maxTextPart))
	tp := textproto.NewReader(br)
	var blocks []textproto.MIMEHeader
	for len(blocks) <= maxDSNRecipients {
		// Blank lines between groups are optional to skip.
		for {
			b, err := br.Peek(1)
			if err != nil || (b[0] != '\r' && b[0] != '\n') {
				break
			}
			_, _ = br.ReadByte()
		}
		if _, err := br.Peek(1); err != nil {
			return blocks, nil
		}
		h, err := tp.ReadMIMEHeader()
		if len(h) > 0 {
			blocks = append(blocks, h)
		}
		if errors.Is(err, io.EOF) {
			return blocks, nil
		}
		if err != nil {
			return blocks, fmt.Errorf("%w: report fields: %w", ErrMalformed, err)
		}
	}
	return blocks, nil
}

// typedValue strips the address or MTA type of a field ("rfc822;a@b" → "a@b").
func typedValue(v string) string {
	if _, rest, ok := strings.Cut(v, ";"); ok {
		v = rest
	}
	return strings.Trim(strings.TrimSpace(v), "<>")
}

func firstWord(v string) string {
	if f := strings.Fields(v); len(f) > 0 {
		return f[0]
	}
	return ""
}

func oneLine(v string) string { return strings.Join(strings.Fields(v), " ") }

func bareAddress(v string) string {
	v = strings.TrimSpace(v)
	if a, err := mail.ParseAddress(v); err == nil {
		return a.Address
	}
	return strings.Trim(v, "<> ")
}

// originalMessageID reads the Message-ID of a returned message or its headers.
func originalMessageID(r io.Reader) string {
	tp := textproto.NewReader(bufio.NewReader(io.LimitReader(r, 256<<10)))
	h, _ := tp.ReadMIMEHeader()
	return strings.TrimSpace(h.Get("Message-Id"))
}

// looksLikeBounce says whether a non-report message is an MTA's bounce:
// from a mailer daemon or postmaster, or with a bounce's subject.
func looksLikeBounce(h message.Header, text string) bool {
	from := strings.ToLower(h.Get("From"))
	subject := strings.ToLower(h.Get("Subject"))
	for _, s := range []string{"mailer-daemon", "postmaster", "mail delivery"} {
		if strings.Contains(from, s) {
			return true
		}
	}
	for _, s := range []string{"undeliver", "delivery status notification", "failure notice", "returned mail", "delivery failure", "mail delivery failed", "not delivered"} {
		if strings.Contains(subject, s) {
			return true
		}
	}
	return strings.Contains(text, "This is the mail system at host") || strings.Contains(text, "qmail-send program")
}

var (
	addressPattern = regexp.MustCompile(`[A-Za-z0-9._%+\-=]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)
	statusPattern  = regexp.MustCompile(`\b([245])\.(\d{1,3})\.(\d{1,3})\b`)
	// originalMarkers start the returned copy of the message in plain-text
	// bounces; its headers name every recipient, so reading stops there.
	originalMarkers = []string{"original message", "copy of the message", "message header follows", "returned message", "below this line", "undelivered message", "headers of the original", "------ this is a copy"} //nolint:gochecknoglobals // read-only: a fixed list
)

// parsePlainBounce reads a plain-text bounce (qmail, old Exim and
// Sendmail, many providers): each address in the notice before the
// returned copy, with the enhanced status on its line or the few after it.
// Delay warnings are told by their wording. Only addresses that are
// recipients of the named message count later, so a stray address matters
// not.
func parsePlainBounce(text string) *domain.DSNReport {
	lines := strings.Split(text, "\n")
	var notice []string
	for _, line := range lines {
		l := strings.ToLower(line)
		if isOriginalMarker(l) || strings.HasPrefix(l, "received: ") || strings.HasPrefix(l, "return-path:") {
			break
		}
		notice = append(notice, line)
	}
	lower := strings.ToLower(strings.Join(notice, "\n"))
	delayed := strings.Contains(lower, "will continue trying") || strings.Contains(lower, "not yet been delivered") ||
		strings.Contains(lower, "delayed") || strings.Contains(lower, "will be retried")
	report := &domain.DSNReport{}
	seen := map[string]bool{}
	for i, line := range notice {
		for _, addr := range addressPattern.FindAllString(line, -1) {
			addr = strings.ToLower(strings.Trim(addr, "."))
			if seen[addr] || strings.HasPrefix(addr, "mailer-daemon@") || strings.HasPrefix(addr, "postmaster@") {
				continue
			}
			seen[addr] = true
			rcpt := domain.DSNRecipient{FinalRecipient: addr, Action: domain.ActionFailed, Status: "5.0.0"}
			if delayed {
				rcpt.Action, rcpt.Status = domain.ActionDelayed, "4.0.0"
			}
			for j := i; j < len(notice) && j <= i+3; j++ {
				if m := statusPattern.FindString(notice[j]); m != "" {
					rcpt.Status = m
					rcpt.DiagnosticCode = oneLine(notice[j])
					if m[0] == '4' {
						rcpt.Action = domain.ActionDelayed
					} else if m[0] == '5' {
						rcpt.Action = domain.ActionFailed
					}
					break
				}
			}
			if len(report.Recipients) < maxDSNRecipients {
				report.Recipients = append(report.Recipients, rcpt)
			}
		}
	}
	if len(report.Recipients) == 0 {
		return nil
	}
	for _, line := range lines {
		if strings.HasPrefix(strings.ToLower(line), "message-id:") {
			report.OriginalMessageID = strings.TrimSpace(line[len("message-id:"):])
			break
		}
	}
	return report
}

func isOriginalMarker(l string) bool {
	for _, m := range originalMarkers {
		if strings.Contains(l, m) {
			return true
		}
	}
	return false
}

// parseReply reads a reply's headers, first text and HTML bodies and its
// attachments.
func parseReply(e *message.Entity) (*domain.Reply, error) {
	h := mail.Header(e.Header.Map())
	r := &domain.Reply{
		Subject:    decodeHeader(e.Header.Get("Subject")),
		MessageID:  strings.TrimSpace(e.Header.Get("Message-Id")),
		InReplyTo:  strings.TrimSpace(e.Header.Get("In-Reply-To")),
		References: oneLine(e.Header.Get("References")),
	}
	if from, err := h.AddressList("From"); err == nil && len(from) > 0 {
		r.FromEmail, r.FromName = from[0].Address, from[0].Name
	}
	err := walk(e, func(p *message.Entity) error {
		t, params, _ := p.Header.ContentType()
		disp, dparams, _ := p.Header.ContentDisposition()
		filename := dparams["filename"]
		if filename == "" {
			filename = params["name"]
		}
		isAttachment := disp == "attachment" || (filename != "" && disp != "inline") || !(strings.HasPrefix(t, "text/") || t == "")
		if !isAttachment && (t == "text/plain" || t == "") && r.TextBody == "" {
			b, err := readBounded(p.Body, maxTextPart)
			r.TextBody = string(b)
			return err
		}
		if !isAttachment && t == "text/html" && r.HTMLBody == "" {
			b, err := readBounded(p.Body, maxTextPart)
			r.HTMLBody = string(b)
			return err
		}
		if !isAttachment {
			return nil
		}
		content, err := io.ReadAll(p.Body)
		if err != nil {
			return fmt.Errorf("%w: attachment: %w", ErrMalformed, err)
		}
		if filename == "" {
			filename = "attachment"
		}
		r.Attachments = append(r.Attachments, domain.InboundAttachment{Filename: decodeHeader(filename), ContentType: t, Content: content})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

func readBounded(r io.Reader, n int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, n))
	if err != nil && !message.IsUnknownCharset(err) {
		return b, fmt.Errorf("%w: body: %w", ErrMalformed, err)
	}
	return b, nil
}

func decodeHeader(v string) string {
	dec := new(mime.WordDecoder)
	if s, err := dec.DecodeHeader(v); err == nil {
		return s
	}
	return v
}
