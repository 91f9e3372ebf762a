package httpapi

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/adapters/httpapi/wire"
	"github.com/mailgate/mailgate/domain"
)

// MessageControl cancels and retries deliveries.
type MessageControl interface {
	CancelMessage(ctx context.Context, tenant, id uuid.UUID) (*domain.Message, error)
	RetryMessage(ctx context.Context, tenant, id uuid.UUID, f domain.RetryFilter) (*domain.Message, error)
	RetryMessages(ctx context.Context, tenant uuid.UUID, f domain.RetryFilter) ([]uuid.UUID, error)
}

// BatchComposer creates many messages in one transaction.
type BatchComposer interface {
	ComposeBatch(ctx context.Context, tenant uuid.UUID, reqs []domain.ComposeRequest) ([]*domain.Message, []error, error)
}

func (s *Server) registerControl(r router) {
	r.handle(http.MethodPost, "/messages/batch", s.batchSend)
	r.handle(http.MethodPost, "/messages/retry", s.retryMessages)
	r.handle(http.MethodPost, "/messages/:id/cancel", s.cancelMessage)
	r.handle(http.MethodPost, "/messages/:id/retry", s.retryMessage)
}

func (s *Server) cancelMessage(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	msg, err := s.control.CancelMessage(c.Request.Context(), principalOf(c).SubscriptionID, id)
	if err != nil {
		return nil, err
	}
	return messageAnswer(http.StatusOK, msg), nil
}

func (s *Server) retryMessage(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	// Retrying one message asks for every recipient that did not get it:
	// failed and bounced alike, checked against the suppression list now.
	msg, err := s.control.RetryMessage(c.Request.Context(), principalOf(c).SubscriptionID, id, domain.RetryFilter{Bounced: true})
	if err != nil {
		return nil, err
	}
	return messageAnswer(http.StatusAccepted, msg), nil
}

// retryRequest is the body of the bulk retries: which messages (state,
// creation window) and which recipients (bounced too, reply code, reply
// window). An operator's also names a subscription, or every one.
type retryRequest struct {
	SubscriptionID string `json:"subscription_id"`
	State          string `json:"state"`
	CreatedAfter   string `json:"created_after"`
	CreatedBefore  string `json:"created_before"`
	Bounced        bool   `json:"bounced"`
	ReplyCode      int    `json:"reply_code"`
	RepliedAfter   string `json:"replied_after"`
	RepliedBefore  string `json:"replied_before"`
	Limit          int    `json:"limit"`
}

// filter validates the request as a domain.RetryFilter; a reply code of a
// bounce (5xx) implies bounced recipients.
func (r retryRequest) filter() (domain.RetryFilter, error) {
	f := domain.RetryFilter{State: domain.MessageState(r.State), Bounced: r.Bounced || r.ReplyCode >= 500, ReplyCode: r.ReplyCode, Limit: cmp.Or(r.Limit, 100)}
	for _, p := range []struct {
		name, value string
		dst         *time.Time
	}{{"created_after", r.CreatedAfter, &f.CreatedAfter}, {"created_before", r.CreatedBefore, &f.CreatedBefore},
		{"replied_after", r.RepliedAfter, &f.RepliedAfter}, {"replied_before", r.RepliedBefore, &f.RepliedBefore}} {
		if p.value == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, p.value)
		if err != nil {
			return f, domain.FieldError(p.name, "must be an RFC 3339 date-time")
		}
		*p.dst = t
	}
	return f, f.Check()
}

// decodeRetryRequest reads an optional retry body.
func decodeRetryRequest(c *gin.Context) (retryRequest, error) {
	var body retryRequest
	if c.Request.ContentLength != 0 {
		if err := decodeStrict(c, &body); err != nil && !errors.Is(err, wire.ErrEmptyBody) {
			return body, err
		}
	}
	return body, nil
}

func (s *Server) retryMessages(c *gin.Context) (*answer, error) {
	body, err := decodeRetryRequest(c)
	if err != nil {
		return nil, err
	}
	if body.SubscriptionID != "" {
		return nil, domain.FieldError("subscription_id", "is not a field of RetryRequest; a tenant retries its own messages")
	}
	f, err := body.filter()
	if err != nil {
		return nil, err
	}
	ids, err := s.control.RetryMessages(c.Request.Context(), principalOf(c).SubscriptionID, f)
	if err != nil {
		return nil, err
	}
	if ids == nil {
		ids = []uuid.UUID{}
	}
	return jsonAnswer(http.StatusOK, gin.H{"requeued": len(ids), "ids": ids}), nil
}

// batchItem is one message's result in a batch answer.
type batchItem struct {
	Index   int               `json:"index"`
	Status  int               `json:"status"`
	Message *wire.MessageView `json:"message,omitempty"`
	Problem *Problem          `json:"problem,omitempty"`
}

// batchSend creates up to 500 messages in one transaction and answers with a
// result per message; a refused message doesn't stop the others.
func (s *Server) batchSend(c *gin.Context) (*answer, error) {
	data, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return nil, err
	}
	if err := wire.CheckJSONDepth(data, wire.MaxJSONDepth); err != nil {
		return nil, err
	}
	var body struct {
		Messages []json.RawMessage `json:"messages"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return nil, wire.JSONError(err, "BatchRequest")
	}
	if len(body.Messages) == 0 || len(body.Messages) > domain.MaxBatch {
		return nil, domain.FieldError("messages", "a batch holds 1 to %d messages", domain.MaxBatch)
	}
	results := make([]batchItem, len(body.Messages))
	reqs := make([]domain.ComposeRequest, 0, len(body.Messages))
	index := make([]int, 0, len(body.Messages))
	for i, raw := range body.Messages {
		results[i].Index = i
		model, err := wire.DecodeJSON(bytes.NewReader(raw), requestDecodeOptions(c))
		var req domain.ComposeRequest
		if err == nil {
			req, err = model.Request()
		}
		if err != nil {
			results[i].Problem = s.itemProblem(c, i, err)
			results[i].Status = results[i].Problem.Status
			continue
		}
		reqs = append(reqs, req)
		index = append(index, i)
	}
	if len(reqs) > 0 {
		msgs, errs, err := s.batch.ComposeBatch(c.Request.Context(), principalOf(c).SubscriptionID, reqs)
		if err != nil {
			return nil, err
		}
		created := 0
		defer func() {
			if s.observer != nil && created > 0 {
				s.observer.ObserveAccepted(principalOf(c).SubscriptionID, created)
			}
		}()
		for k, i := range index {
			if errs[k] != nil {
				results[i].Problem = s.itemProblem(c, i, errs[k])
				results[i].Status = results[i].Problem.Status
				continue
			}
			view := wire.NewMessageView(msgs[k])
			results[i].Status, results[i].Message = http.StatusCreated, &view
			created++
		}
	}
	return jsonAnswer(http.StatusOK, gin.H{"results": results}), nil
}
