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
	case "unsupported_media_type":
		return http.StatusUnsupportedMediaType
	case "not_acceptable":
		return http.StatusNotAcceptable
	case "idempotency_mismatch":
		return http.StatusUnprocessableEntity
	case codeRequestTimeout:
		return http.StatusRequestTimeout
	case domain.CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// Error codes that exist only at the HTTP layer.
const (
	codeUnsupportedMediaType domain.ErrorCode = "unsupported_media_type"
	codeNotAcceptable        domain.ErrorCode = "not_acceptable"
	codeRequestTimeout       domain.ErrorCode = "request_timeout"
)

// writeError answers with the problem for err. Internal causes are logged,
// never returned.
func (s *Server) writeError(c *gin.Context, err error) {
	de := domain.AsError(err)
	var maxBytes *http.MaxBytesError
	switch {
	case bodyTooSlow(c):
		// Whatever the decoder made of the cut-off body, the cause is the pace.
		de = &domain.Error{Code: codeRequestTimeout, Message: "the request body arrived too slowly: it must come at " +
			strconv.FormatInt(s.bounds.BodyMinRate, 10) + " bytes a second or faster after the first " + s.bounds.BodyGrace.String() +
			", and all of it within " + s.bounds.Request.String(), Cause: err}
		c.Header("Connection", "close")
	case errors.As(err, &maxBytes):
		de = &domain.Error{Code: domain.CodeTooLarge, Message: "the request body is larger than the gateway accepts"}
	case de.Code == domain.CodeInternal && errors.Is(err, context.DeadlineExceeded):
		de = &domain.Error{Code: domain.CodeUnavailable, Message: "the request did not finish within the gateway's deadline of " +
			s.bounds.Request.String() + "; retry after the Retry-After delay", Cause: err}
	case de.Code == domain.CodeInternal && s.unavailable != nil && s.unavailable(err):
		de = &domain.Error{Code: domain.CodeUnavailable, Message: "the database is unavailable; retry after the Retry-After delay", Cause: err}
	}
	status := statusFor(de.Code)
	if status == http.StatusServiceUnavailable {
		c.Header("Retry-After", unavailableRetryAfter)
	}
	p := Problem{
		Type:      "https://mailgate.dev/problems/" + string(de.Code),
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    de.Message,
		Instance:  c.Request.URL.Path,
		Code:      string(de.Code),
		Field:     de.Field,
		RequestID: c.GetString(ctxRequestID),
	}
	if de.Code == domain.CodeVersionMismatch || de.CurrentVersion != 0 {
		p.TS = de.CurrentVersion.String()
		if de.CurrentVersion != 0 {
			c.Header("ETag", etag(de.CurrentVersion))
		}
	}
	switch {
	case status == http.StatusServiceUnavailable:
		s.logger.WarnContext(c.Request.Context(), "request unavailable", "error", err, "request_id", p.RequestID, "path", c.Request.URL.Path)
	case status >= 500:
		p.Detail = "an internal error occurred; quote the request id when reporting it"
		s.logger.ErrorContext(c.Request.Context(), "request failed", "error", err, "request_id", p.RequestID, "path", c.Request.URL.Path)
	}
	if responseFormat(c) == formatXML {
		if body, err := encodeProblemXML(p); err == nil {
			c.Abort()
			c.Data(status, "application/problem+xml; charset=utf-8", body)
			return
		}
	}
	c.Header("Content-Type", "application/problem+json")
	c.AbortWithStatusJSON(status, p)
}

func etag(v domain.Version) string { return `"` + v.String() + `"` }
