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

// LoadDelivery reads, in one scoped round trip and without locks, a message
// with its recipients and everything its delivery depends on: the tenant's
// status, sandbox and rate settings, whether the sender is still authorised,
// the DKIM key and the suppressed recipients. countSending also counts the
// tenant's deliveries in flight (for a concurrency cap). A vanished message
// is ErrNotFound. Nothing is written: the attempt journal does that once the
// worker knows what it will send.
func (s *Store) LoadDelivery(ctx context.Context, tenant, id uuid.UUID, countSending bool) (*domain.Message, domain.DeliveryContext, error) {
	var (
		msg *domain.Message
		dc  = domain.DeliveryContext{Suppressed: map[string]bool{}}
	)
	b := newBatch(tenantScope(tenant))
	queueMessage(b, tenant, id, &msg)
	b.Queue(`
		SELECT s.status, s.sandbox, s.max_send_rate,
		       EXISTS (SELECT 1 FROM sender_domains d WHERE d.subscription_id = s.id
		               AND d.domain = lower(split_part(m.sender_email, '@', 2)) AND d.verified_at IS NOT NULL),
		       m.sender_account_id IS NULL OR EXISTS (SELECT 1 FROM accounts a WHERE a.subscription_id = s.id AND a.id = m.sender_account_id),
		       CASE WHEN $3 THEN (SELECT count(*) FROM messages x WHERE x.subscription_id = s.id AND x.state = 'sending') ELSE 0 END
		FROM subscriptions s JOIN messages m ON m.subscription_id = s.id AND m.id = $2
		WHERE s.id = $1`, tenant, id, countSending).
		QueryRow(func(row pgx.Row) error {
			err := row.Scan(&dc.TenantStatus, &dc.Sandbox, &dc.MaxSendRate, &dc.SenderDomainVerified, &dc.SenderAccountExists, &dc.Sending)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil // the message is gone; queueMessage reports it
			}
			return err
		})
	b.Queue(`
		SELECT k.domain, k.selector, k.algorithm, k.private_key
		FROM dkim_keys k JOIN messages m ON m.subscription_id = k.subscription_id AND m.id = $2
		WHERE k.subscription_id = $1 AND k.domain = lower(split_part(m.sender_email, '@', 2))`, tenant, id).
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
	b.Queue(`
		SELECT s.email FROM suppressions s JOIN message_recipients r
		  ON r.subscription_id = s.subscription_id AND lower(r.email) = s.email
		WHERE s.subscription_id = $1 AND r.message_id = $2`, tenant, id).
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
	if err := s.read(ctx, b); err != nil {
		if errors.Is(err, domain.ErrNotFound) {
			return nil, dc, domain.ErrNotFound
		}
		return nil, dc, fmt.Errorf("load delivery: %w", err)
	}
	return msg, dc, nil
}

// JournalAttempt is the attempt journal: in one transaction it marks the
// message sending and the recipients in journal as handed to the relay
// (with the possible-duplicate flag the domain decided), before the first
// byte of their data goes out. It fails with a conflict when the message can
// no longer be delivered (cancelled or settled meanwhile), so nothing is sent.
func (s *Store) JournalAttempt(ctx context.Context, tenant, id uuid.UUID, attempt int, journal []domain.Recipient) error {
	return s.commits.write(ctx, tenant, func(b *pgx.Batch, hooks *[]domain.WebhookJob) {
		queueJournal(b, tenant, id, attempt, journal, hooks)
	})
}

// queueJournal queues the attempt journal's statements on b.
func queueJournal(b *pgx.Batch, tenant, id uuid.UUID, attempt int, journal []domain.Recipient, hooks *[]domain.WebhookJob) {
	b.Queue(`UPDATE messages SET state = 'sending', send_slot = NULL, version = version + 1, updated_at = now()
		WHERE subscription_id = $1 AND id = $2 AND state IN ('queued', 'sending') RETURNING true`, tenant, id).
		QueryRow(func(row pgx.Row) error {
			var updated bool
			err := row.Scan(&updated)
			if errors.Is(err, pgx.ErrNoRows) {
				return &domain.Error{Code: domain.CodeConflict, Message: "the message is no longer waiting for delivery"}
			}
			return err
		})
	positions := make([]int32, len(journal))
	flags := make([]bool, len(journal))
	var since time.Time
	for i, r := range journal {
		positions[i], flags[i], since = int32(r.Position), r.PossibleDuplicate, r.InFlightSince
	}
	if len(journal) > 0 {
		b.Queue(`UPDATE message_recipients r SET in_flight_since = $3, possible_duplicate = r.possible_duplicate OR j.flag, updated_at = now()
			FROM unnest($4::int[], $5::bool[]) AS j(position, flag)
			WHERE r.subscription_id = $1 AND r.message_id = $2 AND r.position = j.position`,
			tenant, id, since, positions, flags)
	}
	queueEvents(b, tenant, id, []event{{kind: "attempt", detail: fmt.Sprintf("attempt %d: %d recipients handed to the relay", attempt, len(journal))}}, hooks)
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
		if errors.Is(err, pgx.ErrNoRows) {
			return domain.ErrNotFound
		}
		return err
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("reserve send slot: %w", err)
	}
	return slot, nil
}

// RecordAttempt writes one attempt's outcome: the changed recipients (their
// journal marks cleared), the message state and the events, then runs inTx
// in the same transaction when it is not nil.
func (s *Store) RecordAttempt(ctx context.Context, tenant uuid.UUID, rec domain.AttemptRecord, inTx func(ctx context.Context, tx pgx.Tx) error) error {
	if inTx == nil {
		return s.commits.write(ctx, tenant, func(b *pgx.Batch, hooks *[]domain.WebhookJob) {
			queueAttempt(b, tenant, rec, hooks)
		})
	}
	return s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		if err := s.writeAttempt(ctx, tx, tenant, rec); err != nil {
			return err
		}
		return inTx(ctx, tx)
	})
}

// writeAttempt writes an attempt record inside tx.
func (s *Store) writeAttempt(ctx context.Context, tx pgx.Tx, tenant uuid.UUID, rec domain.AttemptRecord) error {
	b := &pgx.Batch{}
	var hooks []domain.WebhookJob
	queueAttempt(b, tenant, rec, &hooks)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	return s.flushWebhooks(ctx, tx, tenant, hooks)
}

// queueAttempt queues an attempt record's statements on b.
func queueAttempt(b *pgx.Batch, tenant uuid.UUID, rec domain.AttemptRecord, hooks *[]domain.WebhookJob) {
	events := make([]event, 0, len(rec.Changed)+1)
	if n := len(rec.Changed); n > 0 {
		// One statement for every changed recipient.
		var (
			positions, attempts, codes = make([]int32, n), make([]int32, n), make([]int32, n)
			statuses, replies          = make([]string, n), make([]string, n)
			dups                       = make([]bool, n)
			inFlight                   = make([]*time.Time, n)
		)
		for i, r := range rec.Changed {
			positions[i], attempts[i], codes[i] = int32(r.Position), int32(r.Attempts), int32(r.LastCode)
			statuses[i], replies[i], dups[i], inFlight[i] = string(r.Status), r.LastReply, r.PossibleDuplicate, nullTime(r.InFlightSince)
			detail := r.LastReply
			if r.PossibleDuplicate {
				detail += " (possible duplicate: an earlier attempt may have delivered it)"
			}
			events = append(events, event{kind: string(r.Status), recipient: r.Email, code: r.LastCode, detail: detail})
		}
		b.Queue(`UPDATE message_recipients r SET status = c.status, attempts = c.attempts, last_code = c.code, last_reply = c.reply,
				possible_duplicate = c.dup, in_flight_since = c.in_flight, updated_at = now()
			FROM unnest($3::int[], $4::text[], $5::int[], $6::int[], $7::text[], $8::bool[], $9::timestamptz[])
			     AS c(position, status, attempts, code, reply, dup, in_flight)
			WHERE r.subscription_id = $1 AND r.message_id = $2 AND r.position = c.position`,
			tenant, rec.MessageID, positions, statuses, attempts, codes, replies, dups, inFlight)
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
	queueEvents(b, tenant, rec.MessageID, events, hooks)
	if len(rec.MailboxAccounts) > 0 {
		b.Queue(`INSERT INTO mailbox_entries (subscription_id, account_id, message_id)
			SELECT $1, a, $2 FROM unnest($3::uuid[]) AS a ON CONFLICT DO NOTHING`,
			tenant, rec.MessageID, rec.MailboxAccounts)
	}
}
