package postgres

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

// StartDelivery marks a queued message as sending and returns it with its
// recipients. A message already in a final state is returned unchanged so the
// worker can finish its job without sending; a vanished one is ErrNotFound.
func (s *Store) StartDelivery(ctx context.Context, tenant, id uuid.UUID) (*domain.Message, error) {
	var msg *domain.Message
	err := s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		var err error
		msg, err = getMessage(ctx, tx, tenant, id, true)
		if err != nil {
			return err
		}
		if msg.State != domain.StateQueued && msg.State != domain.StateSending {
			return nil
		}
		b := &pgx.Batch{}
		b.Queue(`UPDATE messages SET state = 'sending', version = version + 1, updated_at = now()
			WHERE subscription_id = $1 AND id = $2 RETURNING version`, tenant, id).
			QueryRow(func(row pgx.Row) error { return row.Scan(&msg.Version) })
		queueEvents(b, tenant, id, []event{{kind: "attempt"}})
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("mark sending: %w", err)
		}
		msg.State = domain.StateSending
		return nil
	})
	if err != nil {
		return nil, err
	}
	return msg, nil
}

// RecordAttempt writes one attempt's outcome: the changed recipients, the
// message state and the events, then runs inTx (the job's completion) in the
// same transaction so state and job can't disagree.
func (s *Store) RecordAttempt(ctx context.Context, tenant uuid.UUID, rec domain.AttemptRecord, inTx func(ctx context.Context, tx pgx.Tx) error) error {
	return s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		events := make([]event, 0, len(rec.Changed)+1)
		for _, r := range rec.Changed {
			b.Queue(`UPDATE message_recipients SET status = $4, attempts = $5, last_code = $6, last_reply = $7, updated_at = now()
				WHERE subscription_id = $1 AND message_id = $2 AND position = $3`,
				tenant, rec.MessageID, r.Position, string(r.Status), r.Attempts, r.LastCode, r.LastReply)
			events = append(events, event{kind: string(r.Status), recipient: r.Email, code: r.LastCode, detail: r.LastReply})
		}
		if rec.State.Final() {
			events = append(events, event{kind: string(rec.State), detail: rec.LastError})
		}
		b.Queue(`UPDATE messages SET state = $3, last_error = $4, version = version + 1, updated_at = now(),
				finished_at = CASE WHEN $5 THEN now() END
			WHERE subscription_id = $1 AND id = $2`,
			tenant, rec.MessageID, string(rec.State), rec.LastError, rec.State.Final())
		queueEvents(b, tenant, rec.MessageID, events)
		if len(rec.MailboxAccounts) > 0 {
			b.Queue(`INSERT INTO mailbox_entries (subscription_id, account_id, message_id)
				SELECT $1, a, $2 FROM unnest($3::uuid[]) AS a ON CONFLICT DO NOTHING`,
				tenant, rec.MessageID, rec.MailboxAccounts)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("record attempt: %w", err)
		}
		if inTx != nil {
			return inTx(ctx, tx)
		}
		return nil
	})
}
