package postgres

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mailgate/mailgate/domain"
)

// The SQLSTATE codes a statement may give a meaning of its own.
const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
)

// violation gives one constraint violation its meaning for one statement:
// only the statement knows what its unique key or foreign key protects.
type violation struct {
	sqlstate string
	means    error
}

// onUnique says what a unique violation of the statement means.
func onUnique(means error) violation { return violation{sqlstate: uniqueViolation, means: means} }

// onForeignKey says what a foreign-key violation of the statement means.
func onForeignKey(means error) violation {
	return violation{sqlstate: foreignKeyViolation, means: means}
}

// interpretError translates a driver error into the domain's terms, the one
// place the store does so (as River's drivers do): no row is
// domain.ErrNotFound, a constraint violation the statement declared is what
// it declared, a domain error (raised in a batch callback) passes as it is,
// and anything else is wrapped with what the store was doing. nil stays nil.
func interpretError(err error, doing string, violations ...violation) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.ErrNotFound
	}
	var de *domain.Error
	if errors.As(err, &de) {
		return err
	}
	if code := pgCode(err); code != "" {
		for _, v := range violations {
			if v.sqlstate == code {
				return v.means
			}
		}
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// pgCode returns the SQLSTATE of err, or "".
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
