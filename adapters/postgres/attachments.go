package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

const attachmentColumns = `id, subscription_id, filename, content_type, size_bytes, sha256, created_at`

func scanAttachment(row pgx.Row) (domain.Attachment, error) {
	var a domain.Attachment
	err := row.Scan(&a.ID, &a.SubscriptionID, &a.Filename, &a.ContentType, &a.Size, &a.SHA256, &a.CreatedAt)
	a.CreatedAt = a.CreatedAt.UTC()
	return a, err
}

// CreateAttachment stores an uploaded file.
func (s *Store) CreateAttachment(ctx context.Context, a *domain.Attachment, data []byte) error {
	b := newBatch(tenantScope(a.SubscriptionID))
	b.Queue(`
		INSERT INTO attachments (subscription_id, id, filename, content_type, size_bytes, sha256, content)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at`,
		a.SubscriptionID, a.ID, a.Filename, a.ContentType, a.Size, a.SHA256, data).
		QueryRow(func(row pgx.Row) error { return row.Scan(&a.CreatedAt) })
	// A foreign-key violation: the tenant is gone.
	if err := interpretError(s.read(ctx, b), "insert attachment", onForeignKey(domain.ErrNotFound)); err != nil {
		return err
	}
	a.CreatedAt = a.CreatedAt.UTC()
	return nil
}

// GetAttachment returns an attachment's metadata.
func (s *Store) GetAttachment(ctx context.Context, tenant, id uuid.UUID) (domain.Attachment, error) {
	var a domain.Attachment
	b := newBatch(tenantScope(tenant))
	b.Queue(`SELECT `+attachmentColumns+` FROM attachments WHERE subscription_id = $1 AND id = $2`, tenant, id).
		QueryRow(func(row pgx.Row) error {
			var err error
			a, err = scanAttachment(row)
			return err
		})
	if err := s.read(ctx, b); err != nil {
		return a, interpretError(err, "get attachment")
	}
	return a, nil
}

// AttachmentContent returns an attachment with its bytes.
func (s *Store) AttachmentContent(ctx context.Context, tenant, id uuid.UUID) (domain.AttachmentContent, error) {
	var c domain.AttachmentContent
	b := newBatch(tenantScope(tenant))
	b.Queue(`SELECT `+attachmentColumns+`, content FROM attachments WHERE subscription_id = $1 AND id = $2`, tenant, id).
		QueryRow(func(row pgx.Row) error {
			return row.Scan(&c.ID, &c.SubscriptionID, &c.Filename, &c.ContentType, &c.Size, &c.SHA256, &c.CreatedAt, &c.Data)
		})
	if err := s.read(ctx, b); err != nil {
		return c, interpretError(err, "attachment content")
	}
	return c, nil
}

// LookupAttachments implements domain.MessageStore.
func (s *Store) LookupAttachments(ctx context.Context, tenant uuid.UUID, ids []uuid.UUID) ([]domain.Attachment, error) {
	var out []domain.Attachment
	b := newBatch(tenantScope(tenant))
	b.Queue(`SELECT `+attachmentColumns+` FROM attachments WHERE subscription_id = $1 AND id = ANY($2)`, tenant, ids).
		Query(func(rows pgx.Rows) error {
			var err error
			out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.Attachment, error) { return scanAttachment(row) })
			return err
		})
	if err := s.read(ctx, b); err != nil {
		return nil, fmt.Errorf("lookup attachments: %w", err)
	}
	return out, nil
}

// MessageAttachments returns a message's attachments with their bytes, in order.
func (s *Store) MessageAttachments(ctx context.Context, tenant, messageID uuid.UUID) ([]domain.AttachmentContent, error) {
	var out []domain.AttachmentContent
	b := newBatch(tenantScope(tenant))
	b.Queue(`
		SELECT a.id, a.subscription_id, a.filename, a.content_type, a.size_bytes, a.sha256, a.created_at, a.content
		FROM message_attachments ma
		JOIN attachments a ON a.subscription_id = ma.subscription_id AND a.id = ma.attachment_id
		WHERE ma.subscription_id = $1 AND ma.message_id = $2
		ORDER BY ma.position`, tenant, messageID).
		Query(func(rows pgx.Rows) error {
			var err error
			out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.AttachmentContent, error) {
				var c domain.AttachmentContent
				err := row.Scan(&c.ID, &c.SubscriptionID, &c.Filename, &c.ContentType, &c.Size, &c.SHA256, &c.CreatedAt, &c.Data)
				return c, err
			})
			return err
		})
	if err := s.read(ctx, b); err != nil {
		return nil, fmt.Errorf("message attachments: %w", err)
	}
	return out, nil
}

// PurgeUnreferencedAttachments deletes attachments older than the cutoff
// that neither a message nor a mailbox entry refers to (an entry keeps its
// files after the sender deletes the message), and returns how many went.
func (s *Store) PurgeUnreferencedAttachments(ctx context.Context, createdBefore time.Time) (int64, error) {
	var purged int64
	err := s.inTx(ctx, operatorScope, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			DELETE FROM attachments a
			WHERE a.created_at < $1
			AND NOT EXISTS (SELECT 1 FROM message_attachments ma
			                WHERE ma.subscription_id = a.subscription_id AND ma.attachment_id = a.id)
			AND NOT EXISTS (SELECT 1 FROM mailbox_entry_attachments ea
			                WHERE ea.subscription_id = a.subscription_id AND ea.attachment_id = a.id)`, createdBefore)
		purged = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("purge attachments: %w", err)
	}
	return purged, nil
}
