package domain

import (
	"time"

	"github.com/google/uuid"
)

// InboundMail is one message the inbound listener accepted, as it arrived.
type InboundMail struct {
	ID         uuid.UUID
	ReceivedAt time.Time
	RemoteAddr string
	Helo       string
	MailFrom   string
	RcptTo     []string
	Raw        []byte
}

// InboundKind is what an inbound message turned out to be.
type InboundKind string

// The inbound kinds.
const (
	InboundBounce    InboundKind = "bounce"
	InboundComplaint InboundKind = "complaint"
	InboundReply     InboundKind = "reply"
	InboundUnknown   InboundKind = "unknown"
)

// Inbound statuses: processed changed what it names; unmatched is kept for
// the operator and changed nothing (unknown or forged token, unparsable
// report, a recipient the message never had).
const (
	InboundReceived  = "received"
	InboundProcessed = "processed"
	InboundUnmatched = "unmatched"
)

// DSNAction is a delivery status notification's per-recipient Action (RFC 3464 §2.3.3).
type DSNAction string

// The DSN actions.
const (
	ActionFailed    DSNAction = "failed"
	ActionDelayed   DSNAction = "delayed"
	ActionDelivered DSNAction = "delivered"
	ActionRelayed   DSNAction = "relayed"
	ActionExpanded  DSNAction = "expanded"
)

// DSNRecipient is one recipient's block of a delivery status notification.
type DSNRecipient struct {
	// FinalRecipient and OriginalRecipient are bare addresses (their
	// address type, such as rfc822;, removed).
	FinalRecipient    string
	OriginalRecipient string
	Action            DSNAction
	// Status is the enhanced status code, e.g. 5.1.1.
	Status         string
	DiagnosticCode string
	RemoteMTA      string
}

// DSNReport is a parsed delivery status notification.
type DSNReport struct {
	ReportingMTA string
	// OriginalMessageID is the Message-ID of the returned message's headers, when included.
	OriginalMessageID string
	Recipients        []DSNRecipient
	// Standard is false for a plain-text bounce read by heuristics.
	Standard bool
}

// Complaint is a parsed RFC 5965 feedback report.
type Complaint struct {
	FeedbackType      string
	UserAgent         string
	OriginalMailFrom  string
	OriginalRcptTo    []string
	OriginalMessageID string
	ReportedDomain    string
	SourceIP          string
}

// InboundAttachment is a file attached to a received reply.
type InboundAttachment struct {
	Filename    string
	ContentType string
	Content     []byte
}

// Reply is a parsed reply to a message the gateway sent.
type Reply struct {
	FromEmail   string
	FromName    string
	Subject     string
	MessageID   string
	InReplyTo   string
	References  string
	TextBody    string
	HTMLBody    string
	Attachments []InboundAttachment
	// DKIM summarizes the verification of the reply's DKIM signatures
	// ("pass d=example.com", "fail ...", "none").
	DKIM string
}

// InboundEvent is one event an inbound message writes on the message it names.
type InboundEvent struct {
	Type      string
	Recipient string
	Code      int
	Detail    string
}

// Inbound event types.
const (
	EventBounced         = "bounced"
	EventDelayed         = "dsn.delayed"
	EventDSNDelivered    = "dsn.delivered"
	EventDSNRelayed      = "dsn.relayed"
	EventComplained      = "complained"
	EventInboundReceived = "inbound.received"
)

// InboundOutcome is everything processing one inbound message writes, in
// one transaction: the inbound row's status and, when it matched a message,
// the recipients it changed, the message's new state, events, suppressions
// and the reply delivered to an inbox.
type InboundOutcome struct {
	InboundID uuid.UUID
	Kind      InboundKind
	Status    string
	Detail    string
	// Tenant and MessageID name the matched message (uuid.Nil: none).
	Tenant    uuid.UUID
	MessageID uuid.UUID
	Changed   []Recipient
	// State is the message's new state, "" to leave it.
	State    MessageState
	Events   []InboundEvent
	Suppress []Suppression
	Reply    *ReceivedReply
}

// ReceivedReply is a reply to deliver into the account that wrote the original.
type ReceivedReply struct {
	Message *Message
	Reply   Reply
	// AccountID owns the inbox it lands in.
	AccountID uuid.UUID
}

// Unmatched is the outcome of an inbound message that changes nothing.
func Unmatched(id uuid.UUID, kind InboundKind, detail string) InboundOutcome {
	return InboundOutcome{InboundID: id, Kind: kind, Status: InboundUnmatched, Detail: detail}
}

// ParsedInbound is what an inbound message turned out to be.
type ParsedInbound struct {
	Kind      InboundKind
	DSN       *DSNReport
	Complaint *Complaint
	// Reply is set for anything that is not a report: a reply when it
	// arrived at a reply address.
	Reply *Reply
}

// InboundRecord is a stored inbound message as the operator sees it: what
// arrived and what processing made of it.
type InboundRecord struct {
	InboundMail
	Size   int
	Status string
	Kind   InboundKind
	// Tenant and MessageID name the message it matched (uuid.Nil: none).
	Tenant      uuid.UUID
	MessageID   uuid.UUID
	Detail      string
	ProcessedAt time.Time
}

// InboundFilter selects stored inbound messages, newest first.
type InboundFilter struct {
	// Status is "" for every status.
	Status string
	Limit  int
	Cursor string
}

// CheckInboundStatus accepts the statuses an inbound message can have.
func CheckInboundStatus(field, status string) error {
	switch status {
	case InboundReceived, InboundProcessed, InboundUnmatched:
		return nil
	}
	return FieldError(field, "must be received, processed or unmatched")
}

// DefaultInboundRetention is how long settled inbound messages (processed
// or unmatched) are kept before the retention job deletes them.
const DefaultInboundRetention = 30 * 24 * time.Hour
