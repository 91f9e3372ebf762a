package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/adapters/httpapi/wire"
	"github.com/mailgate/mailgate/domain"
)

// MailboxStore keeps the internal recipients' mailboxes.
type MailboxStore interface {
	ListMailbox(ctx context.Context, tenant uuid.UUID, f domain.MailboxFilter) ([]domain.MailboxEntry, string, error)
	GetMailboxEntry(ctx context.Context, tenant, id uuid.UUID) (domain.MailboxEntry, error)
	UpdateMailboxEntry(ctx context.Context, tenant, id uuid.UUID, ch domain.MailboxChange) (domain.MailboxEntry, error)
	DeleteMailboxEntry(ctx context.Context, tenant, id uuid.UUID) error
}

// mailboxEntryView is one recipient's copy of a message on the wire. It has
// no bcc: nobody's mailbox shows who else was sent a blind copy.
type mailboxEntryView struct {
	ID                uuid.UUID            `json:"id"`
	AccountID         uuid.UUID            `json:"account_id"`
	MessageID         uuid.UUID            `json:"message_id"`
	Kind              domain.RecipientKind `json:"kind"`
	Folder            string               `json:"folder"`
	Read              bool                 `json:"read"`
	ReadAt            *time.Time           `json:"read_at"`
	ReceivedAt        time.Time            `json:"received_at"`
	SenderEmail       string               `json:"sender_email"`
	SenderDisplayName string               `json:"sender_display_name"`
	Subject           string               `json:"subject"`
	Body              string               `json:"body"`
	HeaderMessageID   string               `json:"header_message_id"`
	InReplyTo         string               `json:"in_reply_to"`
	References        string               `json:"references"`
	ConversationID    *uuid.UUID           `json:"conversation_id"`
	To                []mailboxPersonView  `json:"to"`
	Cc                []mailboxPersonView  `json:"cc"`
	// Attachments are the files the entry carries; one entry read alone
	// lists them, a mailbox listing leaves them out.
	Attachments *[]mailboxAttachmentView `json:"attachments,omitempty"`
}

type mailboxPersonView struct {
	DisplayName  string `json:"display_name"`
	EmailAddress string `json:"email_address"`
}

func newMailboxEntryView(e domain.MailboxEntry) mailboxEntryView {
	v := mailboxEntryView{ID: e.ID, AccountID: e.AccountID, MessageID: e.MessageID, Kind: e.Kind, Folder: e.Folder,
		Read: !e.ReadAt.IsZero(), ReceivedAt: e.ReceivedAt, SenderEmail: e.SenderEmail, SenderDisplayName: e.SenderDisplayName,
		Subject: e.Subject, Body: e.Body, HeaderMessageID: e.HeaderMessageID, InReplyTo: e.InReplyTo, References: e.References,
		ConversationID: optionalID(e.ConversationID), To: []mailboxPersonView{}, Cc: []mailboxPersonView{}}
	if !e.ReadAt.IsZero() {
		at := e.ReadAt
		v.ReadAt = &at
	}
	for _, p := range e.To {
		v.To = append(v.To, mailboxPersonView{DisplayName: p.DisplayName, EmailAddress: p.EmailAddress})
	}
	for _, p := range e.Cc {
		v.Cc = append(v.Cc, mailboxPersonView{DisplayName: p.DisplayName, EmailAddress: p.EmailAddress})
	}
	return v
}

func (s *Server) registerMailbox(r router) {
	r.handle(http.MethodGet, "/accounts/:id/mailbox", s.listMailbox)
	r.handle(http.MethodGet, "/mailbox/:id", s.getMailboxEntry)
	r.handle(http.MethodPatch, "/mailbox/:id", s.updateMailboxEntry)
	r.handle(http.MethodDelete, "/mailbox/:id", s.deleteMailboxEntry)
}

func (s *Server) listMailbox(c *gin.Context) (*answer, error) {
	account, err := pathID(c)
	if err != nil {
		return nil, err
	}
	limit, err := parseLimit(c, "folder", "unread", "cursor")
	if err != nil {
		return nil, err
	}
	f := domain.MailboxFilter{AccountID: account, Folder: c.Query("folder"), Limit: limit, Cursor: c.Query("cursor")}
	if f.Folder != "" {
		if err := domain.CheckFolderName("folder", f.Folder); err != nil {
			return nil, err
		}
	}
	if v := c.Query("unread"); v != "" {
		unread, err := strconv.ParseBool(v)
		if err != nil {
			return nil, domain.FieldError("unread", "must be true or false")
		}
		f.Unread = &unread
	}
	entries, next, err := s.mailbox.ListMailbox(c.Request.Context(), principalOf(c).SubscriptionID, f)
	if err != nil {
		return nil, err
	}
	return jsonAnswer(http.StatusOK, gin.H{"items": mapViews(entries, newMailboxEntryView), "next_cursor": next}), nil
}

func (s *Server) getMailboxEntry(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	tenant := principalOf(c).SubscriptionID
	e, err := s.mailbox.GetMailboxEntry(c.Request.Context(), tenant, id)
	if err != nil {
		return nil, err
	}
	view := newMailboxEntryView(e)
	if s.mailboxFiles != nil {
		atts, err := s.mailboxFiles.MailboxEntryAttachments(c.Request.Context(), tenant, id)
		if err != nil {
			return nil, err
		}
		items := mailboxAttachmentViews(id, atts)
		view.Attachments = &items
	}
	return jsonAnswer(http.StatusOK, view), nil
}

// updateMailboxEntry takes {"read": bool, "folder": name}, either or both.
func (s *Server) updateMailboxEntry(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	var body struct {
		Read   *bool   `json:"read"`
		Folder *string `json:"folder"`
	}
	if err := decodeStrict(c, &body); err != nil {
		return nil, err
	}
	if body.Read == nil && body.Folder == nil {
		return nil, domain.FieldError("read", "or folder is required")
	}
	if body.Folder != nil {
		if err := domain.CheckFolderName("folder", *body.Folder); err != nil {
			return nil, err
		}
	}
	e, err := s.mailbox.UpdateMailboxEntry(c.Request.Context(), principalOf(c).SubscriptionID, id, domain.MailboxChange{Read: body.Read, Folder: body.Folder})
	if err != nil {
		return nil, err
	}
	return jsonAnswer(http.StatusOK, newMailboxEntryView(e)), nil
}

func (s *Server) deleteMailboxEntry(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	if err := s.mailbox.DeleteMailboxEntry(c.Request.Context(), principalOf(c).SubscriptionID, id); err != nil {
		return nil, err
	}
	return emptyAnswer(http.StatusNoContent), nil
}

// inboxView is a message as an inbox list shows it: another recipient's
// Bcc is never in it.
func inboxView(m *domain.Message) wire.MessageView {
	v := wire.NewMessageView(m)
	v.Bcc = []wire.RecipientView{}
	return v
}
