package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/mailgate/mailgate/domain"
)

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Code is the gateway's stable error code.
	Code string `json:"code"`
	// Field names the request field at fault, in the wire model's spelling.
	Field string `json:"field,omitempty"`
	// TS is the current version on a version mismatch, so the client can refetch and retry.
	TS        string `json:"ts,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// statusFor is the one place error codes become HTTP statuses.
func statusFor(code domain.ErrorCode) int {
	switch code {
	case domain.CodeInvalid:
		return http.StatusBadRequest
	case domain.CodeUnauthorized:
		return http.StatusUnauthorized
	case domain.CodeForbidden:
		return http.StatusForbidden
	case domain.CodeNotFound:
		return http.StatusNotFound
	case domain.CodeConflict, domain.CodeVersionMismatch, domain.CodeLimitExceeded:
		return http.StatusConflict
	case domain.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case domain.CodeRateLimited:
		return http.StatusTooManyRequests
	case domain.CodeIdempotencyMismatch:
		return http.StatusUnprocessableEntity
	case domain.CodeUnavailable:
		return http.StatusServiceUnavailable
	case codeUnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	case codeNotAcceptable:
		return http.StatusNotAcceptable
	case codeRequestTimeout:
		return http.StatusRequestTimeout
	case codeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	default:
		return http.StatusInternalServerError
	}
}

// Error codes that exist only at the HTTP layer: they are about the
// request's framing (its media type, its pace, its method), not its content.
const (
	codeUnsupportedMediaType domain.ErrorCode = "unsupported_media_type"
	codeNotAcceptable        domain.ErrorCode = "not_acceptable"
	codeRequestTimeout       domain.ErrorCode = "request_timeout"
	codeMethodNotAllowed     domain.ErrorCode = "method_not_allowed"
)

// problemTypeBase prefixes a code to make the problem's type URI.
const problemTypeBase = "https://mailgate.dev/problems/"

// classify is the error err is answered as. Failures that are not the
// caller's input are recognised here rather than in each handler: a body
// that came too slowly or too large, a deadline that passed, the database
// unreachable.
func (s *Server) classify(c *gin.Context, err error) *domain.Error {
	de := domain.AsError(err)
	var maxBytes *http.MaxBytesError
	switch {
	case bodyTooSlow(c):
		// Whatever the decoder made of the cut-off body, the cause is the pace.
		return &domain.Error{Code: codeRequestTimeout, Message: "the request body arrived too slowly: it must come at " +
			strconv.FormatInt(s.bounds.BodyMinRate, 10) + " bytes a second or faster after the first " + s.bounds.BodyGrace.String() +
			", and all of it within " + s.bounds.Request.String(), Cause: err}
	case errors.As(err, &maxBytes):
		return &domain.Error{Code: domain.CodeTooLarge, Message: "the request body is larger than the gateway accepts"}
	case de.Code == domain.CodeInternal && errors.Is(err, context.DeadlineExceeded):
		return &domain.Error{Code: domain.CodeUnavailable, Message: "the request did not finish within the gateway's deadline of " +
			s.bounds.Request.String() + "; retry after the Retry-After delay", Cause: err}
	case de.Code == domain.CodeInternal && s.unavailable != nil && s.unavailable(err):
		return &domain.Error{Code: domain.CodeUnavailable, Message: "the database is unavailable; retry after the Retry-After delay", Cause: err}
	}
	return de
}

// newProblem is the one builder of problem details: the status its code
// maps to, the caller's field and current version, and never the detail of
// an internal failure.
func newProblem(de *domain.Error, instance, requestID string) Problem {
	status := statusFor(de.Code)
	p := Problem{
		Type:      problemTypeBase + string(de.Code),
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    de.Message,
		Instance:  instance,
		Code:      string(de.Code),
		Field:     de.Field,
		RequestID: requestID,
	}
	if status >= 500 && status != http.StatusServiceUnavailable {
		p.Detail = "an internal error occurred; quote the request id when reporting it"
	}
	if de.Code == domain.CodeVersionMismatch || de.CurrentVersion != 0 {
		p.TS = de.CurrentVersion.String()
	}
	return p
}

// writeError answers with the problem for err, in XML to clients that
// prefer it. It is the only writer of error answers: handlers return their
// errors to mount. Internal causes are logged, never returned.
func (s *Server) writeError(c *gin.Context, err error) {
	de := s.classify(c, err)
	p := newProblem(de, c.Request.URL.Path, c.GetString(ctxRequestID))
	switch p.Status {
	case http.StatusRequestTimeout:
		// The rest of a body that came too slowly is not worth waiting for.
		c.Header("Connection", "close")
	case http.StatusServiceUnavailable:
		c.Header("Retry-After", unavailableRetryAfter)
	}
	if de.CurrentVersion != 0 {
		c.Header("ETag", etag(de.CurrentVersion))
	}
	switch {
	case p.Status == http.StatusServiceUnavailable:
		s.logger.WarnContext(c.Request.Context(), "request unavailable", "error", err, "request_id", p.RequestID, "path", c.Request.URL.Path)
	case p.Status >= 500:
		s.logger.ErrorContext(c.Request.Context(), "request failed", "error", err, "request_id", p.RequestID, "path", c.Request.URL.Path)
	}
	if responseFormat(c) == formatXML {
		if body, err := encodeProblemXML(p); err == nil {
			c.Abort()
			c.Data(p.Status, "application/problem+xml; charset=utf-8", body)
			return
		}
	}
	c.Header("Content-Type", "application/problem+json")
	c.AbortWithStatusJSON(p.Status, p)
}

// itemProblem is the problem of one message of a batch, which answers 200
// with a result per message; an item's internal failure is logged here.
func (s *Server) itemProblem(c *gin.Context, i int, err error) *Problem {
	p := newProblem(domain.AsError(err), c.Request.URL.Path+"#"+strconv.Itoa(i), "")
	if p.Status >= 500 {
		s.logger.ErrorContext(c.Request.Context(), "batch item failed", "error", err, "index", i)
	}
	return &p
}

func etag(v domain.Version) string { return `"` + v.String() + `"` }
