package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// MessageControl cancels and retries deliveries.
type MessageControl interface {
	CancelMessage(ctx context.Context, tenant, id uuid.UUID) (*domain.Message, error)
	RetryMessage(ctx context.Context, tenant, id uuid.UUID) (*domain.Message, error)
	RetryMessages(ctx context.Context, tenant uuid.UUID, state domain.MessageState, after, before time.Time, limit int) ([]uuid.UUID, error)
}

// BatchComposer creates many messages in one transaction.
type BatchComposer interface {
	ComposeBatch(ctx context.Context, tenant uuid.UUID, reqs []domain.ComposeRequest) ([]*domain.Message, []error, error)
}

func (s *Server) registerControl(api *gin.RouterGroup) {
	api.POST("/messages/batch", s.batchSend)
	api.POST("/messages/retry", s.retryMessages)
	api.POST("/messages/:id/cancel", s.cancelMessage)
	api.POST("/messages/:id/retry", s.retryMessage)
}

func (s *Server) cancelMessage(c *gin.Context) {
	id, ok := s.pathID(c)
	if !ok {
		return
	}
	msg, err := s.control.CancelMessage(c.Request.Context(), principalOf(c).SubscriptionID, id)
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.writeMessage(c, http.StatusOK, msg)
}

func (s *Server) retryMessage(c *gin.Context) {
	id, ok := s.pathID(c)
	if !ok {
		return
	}
	msg, err := s.control.RetryMessage(c.Request.Context(), principalOf(c).SubscriptionID, id)
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.writeMessage(c, http.StatusAccepted, msg)
}

func (s *Server) retryMessages(c *gin.Context) {
	var body struct {
		State         string `json:"state"`
		CreatedAfter  string `json:"created_after"`
		CreatedBefore string `json:"created_before"`
		Limit         int    `json:"limit"`
	}
	if c.Request.ContentLength != 0 {
		if err := decodeStrict(c, &body); err != nil && err.Error() != "invalid: the body is empty" {
			s.writeError(c, err)
			return
		}
	}
	state := domain.MessageState(body.State)
	if state != "" && state != domain.StateFailed && state != domain.StatePartiallySent {
		s.writeError(c, domain.FieldError("state", "must be failed or partially_sent"))
		return
	}
	var after, before time.Time
	for _, p := range []struct {
		name, value string
		dst         *time.Time
	}{{"created_after", body.CreatedAfter, &after}, {"created_before", body.CreatedBefore, &before}} {
		if p.value == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, p.value)
		if err != nil {
			s.writeError(c, domain.FieldError(p.name, "must be an RFC 3339 date-time"))
			return
		}
		*p.dst = t
	}
	limit := body.Limit
	if limit == 0 {
		limit = 100
	}
	if limit < 1 || limit > 1000 {
		s.writeError(c, domain.FieldError("limit", "must be from 1 to 1000"))
		return
	}
	ids, err := s.control.RetryMessages(c.Request.Context(), principalOf(c).SubscriptionID, state, after, before, limit)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if ids == nil {
		ids = []uuid.UUID{}
	}
	c.PureJSON(http.StatusOK, gin.H{"requeued": len(ids), "ids": ids})
}

// batchItem is one message's result in a batch answer.
type batchItem struct {
	Index   int          `json:"index"`
	Status  int          `json:"status"`
	Message *messageView `json:"message,omitempty"`
	Problem *Problem     `json:"problem,omitempty"`
}

// batchSend creates up to 500 messages in one transaction and answers with a
// result per message; a refused message doesn't stop the others.
func (s *Server) batchSend(c *gin.Context) {
	data, err := io.ReadAll(c.Request.Body)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if err := checkJSONDepth(data, maxJSONDepth); err != nil {
		s.writeError(c, err)
		return
	}
	var body struct {
		Messages []json.RawMessage `json:"messages"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		s.writeError(c, jsonError(err))
		return
	}
	if len(body.Messages) == 0 || len(body.Messages) > domain.MaxBatch {
		s.writeError(c, domain.FieldError("messages", "a batch holds 1 to %d messages", domain.MaxBatch))
		return
	}
	results := make([]batchItem, len(body.Messages))
	reqs := make([]domain.ComposeRequest, 0, len(body.Messages))
	index := make([]int, 0, len(body.Messages))
	for i, raw := range body.Messages {
		results[i].Index = i
		model, err := decodeJSON(bytes.NewReader(raw), requestDecodeOptions(c))
		var req domain.ComposeRequest
		if err == nil {
			req, err = model.toRequest()
		}
		if err != nil {
			results[i].Status, results[i].Problem = s.itemProblem(c, i, err)
			continue
		}
		reqs = append(reqs, req)
		index = append(index, i)
	}
	if len(reqs) > 0 {
		msgs, errs, err := s.batch.ComposeBatch(c.Request.Context(), principalOf(c).SubscriptionID, reqs)
		if err != nil {
			s.writeError(c, err)
			return
		}
		created := 0
		defer func() {
			if s.observer != nil && created > 0 {
				s.observer.ObserveAccepted(principalOf(c).SubscriptionID, created)
			}
		}()
		for k, i := range index {
			if errs[k] != nil {
				results[i].Status, results[i].Problem = s.itemProblem(c, i, errs[k])
				continue
			}
			view := newMessageView(msgs[k])
			results[i].Status, results[i].Message = http.StatusCreated, &view
			created++
		}
	}
	c.PureJSON(http.StatusOK, gin.H{"results": results})
}

func (s *Server) itemProblem(c *gin.Context, i int, err error) (int, *Problem) {
	de := domain.AsError(err)
	status := statusFor(de.Code)
	if status >= 500 {
		s.logger.ErrorContext(c.Request.Context(), "batch item failed", "error", err, "index", i)
	}
	return status, &Problem{
		Type: "https://mailgate.dev/problems/" + string(de.Code), Title: http.StatusText(status), Status: status,
		Detail: de.Message, Instance: c.Request.URL.Path + "#" + strconv.Itoa(i), Code: string(de.Code), Field: de.Field,
	}
}
