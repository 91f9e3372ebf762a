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

// registerInboundAdmin adds the operator's view of inbound mail; without
// an InboundAdminStore (a deployment with no inbound side) its routes answer
// 404.
func (s *Server) registerInboundAdmin(r router) {
	g := r.subgroup("/admin/inbound", s.requireAdmin, requirePort(s.inboundAdmin != nil))
	g.handle(http.MethodGet, "", s.listInbound)
	g.handle(http.MethodGet, "/:id", s.getInbound)
	g.handle(http.MethodGet, "/:id/raw", s.rawInbound)
	g.handle(http.MethodDelete, "/:id", s.deleteInbound)
	g.handle(http.MethodPost, "/:id/reprocess", s.reprocessInbound)
}

// requirePort answers 404 on routes whose optional port this server lacks,
// as if they did not exist; registering them anyway keeps the route table
// (and the OpenAPI document that must match it) the same for every setup.
func requirePort(present bool) handler {
	return func(*gin.Context) (*answer, error) {
		if !present {
			return nil, domain.Errorf(domain.CodeNotFound, "no such endpoint")
		}
		return nil, nil
	}
}

// listInbound pages through stored inbound mail, newest first, optionally of
// one status (?status=unmatched for what matched nothing).
func (s *Server) listInbound(c *gin.Context) (*answer, error) {
	limit, err := parseLimit(c, "status", "cursor")
	if err != nil {
		return nil, err
	}
	f := domain.InboundFilter{Status: c.Query("status"), Limit: limit, Cursor: c.Query("cursor")}
	if f.Status != "" {
		if err := domain.CheckInboundStatus("status", f.Status); err != nil {
			return nil, err
		}
	}
	records, next, err := s.inboundAdmin.ListInbound(c.Request.Context(), f)
	if err != nil {
		return nil, err
	}
	return jsonAnswer(http.StatusOK, gin.H{"items": mapViews(records, newInboundView), "next_cursor": next}), nil
}

// loadInbound reads the stored message the path names.
func (s *Server) loadInbound(c *gin.Context) (domain.InboundRecord, error) {
	id, err := pathID(c)
	if err != nil {
		return domain.InboundRecord{}, err
	}
	return s.inboundAdmin.GetInbound(c.Request.Context(), id)
}

func (s *Server) getInbound(c *gin.Context) (*answer, error) {
	r, err := s.loadInbound(c)
	if err != nil {
		return nil, err
	}
	return jsonAnswer(http.StatusOK, inboundDetailView{inboundView: newInboundView(r), Headers: summarizeInbound(r.Raw)}), nil
}

// rawInbound downloads the message exactly as it arrived, as message/rfc822.
func (s *Server) rawInbound(c *gin.Context) (*answer, error) {
	r, err := s.loadInbound(c)
	if err != nil {
		return nil, err
	}
	return rawAnswer(http.StatusOK, "message/rfc822", r.Raw).
		with("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": r.ID.String() + ".eml"})).
		with("X-Content-Type-Options", "nosniff"), nil
}

func (s *Server) deleteInbound(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	if err := s.inboundAdmin.DeleteInbound(c.Request.Context(), id); err != nil {
		return nil, err
	}
	return emptyAnswer(http.StatusNoContent), nil
}

// reprocessInbound queues an unmatched message for processing again, e.g.
// after the key that signed its token was put back in MAILGATE_VERP_KEYS;
// the answer is 202 with the message back at status received.
func (s *Server) reprocessInbound(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	r, err := s.inboundAdmin.ReprocessInbound(c.Request.Context(), id)
	if err != nil {
		return nil, err
	}
	return jsonAnswer(http.StatusAccepted, newInboundView(r)), nil
}
