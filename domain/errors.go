// Package domain holds Mailgate's entities and rules: messages, recipients,
// their state machine, validation of everything that ends up in a mail header,
// and the error type every layer wraps. It does no I/O.
package domain

import (
	"errors"
	"fmt"
)

// ErrorCode classifies a failure so the HTTP layer can map it to a status in one place.
type ErrorCode string

// The error codes the gateway distinguishes.
const (
	CodeInvalid         ErrorCode = "invalid"
	CodeNotFound        ErrorCode = "not_found"
	CodeConflict        ErrorCode = "conflict"
	CodeVersionMismatch ErrorCode = "version_mismatch"
	CodeUnauthorized    ErrorCode = "unauthorized"
	CodeForbidden       ErrorCode = "forbidden"
	CodeRateLimited     ErrorCode = "rate_limited"
	CodeTooLarge        ErrorCode = "too_large"
	// CodeLimitExceeded refuses a request that would take the tenant past a
	// configured cap (such as its number of webhook endpoints).
	CodeLimitExceeded ErrorCode = "limit_exceeded"
	// CodeIdempotencyMismatch refuses an Idempotency-Key already used for
	// a different request: repeating it can't be made safe.
	CodeIdempotencyMismatch ErrorCode = "idempotency_mismatch"
	// CodeUnavailable is a failure of something the gateway depends on (the
	// database unreachable, or the request's deadline passed waiting for
	// it): the request may well succeed if repeated a little later.
	CodeUnavailable ErrorCode = "unavailable"
	CodeInternal    ErrorCode = "internal"
)

// Error is a failure that is safe to show to the caller. Cause, if set, is for
// logs only and is never returned over the API.
type Error struct {
	Code    ErrorCode
	Message string
	// Field names the input field at fault, in the wire model's spelling.
	Field string
	// CurrentVersion is set on version mismatches so the caller can refetch.
	CurrentVersion Version
	Cause          error
}

func (e *Error) Error() string {
	msg := string(e.Code) + ": " + e.Message
	if e.Field != "" {
		msg += " (field " + e.Field + ")"
	}
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Cause }

// Errorf builds an Error with a formatted message.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError builds an invalid-input Error naming the field at fault.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// AsError returns the Error in err's chain, or an internal Error wrapping err.
func AsError(err error) *Error {
	var de *Error
	if errors.As(err, &de) {
		return de
	}
	return &Error{Code: CodeInternal, Message: "internal error", Cause: err}
}

// ErrorCodeOf returns the code of err, CodeInternal when err is not a domain Error.
func ErrorCodeOf(err error) ErrorCode {
	if err == nil {
		return ""
	}
	return AsError(err).Code
}

// ErrNotFound is returned for anything missing or owned by another tenant;
// the two are deliberately indistinguishable.
var ErrNotFound = &Error{Code: CodeNotFound, Message: "not found"}
