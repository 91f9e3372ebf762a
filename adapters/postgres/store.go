// Package postgres is Mailgate's PostgreSQL adapter: tenants, accounts,
// messages and their recipients and events, each write in one transaction
// that also enqueues the River job it implies (the transactional outbox).
package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailgate/mailgate/domain"
)

// Enqueuer inserts the delivery job for a queued message inside the caller's
// transaction, so the message and its job commit or vanish together.
type Enqueuer interface {
	EnqueueDeliveryTx(ctx context.Context, tx pgx.Tx, tenant, messageID uuid.UUID) error
}

// Store implements the domain's persistence ports on a pgx pool.
type Store struct {
	pool     *pgxpool.Pool
	enqueuer Enqueuer
}

var _ domain.MessageStore = (*Store)(nil)

// New returns a Store. enqueuer may be nil for processes that never queue
// deliveries (the CLI); queuing then fails loudly.
func New(pool *pgxpool.Pool, enqueuer Enqueuer) *Store {
	return &Store{pool: pool, enqueuer: enqueuer}
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// inTx runs fn in a transaction for one tenant and commits when fn succeeds.
// Every tenant write goes through here, so tenant scoping has one home.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// pgCode returns the SQLSTATE of err, or "".
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// nullUUID maps the domain's "absent" nil UUID to SQL NULL.
func nullUUID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

func fromNullUUID(id *uuid.UUID) uuid.UUID {
	if id == nil {
		return uuid.Nil
	}
	return *id
}
