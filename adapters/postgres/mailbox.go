package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

const mailboxColumns = `id, account_id, message_id, kind, folder, read_at, received_at, sender_email,
	sender_display_name, subject, body, header_message_id, in_reply_to, references_header, conversation_id, to_list, cc_list`

func scanMailboxEntry(row pgx.Row) (domain.MailboxEntry, error) {
	var (
		e            domain.MailboxEntry
		kind         string
		readAt       *time.Time
		conversation *uuid.UUID
		to, cc       []byte
	)
	err := row.Scan(&e.ID, &e.AccountID, &e.MessageID, &kind, &e.Folder, &readAt, &e.ReceivedAt, &e.SenderEmail,
		&e.SenderDisplayName, &e.Subject, &e.Body, &e.HeaderMessageID, &e.InReplyTo, &e.References, &conversation, &to, &cc)
	if err != nil {
		return e, err
	}
	e.Kind, e.ReceivedAt, e.ConversationID = domain.RecipientKind(kind), e.ReceivedAt.UTC(), fromNullUUID(conversation)
	if readAt != nil {
		e.ReadAt = readAt.UTC()
	}
	for _, list := range []struct {
		raw []byte
		dst *[]domain.RecipientInput
	}{{to, &e.To}, {cc, &e.Cc}} {
		var people []struct {
			DisplayName  string `json:"display_name"`
			EmailAddress string `json:"email_address"`
		}
		if err := json.Unmarshal(list.raw, &people); err != nil {
			return e, fmt.Errorf("mailbox entry %s recipients: %w", e.ID, err)
		}
		for _, p := range people {
			*list.dst = append(*list.dst, domain.RecipientInput{DisplayName: p.DisplayName, EmailAddress: p.EmailAddress})
		}
	}
	return e, nil
}

// ListMailbox returns a page of one account's mailbox, newest first; an
// account that is not the tenant's is not found.
func (s *Store) ListMailbox(ctx context.Context, tenant uuid.UUID, f domain.MailboxFilter) ([]domain.MailboxEntry, string, error) {
	limit := pageLimit(f.Limit)
	q := keysetList{args: []any{tenant, f.AccountID}, where: []string{"subscription_id = $1", "account_id = $2"}}
	if f.Folder != "" {
		q.and("folder = " + q.arg(f.Folder))
	}
	if f.Unread != nil {
		q.and(map[bool]string{true: "read_at IS NULL", false: "read_at IS NOT NULL"}[*f.Unread])
	}
	if err := q.after(f.Cursor, "received_at", "id"); err != nil {
		return nil, "", err
	}
	var (
		found   bool
		entries []domain.MailboxEntry
	)
	b := newBatch(tenantScope(tenant))
	b.Queue(`SELECT EXISTS (SELECT 1 FROM accounts WHERE subscription_id = $1 AND id = $2)`, tenant, f.AccountID).
		QueryRow(func(row pgx.Row) error { return row.Scan(&found) })
	b.Queue(`SELECT `+mailboxColumns+` FROM mailbox_entries WHERE `+q.clause()+
		` ORDER BY received_at DESC, id DESC LIMIT `+q.arg(limit+1), q.args...).Query(func(rows pgx.Rows) error {
		var err error
		entries, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.MailboxEntry, error) { return scanMailboxEntry(row) })
		return err
	})
	if err := s.read(ctx, b); err != nil {
		return nil, "", fmt.Errorf("list mailbox: %w", err)
	}
	if !found {
		return nil, "", &domain.Error{Code: domain.CodeNotFound, Field: "account_id", Message: "no such account"}
	}
	entries, next := trimPage(entries, limit, func(e domain.MailboxEntry) (time.Time, uuid.UUID) { return e.ReceivedAt, e.ID })
	return entries, next, nil
}

// GetMailboxEntry returns one entry of any of the tenant's mailboxes.
func (s *Store) GetMailboxEntry(ctx context.Context, tenant, id uuid.UUID) (domain.MailboxEntry, error) {
	var e domain.MailboxEntry
	b := newBatch(tenantScope(tenant))
	b.Queue(`SELECT `+mailboxColumns+` FROM mailbox_entries WHERE subscription_id = $1 AND id = $2`, tenant, id).
		QueryRow(func(row pgx.Row) error {
			var err error
			e, err = scanMailboxEntry(row)
			return err
		})
	if err := s.read(ctx, b); err != nil {
		return e, interpretError(err, "get mailbox entry")
	}
	return e, nil
}

// UpdateMailboxEntry marks an entry read or unread and moves it between folders.
func (s *Store) UpdateMailboxEntry(ctx context.Context, tenant, id uuid.UUID, ch domain.MailboxChange) (domain.MailboxEntry, error) {
	var e domain.MailboxEntry
	err := s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		var err error
		e, err = scanMailboxEntry(tx.QueryRow(ctx, `
			UPDATE mailbox_entries SET
				read_at = CASE WHEN $3::bool IS NULL THEN read_at WHEN $3 THEN coalesce(read_at, now()) END,
				folder = coalesce($4, folder)
			WHERE subscription_id = $1 AND id = $2
			RETURNING `+mailboxColumns, tenant, id, ch.Read, ch.Folder))
		return interpretError(err, "update mailbox entry")
	})
	return e, err
}

// DeleteMailboxEntry removes an entry from its recipient's mailbox only.
func (s *Store) DeleteMailboxEntry(ctx context.Context, tenant, id uuid.UUID) error {
	return s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM mailbox_entries WHERE subscription_id = $1 AND id = $2`, tenant, id)
		if err != nil {
			return fmt.Errorf("delete mailbox entry: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return domain.ErrNotFound
		}
		return nil
	})
}

// MailboxEntryAttachments returns the attachments a mailbox entry carries,
// in order: the entry's own hold on them, which stays when the sender
// deletes the message. An entry that is not the tenant's is not found.
func (s *Store) MailboxEntryAttachments(ctx context.Context, tenant, entryID uuid.UUID) ([]domain.Attachment, error) {
	var (
		found bool
		out   []domain.Attachment
	)
	b := newBatch(tenantScope(tenant))
	b.Queue(`SELECT EXISTS (SELECT 1 FROM mailbox_entries WHERE subscription_id = $1 AND id = $2)`, tenant, entryID).
		QueryRow(func(row pgx.Row) error { return row.Scan(&found) })
	b.Queue(`
		SELECT a.id, a.subscription_id, a.filename, a.content_type, a.size_bytes, a.sha256, a.created_at
		FROM mailbox_entry_attachments ea
		JOIN attachments a ON a.subscription_id = ea.subscription_id AND a.id = ea.attachment_id
		WHERE ea.subscription_id = $1 AND ea.entry_id = $2
		ORDER BY ea.position`, tenant, entryID).Query(func(rows pgx.Rows) error {
		var err error
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.Attachment, error) { return scanAttachment(row) })
		return err
	})
	if err := s.read(ctx, b); err != nil {
		return nil, fmt.Errorf("mailbox entry attachments: %w", err)
	}
	if !found {
		return nil, domain.ErrNotFound
	}
	return out, nil
}

// MailboxAttachmentContent returns one attachment of a mailbox entry with
// its bytes; an attachment the entry does not carry is not found, so an
// entry opens its own files only.
func (s *Store) MailboxAttachmentContent(ctx context.Context, tenant, entryID, attachmentID uuid.UUID) (domain.AttachmentContent, error) {
	var c domain.AttachmentContent
	b := newBatch(tenantScope(tenant))
	b.Queue(`
		SELECT a.id, a.subscription_id, a.filename, a.content_type, a.size_bytes, a.sha256, a.created_at, a.content
		FROM mailbox_entry_attachments ea
		JOIN attachments a ON a.subscription_id = ea.subscription_id AND a.id = ea.attachment_id
		WHERE ea.subscription_id = $1 AND ea.entry_id = $2 AND ea.attachment_id = $3
		LIMIT 1`, tenant, entryID, attachmentID).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&c.ID, &c.SubscriptionID, &c.Filename, &c.ContentType, &c.Size, &c.SHA256, &c.CreatedAt, &c.Data)
		c.CreatedAt = c.CreatedAt.UTC()
		return err
	})
	err := s.readOne(ctx, b, "mailbox attachment content")
	return c, err
}
