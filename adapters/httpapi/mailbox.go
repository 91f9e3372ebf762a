package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

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

func (s *Server) registerMailbox(api *gin.RouterGroup) {
	api.GET("/accounts/:id/mailbox", s.listMailbox)
	api.GET("/mailbox/:id", s.getMailboxEntry)
	api.PATCH("/mailbox/:id", s.updateMailboxEntry)
	api.DELETE("/mailbox/:id", s.deleteMailboxEntry)
}

func (s *Server) listMailbox(c *gin.Context) {
	account, ok := s.pathID(c)
	if !ok {
		return
	}
	limit, err := parseLimit(c, "folder", "unread", "cursor")
	if err != nil {
		s.writeError(c, err)
		return
	}
	f := domain.MailboxFilter{AccountID: account, Folder: c.Query("folder"), Limit: limit, Cursor: c.Query("cursor")}
	if f.Folder != "" {
		if err := domain.CheckFolderName("folder", f.Folder); err != nil {
			s.writeError(c, err)
			return
		}
	}
	if v := c.Query("unread"); v != "" {
		unread, err := strconv.ParseBool(v)
		if err != nil {
			s.writeError(c, domain.FieldError("unread", "must be true or false"))
			return
		}
		f.Unread = &unread
	}
	entries, next, err := s.mailbox.ListMailbox(c.Request.Context(), principalOf(c).SubscriptionID, f)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.PureJSON(http.StatusOK, gin.H{"items": mapViews(entries, newMailboxEntryView), "next_cursor": next})
}

func (s *Server) getMailboxEntry(c *gin.Context) {
	id, ok := s.pathID(c)
	if !ok {
		return
	}
	e, err := s.mailbox.GetMailboxEntry(c.Request.Context(), principalOf(c).SubscriptionID, id)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.PureJSON(http.StatusOK, newMailboxEntryView(e))
}

// updateMailboxEntry takes {"read": bool, "folder": name}, either or both.
func (s *Server) updateMailboxEntry(c *gin.Context) {
	id, ok := s.pathID(c)
	if !ok {
		return
	}
	var body struct {
		Read   *bool   `json:"read"`
		Folder *string `json:"folder"`
	}
	if err := decodeStrict(c, &body); err != nil {
		s.writeError(c, err)
		return
	}
	if body.Read == nil && body.Folder == nil {
		s.writeError(c, domain.FieldError("read", "or folder is required"))
		return
	}
	if body.Folder != nil {
		if err := domain.CheckFolderName("folder", *body.Folder); err != nil {
			s.writeError(c, err)
			return
		}
	}
	e, err := s.mailbox.UpdateMailboxEntry(c.Request.Context(), principalOf(c).SubscriptionID, id, domain.MailboxChange{Read: body.Read, Folder: body.Folder})
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.PureJSON(http.StatusOK, newMailboxEntryView(e))
}

func (s *Server) deleteMailboxEntry(c *gin.Context) {
	id, ok := s.pathID(c)
	if !ok {
		return
	}
	if err := s.mailbox.DeleteMailboxEntry(c.Request.Context(), principalOf(c).SubscriptionID, id); err != nil {
		s.writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// inboxView is a message as an inbox list shows it: another recipient's
// Bcc is never in it.
func inboxView(m *domain.Message) messageView {
	v := newMessageView(m)
	v.Bcc = []recipientView{}
	return v
}
