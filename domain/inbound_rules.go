package domain

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// maxReportDetail bounds the text a report copies into a recipient's last
// reply and its events.
const maxReportDetail = 500

// ApplyDSN applies a delivery status notification to the message it names.
// A failed recipient is bounced after the fact (whatever the relay said at
// the time), with the hard-bounce suppression rule; delayed, delivered and
// relayed are events only. Recipients the message doesn't have are ignored,
// so a report can't touch anyone else; a report that names none of them
// leaves the outcome Unmatched.
func ApplyDSN(out *InboundOutcome, msg *Message, report DSNReport, now time.Time) {
	out.Tenant, out.MessageID, out.Kind = msg.SubscriptionID, msg.ID, InboundBounce
	matched := 0
	for _, dr := range report.Recipients {
		r := findRecipient(msg, dr.FinalRecipient, dr.OriginalRecipient)
		if r == nil {
			continue
		}
		matched++
		code, reply := dsnReply(dr, report.ReportingMTA)
		switch dr.Action {
		case ActionFailed:
			if r.Status == RecipientBounced || r.Status == RecipientSuppressed {
				continue
			}
			r.Status, r.LastCode, r.LastReply, r.UpdatedAt = RecipientBounced, code, reply, now
			out.Changed = append(out.Changed, *r)
			out.Events = append(out.Events, InboundEvent{Type: EventBounced, Recipient: r.Email, Code: code, Detail: reply})
			out.Suppress = append(out.Suppress, HardBounces([]Recipient{*r}, now)...)
		case ActionDelayed:
			out.Events = append(out.Events, InboundEvent{Type: EventDelayed, Recipient: r.Email, Code: code, Detail: reply})
		case ActionDelivered, ActionExpanded:
			out.Events = append(out.Events, InboundEvent{Type: EventDSNDelivered, Recipient: r.Email, Code: code, Detail: reply})
		case ActionRelayed:
			out.Events = append(out.Events, InboundEvent{Type: EventDSNRelayed, Recipient: r.Email, Code: code, Detail: reply})
		default:
			matched--
		}
	}
	if matched == 0 {
		*out = Unmatched(out.InboundID, InboundBounce, "the report names no recipient of message "+msg.ID.String())
		return
	}
	for _, s := range out.Suppress {
		out.Events = append(out.Events, InboundEvent{Type: "suppression.added", Recipient: s.Email, Code: s.SMTPCode, Detail: s.Reason})
	}
	if len(out.Changed) > 0 && msg.State.Final() {
		out.State = SettledState(msg.Recipients)
	}
	out.Status = InboundProcessed
	out.Detail = fmt.Sprintf("%d recipient(s) reported, %d bounced", matched, len(out.Changed))
}

// ApplyComplaint records a feedback report against the message it names:
// a complained event per reported recipient of that message and the
// address suppressed for the tenant with source complaint.
func ApplyComplaint(out *InboundOutcome, msg *Message, c Complaint, now time.Time) {
	out.Tenant, out.MessageID, out.Kind = msg.SubscriptionID, msg.ID, InboundComplaint
	reported := c.OriginalRcptTo
	if len(reported) == 0 {
		// Many feedback loops redact the recipient; a message to one
		// external recipient still says who complained.
		var external []string
		for _, r := range msg.Recipients {
			if r.AccountID == uuid.Nil {
				external = append(external, r.Email)
			}
		}
		if len(external) == 1 {
			reported = external
		}
	}
	detail := truncate("feedback-type " + c.FeedbackType + " from " + c.UserAgent)
	for _, addr := range reported {
		r := findRecipient(msg, addr, "")
		if r == nil {
			continue
		}
		email := strings.ToLower(r.Email)
		out.Events = append(out.Events,
			InboundEvent{Type: EventComplained, Recipient: email, Detail: detail},
			InboundEvent{Type: "suppression.added", Recipient: email, Detail: "complaint: " + detail})
		out.Suppress = append(out.Suppress, Suppression{Email: email, Reason: "complaint: " + detail, Source: SuppressionComplaint, CreatedAt: now})
	}
	if len(out.Suppress) == 0 {
		*out = Unmatched(out.InboundID, InboundComplaint, "the report names no recipient of message "+msg.ID.String())
		return
	}
	out.Status = InboundProcessed
	out.Detail = fmt.Sprintf("complaint (%s) about %d recipient(s)", c.FeedbackType, len(out.Suppress))
}

func findRecipient(msg *Message, addrs ...string) *Recipient {
	for _, a := range addrs {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "" {
			continue
		}
		for i := range msg.Recipients {
			if strings.ToLower(msg.Recipients[i].Email) == a {
				return &msg.Recipients[i]
			}
		}
	}
	return nil
}

// dsnReply turns a DSN recipient block into an SMTP-like code and reply
// text whose first word is the enhanced status, as IsHardBounce reads it.
func dsnReply(dr DSNRecipient, reportingMTA string) (int, string) {
	code := 0
	diag := strings.TrimSpace(dr.DiagnosticCode)
	if typ, rest, ok := strings.Cut(diag, ";"); ok && strings.EqualFold(strings.TrimSpace(typ), "smtp") {
		diag = strings.TrimSpace(rest)
		if len(diag) >= 3 {
			if n, err := strconv.Atoi(diag[:3]); err == nil && n >= 200 && n < 600 {
				code = n
			}
		}
	}
	status := dr.Status
	if code == 0 {
		switch {
		case strings.HasPrefix(status, "5."):
			code = 550
		case strings.HasPrefix(status, "4."):
			code = 450
		case strings.HasPrefix(status, "2."):
			code = 250
		}
	}
	if status == "" {
		status = fmt.Sprintf("%d", code)
	}
	text := status + " (DSN"
	if reportingMTA != "" {
		text += " from " + reportingMTA
	}
	text += ")"
	if diag != "" {
		text += " " + diag
	}
	return code, truncate(text)
}

func truncate(s string) string { return boundedText(s, maxReportDetail) }

// ReceiveReply makes the reply into a message in the inbox of the account
// that wrote parent, in parent's conversation. Attachments over the upload
// limits are dropped (and said so in the detail), never truncated.
func ReceiveReply(out *InboundOutcome, parent *Message, r Reply, now time.Time) {
	out.Tenant, out.MessageID, out.Kind = parent.SubscriptionID, parent.ID, InboundReply
	if parent.SenderAccountID == uuid.Nil {
		*out = Unmatched(out.InboundID, InboundReply, "the message replied to has no sender account to deliver to")
		return
	}
	id := NewMessageID()
	msgID := r.MessageID
	if CheckMessageID("message_id", msgID) != nil {
		msgID = "<" + id.String() + "@inbound.mailgate>"
	}
	inReplyTo := r.InReplyTo
	if CheckMessageID("in_reply_to", inReplyTo) != nil {
		inReplyTo = parent.MessageID
	}
	refs := parent.References
	if refs == "" {
		refs = parent.MessageID
	} else if !strings.Contains(refs, parent.MessageID) {
		refs += " " + parent.MessageID
	}
	if parsed, err := ParseReferences("references", r.References); err == nil && len(parsed) > 0 {
		refs = strings.Join(parsed, " ")
	}
	body, text := r.HTMLBody, r.TextBody
	if body == "" {
		body, text = r.TextBody, ""
	}
	msg := &Message{
		ID: id, SubscriptionID: parent.SubscriptionID, SenderEmail: boundedText(strings.ToLower(r.FromEmail), MaxAddressLength),
		SenderDisplayName: boundedText(r.FromName, MaxDisplayNameLength), Subject: boundedText(r.Subject, MaxSubjectLength),
		Body: body, MessageID: msgID, InReplyTo: inReplyTo, References: refs, ParentID: parent.ID,
		TextBody: text, DKIMResult: boundedText(r.DKIM, 1000),
		ConversationID: parent.ConversationID, CreatedDate: now, UpdatedAt: now, State: StateReceived, Importance: ImportanceNormal,
		Recipients: []Recipient{{Kind: KindTo, Email: parent.SenderEmail, DisplayName: parent.SenderDisplayName,
			AccountID: parent.SenderAccountID, Status: RecipientDelivered, LastCode: 250, LastReply: "2.0.0 received into the account's inbox", UpdatedAt: now}},
	}
	var kept []InboundAttachment
	total, dropped := 0, 0
	for _, a := range r.Attachments {
		if len(a.Content) > MaxAttachmentBytes || total+len(a.Content) > MaxMessageAttachmentBytes || len(kept) >= MaxAttachmentsPerMessage {
			dropped++
			continue
		}
		total += len(a.Content)
		a.Filename = boundedText(a.Filename, 255)
		kept = append(kept, a)
	}
	r.Attachments = kept
	out.Reply = &ReceivedReply{Message: msg, Reply: r, AccountID: parent.SenderAccountID}
	detail := fmt.Sprintf("reply from %s with %d attachment(s); DKIM %s", msg.SenderEmail, len(kept), r.DKIM)
	if dropped > 0 {
		detail += fmt.Sprintf("; %d attachment(s) over the limits dropped", dropped)
	}
	out.Events = append(out.Events, InboundEvent{Type: EventInboundReceived, Recipient: parent.SenderEmail, Detail: truncate(detail)})
	out.Status, out.Detail = InboundProcessed, truncate(detail)
}

// boundedText keeps s within n bytes, valid UTF-8 and free of line breaks
// and other control characters (runs of them and of white space become one
// space), so hostile text can't overflow a column or a header it is later
// written into, or carry a NUL that PostgreSQL text refuses.
func boundedText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
