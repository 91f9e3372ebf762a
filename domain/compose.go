package domain

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Limits on one message.
const (
	MaxRecipients = 100
	MaxBodyBytes  = 10 << 20
)

// RecipientInput is one addressee as the client sent it.
type RecipientInput struct {
	DisplayName  string
	EmailAddress string
	AccountID    uuid.UUID
}

// ComposeRequest is the MessageComposeModel after decoding, before validation.
// Zero UUIDs mean "absent", as .NET clients send them for empty Guids.
type ComposeRequest struct {
	ID                uuid.UUID
	SubscriptionID    uuid.UUID
	SenderEmail       string
	SenderDisplayName string
	SenderAccountID   uuid.UUID
	To, Cc, Bcc       []RecipientInput
	Importance        Importance
	MessageID         string
	References        string
	Body              string
	Subject           string
	Attachments       []uuid.UUID
	ParentID          uuid.UUID
	Send              bool
	// TS is the version the client last saw; nil when the client sent none.
	TS []byte
}

// Sender is a verified identity a tenant may send as.
type Sender struct {
	AccountID   uuid.UUID
	Email       string
	DisplayName string
}

// MessageStore is the persistence the compose service needs. Implementations
// run each method in one transaction and enqueue delivery for queued messages
// in that same transaction.
type MessageStore interface {
	// ResolveSender returns the identity the tenant may send as for this
	// address and optional account, or a forbidden Error.
	ResolveSender(ctx context.Context, tenant uuid.UUID, email string, accountID uuid.UUID) (Sender, error)
	// CreateMessage inserts msg (state draft or queued) and sets its Version.
	CreateMessage(ctx context.Context, tenant uuid.UUID, msg *Message) error
	// UpdateDraft replaces a draft when its version equals expected. It
	// returns ErrNotFound when no such message exists for the tenant.
	UpdateDraft(ctx context.Context, tenant uuid.UUID, msg *Message, expected Version) error
	// GetMessage loads one message with its recipients.
	GetMessage(ctx context.Context, tenant, id uuid.UUID) (*Message, error)
}

// Composer turns compose requests into stored, and possibly queued, messages.
type Composer struct {
	Store MessageStore
	Now   func() time.Time
}

// Compose creates or updates a message from req on behalf of tenant.
func (c *Composer) Compose(ctx context.Context, tenant uuid.UUID, req ComposeRequest) (*Message, error) {
	if req.SubscriptionID != uuid.Nil && req.SubscriptionID != tenant {
		return nil, &Error{Code: CodeForbidden, Field: "subscription_id", Message: "does not match the authenticated subscription"}
	}
	msg, err := c.validate(ctx, tenant, req)
	if err != nil {
		return nil, err
	}
	if req.ID != uuid.Nil {
		existing, err := c.Store.GetMessage(ctx, tenant, req.ID)
		switch {
		case err == nil:
			return c.update(ctx, tenant, existing, msg, req)
		case ErrorCodeOf(err) != CodeNotFound:
			return nil, err
		}
		msg.ID = req.ID
	} else {
		msg.ID = uuid.New()
	}
	now := c.now()
	msg.CreatedDate, msg.UpdatedAt = now, now
	msg.ConversationID = msg.ID
	if err := c.Store.CreateMessage(ctx, tenant, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

func (c *Composer) update(ctx context.Context, tenant uuid.UUID, existing, msg *Message, req ComposeRequest) (*Message, error) {
	if existing.State != StateDraft {
		return nil, &Error{Code: CodeConflict, Message: "only drafts can be changed; this message is " + string(existing.State), CurrentVersion: existing.Version}
	}
	if req.TS == nil {
		return nil, &Error{Code: CodeVersionMismatch, Field: "ts", Message: "ts is required to update a draft", CurrentVersion: existing.Version}
	}
	expected, err := VersionFromBytes(req.TS)
	if err != nil {
		return nil, err
	}
	if expected != existing.Version {
		return nil, &Error{Code: CodeVersionMismatch, Field: "ts", Message: "the draft was changed since this ts was read", CurrentVersion: existing.Version}
	}
	msg.ID = existing.ID
	msg.CreatedDate = existing.CreatedDate
	msg.ConversationID = existing.ConversationID
	msg.UpdatedAt = c.now()
	if req.MessageID == "" {
		msg.MessageID = existing.MessageID
	}
	if err := c.Store.UpdateDraft(ctx, tenant, msg, expected); err != nil {
		return nil, err
	}
	return msg, nil
}

func (c *Composer) now() time.Time {
	if c.Now != nil {
		return c.Now().UTC().Truncate(time.Microsecond)
	}
	return time.Now().UTC().Truncate(time.Microsecond)
}

// validate checks every field and builds the message; nothing is stored.
func (c *Composer) validate(ctx context.Context, tenant uuid.UUID, req ComposeRequest) (*Message, error) {
	msg := &Message{
		SubscriptionID: tenant,
		Importance:     req.Importance,
		Attachments:    req.Attachments,
		ParentID:       req.ParentID,
		State:          StateDraft,
	}
	if req.Send {
		msg.State = StateQueued
	}
	if !req.Importance.Valid() {
		return nil, FieldError("importance", "must be 0 (Low), 1 (Normal) or 2 (High)")
	}
	if err := CheckHeaderText("subject", req.Subject, MaxSubjectLength); err != nil {
		return nil, err
	}
	msg.Subject = req.Subject
	if len(req.Body) > MaxBodyBytes {
		return nil, &Error{Code: CodeTooLarge, Field: "body", Message: "body is larger than 10 MiB"}
	}
	if strings.ContainsRune(req.Body, 0) {
		return nil, FieldError("body", "contains a NUL character")
	}
	msg.Body = req.Body
	if err := CheckHeaderText("sender_display_name", req.SenderDisplayName, MaxDisplayNameLength); err != nil {
		return nil, err
	}
	if len(req.Attachments) > 0 {
		return nil, FieldError("attachments", "attachments are not supported by this gateway version")
	}
	if req.ParentID != uuid.Nil {
		return nil, FieldError("parent_id", "replies are not supported by this gateway version")
	}
	if err := c.checkSender(ctx, tenant, req, msg); err != nil {
		return nil, err
	}
	if err := buildRecipients(msg, req); err != nil {
		return nil, err
	}
	if req.MessageID != "" {
		if err := CheckMessageID("message_id", req.MessageID); err != nil {
			return nil, err
		}
		msg.MessageID = req.MessageID
	} else {
		msg.MessageID = "<" + uuid.NewString() + "@" + DomainOf(msg.SenderEmail) + ">"
	}
	if req.References != "" {
		refs, err := ParseReferences("references", req.References)
		if err != nil {
			return nil, err
		}
		msg.References = strings.Join(refs, " ")
	}
	return msg, nil
}

func (c *Composer) checkSender(ctx context.Context, tenant uuid.UUID, req ComposeRequest, msg *Message) error {
	email := req.SenderEmail
	if strings.TrimSpace(email) == "" && req.SenderAccountID == uuid.Nil {
		return FieldError("sender_email", "is required (or give sender_account_id)")
	}
	if strings.TrimSpace(email) != "" {
		normalized, err := NormalizeAddress("sender_email", email)
		if err != nil {
			return err
		}
		email = normalized
	}
	sender, err := c.Store.ResolveSender(ctx, tenant, email, req.SenderAccountID)
	if err != nil {
		return err
	}
	msg.SenderEmail = sender.Email
	msg.SenderAccountID = sender.AccountID
	msg.SenderDisplayName = req.SenderDisplayName
	if msg.SenderDisplayName == "" {
		msg.SenderDisplayName = sender.DisplayName
	}
	return nil
}

func buildRecipients(msg *Message, req ComposeRequest) error {
	seen := make(map[string]bool)
	groups := []struct {
		kind  RecipientKind
		field string
		list  []RecipientInput
	}{{KindTo, "to", req.To}, {KindCc, "cc", req.Cc}, {KindBcc, "bcc", req.Bcc}}
	for _, g := range groups {
		for i, in := range g.list {
			field := g.field + "[" + strconv.Itoa(i) + "]"
			addr, err := NormalizeAddress(field+".email_address", in.EmailAddress)
			if err != nil {
				return err
			}
			if err := CheckHeaderText(field+".display_name", in.DisplayName, MaxDisplayNameLength); err != nil {
				return err
			}
			key := strings.ToLower(addr)
			if seen[key] {
				continue // one envelope recipient per address; the first header wins
			}
			seen[key] = true
			msg.Recipients = append(msg.Recipients, Recipient{
				Kind:        g.kind,
				Position:    len(msg.Recipients),
				DisplayName: in.DisplayName,
				Email:       addr,
				AccountID:   in.AccountID,
				Status:      RecipientPending,
			})
		}
	}
	if len(msg.Recipients) > MaxRecipients {
		return FieldError("to", "a message may have at most %d recipients", MaxRecipients)
	}
	if msg.State == StateQueued && len(msg.Recipients) == 0 {
		return FieldError("to", "at least one recipient (to, cc or bcc) is required to send")
	}
	return nil
}
