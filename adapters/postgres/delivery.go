package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

// LoadDelivery reads, in one round trip shared with concurrent deliveries
// (see delivery_load.go) and without locks, a message with its recipients
// and everything its delivery depends on: the tenant's
// status, sandbox and rate settings, whether the sender is still authorised,
// the DKIM key and the suppressed recipients. countSending also counts the
// tenant's deliveries in flight (for a concurrency cap). A vanished message
// is ErrNotFound. Nothing is written: the attempt journal does that once the
// worker knows what it will send.
func (s *Store) LoadDelivery(ctx context.Context, tenant, id uuid.UUID, countSending bool) (*domain.Message, domain.DeliveryContext, error) {
	r := &loadRequest{tenant: tenant, id: id, countSending: countSending}
	if err := s.loads.submit(ctx, r); err != nil {
		return nil, r.dc, err
	}
	return r.msg, r.dc, nil
}

// JournalAttempt is the attempt journal: in one transaction it marks the
// message sending and the recipients in journal as handed to the relay
// (with the possible-duplicate flag the domain decided), before the first
// byte of their data goes out. It fails with a conflict when the message can
// no longer be delivered (cancelled or settled meanwhile), so nothing is sent.
func (s *Store) JournalAttempt(ctx context.Context, tenant, id uuid.UUID, attempt int, journal []domain.Recipient) error {
	return s.journals.submit(ctx, &groupWrite{journal: &journalWrite{tenant: tenant, id: id, attempt: attempt, journal: journal}})
}

// ReserveSendSlot takes the tenant's next send slot under its maximum rate
// (a GCRA shared by every worker through the subscription row) and keeps it
// on the message, so a job put back to wait for it doesn't take another.
func (s *Store) ReserveSendSlot(ctx context.Context, tenant, id uuid.UUID) (time.Time, error) {
	var slot time.Time
	// Operator scope: tenants may read their subscription row, not write it.
	err := s.inTx(ctx, operatorScope, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			WITH reserved AS (
				UPDATE subscriptions SET send_tat = greatest(coalesce(send_tat, now()), now()) + make_interval(secs => 1.0 / max_send_rate)
				WHERE id = $1 AND max_send_rate > 0
				RETURNING send_tat - make_interval(secs => 1.0 / max_send_rate) AS slot
			)
			UPDATE messages SET send_slot = (SELECT slot FROM reserved)
			WHERE subscription_id = $1 AND id = $2 RETURNING coalesce(send_slot, now())`, tenant, id).Scan(&slot)
		return err
	})
	if err != nil {
		return time.Time{}, interpretError(err, "reserve send slot")
	}
	return slot, nil
}

// RecordAttempt writes one attempt's outcome: the changed recipients (their
// journal marks cleared), the message state and the events, and completes
// the delivery job completeJob (when not 0) in the same transaction, shared
// with the outcomes of concurrent deliveries (group commit).
func (s *Store) RecordAttempt(ctx context.Context, tenant uuid.UUID, rec domain.AttemptRecord, completeJob int64) error {
	return s.outcomes.submit(ctx, &groupWrite{outcome: &outcomeWrite{tenant: tenant, rec: rec}, completeJob: completeJob})
}

// writeAttempt writes an attempt record inside tx.
func (s *Store) writeAttempt(ctx context.Context, tx pgx.Tx, tenant uuid.UUID, rec domain.AttemptRecord) error {
	var (
		hooks []tenantHook
		b     = &pgx.Batch{}
	)
	written := map[uuid.UUID]bool{}
	queueOutcomes(b, []outcomeWrite{{tenant: tenant, rec: rec}}, written, &hooks)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	if !written[rec.MessageID] {
		return &domain.Error{Code: domain.CodeVersionMismatch, Message: "the message changed meanwhile; nothing was written"}
	}
	return s.flushTenantHooks(ctx, tx, hooks)
}
