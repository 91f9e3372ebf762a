package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailgate/mailgate/domain"
)

const messageColumns = `id, subscription_id, sender_account_id, sender_email, sender_display_name,
	subject, body, importance, message_id, in_reply_to, references_header, parent_id,
	conversation_id, state, version, last_error, created_date, updated_at, send_at, queued_at, send_slot,
	client_message_id, client_references, text_body, dkim_result`

func scanMessage(row pgx.Row) (*domain.Message, error) {
	var (
		m                 domain.Message
		senderAcc, parent *uuid.UUID
		state             string
		importance        int16
		sendAt, queuedAt  *time.Time
		sendSlot          *time.Time
	)
	err := row.Scan(&m.ID, &m.SubscriptionID, &senderAcc, &m.SenderEmail, &m.SenderDisplayName,
		&m.Subject, &m.Body, &importance, &m.MessageID, &m.InReplyTo, &m.References, &parent,
		&m.ConversationID, &state, &m.Version, &m.LastError, &m.CreatedDate, &m.UpdatedAt, &sendAt, &queuedAt, &sendSlot,
		&m.ClientMessageID, &m.ClientReferences, &m.TextBody, &m.DKIMResult)
	if err != nil {
		return nil, err
	}
	m.SenderAccountID, m.ParentID = fromNullUUID(senderAcc), fromNullUUID(parent)
	m.State, m.Importance = domain.MessageState(state), domain.Importance(importance)
	m.CreatedDate, m.UpdatedAt = m.CreatedDate.UTC(), m.UpdatedAt.UTC()
	if sendAt != nil {
		m.SendAt = sendAt.UTC()
	}
	if queuedAt != nil {
		m.QueuedAt = queuedAt.UTC()
	}
	if sendSlot != nil {
		m.SendSlot = sendSlot.UTC()
	}
	return &m, nil
}

// event is one timeline row written with the change it describes.
type event struct {
	kind      string
	recipient string
	code      int
	detail    string
}

// queueEvents adds the event inserts to a batch. The same statement finds
// the tenant's active webhooks that want each event and appends one delivery
// per pair to jobs, so webhooks cost no extra round trip; the caller enqueues
// them in its transaction (see flushWebhooks).
func queueEvents(b *pgx.Batch, tenant, messageID uuid.UUID, events []event, jobs *[]domain.WebhookJob) {
	if len(events) == 0 {
		return
	}
	kinds := make([]string, len(events))
	rcpts := make([]string, len(events))
	codes := make([]int32, len(events))
	details := make([]string, len(events))
	for i, e := range events {
		kinds[i], rcpts[i], codes[i], details[i] = e.kind, e.recipient, int32(e.code), e.detail
	}
	b.Queue(`
		WITH ev AS (
			INSERT INTO message_events (subscription_id, message_id, type, recipient, smtp_code, detail)
			SELECT $1, $2, k, r, c, d FROM unnest($3::text[], $4::text[], $5::int[], $6::text[]) AS e(k, r, c, d)
			RETURNING id, type)
		SELECT w.id, ev.id FROM ev JOIN webhooks w
			ON w.subscription_id = $1 AND w.status = 'active' AND (w.event_types IS NULL OR ev.type = ANY (w.event_types))`,
		tenant, nullUUID(messageID), kinds, rcpts, codes, details).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var j domain.WebhookJob
				if err := rows.Scan(&j.WebhookID, &j.EventID); err != nil {
					return err
				}
				if jobs != nil {
					*jobs = append(*jobs, j)
				}
			}
			return rows.Err()
		})
}

// writeEvents inserts events on their own and enqueues their webhooks.
func (s *Store) writeEvents(ctx context.Context, tx pgx.Tx, tenant, messageID uuid.UUID, events ...event) error {
	b := &pgx.Batch{}
	var hooks []domain.WebhookJob
	queueEvents(b, tenant, messageID, events, &hooks)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write events: %w", err)
	}
	return s.flushWebhooks(ctx, tx, tenant, hooks)
}

// flushWebhooks enqueues the webhook deliveries an event insert produced,
// each at its fair place in the webhook queue.
func (s *Store) flushWebhooks(ctx context.Context, tx pgx.Tx, tenant uuid.UUID, jobs []domain.WebhookJob) error {
	if len(jobs) == 0 {
		return nil
	}
	if s.enqueuer == nil {
		return errors.New("enqueue webhooks: this store has no job enqueuer")
	}
	if err := tagWebhookJobs(ctx, tx, tenant, jobs); err != nil {
		return fmt.Errorf("enqueue webhooks: %w", err)
	}
	if err := s.enqueuer.EnqueueWebhooksTx(ctx, tx, tenant, jobs); err != nil {
		return fmt.Errorf("enqueue webhooks: %w", err)
	}
	return nil
}

// queueRecipients adds the insert of all of msg's recipients to a batch, as one statement.
func queueRecipients(b *pgx.Batch, msg *domain.Message) {
	n := len(msg.Recipients)
	if n == 0 {
		return
	}
	positions := make([]int32, n)
	kinds := make([]string, n)
	names := make([]string, n)
	emails := make([]string, n)
	accounts := make([]*uuid.UUID, n)
	for i, r := range msg.Recipients {
		positions[i], kinds[i], names[i], emails[i] = int32(r.Position), string(r.Kind), r.DisplayName, r.Email
		accounts[i] = nullUUID(r.AccountID)
	}
	b.Queue(`
		INSERT INTO message_recipients (subscription_id, message_id, position, kind, display_name, email, account_id, status, updated_at)
		SELECT $1, $2, p, k, n, e, a, 'pending', $8
		FROM unnest($3::int[], $4::text[], $5::text[], $6::text[], $7::uuid[]) AS r(p, k, n, e, a)`,
		msg.SubscriptionID, msg.ID, positions, kinds, names, emails, accounts, msg.UpdatedAt)
}

// queueAttachments adds the message's attachment references to a batch.
func queueAttachments(b *pgx.Batch, msg *domain.Message) {
	if len(msg.Attachments) == 0 {
		return
	}
	b.Queue(`
		INSERT INTO message_attachments (subscription_id, message_id, position, attachment_id)
		SELECT $1, $2, ord::int - 1, a FROM unnest($3::uuid[]) WITH ORDINALITY AS t(a, ord)`,
		msg.SubscriptionID, msg.ID, msg.Attachments)
}

// CreateMessage implements domain.MessageStore. Concurrent creates are
// coalesced by the accept committer into shared transactions (see
// accept_commit.go); the message's sender is checked in that transaction.
func (s *Store) CreateMessage(ctx context.Context, tenant uuid.UUID, msg *domain.Message) error {
	if msg.SubscriptionID != tenant {
		return fmt.Errorf("create message: tenant mismatch")
	}
	req := newAcceptRequest(ctx, tenant, []*domain.Message{msg})
	return req.outcome(s.accepts.submit(ctx, req))
}

// CreateMessages implements domain.MessageStore: a batch request's messages
// in one transaction of their own, their senders checked in it, their
// delivery jobs inserted with one River InsertManyTx and their rows with one
// statement per table.
func (s *Store) CreateMessages(ctx context.Context, tenant uuid.UUID, msgs []*domain.Message) ([]error, error) {
	for _, msg := range msgs {
		if msg.SubscriptionID != tenant {
			return nil, fmt.Errorf("create message: tenant mismatch")
		}
	}
	req := newAcceptRequest(ctx, tenant, msgs)
	if err := s.writeAccepts(ctx, []*acceptRequest{req}, func() {}); err != nil {
		return nil, err
	}
	if req.err != nil {
		return nil, req.err
	}
	return req.refused, nil
}

func (s *Store) enqueueIfQueued(ctx context.Context, tx pgx.Tx, msg *domain.Message) error {
	if msg.State != domain.StateQueued {
		return nil
	}
	return s.enqueue(ctx, tx, msg.SubscriptionID, msg.ID, msg.SendAt)
}

// enqueue inserts the delivery job in tx and remembers its id on the
// message, so a cancel can find and cancel it in one transaction.
func (s *Store) enqueue(ctx context.Context, tx pgx.Tx, tenant, id uuid.UUID, at time.Time) error {
	if s.enqueuer == nil {
		return errors.New("enqueue delivery: this store has no job enqueuer")
	}
	ids, err := s.enqueuer.EnqueueDeliveriesTx(ctx, tx, tenant, []domain.ScheduledDelivery{{MessageID: id, At: at}})
	if err != nil {
		return fmt.Errorf("enqueue delivery: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE messages SET job_id = $3 WHERE subscription_id = $1 AND id = $2`, tenant, id, ids[0]); err != nil {
		return fmt.Errorf("remember delivery job: %w", err)
	}
	return nil
}

// UpdateDraft implements domain.MessageStore with a compare-and-set on version.
func (s *Store) UpdateDraft(ctx context.Context, tenant uuid.UUID, msg *domain.Message, expected domain.Version) error {
	events := []event{{kind: "updated"}}
	if msg.State == domain.StateQueued {
		events = append(events, event{kind: "queued"})
	}
	return s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			UPDATE messages SET sender_account_id = $4, sender_email = $5, sender_display_name = $6,
				subject = $7, body = $8, importance = $9, message_id = $10, in_reply_to = $11,
				references_header = $12, parent_id = $13, state = $14, updated_at = $15,
				queued_at = $19, send_at = $16, client_message_id = $17, client_references = $18, version = version + 1
			WHERE subscription_id = $1 AND id = $2 AND version = $3 AND state = ANY($20)
			RETURNING version`,
			tenant, msg.ID, int64(expected), nullUUID(msg.SenderAccountID), msg.SenderEmail,
			msg.SenderDisplayName, msg.Subject, msg.Body, int16(msg.Importance), msg.MessageID,
			msg.InReplyTo, msg.References, nullUUID(msg.ParentID), string(msg.State), msg.UpdatedAt, nullTime(msg.SendAt),
			msg.ClientMessageID, msg.ClientReferences, nullTime(msg.QueuedAt), stateStrings(domain.LifecycleEdit.Sources())).
			Scan(&msg.Version)
		err = interpretError(err, "update draft")
		if errors.Is(err, domain.ErrNotFound) {
			// The guard (the states a draft may be changed in, and the
			// version) matched no row: say which part missed.
			return s.explainMissedUpdate(ctx, tx, tenant, msg.ID)
		}
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(`DELETE FROM message_recipients WHERE subscription_id = $1 AND message_id = $2`, tenant, msg.ID)
		b.Queue(`DELETE FROM message_attachments WHERE subscription_id = $1 AND message_id = $2`, tenant, msg.ID)
		queueRecipients(b, msg)
		queueAttachments(b, msg)
		var hooks []domain.WebhookJob
		queueEvents(b, tenant, msg.ID, events, &hooks)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("update draft recipients: %w", err)
		}
		if err := s.flushWebhooks(ctx, tx, tenant, hooks); err != nil {
			return err
		}
		return s.enqueueIfQueued(ctx, tx, msg)
	})
}

// explainMissedUpdate tells why a compare-and-set on a draft matched no row.
func (s *Store) explainMissedUpdate(ctx context.Context, tx pgx.Tx, tenant, id uuid.UUID) error {
	return explainMiss(ctx, tx, tenant, id, func(state domain.MessageState) string {
		if !domain.LifecycleEdit.Permits(state) {
			return domain.LifecycleEdit.Refusal(state)
		}
		return ""
	})
}

// explainMiss reads the row a guarded write missed: not found, a conflict
// that blocked tells (when blocked returns a reason), or a stale version.
func explainMiss(ctx context.Context, tx pgx.Tx, tenant, id uuid.UUID, blocked func(domain.MessageState) string) error {
	var (
		state   string
		version int64
	)
	err := tx.QueryRow(ctx, `SELECT state, version FROM messages WHERE subscription_id = $1 AND id = $2`, tenant, id).Scan(&state, &version)
	if err != nil {
		return interpretError(err, "read current version")
	}
	if reason := blocked(domain.MessageState(state)); reason != "" {
		return &domain.Error{Code: domain.CodeConflict, Message: reason, CurrentVersion: domain.Version(version)}
	}
	return &domain.Error{Code: domain.CodeVersionMismatch, Field: "ts", Message: "the message was changed since this ts was read", CurrentVersion: domain.Version(version)}
}

// GetMessage implements domain.MessageStore: the message and its recipients in one round trip.
func (s *Store) GetMessage(ctx context.Context, tenant, id uuid.UUID) (*domain.Message, error) {
	return getMessage(ctx, s.pool, tenant, id, false)
}

// executor is what a pool, a connection and a transaction all offer, so a
// read written against it runs on any of them (as River's drivers take an
// executor): on its own, or inside a caller's transaction.
type executor interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

var (
	_ executor = (*pgxpool.Pool)(nil)
	_ executor = (pgx.Tx)(nil)
)

// getMessage loads a message in one batch, scoped to its tenant (harmless
// inside a transaction already scoped the same way).
func getMessage(ctx context.Context, q executor, tenant, id uuid.UUID, forUpdate bool) (*domain.Message, error) {
	var msg *domain.Message
	b := newBatch(tenantScope(tenant))
	queueMessage(b, tenant, id, &msg, forUpdate)
	if err := q.SendBatch(ctx, b).Close(); err != nil {
		return nil, interpretError(err, "get message")
	}
	return msg, nil
}

// queueMessage queues the reads of a message, its recipients and its
// attachment ids on b; *dst is set when the batch runs, and a missing
// message fails the batch with pgx.ErrNoRows (not found, to interpretError).
func queueMessage(b *pgx.Batch, tenant, id uuid.UUID, dst **domain.Message, forUpdate ...bool) {
	lock := ""
	if len(forUpdate) > 0 && forUpdate[0] {
		lock = " FOR UPDATE"
	}
	b.Queue(`SELECT `+messageColumns+` FROM messages WHERE subscription_id = $1 AND id = $2`+lock, tenant, id).
		QueryRow(func(row pgx.Row) error {
			m, err := scanMessage(row)
			*dst = m
			return err
		})
	b.Queue(`
		SELECT kind, position, display_name, email, account_id, status, attempts, last_code, last_reply, possible_duplicate, in_flight_since, updated_at
		FROM message_recipients WHERE subscription_id = $1 AND message_id = $2 ORDER BY position`, tenant, id).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				r, err := scanRecipient(rows, nil)
				if err != nil {
					return err
				}
				if *dst != nil {
					(*dst).Recipients = append((*dst).Recipients, r)
				}
			}
			return rows.Err()
		})
	b.Queue(`SELECT attachment_id FROM message_attachments WHERE subscription_id = $1 AND message_id = $2 ORDER BY position`, tenant, id).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var a uuid.UUID
				if err := rows.Scan(&a); err != nil {
					return err
				}
				if *dst != nil {
					(*dst).Attachments = append((*dst).Attachments, a)
				}
			}
			return rows.Err()
		})
}

// DeleteMessage implements domain.MessageStore. The checks and the delete are
// one statement, so a delivery that starts meanwhile can't be deleted under it;
// the states that block it are the domain's (domain.DeliveryStates, the
// ones MessageState.CanDelete refuses), passed as a parameter.
func (s *Store) DeleteMessage(ctx context.Context, tenant, id uuid.UUID, expected *domain.Version) error {
	return s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		var want *int64
		if expected != nil {
			v := int64(*expected)
			want = &v
		}
		tag, err := tx.Exec(ctx, `
			DELETE FROM messages WHERE subscription_id = $1 AND id = $2
			AND NOT (state = ANY($4)) AND ($3::bigint IS NULL OR version = $3)`,
			tenant, id, want, stateStrings(domain.DeliveryStates()))
		if err != nil {
			return interpretError(err, "delete message")
		}
		if tag.RowsAffected() == 0 {
			return s.explainMissedDelete(ctx, tx, tenant, id)
		}
		return s.writeEvents(ctx, tx, tenant, id, event{kind: "deleted"})
	})
}

func (s *Store) explainMissedDelete(ctx context.Context, tx pgx.Tx, tenant, id uuid.UUID) error {
	return explainMiss(ctx, tx, tenant, id, func(state domain.MessageState) string {
		if !state.CanDelete() {
			return "the message can't be deleted while its delivery is " + string(state)
		}
		return ""
	})
}

// LookupAccounts implements domain.MessageStore.
func (s *Store) LookupAccounts(ctx context.Context, tenant uuid.UUID, ids []uuid.UUID) (map[uuid.UUID]domain.AccountAddress, error) {
	out := make(map[uuid.UUID]domain.AccountAddress, len(ids))
	b := newBatch(tenantScope(tenant))
	b.Queue(`SELECT id, email, display_name FROM accounts WHERE subscription_id = $1 AND id = ANY($2)`, tenant, ids).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var a domain.AccountAddress
				if err := rows.Scan(&a.AccountID, &a.Email, &a.DisplayName); err != nil {
					return err
				}
				out[a.AccountID] = a
			}
			return rows.Err()
		})
	if err := s.read(ctx, b); err != nil {
		return nil, fmt.Errorf("lookup accounts: %w", err)
	}
	return out, nil
}

// scanRecipient reads a recipient row; when messageID is not nil the row
// starts with the message id.
func scanRecipient(rows pgx.Row, messageID *uuid.UUID) (domain.Recipient, error) {
	var (
		r                   domain.Recipient
		kind, status        string
		account             *uuid.UUID
		pos, attempts, code int32
		updated             time.Time
		inFlight            *time.Time
	)
	dest := []any{&kind, &pos, &r.DisplayName, &r.Email, &account, &status, &attempts, &code, &r.LastReply, &r.PossibleDuplicate, &inFlight, &updated}
	if messageID != nil {
		dest = append([]any{messageID}, dest...)
	}
	if err := rows.Scan(dest...); err != nil {
		return r, err
	}
	r.Kind, r.Status, r.AccountID = domain.RecipientKind(kind), domain.RecipientStatus(status), fromNullUUID(account)
	r.Position, r.Attempts, r.LastCode, r.UpdatedAt = int(pos), int(attempts), int(code), updated.UTC()
	if inFlight != nil {
		r.InFlightSince = inFlight.UTC()
	}
	return r, nil
}
