package postgres

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

// ListMessages returns one page of a tenant's messages, newest first, with a
// keyset cursor so pages stay stable while messages arrive.
func (s *Store) ListMessages(ctx context.Context, tenant uuid.UUID, f domain.MessageFilter) (domain.MessagePage, error) {
	var page domain.MessagePage
	limit := f.Limit
	if limit <= 0 {
		limit = domain.DefaultListLimit
	}
	limit = min(limit, domain.MaxListLimit)

	args := []any{tenant}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where := []string{"m.subscription_id = $1"}
	if f.State != "" {
		where = append(where, "m.state = "+arg(string(f.State)))
	}
	switch {
	case f.Folder == domain.FolderInbox:
		cond := "e.subscription_id = m.subscription_id AND e.message_id = m.id"
		if f.AccountID != uuid.Nil {
			cond += " AND e.account_id = " + arg(f.AccountID)
		}
		where = append(where, "EXISTS (SELECT 1 FROM mailbox_entries e WHERE "+cond+")")
	case f.Folder != "":
		states := make([]string, 0, 3)
		for _, st := range f.Folder.States() {
			states = append(states, string(st))
		}
		where = append(where, "m.state = ANY("+arg(states)+")")
		if f.AccountID != uuid.Nil {
			where = append(where, "m.sender_account_id = "+arg(f.AccountID))
		}
	case f.AccountID != uuid.Nil:
		where = append(where, "m.sender_account_id = "+arg(f.AccountID))
	}
	if f.SenderEmail != "" {
		where = append(where, "lower(m.sender_email) = lower("+arg(f.SenderEmail)+")")
	}
	if f.ConversationID != uuid.Nil {
		where = append(where, "m.conversation_id = "+arg(f.ConversationID))
	}
	if !f.CreatedAfter.IsZero() {
		where = append(where, "m.created_date >= "+arg(f.CreatedAfter))
	}
	if !f.CreatedBefore.IsZero() {
		where = append(where, "m.created_date < "+arg(f.CreatedBefore))
	}
	if f.SubjectContains != "" {
		where = append(where, "m.subject ILIKE "+arg("%"+escapeLike(f.SubjectContains)+"%"))
	}
	if f.Cursor != "" {
		at, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return page, err
		}
		where = append(where, "(m.created_date, m.id) < ("+arg(at)+", "+arg(id)+")")
	}
	query := `SELECT ` + prefixed("m.", messageColumns) + ` FROM messages m WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY m.created_date DESC, m.id DESC LIMIT ` + arg(limit+1)
	var msgs []*domain.Message
	b := newBatch(tenantScope(tenant))
	// Ids in the query must be the tenant's own, like ids anywhere else:
	// someone else's account or conversation is not found, not an empty list.
	var accountFound, conversationFound = true, true
	if f.AccountID != uuid.Nil {
		b.Queue(`SELECT EXISTS (SELECT 1 FROM accounts WHERE subscription_id = $1 AND id = $2)`, tenant, f.AccountID).
			QueryRow(func(row pgx.Row) error { return row.Scan(&accountFound) })
	}
	if f.ConversationID != uuid.Nil {
		b.Queue(`SELECT EXISTS (SELECT 1 FROM messages WHERE subscription_id = $1 AND conversation_id = $2)`, tenant, f.ConversationID).
			QueryRow(func(row pgx.Row) error { return row.Scan(&conversationFound) })
	}
	b.Queue(query, args...).Query(func(rows pgx.Rows) error {
		var err error
		msgs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*domain.Message, error) { return scanMessage(row) })
		return err
	})
	if err := s.read(ctx, b); err != nil {
		return page, fmt.Errorf("list messages: %w", err)
	}
	if !accountFound {
		return page, &domain.Error{Code: domain.CodeNotFound, Field: "account", Message: "no such account"}
	}
	if !conversationFound {
		return page, &domain.Error{Code: domain.CodeNotFound, Field: "conversation", Message: "no such conversation"}
	}
	if len(msgs) > limit {
		msgs = msgs[:limit]
		last := msgs[limit-1]
		page.NextCursor = encodeCursor(last.CreatedDate, last.ID)
	}
	if err := s.loadDetails(ctx, tenant, msgs); err != nil {
		return page, err
	}
	page.Messages = msgs
	return page, nil
}

// loadDetails fills recipients and attachments of many messages in one round trip.
func (s *Store) loadDetails(ctx context.Context, tenant uuid.UUID, msgs []*domain.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, len(msgs))
	byID := make(map[uuid.UUID]*domain.Message, len(msgs))
	for i, m := range msgs {
		ids[i], byID[m.ID] = m.ID, m
	}
	b := newBatch(tenantScope(tenant))
	b.Queue(`
		SELECT message_id, kind, position, display_name, email, account_id, status, attempts, last_code, last_reply, possible_duplicate, in_flight_since, updated_at
		FROM message_recipients WHERE subscription_id = $1 AND message_id = ANY($2) ORDER BY message_id, position`, tenant, ids).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id uuid.UUID
				r, err := scanRecipient(rows, &id)
				if err != nil {
					return err
				}
				byID[id].Recipients = append(byID[id].Recipients, r)
			}
			return rows.Err()
		})
	b.Queue(`SELECT message_id, attachment_id FROM message_attachments WHERE subscription_id = $1 AND message_id = ANY($2) ORDER BY message_id, position`, tenant, ids).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id, a uuid.UUID
				if err := rows.Scan(&id, &a); err != nil {
					return err
				}
				byID[id].Attachments = append(byID[id].Attachments, a)
			}
			return rows.Err()
		})
	if err := s.read(ctx, b); err != nil {
		return fmt.Errorf("load message details: %w", err)
	}
	return nil
}

// MessageEvents returns a message's timeline, oldest first. Events outlive a
// deleted message; a message that never existed has none and is not found.
func (s *Store) MessageEvents(ctx context.Context, tenant, id uuid.UUID) ([]domain.Event, error) {
	var events []domain.Event
	b := newBatch(tenantScope(tenant))
	b.Queue(`
		SELECT id, message_id, type, recipient, smtp_code, detail, created_at
		FROM message_events WHERE subscription_id = $1 AND message_id = $2 ORDER BY id`, tenant, id).
		Query(func(rows pgx.Rows) error {
			var err error
			events, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.Event, error) {
				var e domain.Event
				err := row.Scan(&e.Sequence, &e.MessageID, &e.Type, &e.Recipient, &e.SMTPCode, &e.Detail, &e.CreatedAt)
				e.CreatedAt = e.CreatedAt.UTC()
				return e, err
			})
			return err
		})
	if err := s.read(ctx, b); err != nil {
		return nil, fmt.Errorf("message events: %w", err)
	}
	if len(events) == 0 {
		return nil, domain.ErrNotFound
	}
	return events, nil
}

func prefixed(prefix, columns string) string {
	parts := strings.Split(columns, ",")
	for i, p := range parts {
		parts[i] = prefix + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func encodeCursor(at time.Time, id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "|" + id.String()))
}

func decodeCursor(cursor string) (time.Time, uuid.UUID, error) {
	bad := domain.FieldError("cursor", "is not a cursor returned by this endpoint")
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return time.Time{}, uuid.Nil, bad
	}
	ts, idText, ok := strings.Cut(string(raw), "|")
	if !ok {
		return time.Time{}, uuid.Nil, bad
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return time.Time{}, uuid.Nil, bad
	}
	id, err := uuid.Parse(idText)
	if err != nil {
		return time.Time{}, uuid.Nil, bad
	}
	return at, id, nil
}
