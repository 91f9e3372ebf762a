package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

// StartDelivery marks a queued message as sending and returns it with its
// recipients. A message already in a final state is returned unchanged so the
// worker can finish its job without sending; a vanished one is ErrNotFound.
func (s *Store) StartDelivery(ctx context.Context, tenant, id uuid.UUID) (*domain.Message, domain.DeliveryContext, error) {
	var (
		msg *domain.Message
		dc  = domain.DeliveryContext{Suppressed: map[string]bool{}}
	)
	err := s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		var err error
		msg, err = getMessage(ctx, tx, tenant, id, true)
		if err != nil {
			return err
		}
		if msg.State != domain.StateQueued && msg.State != domain.StateSending {
			return nil
		}
		emails := make([]string, 0, len(msg.Recipients))
		for _, r := range msg.Recipients {
			emails = append(emails, strings.ToLower(r.Email))
		}
		b := &pgx.Batch{}
		b.Queue(`SELECT sandbox FROM subscriptions WHERE id = $1`, tenant).
			QueryRow(func(row pgx.Row) error { return row.Scan(&dc.Sandbox) })
		b.Queue(`SELECT domain, selector, algorithm, private_key FROM dkim_keys WHERE subscription_id = $1 AND domain = $2`,
			tenant, domain.DomainOf(msg.SenderEmail)).
			Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var k domain.DKIMKey
					if err := rows.Scan(&k.Domain, &k.Selector, &k.Algorithm, &k.PrivateKey); err != nil {
						return err
					}
					dc.DKIM = &k
				}
				return rows.Err()
			})
		b.Queue(`SELECT email FROM suppressions WHERE subscription_id = $1 AND email = ANY($2)`, tenant, emails).
			Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var e string
					if err := rows.Scan(&e); err != nil {
						return err
					}
					dc.Suppressed[e] = true
				}
				return rows.Err()
			})
		b.Queue(`UPDATE messages SET state = 'sending', version = version + 1, updated_at = now()
			WHERE subscription_id = $1 AND id = $2 RETURNING version`, tenant, id).
			QueryRow(func(row pgx.Row) error { return row.Scan(&msg.Version) })
		var hooks []domain.WebhookJob
		queueEvents(b, tenant, id, []event{{kind: "attempt"}}, &hooks)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("mark sending: %w", err)
		}
		msg.State = domain.StateSending
		return s.flushWebhooks(ctx, tx, tenant, hooks)
	})
	if err != nil {
		return nil, dc, err
	}
	return msg, dc, nil
}

// RecordAttempt writes one attempt's outcome: the changed recipients, the
// message state and the events, then runs inTx (the job's completion) in the
// same transaction so state and job can't disagree.
func (s *Store) RecordAttempt(ctx context.Context, tenant uuid.UUID, rec domain.AttemptRecord, inTx func(ctx context.Context, tx pgx.Tx) error) error {
	return s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		events := make([]event, 0, len(rec.Changed)+1)
		for _, r := range rec.Changed {
			b.Queue(`UPDATE message_recipients SET status = $4, attempts = $5, last_code = $6, last_reply = $7,
					possible_duplicate = $8, updated_at = now()
				WHERE subscription_id = $1 AND message_id = $2 AND position = $3`,
				tenant, rec.MessageID, r.Position, string(r.Status), r.Attempts, r.LastCode, r.LastReply, r.PossibleDuplicate)
			detail := r.LastReply
			if r.PossibleDuplicate {
				detail += " (possible duplicate: the connection was lost after the message was sent)"
			}
			events = append(events, event{kind: string(r.Status), recipient: r.Email, code: r.LastCode, detail: detail})
		}
		for _, sup := range rec.Suppress {
			b.Queue(`INSERT INTO suppressions (subscription_id, email, reason, source, smtp_code) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT DO NOTHING`, tenant, sup.Email, sup.Reason, sup.Source, sup.SMTPCode)
			events = append(events, event{kind: "suppression.added", recipient: sup.Email, code: sup.SMTPCode, detail: sup.Reason})
		}
		if rec.State.Final() {
			events = append(events, event{kind: string(rec.State), detail: rec.LastError})
		}
		b.Queue(`UPDATE messages SET state = $3, last_error = $4, version = version + 1, updated_at = now(),
				finished_at = CASE WHEN $5 THEN now() END
			WHERE subscription_id = $1 AND id = $2`,
			tenant, rec.MessageID, string(rec.State), rec.LastError, rec.State.Final())
		var hooks []domain.WebhookJob
		queueEvents(b, tenant, rec.MessageID, events, &hooks)
		if len(rec.MailboxAccounts) > 0 {
			b.Queue(`INSERT INTO mailbox_entries (subscription_id, account_id, message_id)
				SELECT $1, a, $2 FROM unnest($3::uuid[]) AS a ON CONFLICT DO NOTHING`,
				tenant, rec.MessageID, rec.MailboxAccounts)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("record attempt: %w", err)
		}
		if err := s.flushWebhooks(ctx, tx, tenant, hooks); err != nil {
			return err
		}
		if inTx != nil {
			return inTx(ctx, tx)
		}
		return nil
	})
}
