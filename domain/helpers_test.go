package domain_test

import (
	"errors"
	"testing"

	"github.com/mailgate/mailgate/domain"
)

// requireError fails unless err is a *domain.Error with the given code and
// field; an empty field is not checked.
func requireError(t *testing.T, err error, code domain.ErrorCode, field string) *domain.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s (field %q)", code, field)
	}
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("got %T %v, want a *domain.Error", err, err)
	}
	if de.Code != code {
		t.Fatalf("got code %q (%v), want %q", de.Code, err, code)
	}
	if field != "" && de.Field != field {
		t.Fatalf("got field %q (%v), want %q", de.Field, err, field)
	}
	return de
}
