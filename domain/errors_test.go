package domain_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/mailgate/mailgate/domain"
)

func TestAsError(t *testing.T) {
	t.Parallel()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		want := domain.FieldError("subject", "is bad")
		if got := domain.AsError(want); got != want {
			t.Fatalf("AsError(*Error) = %p, want the same pointer %p", got, want)
		}
	})

	t.Run("WrappedWithPercentW", func(t *testing.T) {
		t.Parallel()
		want := &domain.Error{Code: domain.CodeConflict, Message: "taken"}
		wrapped := fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", want))
		if got := domain.AsError(wrapped); got != want {
			t.Fatalf("AsError(wrapped) = %#v, want %#v", got, want)
		}
	})

	t.Run("PlainError", func(t *testing.T) {
		t.Parallel()
		cause := errors.New("connection reset")
		got := domain.AsError(cause)
		if got.Code != domain.CodeInternal {
			t.Fatalf("code = %q, want %q", got.Code, domain.CodeInternal)
		}
		if got.Cause != cause { //nolint:errorlint // identity: the cause is kept as it is, not wrapped
			t.Fatalf("cause = %v, want %v", got.Cause, cause)
		}
		if !errors.Is(got, cause) {
			t.Fatal("errors.Is(AsError(err), err) = false, want true through Unwrap")
		}
		if got.Message == cause.Error() {
			t.Fatalf("message %q repeats the internal cause", got.Message)
		}
	})
}

func TestErrorCodeOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want domain.ErrorCode
	}{
		{"Nil", nil, ""},
		{"Domain", domain.Errorf(domain.CodeRateLimited, "slow down"), domain.CodeRateLimited},
		{"NotFoundSentinel", domain.ErrNotFound, domain.CodeNotFound},
		{"WrappedNotFound", fmt.Errorf("get: %w", domain.ErrNotFound), domain.CodeNotFound},
		{"FieldError", domain.FieldError("to", "bad"), domain.CodeInvalid},
		{"Plain", io.EOF, domain.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := domain.ErrorCodeOf(tt.err); got != tt.want {
				t.Fatalf("ErrorCodeOf(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  *domain.Error
		want string
	}{
		{"CodeAndMessage", &domain.Error{Code: domain.CodeNotFound, Message: "not found"}, "not_found: not found"},
		{"WithField", domain.FieldError("to[0].email_address", "is %s", "required"), "invalid: is required (field to[0].email_address)"},
		{"WithCause", &domain.Error{Code: domain.CodeInternal, Message: "internal error", Cause: io.EOF}, "internal: internal error: EOF"},
		{"Errorf", domain.Errorf(domain.CodeTooLarge, "%d bytes", 11), "too_large: 11 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.err.Error(); got != tt.want {
				t.Fatalf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrorUnwrap(t *testing.T) {
	t.Parallel()
	if got := (&domain.Error{Code: domain.CodeInvalid}).Unwrap(); got != nil {
		t.Fatalf("Unwrap() without cause = %v, want nil", got)
	}
	e := &domain.Error{Code: domain.CodeInternal, Cause: io.ErrUnexpectedEOF}
	if !errors.Is(e, io.ErrUnexpectedEOF) {
		t.Fatal("errors.Is through Unwrap = false, want true")
	}
}
