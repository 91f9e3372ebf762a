package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

// ReceiveInbound stores what the inbound listener accepted together with
// its processing job, before the listener answers 250. The tenant isn't
// known yet, so the row is written in the operator scope.
func (s *Store) ReceiveInbound(ctx context.Context, mail domain.InboundMail) error {
	if s.enqueuer == nil {
		return errors.New("receive inbound: this store has no job enqueuer")
	}
	return s.inTx(ctx, operatorScope, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO inbound_messages (id, received_at, remote_addr, helo, mail_from, rcpt_to, size_bytes, raw)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			mail.ID, mail.ReceivedAt, mail.RemoteAddr, mail.Helo, mail.MailFrom, mail.RcptTo, len(mail.Raw), mail.Raw)
		if err != nil {
			return fmt.Errorf("insert inbound message: %w", err)
		}
		if err := s.enqueuer.EnqueueInboundTx(ctx, tx, mail.ID); err != nil {
			return fmt.Errorf("enqueue inbound processing: %w", err)
		}
		return nil
	})
}

// LoadInbound reads a stored inbound message and its status.
func (s *Store) LoadInbound(ctx context.Context, id uuid.UUID) (domain.InboundMail, string, error) {
	var (
		m      domain.InboundMail
		status string
	)
	err := s.inTx(ctx, operatorScope, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT id, received_at, remote_addr, helo, mail_from, rcpt_to, raw, status FROM inbound_messages WHERE id = $1`, id).
			Scan(&m.ID, &m.ReceivedAt, &m.RemoteAddr, &m.Helo, &m.MailFrom, &m.RcptTo, &m.Raw, &status)
	})
	if err != nil {
		return m, "", interpretError(err, "load inbound message")
	}
	return m, status, nil
}

// MessageTenant finds the tenant of a message by its id (ids are unique
// across tenants), for a token that names only the message.
func (s *Store) MessageTenant(ctx context.Context, id uuid.UUID) (uuid.UUID, error) {
	var tenant uuid.UUID
	err := s.inTx(ctx, operatorScope, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT subscription_id FROM messages WHERE id = $1`, id).Scan(&tenant)
	})
	if err != nil {
		return uuid.Nil, interpretError(err, "find message")
	}
	return tenant, nil
}

// MessageByHeaderID finds the one message whose Message-ID header is
// headerID; none, or several (which one would be a guess), is ErrNotFound.
func (s *Store) MessageByHeaderID(ctx context.Context, headerID string) (tenant, id uuid.UUID, err error) {
	err = s.inTx(ctx, operatorScope, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT subscription_id, id FROM messages WHERE message_id = $1 AND state <> 'received' LIMIT 2`, headerID)
		if err != nil {
			return err
		}
		n := 0
		for rows.Next() {
			n++
			if err := rows.Scan(&tenant, &id); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if n != 1 {
			return domain.ErrNotFound
		}
		return nil
	})
	if errors.Is(err, domain.ErrNotFound) {
		return uuid.Nil, uuid.Nil, err
	}
	if err != nil {
		return uuid.Nil, uuid.Nil, fmt.Errorf("find message by Message-ID: %w", err)
	}
	return tenant, id, nil
}

// ApplyInbound settles an inbound message against the message it names, in
// one transaction: the message is loaded FOR UPDATE (so reports about the
// same message are applied one after the other, each on the last one's
// result), decide says what changes, and everything it decided is written
// with the inbound row's status. A message that no longer exists gets
// decide(nil).
func (s *Store) ApplyInbound(ctx context.Context, inboundID, tenant, messageID uuid.UUID, decide func(*domain.Message) domain.InboundOutcome) error {
	return s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		msg, err := getMessage(ctx, tx, tenant, messageID, true)
		if errors.Is(err, domain.ErrNotFound) {
			msg = nil
		} else if err != nil {
			return err
		}
		out := decide(msg)
		out.InboundID = inboundID
		if out.Status == domain.InboundProcessed {
			if err := s.writeInboundEffects(ctx, tx, out); err != nil {
				return err
			}
		}
		return markInbound(ctx, tx, out)
	})
}

// MarkInbound records the outcome of an inbound message that names no
// message (unknown or forged token, unparsable content).
func (s *Store) MarkInbound(ctx context.Context, out domain.InboundOutcome) error {
	return s.inTx(ctx, operatorScope, func(tx pgx.Tx) error { return markInbound(ctx, tx, out) })
}

// markInbound writes the inbound row's outcome. The row was written before
// its tenant was known, so this switches the transaction to the operator
// scope (it is transaction-local, like every scope).
func markInbound(ctx context.Context, tx pgx.Tx, out domain.InboundOutcome) error {
	if _, err := tx.Exec(ctx, operatorScope.setting()); err != nil {
		return fmt.Errorf("mark inbound: %w", err)
	}
	_, err := tx.Exec(ctx, `UPDATE inbound_messages SET status = $2, kind = $3, subscription_id = $4, message_id = $5, detail = $6, processed_at = now()
		WHERE id = $1`, out.InboundID, out.Status, string(out.Kind), nullUUID(out.Tenant), nullUUID(out.MessageID), out.Detail)
	if err != nil {
		return fmt.Errorf("mark inbound: %w", err)
	}
	return nil
}

func (s *Store) writeInboundEffects(ctx context.Context, tx pgx.Tx, out domain.InboundOutcome) error {
	b := &pgx.Batch{}
	var hooks []domain.WebhookJob
	if len(out.Changed) > 0 {
		var (
			pos, codes      []int32
			status, replies []string
		)
		for _, r := range out.Changed {
			pos, codes, status, replies = append(pos, int32(r.Position)), append(codes, int32(r.LastCode)), append(status, string(r.Status)), append(replies, r.LastReply)
		}
		b.Queue(`UPDATE message_recipients r SET status = c.status, last_code = c.code, last_reply = c.reply, updated_at = now()
			FROM unnest($3::int[], $4::text[], $5::int[], $6::text[]) AS c(position, status, code, reply)
			WHERE r.subscription_id = $1 AND r.message_id = $2 AND r.position = c.position`,
			out.Tenant, out.MessageID, pos, status, codes, replies)
	}
	if out.State != "" || len(out.Changed) > 0 {
		// A new version even when only recipients changed: a delivery
		// attempt running meanwhile then sees its outcome refused and
		// decides again on these recipients, instead of overwriting them.
		b.Queue(`UPDATE messages SET state = coalesce(nullif($3, ''), state), version = version + 1, updated_at = now() WHERE subscription_id = $1 AND id = $2`,
			out.Tenant, out.MessageID, string(out.State))
	}
	for _, sup := range out.Suppress {
		b.Queue(`INSERT INTO suppressions (subscription_id, email, reason, source, smtp_code) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (subscription_id, email) DO NOTHING`, out.Tenant, strings.ToLower(sup.Email), sup.Reason, sup.Source, sup.SMTPCode)
	}
	eventsOn := out.MessageID
	if out.Reply != nil {
		queueReceivedReply(b, out.Tenant, out.Reply)
		eventsOn = out.Reply.Message.ID
	}
	events := make([]event, len(out.Events))
	for i, e := range out.Events {
		events[i] = event{kind: e.Type, recipient: e.Recipient, code: e.Code, detail: e.Detail}
	}
	queueEvents(b, out.Tenant, eventsOn, events, &hooks)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("apply inbound: %w", err)
	}
	return s.flushWebhooks(ctx, tx, out.Tenant, hooks)
}

// queueReceivedReply writes a reply as a message of its own in the
// account's inbox, with its attachments stored like uploads.
func queueReceivedReply(b *pgx.Batch, tenant uuid.UUID, rr *domain.ReceivedReply) {
	msg := rr.Message
	b.Queue(`
		INSERT INTO messages (subscription_id, id, sender_email, sender_display_name, subject, body, text_body, dkim_result,
			importance, message_id, in_reply_to, references_header, parent_id, conversation_id, state, created_date, updated_at, finished_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'received', $15, $15, $15)`,
		tenant, msg.ID, msg.SenderEmail, msg.SenderDisplayName, msg.Subject, msg.Body, msg.TextBody, msg.DKIMResult,
		int16(msg.Importance), msg.MessageID, msg.InReplyTo, msg.References, nullUUID(msg.ParentID), msg.ConversationID, msg.CreatedDate)
	r := msg.Recipients[0]
	b.Queue(`INSERT INTO message_recipients (subscription_id, message_id, position, kind, display_name, email, account_id, status, attempts, last_code, last_reply)
		VALUES ($1, $2, 0, 'to', $3, $4, $5, 'delivered', 1, $6, $7)`, tenant, msg.ID, r.DisplayName, r.Email, nullUUID(r.AccountID), r.LastCode, r.LastReply)
	for i, a := range rr.Reply.Attachments {
		id := uuid.New()
		sum := sha256.Sum256(a.Content)
		ct := a.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		b.Queue(`INSERT INTO attachments (subscription_id, id, filename, content_type, size_bytes, sha256, content) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			tenant, id, a.Filename, ct, len(a.Content), sum[:], a.Content)
		b.Queue(`INSERT INTO message_attachments (subscription_id, message_id, position, attachment_id) VALUES ($1, $2, $3, $4)`, tenant, msg.ID, i, id)
	}
	b.Queue(`INSERT INTO mailbox_entries (subscription_id, account_id, message_id, received_at) VALUES ($1, $2, $3, $4)`,
		tenant, rr.AccountID, msg.ID, msg.CreatedDate)
}
