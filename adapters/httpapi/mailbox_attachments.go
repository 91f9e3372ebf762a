package httpapi

import (
	"context"
	"encoding/hex"
	"mime"
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

// registerMailboxAttachments adds the entry's attachments. The mailbox
// store keeps them optionally, so the mailbox port stays as it was; without
// them the routes answer 404.
func (s *Server) registerMailboxAttachments(api *gin.RouterGroup) {
	h := mailboxAttachments{s: s}
	h.store, _ = s.mailbox.(MailboxAttachmentStore)
	present := s.requirePort(h.store != nil)
	api.GET("/mailbox/:id/attachments", present, h.list)
	api.GET("/mailbox/:id/attachments/:attachment_id/content", present, h.content)
}

type mailboxAttachments struct {
	s     *Server
	store MailboxAttachmentStore
}

func (h mailboxAttachments) list(c *gin.Context) {
	entry, ok := h.s.pathID(c)
	if !ok {
		return
	}
	atts, err := h.store.MailboxEntryAttachments(c.Request.Context(), principalOf(c).SubscriptionID, entry)
	if err != nil {
		h.s.writeError(c, err)
		return
	}
	items := mapViews(atts, func(a domain.Attachment) mailboxAttachmentView {
		return mailboxAttachmentView{attachmentView: newAttachmentView(a),
			ContentURL: "/api/mailbox/" + entry.String() + "/attachments/" + a.ID.String() + "/content"}
	})
	c.PureJSON(http.StatusOK, gin.H{"items": items})
}

func (h mailboxAttachments) content(c *gin.Context) {
	entry, ok := h.s.pathID(c)
	if !ok {
		return
	}
	attachment, err := parseGUID("attachment_id", c.Param("attachment_id"))
	if err != nil || attachment == uuid.Nil {
		h.s.writeError(c, domain.ErrNotFound)
		return
	}
	a, err := h.store.MailboxAttachmentContent(c.Request.Context(), principalOf(c).SubscriptionID, entry, attachment)
	if err != nil {
		h.s.writeError(c, err)
		return
	}
	c.Header("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": a.Filename}))
	c.Header("X-Content-Type-Options", "nosniff")
	c.Header("ETag", `"`+hex.EncodeToString(a.SHA256)+`"`)
	c.Data(http.StatusOK, a.ContentType, a.Data)
}
