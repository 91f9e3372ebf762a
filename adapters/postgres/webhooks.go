package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

const webhookColumns = `id, url, event_types, status, disabled_reason, consecutive_failures, created_at, secret,
	CASE WHEN previous_secret_until > now() THEN previous_secret END`

func scanWebhook(row pgx.Row) (domain.Webhook, error) {
	var (
		w            domain.Webhook
		secret, prev []byte
	)
	err := row.Scan(&w.ID, &w.URL, &w.EventTypes, &w.Status, &w.DisabledReason, &w.ConsecutiveFailures, &w.CreatedAt, &secret, &prev)
	w.Secrets = [][]byte{secret}
	if prev != nil {
		w.Secrets = append(w.Secrets, prev)
	}
	w.CreatedAt = w.CreatedAt.UTC()
	return w, err
}

// CreateWebhook registers an endpoint with its signing secret, unless the
// tenant already has maxEndpoints of them (0: no cap). Registrations of one
// tenant are serialized by a transaction-scoped advisory lock, so concurrent
// requests, on any number of API processes, can't overshoot the cap.
func (s *Store) CreateWebhook(ctx context.Context, tenant uuid.UUID, w domain.Webhook, maxEndpoints int) (domain.Webhook, error) {
	w.ID, w.Status = uuid.New(), domain.WebhookActive
	err := s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended('mailgate.webhooks.' || $1::text, 0))`, tenant)
		created := false
		b.Queue(`INSERT INTO webhooks (subscription_id, id, url, secret, event_types)
			SELECT $1, $2, $3, $4, $5
			WHERE $6 = 0 OR (SELECT count(*) FROM webhooks WHERE subscription_id = $1) < $6
			RETURNING created_at`,
			tenant, w.ID, w.URL, w.Secrets[0], w.EventTypes, maxEndpoints).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				created = true
				if err := rows.Scan(&w.CreatedAt); err != nil {
					return err
				}
			}
			return rows.Err()
		})
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("create webhook: %w", err)
		}
		if !created {
			return domain.WebhookLimitError(maxEndpoints)
		}
		return nil
	})
	if err != nil {
		return w, err
	}
	w.CreatedAt = w.CreatedAt.UTC()
	return w, nil
}

// ListWebhooks returns a tenant's endpoints.
func (s *Store) ListWebhooks(ctx context.Context, tenant uuid.UUID) ([]domain.Webhook, error) {
	var out []domain.Webhook
	b := newBatch(tenantScope(tenant))
	b.Queue(`SELECT `+webhookColumns+` FROM webhooks WHERE subscription_id = $1 ORDER BY created_at, id`, tenant).
		Query(func(rows pgx.Rows) error {
			var err error
			out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.Webhook, error) { return scanWebhook(row) })
			return err
		})
	if err := s.read(ctx, b); err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	return out, nil
}

// GetWebhook returns one endpoint.
func (s *Store) GetWebhook(ctx context.Context, tenant, id uuid.UUID) (domain.Webhook, error) {
	var w domain.Webhook
	b := newBatch(tenantScope(tenant))
	b.Queue(`SELECT `+webhookColumns+` FROM webhooks WHERE subscription_id = $1 AND id = $2`, tenant, id).
		QueryRow(func(row pgx.Row) error {
			var err error
			w, err = scanWebhook(row)
			return err
		})
	if err := s.read(ctx, b); err != nil {
		return w, interpretError(err, "get webhook")
	}
	return w, nil
}

// DeleteWebhook removes an endpoint; queued deliveries to it are dropped by the worker.
func (s *Store) DeleteWebhook(ctx context.Context, tenant, id uuid.UUID) error {
	return s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM webhooks WHERE subscription_id = $1 AND id = $2`, tenant, id)
		if err != nil {
			return fmt.Errorf("delete webhook: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return domain.ErrNotFound
		}
		return nil
	})
}

// RotateWebhookSecret replaces the signing secret; the old one keeps signing
// alongside until grace ends, so receivers can switch without dropping events.
func (s *Store) RotateWebhookSecret(ctx context.Context, tenant, id uuid.UUID, secret []byte, grace time.Duration) (domain.Webhook, error) {
	err := s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			UPDATE webhooks SET previous_secret = secret, previous_secret_until = now() + $4::interval,
				secret = $3, updated_at = now()
			WHERE subscription_id = $1 AND id = $2`, tenant, id, secret, strconv.Itoa(int(grace.Seconds()))+" seconds")
		if err != nil {
			return fmt.Errorf("rotate webhook secret: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return domain.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return domain.Webhook{}, err
	}
	return s.GetWebhook(ctx, tenant, id)
}

// WebhookDelivery loads what one delivery needs: the endpoint and the event.
func (s *Store) WebhookDelivery(ctx context.Context, tenant, webhookID uuid.UUID, eventID int64) (domain.Webhook, domain.Event, error) {
	var (
		w         domain.Webhook
		e         domain.Event
		gotHook   bool
		gotEvent  bool
		messageID *uuid.UUID
	)
	b := newBatch(tenantScope(tenant))
	b.Queue(`SELECT `+webhookColumns+` FROM webhooks WHERE subscription_id = $1 AND id = $2`, tenant, webhookID).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var err error
				if w, err = scanWebhook(rows); err != nil {
					return err
				}
				gotHook = true
			}
			return rows.Err()
		})
	b.Queue(`SELECT id, subscription_id, message_id, type, recipient, smtp_code, detail, created_at
		FROM message_events WHERE subscription_id = $1 AND id = $2`, tenant, eventID).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				if err := rows.Scan(&e.Sequence, &e.SubscriptionID, &messageID, &e.Type, &e.Recipient, &e.SMTPCode, &e.Detail, &e.CreatedAt); err != nil {
					return err
				}
				gotEvent = true
			}
			return rows.Err()
		})
	if err := s.read(ctx, b); err != nil {
		return w, e, fmt.Errorf("load webhook delivery: %w", err)
	}
	if !gotHook || !gotEvent {
		return w, e, domain.ErrNotFound
	}
	e.MessageID, e.CreatedAt = fromNullUUID(messageID), e.CreatedAt.UTC()
	return w, e, nil
}

// RecordWebhookResult counts a delivery's outcome; disable, when set, turns
// the endpoint off with an event saying why.
func (s *Store) RecordWebhookResult(ctx context.Context, tenant, id uuid.UUID, ok bool, disable string) error {
	return s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		switch {
		case ok:
			_, err := tx.Exec(ctx, `UPDATE webhooks SET consecutive_failures = 0 WHERE subscription_id = $1 AND id = $2 AND consecutive_failures > 0`, tenant, id)
			return err
		case disable == "":
			_, err := tx.Exec(ctx, `UPDATE webhooks SET consecutive_failures = consecutive_failures + 1, updated_at = now() WHERE subscription_id = $1 AND id = $2`, tenant, id)
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE webhooks SET status = 'disabled', disabled_reason = $3, consecutive_failures = consecutive_failures + 1, updated_at = now()
			WHERE subscription_id = $1 AND id = $2 AND status = 'active'`, tenant, id, disable)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		// Written without webhook fan-out: this endpoint is off, and other
		// endpoints learn of it through the feed.
		b := &pgx.Batch{}
		queueEvents(b, tenant, uuid.Nil, []event{{kind: "webhook.disabled", recipient: id.String(), detail: disable}}, nil)
		return tx.SendBatch(ctx, b).Close()
	})
}

// eventFeedQuery reads one page of a tenant's feed after the cursor
// ($2 xact, $3 id). It serves only transactions below the snapshot's xmin,
// the oldest one still running on the server: any later one may yet commit
// an event below a cursor already handed out.
const eventFeedQuery = `SELECT id, subscription_id, message_id, type, recipient, smtp_code, detail, created_at, xact_id
	FROM message_events
	WHERE subscription_id = $1 AND (xact_id, id) > ($2::xid8, $3::bigint)
	  AND xact_id < pg_snapshot_xmin(pg_current_snapshot())
	ORDER BY xact_id, id LIMIT $4`

// EventFeed pages through a tenant's events in commit order. The cursor is
// "<xact>.<id>"; only events of transactions older than every running one
// are shown, so a consumer resuming from its cursor never misses one.
//
// The cursor, the filter and the ORDER BY all compare xact_id as xid8, a
// number: ordering its text form instead loses and repeats events whenever
// transaction ids gain a digit. The (subscription_id, xact_id, id) index
// serves the whole query, so a page costs its own rows.
func (s *Store) EventFeed(ctx context.Context, tenant uuid.UUID, cursor string, limit int) ([]domain.Event, string, error) {
	var (
		xact uint64
		id   int64
	)
	if cursor != "" {
		x, idText, ok := strings.Cut(cursor, ".")
		var xerr, err error
		xact, xerr = strconv.ParseUint(x, 10, 64)
		id, err = strconv.ParseInt(idText, 10, 64)
		if !ok || err != nil || xerr != nil {
			return nil, cursor, domain.FieldError("after", "is not a cursor returned by this feed")
		}
	}
	var (
		events []domain.Event
		last   = cursor
	)
	b := newBatch(tenantScope(tenant))
	b.Queue(eventFeedQuery, tenant, xact, id, limit).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					e         domain.Event
					messageID *uuid.UUID
					x         uint64
				)
				if err := rows.Scan(&e.Sequence, &e.SubscriptionID, &messageID, &e.Type, &e.Recipient, &e.SMTPCode, &e.Detail, &e.CreatedAt, &x); err != nil {
					return err
				}
				e.MessageID, e.CreatedAt = fromNullUUID(messageID), e.CreatedAt.UTC()
				events = append(events, e)
				last = strconv.FormatUint(x, 10) + "." + strconv.FormatInt(e.Sequence, 10)
			}
			return rows.Err()
		})
	if err := s.read(ctx, b); err != nil {
		return nil, cursor, fmt.Errorf("event feed: %w", err)
	}
	return events, last, nil
}
