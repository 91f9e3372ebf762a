package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

// ListSuppressions returns up to limit suppressions ordered by address,
// starting after the given address (keyset paging).
func (s *Store) ListSuppressions(ctx context.Context, tenant uuid.UUID, after string, limit int) ([]domain.Suppression, error) {
	var out []domain.Suppression
	b := newBatch(tenantScope(tenant))
	b.Queue(`SELECT email, reason, source, smtp_code, created_at FROM suppressions
		WHERE subscription_id = $1 AND email > $2 ORDER BY email LIMIT $3`, tenant, strings.ToLower(after), limit).
		Query(func(rows pgx.Rows) error {
			var err error
			out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.Suppression, error) {
				var sup domain.Suppression
				err := row.Scan(&sup.Email, &sup.Reason, &sup.Source, &sup.SMTPCode, &sup.CreatedAt)
				sup.CreatedAt = sup.CreatedAt.UTC()
				return sup, err
			})
			return err
		})
	if err := s.read(ctx, b); err != nil {
		return nil, fmt.Errorf("list suppressions: %w", err)
	}
	return out, nil
}

// AddSuppression puts an address on the tenant's list (idempotent) and
// writes an event.
func (s *Store) AddSuppression(ctx context.Context, tenant uuid.UUID, sup domain.Suppression) (domain.Suppression, error) {
	sup.Email = strings.ToLower(sup.Email)
	err := s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO suppressions (subscription_id, email, reason, source, smtp_code) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (subscription_id, email) DO UPDATE SET reason = EXCLUDED.reason
			RETURNING reason, source, smtp_code, created_at`, tenant, sup.Email, sup.Reason, sup.Source, sup.SMTPCode).
			QueryRow(func(row pgx.Row) error { return row.Scan(&sup.Reason, &sup.Source, &sup.SMTPCode, &sup.CreatedAt) })
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("add suppression: %w", err)
		}
		return s.writeEvents(ctx, tx, tenant, uuid.Nil, event{kind: "suppression.added", recipient: sup.Email, detail: sup.Reason})
	})
	sup.CreatedAt = sup.CreatedAt.UTC()
	return sup, err
}

// RemoveSuppression takes an address off the list; ErrNotFound if it wasn't on it.
func (s *Store) RemoveSuppression(ctx context.Context, tenant uuid.UUID, email string) error {
	return s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM suppressions WHERE subscription_id = $1 AND email = $2`, tenant, strings.ToLower(email))
		if err != nil {
			return fmt.Errorf("remove suppression: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return domain.ErrNotFound
		}
		return s.writeEvents(ctx, tx, tenant, uuid.Nil, event{kind: "suppression.removed", recipient: strings.ToLower(email)})
	})
}
