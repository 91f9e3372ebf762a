package httpapi

import (
	"bytes"
	"context"
	"mime"
	"net/http"
	"net/mail"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// InboundAdminStore is what the operator's view of inbound mail needs: the
// stored messages the inbound listener accepted, chiefly those that matched
// nothing (unknown or forged tokens, unreadable reports).
type InboundAdminStore interface {
	ListInbound(ctx context.Context, f domain.InboundFilter) ([]domain.InboundRecord, string, error)
	GetInbound(ctx context.Context, id uuid.UUID) (domain.InboundRecord, error)
	DeleteInbound(ctx context.Context, id uuid.UUID) error
	ReprocessInbound(ctx context.Context, id uuid.UUID) (domain.InboundRecord, error)
}

// inboundSummaryMaxHeader bounds each header the parsed summary repeats;
// the raw download has them whole.
const inboundSummaryMaxHeader = 998

// inboundView is a stored inbound message on the wire, without its bytes.
type inboundView struct {
	ID             uuid.UUID          `json:"id"`
	ReceivedAt     time.Time          `json:"received_at"`
	RemoteAddr     string             `json:"remote_addr"`
	Helo           string             `json:"helo"`
	MailFrom       string             `json:"mail_from"`
	RcptTo         []string           `json:"rcpt_to"`
	Size           int                `json:"size"`
	Status         string             `json:"status"`
	Kind           domain.InboundKind `json:"kind"`
	SubscriptionID *uuid.UUID         `json:"subscription_id"`
	MessageID      *uuid.UUID         `json:"message_id"`
	Detail         string             `json:"detail"`
	ProcessedAt    *time.Time         `json:"processed_at"`
	RawURL         string             `json:"raw_url"`
}

func newInboundView(r domain.InboundRecord) inboundView {
	v := inboundView{ID: r.ID, ReceivedAt: r.ReceivedAt, RemoteAddr: r.RemoteAddr, Helo: r.Helo, MailFrom: r.MailFrom,
		RcptTo: r.RcptTo, Size: r.Size, Status: r.Status, Kind: r.Kind, SubscriptionID: optionalID(r.Tenant),
		MessageID: optionalID(r.MessageID), Detail: r.Detail, RawURL: "/api/admin/inbound/" + r.ID.String() + "/raw"}
	if v.RcptTo == nil {
		v.RcptTo = []string{}
	}
	if !r.ProcessedAt.IsZero() {
		at := r.ProcessedAt
		v.ProcessedAt = &at
	}
	return v
}

// inboundHeadersView is the parsed summary of a stored message: its main
// headers, encoded words decoded, so an operator sees what it is without
// downloading it.
type inboundHeadersView struct {
	From        string `json:"from"`
	To          string `json:"to"`
	Subject     string `json:"subject"`
	Date        string `json:"date"`
	MessageID   string `json:"message_id"`
	InReplyTo   string `json:"in_reply_to"`
	ContentType string `json:"content_type"`
	// Error says why the headers could not be read; the raw message is
	// still there to download.
	Error string `json:"error,omitempty"`
}

type inboundDetailView struct {
	inboundView
	Headers inboundHeadersView `json:"headers"`
}

func summarizeInbound(raw []byte) inboundHeadersView {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return inboundHeadersView{Error: "the headers are unreadable: " + err.Error()}
	}
	dec := mime.WordDecoder{}
	field := func(name string) string {
		v := msg.Header.Get(name)
		if decoded, err := dec.DecodeHeader(v); err == nil {
			v = decoded
		}
		if len(v) > inboundSummaryMaxHeader {
			v = v[:inboundSummaryMaxHeader]
		}
		return v
	}
	return inboundHeadersView{From: field("From"), To: field("To"), Subject: field("Subject"), Date: field("Date"),
		MessageID: field("Message-ID"), InReplyTo: field("In-Reply-To"), ContentType: field("Content-Type")}
}

// registerInboundAdmin adds the operator's view of inbound mail. The admin
// store keeps it optionally, so the admin port stays as small as
// deployments without an inbound side need; without it the routes answer 404.
func (s *Server) registerInboundAdmin(api *gin.RouterGroup) {
	h := inboundAdmin{s: s}
	h.store, _ = s.admin.(InboundAdminStore)
	g := api.Group("/admin/inbound", s.requireAdmin, s.requirePort(h.store != nil))
	g.GET("", h.list)
	g.GET("/:id", h.get)
	g.GET("/:id/raw", h.raw)
	g.DELETE("/:id", h.delete)
	g.POST("/:id/reprocess", h.reprocess)
}

// requirePort answers 404 on routes whose optional port this server lacks,
// as if they did not exist; registering them anyway keeps the route table
// (and the OpenAPI document that must match it) the same for every setup.
func (s *Server) requirePort(present bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !present {
			s.writeError(c, domain.Errorf(domain.CodeNotFound, "no such endpoint"))
			return
		}
		c.Next()
	}
}

type inboundAdmin struct {
	s     *Server
	store InboundAdminStore
}

// list pages through stored inbound mail, newest first, optionally of one
// status (?status=unmatched for what matched nothing).
func (h inboundAdmin) list(c *gin.Context) {
	limit, err := parseLimit(c, "status", "cursor")
	if err != nil {
		h.s.writeError(c, err)
		return
	}
	f := domain.InboundFilter{Status: c.Query("status"), Limit: limit, Cursor: c.Query("cursor")}
	if f.Status != "" {
		if err := domain.CheckInboundStatus("status", f.Status); err != nil {
			h.s.writeError(c, err)
			return
		}
	}
	records, next, err := h.store.ListInbound(c.Request.Context(), f)
	if err != nil {
		h.s.writeError(c, err)
		return
	}
	c.PureJSON(http.StatusOK, gin.H{"items": mapViews(records, newInboundView), "next_cursor": next})
}

// load reads the stored message the path names, or answers the error.
func (h inboundAdmin) load(c *gin.Context) (domain.InboundRecord, bool) {
	id, ok := h.s.pathID(c)
	if !ok {
		return domain.InboundRecord{}, false
	}
	r, err := h.store.GetInbound(c.Request.Context(), id)
	if err != nil {
		h.s.writeError(c, err)
		return r, false
	}
	return r, true
}

func (h inboundAdmin) get(c *gin.Context) {
	if r, ok := h.load(c); ok {
		c.PureJSON(http.StatusOK, inboundDetailView{inboundView: newInboundView(r), Headers: summarizeInbound(r.Raw)})
	}
}

// raw downloads the message exactly as it arrived, as message/rfc822.
func (h inboundAdmin) raw(c *gin.Context) {
	r, ok := h.load(c)
	if !ok {
		return
	}
	c.Header("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": r.ID.String() + ".eml"}))
	c.Header("X-Content-Type-Options", "nosniff")
	c.Data(http.StatusOK, "message/rfc822", r.Raw)
}

func (h inboundAdmin) delete(c *gin.Context) {
	id, ok := h.s.pathID(c)
	if !ok {
		return
	}
	if err := h.store.DeleteInbound(c.Request.Context(), id); err != nil {
		h.s.writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// reprocess queues an unmatched message for processing again, e.g. after
// the key that signed its token was put back in MAILGATE_VERP_KEYS; the
// answer is 202 with the message back at status received.
func (h inboundAdmin) reprocess(c *gin.Context) {
	id, ok := h.s.pathID(c)
	if !ok {
		return
	}
	r, err := h.store.ReprocessInbound(c.Request.Context(), id)
	if err != nil {
		h.s.writeError(c, err)
		return
	}
	c.PureJSON(http.StatusAccepted, newInboundView(r))
}
