package httpapi

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// IdempotencyStore remembers Idempotency-Keys and their responses.
type IdempotencyStore interface {
	ClaimIdempotencyKey(ctx context.Context, tenant uuid.UUID, key string, requestHash []byte) (*domain.IdempotentResponse, domain.IdempotencyClaim, error)
	FinishIdempotencyKey(ctx context.Context, tenant uuid.UUID, key string, claim domain.IdempotencyClaim, resp domain.IdempotentResponse) error
	ReleaseIdempotencyKey(ctx context.Context, tenant uuid.UUID, key string, claim domain.IdempotencyClaim) error
}

// capturingWriter keeps a copy of the response for the key's record.
type capturingWriter struct {
	gin.ResponseWriter
	body bytes.Buffer
}

func (w *capturingWriter) Write(b []byte) (int, error) {
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

// idempotency makes POSTs carrying an Idempotency-Key safe to repeat: the same
// key and body get the original response back (Idempotent-Replayed: true),
// the same key with another body gets 422. Messages a keyed request creates
// are recorded against the key in their own transaction.
func (s *Server) idempotency(c *gin.Context) (*answer, error) {
	key := c.GetHeader("Idempotency-Key")
	if c.Request.Method != http.MethodPost || key == "" || s.idem == nil {
		return nil, nil
	}
	if len(key) > 255 || !printableASCII(key) {
		return nil, domain.FieldError("Idempotency-Key", "must be 1 to 255 printable ASCII characters")
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return nil, err
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	h := sha256.New()
	h.Write([]byte(c.Request.Method + " " + c.Request.URL.Path + "\n" + c.GetHeader("Content-Type") + "\n"))
	h.Write(body)
	tenant := principalOf(c).SubscriptionID
	replay, claim, err := s.idem.ClaimIdempotencyKey(c.Request.Context(), tenant, key, h.Sum(nil))
	if err != nil {
		return nil, err
	}
	if replay != nil {
		return s.replay(c, tenant, replay)
	}
	c.Request = c.Request.WithContext(domain.WithIdempotencyKey(c.Request.Context(), key, claim))
	w := &capturingWriter{ResponseWriter: c.Writer}
	c.Writer = w
	c.Next()
	// The answer goes out first: recording it must not hold the client up
	// (a message the request created is already recorded against the key).
	// The record gets a bound of its own, detached from the client.
	c.Writer.Flush()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), cmp.Or(s.bounds.Request, idempotencyRecordTimeout))
	defer cancel()
	if status := w.Status(); status >= 500 || status == http.StatusConflict && w.body.Len() == 0 {
		_ = s.idem.ReleaseIdempotencyKey(ctx, tenant, key, claim)
	} else if err := s.idem.FinishIdempotencyKey(ctx, tenant, key, claim,
		domain.IdempotentResponse{Status: status, Body: w.body.Bytes(), ContentType: w.Header().Get("Content-Type")}); err != nil {
		s.logger.ErrorContext(ctx, "store idempotent response", "error", err)
	}
	return nil, nil
}

// idempotencyRecordTimeout bounds recording a keyed answer when requests
// have no deadline.
const idempotencyRecordTimeout = 30 * time.Second

// replay answers with a stored response. When the process stopped after
// creating the message but before storing the response, the message is
// read back instead.
func (s *Server) replay(c *gin.Context, tenant uuid.UUID, r *domain.IdempotentResponse) (*answer, error) {
	// Set before the message is read back, so a failure to read it is
	// marked as a replay too.
	c.Header("Idempotent-Replayed", "true")
	if r.Body != nil {
		return rawAnswer(r.Status, r.ContentType, r.Body), nil
	}
	if len(r.MessageIDs) == 1 {
		id, _ := uuid.Parse(r.MessageIDs[0])
		msg, err := s.messages.GetMessage(c.Request.Context(), tenant, id)
		if err != nil {
			return nil, err
		}
		return messageAnswer(r.Status, msg), nil
	}
	return jsonAnswer(r.Status, gin.H{"message_ids": r.MessageIDs}), nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}
