package postgres

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mailgate/mailgate/domain"
)

func TestInterpretError(t *testing.T) {
	t.Parallel()
	duplicate := &domain.Error{Code: domain.CodeConflict, Field: "email", Message: "exists"}
	conflict := &domain.Error{Code: domain.CodeConflict, Message: "refused by a rule"}
	unique := &pgconn.PgError{Code: uniqueViolation, Message: "duplicate key"}
	foreignKey := &pgconn.PgError{Code: foreignKeyViolation, Message: "no parent"}
	broken := errors.New("connection reset")
	cases := []struct {
		name       string
		err        error
		violations []violation
		want       error // errors.Is target
		wantCode   domain.ErrorCode
	}{
		{"OKNil", nil, nil, nil, ""},
		{"NoRowsIsNotFound", pgx.ErrNoRows, nil, domain.ErrNotFound, domain.CodeNotFound},
		{"WrappedNoRowsIsNotFound", fmt.Errorf("batch: %w", pgx.ErrNoRows), nil, domain.ErrNotFound, domain.CodeNotFound},
		{"DomainErrorPasses", conflict, nil, conflict, domain.CodeConflict},
		{"DeclaredUnique", unique, []violation{onUnique(duplicate)}, duplicate, domain.CodeConflict},
		{"DeclaredForeignKey", foreignKey, []violation{onUnique(duplicate), onForeignKey(domain.ErrNotFound)}, domain.ErrNotFound, domain.CodeNotFound},
		{"UndeclaredViolationIsInternal", foreignKey, []violation{onUnique(duplicate)}, foreignKey, domain.CodeInternal},
		{"OtherErrorWrapped", broken, nil, broken, domain.CodeInternal},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := interpretError(c.err, "doing it", c.violations...)
			if c.want == nil {
				if got != nil {
					t.Fatalf("nil became %v", got)
				}
				return
			}
			if !errors.Is(got, c.want) || domain.ErrorCodeOf(got) != c.wantCode {
				t.Fatalf("got %v (code %s), want %v (code %s)", got, domain.ErrorCodeOf(got), c.want, c.wantCode)
			}
			if c.wantCode == domain.CodeInternal && got.Error() != "doing it: "+c.err.Error() {
				t.Fatalf("an untranslated error says what the store was doing: %q", got)
			}
		})
	}
}
