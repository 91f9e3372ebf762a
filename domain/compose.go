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
	// MaxScheduleAhead is how far in the future send_at may be.
	MaxScheduleAhead = 30 * 24 * time.Hour
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
	// SendAt schedules delivery; zero means now.
	SendAt time.Time
	// TS is the version the client last saw; nil when the client sent none.
	TS []byte
}

// AccountAddress is an address with its name and, when it belongs to one,
// the tenant's account: the verified identity a tenant sends as, or an
// internal recipient.
type AccountAddress struct {
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
	ResolveSender(ctx context.Context, tenant uuid.UUID, email string, accountID uuid.UUID) (AccountAddress, error)
	// CreateMessage inserts msg (state draft or queued) and sets its
	// Version. msg.SenderEmail and msg.SenderAccountID are the sender as
	// requested: the store checks them as ResolveSender does, in the
	// transaction that writes the message, and calls msg.AdoptSender with
	// the result; a refused sender is a forbidden Error and writes nothing.
	CreateMessage(ctx context.Context, tenant uuid.UUID, msg *Message) error
	// CreateMessages inserts many messages in one transaction, checking
	// each sender as CreateMessage does. refused[i] is why msgs[i] was not
	// written (its sender was refused); the others are all written, or
	// none when err is not nil.
	CreateMessages(ctx context.Context, tenant uuid.UUID, msgs []*Message) (refused []error, err error)
	// UpdateDraft replaces a draft when its version equals expected, with
	// the state and queue time msg carries (the lifecycle's decision). It
	// returns ErrNotFound when no such message exists for the tenant.
	UpdateDraft(ctx context.Context, tenant uuid.UUID, msg *Message, expected Version) error
	// GetMessage loads one message with its recipients.
	GetMessage(ctx context.Context, tenant, id uuid.UUID) (*Message, error)
	// LookupAttachments returns the tenant's attachments with these ids, in
	// any order; ids the tenant doesn't own are simply missing.
	LookupAttachments(ctx context.Context, tenant uuid.UUID, ids []uuid.UUID) ([]Attachment, error)
	// LookupAccounts returns the tenant's accounts with these ids; ids the
	// tenant doesn't own are missing from the map.
	LookupAccounts(ctx context.Context, tenant uuid.UUID, ids []uuid.UUID) (map[uuid.UUID]AccountAddress, error)
	// DeleteMessage deletes a message that is not queued or sending, when
	// its version equals expected (any version when expected is nil).
	DeleteMessage(ctx context.Context, tenant, id uuid.UUID, expected *Version) error
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
	// A create leaves the sender check to the store's write transaction
	// (see MessageStore.CreateMessage); an update checks it first.
	msg, err := c.validate(ctx, tenant, req, false)
	if err != nil {
		return nil, err
	}
	if req.ID != uuid.Nil {
		existing, err := c.Store.GetMessage(ctx, tenant, req.ID)
		switch {
		case err == nil:
			if err := c.resolveSender(ctx, tenant, msg); err != nil {
				return nil, err
			}
			return c.update(ctx, tenant, existing, msg, req)
		case ErrorCodeOf(err) != CodeNotFound:
			return nil, err
		}
		msg.ID = req.ID
	} else {
		msg.ID = NewMessageID()
	}
	now := c.now()
	msg.CreatedDate, msg.UpdatedAt = now, now
	if msg.ConversationID == uuid.Nil {
		msg.ConversationID = msg.ID
	}
	if err := c.Store.CreateMessage(ctx, tenant, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

func (c *Composer) update(ctx context.Context, tenant uuid.UUID, existing, msg *Message, req ComposeRequest) (*Message, error) {
	// An update that sends is a send; either way the state machine decides,
	// and the answer speaks of a change, which is what was asked for.
	event := LifecycleEdit
	if msg.State == StateQueued {
		event = LifecycleSend
	}
	if !event.Permits(existing.State) || !CanTransition(existing.State, msg.State) {
		return nil, &Error{Code: CodeConflict, Message: LifecycleEdit.Refusal(existing.State), CurrentVersion: existing.Version}
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
	if msg.ParentID == existing.ID {
		return nil, FieldError("parent_id", "a message can't reply to itself")
	}
	msg.ID = existing.ID
	msg.CreatedDate = existing.CreatedDate
	if msg.ConversationID == uuid.Nil {
		msg.ConversationID = existing.ConversationID
	}
	msg.UpdatedAt = c.now()
	if msg.State == StateQueued {
		// Sending starts the delivery age.
		msg.QueuedAt = msg.UpdatedAt
	}
	if req.MessageID == "" || req.MessageID == existing.ClientMessageID || req.MessageID == existing.MessageID {
		// The same (or no) id again: the draft keeps its wire Message-ID.
		msg.MessageID, msg.ClientMessageID = existing.MessageID, existing.ClientMessageID
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
// The sender is checked for its form only, unless resolve asks for the
// store's check too; otherwise msg names the sender as requested.
func (c *Composer) validate(ctx context.Context, tenant uuid.UUID, req ComposeRequest, resolve bool) (*Message, error) {
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
	if !req.SendAt.IsZero() {
		now := c.now()
		if !req.SendAt.After(now) || req.SendAt.Sub(now) > MaxScheduleAhead {
			return nil, FieldError("send_at", "must be in the future and at most 30 days ahead")
		}
		msg.SendAt = req.SendAt.UTC()
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
	if err := checkSender(req, msg); err != nil {
		return nil, err
	}
	if resolve {
		if err := c.resolveSender(ctx, tenant, msg); err != nil {
			return nil, err
		}
	}
	accounts, err := c.recipientAccounts(ctx, tenant, req)
	if err != nil {
		return nil, err
	}
	if err := buildRecipients(msg, req, accounts); err != nil {
		return nil, err
	}
	if err := c.checkAttachments(ctx, tenant, req.Attachments); err != nil {
		return nil, err
	}
	if err := identify(msg, req); err != nil {
		return nil, err
	}
	if req.ParentID != uuid.Nil {
		if err := c.thread(ctx, tenant, msg); err != nil {
			return nil, err
		}
	}
	if ids := MsgIDsIn(req.References); len(ids) > 0 {
		// A client's own msg-ids replace the thread's, as given.
		msg.References = strings.Join(ids, " ")
	}
	return msg, nil
}

// identify sets the message's ids. message_id and references are free-form
// strings in the seed contract: the client's values are kept as its own
// references, and the wire gets valid msg-ids only — the client's message_id
// when it is one, a generated <uuid@sender-domain> otherwise.
func identify(msg *Message, req ComposeRequest) error {
	if err := CheckHeaderText("message_id", req.MessageID, MaxClientMessageIDLength); err != nil {
		return err
	}
	if err := CheckHeaderText("references", req.References, MaxReferencesLength); err != nil {
		return err
	}
	clientID := strings.TrimSpace(req.MessageID)
	if CheckMessageID("message_id", clientID) == nil {
		msg.MessageID = clientID
	} else {
		// AdoptSender generates the wire id on the resolved sender's domain
		// (in its ASCII form, so the id needs no SMTPUTF8): the request may
		// name the sender by account only.
		msg.MessageID = ""
		msg.ClientMessageID = req.MessageID
	}
	if refs := MsgIDsIn(req.References); strings.Join(refs, " ") != strings.TrimSpace(req.References) {
		msg.ClientReferences = req.References
	}
	return nil
}

// thread makes msg a reply to its parent: In-Reply-To is the parent's
// Message-ID, References the parent's References plus that id, and the
// reply joins the parent's conversation.
func (c *Composer) thread(ctx context.Context, tenant uuid.UUID, msg *Message) error {
	parent, err := c.Store.GetMessage(ctx, tenant, msg.ParentID)
	if ErrorCodeOf(err) == CodeNotFound {
		return &Error{Code: CodeNotFound, Field: "parent_id", Message: "no such message"}
	}
	if err != nil {
		return err
	}
	msg.InReplyTo = parent.MessageID
	msg.References = ThreadReferences(parent.References, parent.MessageID)
	msg.ConversationID = parent.ConversationID
	return nil
}

// ThreadReferences appends a parent's Message-ID to its References. When the
// chain grows past the header limit it keeps the first id (the thread's
// root) and drops the oldest of the rest, as RFC 5322 §3.6.4 allows.
func ThreadReferences(parentRefs, parentMessageID string) string {
	ids := append(strings.Fields(parentRefs), parentMessageID)
	for len(ids) > 2 && len(strings.Join(ids, " ")) > MaxReferencesLength {
		ids = append(ids[:1], ids[2:]...)
	}
	return strings.Join(ids, " ")
}

// recipientAccounts resolves the account ids named by recipients; an id that
// is not the tenant's is invalid input.
func (c *Composer) recipientAccounts(ctx context.Context, tenant uuid.UUID, req ComposeRequest) (map[uuid.UUID]AccountAddress, error) {
	var ids []uuid.UUID
	for _, list := range [][]RecipientInput{req.To, req.Cc, req.Bcc} {
		for _, r := range list {
			if r.AccountID != uuid.Nil {
				ids = append(ids, r.AccountID)
			}
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	return c.Store.LookupAccounts(ctx, tenant, ids)
}

// checkAttachments requires every attachment to be the tenant's, listed
// once, and all of them together within the message cap.
func (c *Composer) checkAttachments(ctx context.Context, tenant uuid.UUID, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	if len(ids) > MaxAttachmentsPerMessage {
		return FieldError("attachments", "a message may carry at most %d attachments", MaxAttachmentsPerMessage)
	}
	seen := make(map[uuid.UUID]bool, len(ids))
	for i, id := range ids {
		if id == uuid.Nil || seen[id] {
			return FieldError("attachments["+strconv.Itoa(i)+"]", "is empty or listed twice")
		}
		seen[id] = true
	}
	found, err := c.Store.LookupAttachments(ctx, tenant, ids)
	if err != nil {
		return err
	}
	sizes := make(map[uuid.UUID]int64, len(found))
	var total int64
	for _, a := range found {
		sizes[a.ID] = a.Size
		total += a.Size
	}
	for i, id := range ids {
		if _, ok := sizes[id]; !ok {
			return &Error{Code: CodeNotFound, Field: "attachments[" + strconv.Itoa(i) + "]", Message: "no such attachment"}
		}
	}
	if total > MaxMessageAttachmentBytes {
		return &Error{Code: CodeTooLarge, Field: "attachments", Message: "the attachments together exceed " + strconv.Itoa(MaxMessageAttachmentBytes>>20) + " MiB"}
	}
	return nil
}

// checkSender puts the requested sender on msg once its form is right.
func checkSender(req ComposeRequest, msg *Message) error {
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
	msg.SenderEmail, msg.SenderAccountID, msg.SenderDisplayName = email, req.SenderAccountID, req.SenderDisplayName
	return nil
}

// resolveSender asks the store whether the tenant may send as msg's
// requested sender and adopts the identity it answers.
func (c *Composer) resolveSender(ctx context.Context, tenant uuid.UUID, msg *Message) error {
	sender, err := c.Store.ResolveSender(ctx, tenant, msg.SenderEmail, msg.SenderAccountID)
	if err != nil {
		return err
	}
	msg.AdoptSender(sender)
	return nil
}

func buildRecipients(msg *Message, req ComposeRequest, accounts map[uuid.UUID]AccountAddress) error {
	seen := make(map[string]bool)
	groups := []struct {
		kind  RecipientKind
		field string
		list  []RecipientInput
	}{{KindTo, "to", req.To}, {KindCc, "cc", req.Cc}, {KindBcc, "bcc", req.Bcc}}
	for _, g := range groups {
		for i, in := range g.list {
			field := g.field + "[" + strconv.Itoa(i) + "]"
			if in.AccountID != uuid.Nil {
				account, ok := accounts[in.AccountID]
				if !ok {
					return FieldError(field+".account_id", "is not an account of this subscription")
				}
				if strings.TrimSpace(in.EmailAddress) == "" {
					in.EmailAddress = account.Email
				}
				if in.DisplayName == "" {
					in.DisplayName = account.DisplayName
				}
			}
			addr, err := NormalizeAddress(field+".email_address", in.EmailAddress)
			if err != nil {
				return err
			}
			if in.AccountID != uuid.Nil && !strings.EqualFold(addr, accounts[in.AccountID].Email) {
				return FieldError(field+".email_address", "does not match the address of its account_id")
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

// Send queues an existing draft for delivery. expected, when given, must be
// the draft's current version.
func (c *Composer) Send(ctx context.Context, tenant, id uuid.UUID, expected *Version) (*Message, error) {
	msg, err := c.Store.GetMessage(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	if !LifecycleSend.Permits(msg.State) {
		return nil, &Error{Code: CodeConflict, Message: LifecycleSend.Refusal(msg.State), CurrentVersion: msg.Version}
	}
	if expected != nil && *expected != msg.Version {
		return nil, &Error{Code: CodeVersionMismatch, Field: "ts", Message: "the draft was changed since this ts was read", CurrentVersion: msg.Version}
	}
	if len(msg.Recipients) == 0 {
		return nil, FieldError("to", "at least one recipient (to, cc or bcc) is required to send")
	}
	// The sender is checked again: a domain may have been removed since the draft was saved.
	if _, err := c.Store.ResolveSender(ctx, tenant, msg.SenderEmail, msg.SenderAccountID); err != nil {
		return nil, err
	}
	version := msg.Version
	if err := msg.apply(LifecycleSend, StateQueued); err != nil {
		return nil, err
	}
	msg.UpdatedAt = c.now()
	msg.QueuedAt = msg.UpdatedAt
	if err := c.Store.UpdateDraft(ctx, tenant, msg, version); err != nil {
		return nil, err
	}
	return msg, nil
}

// Delete removes a message unless its delivery is queued or in flight.
func (c *Composer) Delete(ctx context.Context, tenant, id uuid.UUID, expected *Version) error {
	return c.Store.DeleteMessage(ctx, tenant, id, expected)
}

// MaxBatch is how many messages one batch request may carry.
const MaxBatch = 500

// ComposeBatch validates every request and creates the valid ones in one
// transaction. errs[i] explains why request i was refused; msgs[i] is the
// created message otherwise. A batch only creates: ids that exist are refused.
func (c *Composer) ComposeBatch(ctx context.Context, tenant uuid.UUID, reqs []ComposeRequest) (msgs []*Message, errs []error, err error) {
	if len(reqs) == 0 || len(reqs) > MaxBatch {
		return nil, nil, FieldError("messages", "a batch holds 1 to %d messages", MaxBatch)
	}
	msgs, errs = make([]*Message, len(reqs)), make([]error, len(reqs))
	var valid []*Message
	seen := map[uuid.UUID]bool{}
	now := c.now()
	for i, req := range reqs {
		if req.SubscriptionID != uuid.Nil && req.SubscriptionID != tenant {
			errs[i] = &Error{Code: CodeForbidden, Field: "subscription_id", Message: "does not match the authenticated subscription"}
			continue
		}
		msg, err := c.validate(ctx, tenant, req, false)
		if err != nil {
			errs[i] = err
			continue
		}
		msg.ID = req.ID
		if msg.ID == uuid.Nil {
			msg.ID = NewMessageID()
		} else if _, err := c.Store.GetMessage(ctx, tenant, msg.ID); err == nil || seen[msg.ID] {
			errs[i] = &Error{Code: CodeConflict, Field: "id", Message: "a batch only creates messages; this id exists"}
			continue
		}
		seen[msg.ID] = true
		msg.CreatedDate, msg.UpdatedAt = now, now
		if msg.ConversationID == uuid.Nil {
			msg.ConversationID = msg.ID
		}
		msgs[i] = msg
		valid = append(valid, msg)
	}
	if len(valid) > 0 {
		refused, err := c.Store.CreateMessages(ctx, tenant, valid)
		if err != nil {
			return nil, nil, err
		}
		k := 0
		for i := range msgs {
			if msgs[i] == nil {
				continue
			}
			if refused[k] != nil {
				msgs[i], errs[i] = nil, refused[k]
			}
			k++
		}
	}
	return msgs, errs, nil
}
