package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

// CancelMessage stops a queued or scheduled message before a worker picks it
// up. The message row and its job row are locked together, so either the
// cancel wins and the job is cancelled, or delivery has started and the
// cancel is refused.
func (s *Store) CancelMessage(ctx context.Context, tenant, id uuid.UUID) (*domain.Message, error) {
	err := s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		var (
			state    string
			jobID    *int64
			jobState *string
		)
		err := tx.QueryRow(ctx, `
			SELECT m.state, m.job_id, j.state::text
			FROM messages m LEFT JOIN river_job j ON j.id = m.job_id
			WHERE m.subscription_id = $1 AND m.id = $2
			FOR UPDATE OF m`, tenant, id).Scan(&state, &jobID, &jobState)
		if err == pgx.ErrNoRows {
			return domain.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("cancel: %w", err)
		}
		if state != string(domain.StateQueued) {
			return &domain.Error{Code: domain.CodeConflict, Message: "only a queued or scheduled message can be cancelled; this one is " + state}
		}
		if jobID != nil {
			// Lock the job; a running job means a worker already has the message.
			var current string
			err := tx.QueryRow(ctx, `SELECT state::text FROM river_job WHERE id = $1 FOR UPDATE`, *jobID).Scan(&current)
			if err != nil && err != pgx.ErrNoRows {
				return fmt.Errorf("lock delivery job: %w", err)
			}
			if current == "running" {
				return &domain.Error{Code: domain.CodeConflict, Message: "delivery has started; the message can't be cancelled"}
			}
			if _, err := tx.Exec(ctx, `UPDATE river_job SET state = 'cancelled', finalized_at = now()
				WHERE id = $1 AND state IN ('available', 'scheduled', 'retryable', 'pending')`, *jobID); err != nil {
				return fmt.Errorf("cancel delivery job: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE messages SET state = 'cancelled', version = version + 1, updated_at = now(), finished_at = now()
			WHERE subscription_id = $1 AND id = $2`, tenant, id); err != nil {
			return fmt.Errorf("cancel: %w", err)
		}
		return s.writeEvents(ctx, tx, tenant, id, event{kind: "cancelled"})
	})
	if err != nil {
		return nil, err
	}
	return s.GetMessage(ctx, tenant, id)
}

// RetryMessage requeues a failed or partially sent message: its failed
// recipients go back to pending; delivered, bounced and suppressed ones stay.
func (s *Store) RetryMessage(ctx context.Context, tenant, id uuid.UUID) (*domain.Message, error) {
	err := s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		return s.retryInTx(ctx, tx, tenant, id)
	})
	if err != nil {
		return nil, err
	}
	return s.GetMessage(ctx, tenant, id)
}

func (s *Store) retryInTx(ctx context.Context, tx pgx.Tx, tenant, id uuid.UUID) error {
	var state string
	err := tx.QueryRow(ctx, `SELECT state FROM messages WHERE subscription_id = $1 AND id = $2 FOR UPDATE`, tenant, id).Scan(&state)
	if err == pgx.ErrNoRows {
		return domain.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	if state != string(domain.StateFailed) && state != string(domain.StatePartiallySent) {
		return &domain.Error{Code: domain.CodeConflict, Message: "only failed or partially sent messages can be retried; this one is " + state}
	}
	tag, err := tx.Exec(ctx, `UPDATE message_recipients SET status = 'pending', updated_at = now()
		WHERE subscription_id = $1 AND message_id = $2 AND status = 'failed'`, tenant, id)
	if err != nil {
		return fmt.Errorf("retry recipients: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return &domain.Error{Code: domain.CodeConflict, Message: "no recipient is left to retry: the others were delivered, bounced or suppressed"}
	}
	if _, err := tx.Exec(ctx, `UPDATE messages SET state = 'queued', last_error = '', version = version + 1,
			updated_at = now(), queued_at = now(), finished_at = NULL
		WHERE subscription_id = $1 AND id = $2`, tenant, id); err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	if err := s.enqueue(ctx, tx, tenant, id, time.Time{}); err != nil {
		return err
	}
	return s.writeEvents(ctx, tx, tenant, id, event{kind: "queued", detail: "retry requested"})
}

// RetryMessages requeues, in one transaction, up to limit failed or
// partially sent messages matching the filter, and returns their ids.
func (s *Store) RetryMessages(ctx context.Context, tenant uuid.UUID, state domain.MessageState, after, before time.Time, limit int) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	err := s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		states := []string{string(domain.StateFailed), string(domain.StatePartiallySent)}
		if state != "" {
			states = []string{string(state)}
		}
		rows, err := tx.Query(ctx, `
			SELECT m.id FROM messages m
			WHERE m.subscription_id = $1 AND m.state = ANY($2)
			  AND ($3::timestamptz IS NULL OR m.created_date >= $3) AND ($4::timestamptz IS NULL OR m.created_date < $4)
			  AND EXISTS (SELECT 1 FROM message_recipients r WHERE r.subscription_id = m.subscription_id AND r.message_id = m.id AND r.status = 'failed')
			ORDER BY m.created_date LIMIT $5`, tenant, states, nullTime(after), nullTime(before), limit)
		if err != nil {
			return fmt.Errorf("select retries: %w", err)
		}
		candidates, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return err
		}
		for _, id := range candidates {
			if err := s.retryInTx(ctx, tx, tenant, id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	return ids, err
}

// FindStalled lists, across tenants (operator), queued or sending messages
// whose job vanished or was finalized without settling the message, or that
// stayed in sending longer than stuckAfter.
func (s *Store) FindStalled(ctx context.Context, stuckAfter time.Duration, limit int) ([]domain.StalledMessage, error) {
	var out []domain.StalledMessage
	b := newBatch(operatorScope)
	b.Queue(`
		SELECT m.subscription_id, m.id, coalesce(m.queued_at, m.created_date)
		FROM messages m LEFT JOIN river_job j ON j.id = m.job_id
		WHERE m.state IN ('queued', 'sending')
		  AND (j.id IS NULL OR j.state IN ('completed', 'cancelled', 'discarded')
		       OR (m.state = 'sending' AND m.updated_at < now() - $1::interval AND j.state <> 'running'))
		ORDER BY m.updated_at LIMIT $2`, fmt.Sprintf("%d seconds", int(stuckAfter.Seconds())), limit).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var m domain.StalledMessage
				if err := rows.Scan(&m.SubscriptionID, &m.ID, &m.QueuedAt); err != nil {
					return err
				}
				out = append(out, m)
			}
			return rows.Err()
		})
	if err := s.read(ctx, b); err != nil {
		return nil, fmt.Errorf("find stalled: %w", err)
	}
	return out, nil
}

// Reconcile requeues a stalled message, or fails it when it is older than
// the delivery age limit, with an event either way.
func (s *Store) Reconcile(ctx context.Context, m domain.StalledMessage, maxAge time.Duration) error {
	return s.inTx(ctx, tenantScope(m.SubscriptionID), func(tx pgx.Tx) error {
		var state string
		if err := tx.QueryRow(ctx, `SELECT state FROM messages WHERE subscription_id = $1 AND id = $2 FOR UPDATE`, m.SubscriptionID, m.ID).Scan(&state); err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
		if state != string(domain.StateQueued) && state != string(domain.StateSending) {
			return nil // settled meanwhile
		}
		if time.Since(m.QueuedAt) > maxAge {
			if _, err := tx.Exec(ctx, `UPDATE message_recipients SET status = 'failed', last_reply = 'delivery gave up: no worker finished it in time', updated_at = now()
				WHERE subscription_id = $1 AND message_id = $2 AND status IN ('pending', 'deferred')`, m.SubscriptionID, m.ID); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE messages SET state = CASE WHEN EXISTS (SELECT 1 FROM message_recipients r
					WHERE r.subscription_id = $1 AND r.message_id = $2 AND r.status = 'delivered') THEN 'partially_sent' ELSE 'failed' END,
				last_error = 'the delivery job was lost and the message is past its delivery age', version = version + 1, updated_at = now(), finished_at = now()
				WHERE subscription_id = $1 AND id = $2`, m.SubscriptionID, m.ID); err != nil {
				return err
			}
			return s.writeEvents(ctx, tx, m.SubscriptionID, m.ID, event{kind: "failed", detail: "reconciler: delivery job lost, past the delivery age"})
		}
		if _, err := tx.Exec(ctx, `UPDATE messages SET state = 'queued', version = version + 1, updated_at = now() WHERE subscription_id = $1 AND id = $2`, m.SubscriptionID, m.ID); err != nil {
			return err
		}
		if err := s.enqueue(ctx, tx, m.SubscriptionID, m.ID, time.Time{}); err != nil {
			return err
		}
		return s.writeEvents(ctx, tx, m.SubscriptionID, m.ID, event{kind: "queued", detail: "reconciler: delivery job was lost; requeued"})
	})
}
