package postgres

import (
	"context"
	"errors"
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
			// A running job means a worker already has the message.
			if jobState != nil && *jobState == "running" {
				return &domain.Error{Code: domain.CodeConflict, Message: "delivery has started; the message can't be cancelled"}
			}
			if jobState != nil && s.enqueuer != nil {
				if err := s.enqueuer.CancelJobTx(ctx, tx, *jobID); err != nil {
					return fmt.Errorf("cancel delivery job: %w", err)
				}
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

// RetryMessage requeues a failed or partially sent message: the recipients
// the filter takes (failed ones, and bounced ones when f.Bounced) go back to
// pending, or to suppressed when their address is suppressed now;
// delivered and suppressed ones stay.
func (s *Store) RetryMessage(ctx context.Context, tenant, id uuid.UUID, f domain.RetryFilter) (*domain.Message, error) {
	err := s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		return s.retryInTx(ctx, tx, tenant, id, f)
	})
	if err != nil {
		return nil, err
	}
	return s.GetMessage(ctx, tenant, id)
}

func (s *Store) retryInTx(ctx context.Context, tx pgx.Tx, tenant, id uuid.UUID, f domain.RetryFilter) error {
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
	// The suppression list is checked now, not only at delivery: an address
	// still suppressed says so in the answer instead of going back to pending.
	rows, err := tx.Query(ctx, `
		UPDATE message_recipients r SET updated_at = now(),
			status = CASE WHEN EXISTS (SELECT 1 FROM suppressions x WHERE x.subscription_id = r.subscription_id AND x.email = lower(r.email))
			              THEN 'suppressed' ELSE 'pending' END,
			last_reply = CASE WHEN EXISTS (SELECT 1 FROM suppressions x WHERE x.subscription_id = r.subscription_id AND x.email = lower(r.email))
			              THEN 'not retried: the address is on the suppression list' ELSE r.last_reply END
		WHERE r.subscription_id = $1 AND r.message_id = $2 AND r.status = ANY($3)
		  AND ($4 = 0 OR r.last_code = $4)
		  AND ($5::timestamptz IS NULL OR r.updated_at >= $5) AND ($6::timestamptz IS NULL OR r.updated_at < $6)
		RETURNING r.status, r.email`, tenant, id, f.RecipientStatuses(), f.ReplyCode, nullTime(f.RepliedAfter), nullTime(f.RepliedBefore))
	if err != nil {
		return fmt.Errorf("retry recipients: %w", err)
	}
	var pending int
	var events []event
	for rows.Next() {
		var status, email string
		if err := rows.Scan(&status, &email); err != nil {
			rows.Close()
			return fmt.Errorf("retry recipients: %w", err)
		}
		if status == string(domain.RecipientSuppressed) {
			events = append(events, event{kind: "suppressed", recipient: email, detail: "not retried: the address is on the suppression list"})
			continue
		}
		pending++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("retry recipients: %w", err)
	}
	if pending == 0 {
		what := "failed"
		if f.Bounced {
			what = "failed or bounced"
		}
		return &domain.Error{Code: domain.CodeConflict, Message: "no recipient is left to retry: none is " + what + " (and matches the filter) and off the suppression list"}
	}
	if _, err := tx.Exec(ctx, `UPDATE messages SET state = 'queued', last_error = '', version = version + 1,
			updated_at = now(), queued_at = now(), finished_at = NULL
		WHERE subscription_id = $1 AND id = $2`, tenant, id); err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	if err := s.enqueue(ctx, tx, tenant, id, time.Time{}); err != nil {
		return err
	}
	return s.writeEvents(ctx, tx, tenant, id, append(events, event{kind: "queued", detail: "retry requested"})...)
}

// retryCandidates selects up to f.Limit messages of the filter, with a
// recipient it would requeue; tenant uuid.Nil selects across tenants.
const retryCandidates = `
	SELECT m.subscription_id, m.id FROM messages m
	WHERE ($1::uuid IS NULL OR m.subscription_id = $1) AND m.state = ANY($2)
	  AND ($3::timestamptz IS NULL OR m.created_date >= $3) AND ($4::timestamptz IS NULL OR m.created_date < $4)
	  AND EXISTS (SELECT 1 FROM message_recipients r
	              WHERE r.subscription_id = m.subscription_id AND r.message_id = m.id AND r.status = ANY($5)
	                AND ($6 = 0 OR r.last_code = $6)
	                AND ($7::timestamptz IS NULL OR r.updated_at >= $7) AND ($8::timestamptz IS NULL OR r.updated_at < $8))
	ORDER BY m.created_date, m.id LIMIT $9`

func retryArgs(tenant uuid.UUID, f domain.RetryFilter) []any {
	states := []string{string(domain.StateFailed), string(domain.StatePartiallySent)}
	if f.State != "" {
		states = []string{string(f.State)}
	}
	return []any{nullUUID(tenant), states, nullTime(f.CreatedAfter), nullTime(f.CreatedBefore), f.RecipientStatuses(),
		f.ReplyCode, nullTime(f.RepliedAfter), nullTime(f.RepliedBefore), f.Limit}
}

// RetryMessages requeues, in one transaction, up to f.Limit of the tenant's
// messages matching the filter, and returns their ids. A message whose
// recipients all turn out suppressed is left as it is.
func (s *Store) RetryMessages(ctx context.Context, tenant uuid.UUID, f domain.RetryFilter) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	err := s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		var err error
		ids, err = s.retryEach(ctx, tx, tenant, f)
		return err
	})
	return ids, err
}

func (s *Store) retryEach(ctx context.Context, tx pgx.Tx, tenant uuid.UUID, f domain.RetryFilter) ([]uuid.UUID, error) {
	rows, err := tx.Query(ctx, retryCandidates, retryArgs(tenant, f)...)
	if err != nil {
		return nil, fmt.Errorf("select retries: %w", err)
	}
	type candidate struct{ tenant, id uuid.UUID }
	candidates, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (candidate, error) {
		var c candidate
		return c, row.Scan(&c.tenant, &c.id)
	})
	if err != nil {
		return nil, err
	}
	var ids []uuid.UUID
	for _, c := range candidates {
		// A savepoint per message, so one left alone (every recipient still
		// suppressed) doesn't undo the others.
		err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error { return s.retryInTx(ctx, sp, c.tenant, c.id, f) })
		if domain.ErrorCodeOf(err) == domain.CodeConflict {
			continue
		}
		if err != nil {
			return nil, err
		}
		ids = append(ids, c.id)
	}
	return ids, nil
}

// RetryAcrossTenants is the operator's bulk retry after an incident: each
// tenant's matching messages are requeued in that tenant's own transaction
// (row-level security applies to each), up to f.Limit in all.
func (s *Store) RetryAcrossTenants(ctx context.Context, f domain.RetryFilter) (map[uuid.UUID][]uuid.UUID, error) {
	var tenants []uuid.UUID
	b := newBatch(operatorScope)
	b.Queue(`SELECT DISTINCT c.subscription_id FROM (`+retryCandidates+`) c`, retryArgs(uuid.Nil, f)...).
		Query(func(rows pgx.Rows) error {
			var err error
			tenants, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
			return err
		})
	if err := s.read(ctx, b); err != nil {
		return nil, fmt.Errorf("find retries: %w", err)
	}
	out := map[uuid.UUID][]uuid.UUID{}
	left := f.Limit
	for _, tenant := range tenants {
		if left <= 0 {
			break
		}
		tf := f
		tf.Limit = left
		ids, err := s.RetryMessages(ctx, tenant, tf)
		if err != nil {
			return out, fmt.Errorf("retry for tenant %s: %w", tenant, err)
		}
		if len(ids) > 0 {
			out[tenant] = ids
			left -= len(ids)
		}
	}
	return out, nil
}

// FindStalled lists, across tenants (operator), the messages waiting for
// delivery that the reconciler must act on (domain.DecideStall): a sending
// message whose job is not running, or a queued or sending one whose job is
// gone or finished. A message is only considered once it has been unsettled
// for grace, so a write in progress is never mistaken for a stall.
func (s *Store) FindStalled(ctx context.Context, grace time.Duration, limit int) ([]domain.StalledMessage, error) {
	var out []domain.StalledMessage
	b := newBatch(operatorScope)
	b.Queue(`
		SELECT m.subscription_id, m.id, coalesce(m.queued_at, m.created_date)
		FROM messages m LEFT JOIN river_job j ON j.id = m.job_id
		WHERE m.state IN ('queued', 'sending') AND m.updated_at < now() - $1::interval
		  AND (j.id IS NULL OR j.state IN ('completed', 'cancelled', 'discarded')
		       OR (m.state = 'sending' AND j.state <> 'running'))
		ORDER BY m.updated_at LIMIT $2`, fmt.Sprintf("%d milliseconds", grace.Milliseconds()), limit).
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

// Reconcile applies domain.DecideStall to one message under its row lock,
// re-reading its job there so a worker that picked it up meanwhile wins:
// an interrupted attempt goes back to queued, a message whose job is gone is
// requeued with a new job (never beside a live one), or failed when it is
// past the delivery age. It reports what it did.
func (s *Store) Reconcile(ctx context.Context, m domain.StalledMessage, maxAge time.Duration) (domain.StallAction, error) {
	action := domain.StallNone
	err := s.inTx(ctx, tenantScope(m.SubscriptionID), func(tx pgx.Tx) error {
		msg, err := getMessage(ctx, tx, m.SubscriptionID, m.ID, true)
		if errors.Is(err, domain.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
		var (
			jobID    *int64
			jobState *string
		)
		if err := tx.QueryRow(ctx, `SELECT m.job_id, j.state::text FROM messages m LEFT JOIN river_job j ON j.id = m.job_id
			WHERE m.subscription_id = $1 AND m.id = $2`, m.SubscriptionID, m.ID).Scan(&jobID, &jobState); err != nil {
			return fmt.Errorf("reconcile: read job: %w", err)
		}
		job := domain.JobStatus{Exists: jobState != nil}
		if jobState != nil {
			job.State = *jobState
		}
		action = domain.DecideStall(msg.State, job, msg.QueuedAt, time.Now(), maxAge)
		switch action {
		case domain.StallReset:
			if _, err := tx.Exec(ctx, `UPDATE messages SET state = 'queued', version = version + 1, updated_at = now()
				WHERE subscription_id = $1 AND id = $2`, m.SubscriptionID, m.ID); err != nil {
				return err
			}
			return s.writeEvents(ctx, tx, m.SubscriptionID, m.ID, event{kind: "queued", detail: "reconciler: the attempt was interrupted; waiting for its retry"})
		case domain.StallGiveUp:
			rec := msg.RefuseAll("delivery gave up: the delivery job was lost and the message is past its delivery age")
			return s.writeAttempt(ctx, tx, m.SubscriptionID, rec)
		case domain.StallRequeue:
			if _, err := tx.Exec(ctx, `UPDATE messages SET state = 'queued', version = version + 1, updated_at = now() WHERE subscription_id = $1 AND id = $2`, m.SubscriptionID, m.ID); err != nil {
				return err
			}
			if err := s.enqueue(ctx, tx, m.SubscriptionID, m.ID, time.Time{}); err != nil {
				return err
			}
			return s.writeEvents(ctx, tx, m.SubscriptionID, m.ID, event{kind: "queued", detail: "reconciler: the delivery job was lost; requeued"})
		}
		return nil
	})
	return action, err
}

// ReleaseHeld makes a reinstated tenant's held deliveries available at once
// instead of at their next hold check; scheduled sends keep their time.
func (s *Store) ReleaseHeld(ctx context.Context, tenant uuid.UUID) (int, error) {
	released := 0
	err := s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT j.id FROM messages m JOIN river_job j ON j.id = m.job_id
			WHERE m.subscription_id = $1 AND m.state = 'queued' AND j.state = 'scheduled'
			  AND (m.send_at IS NULL OR m.send_at <= now()) AND m.send_slot IS NULL`, tenant)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := s.enqueuer.RetryJobTx(ctx, tx, id); err != nil {
				return fmt.Errorf("release held job %d: %w", id, err)
			}
		}
		released = len(ids)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("release held deliveries: %w", err)
	}
	return released, nil
}
