package httpapi

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// MailboxAttachmentStore reads the attachments a mailbox entry carries. The
// entry holds them itself, so they stay readable after the sender deletes
// the message, and only through the entry that carries them.
type MailboxAttachmentStore interface {
	MailboxEntryAttachments(ctx context.Context, tenant, entryID uuid.UUID) ([]domain.Attachment, error)
	MailboxAttachmentContent(ctx context.Context, tenant, entryID, attachmentID uuid.UUID) (domain.AttachmentContent, error)
}

// mailboxAttachmentView is an attachment of a mailbox entry, with the
// address its bytes are downloaded from.
type mailboxAttachmentView struct {
	attachmentView
	ContentURL string `json:"content_url"`
}

// registerMailboxAttachments adds the entry's attachments; without a
// MailboxAttachmentStore the routes answer 404.
func (s *Server) registerMailboxAttachments(r router) {
	g := r.subgroup("/mailbox/:id/attachments", requirePort(s.mailboxFiles != nil))
	g.handle(http.MethodGet, "", s.listMailboxAttachments)
	g.handle(http.MethodGet, "/:attachment_id/content", s.mailboxAttachmentContent)
}

func (s *Server) listMailboxAttachments(c *gin.Context) (*answer, error) {
	entry, err := pathID(c)
	if err != nil {
		return nil, err
	}
	atts, err := s.mailboxFiles.MailboxEntryAttachments(c.Request.Context(), principalOf(c).SubscriptionID, entry)
	if err != nil {
		return nil, err
	}
	return jsonAnswer(http.StatusOK, gin.H{"items": mailboxAttachmentViews(entry, atts)}), nil
}

// mailboxAttachmentViews are entry's attachments with their download addresses.
func mailboxAttachmentViews(entry uuid.UUID, atts []domain.Attachment) []mailboxAttachmentView {
	return mapViews(atts, func(a domain.Attachment) mailboxAttachmentView {
		return mailboxAttachmentView{attachmentView: newAttachmentView(a),
			ContentURL: "/api/mailbox/" + entry.String() + "/attachments/" + a.ID.String() + "/content"}
	})
}

func (s *Server) mailboxAttachmentContent(c *gin.Context) (*answer, error) {
	entry, err := pathID(c)
	if err != nil {
		return nil, err
	}
	attachment, err := parseGUID("attachment_id", c.Param("attachment_id"))
	if err != nil || attachment == uuid.Nil {
		return nil, domain.ErrNotFound
	}
	a, err := s.mailboxFiles.MailboxAttachmentContent(c.Request.Context(), principalOf(c).SubscriptionID, entry, attachment)
	if err != nil {
		return nil, err
	}
	return attachmentDownload(a), nil
}
