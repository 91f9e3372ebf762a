package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

// PendingMessages is the work the database holds that no delivery has
// settled yet, for the metrics scrape.
type PendingMessages = domain.PendingMessages

// pendingMessagesQuery reads every queued or sending message that is due,
// including those whose job waits for a later attempt (scheduled) or is
// retrying, through the partial index on unsettled messages. A message
// sent with a future send_at is not pending until then, and has waited
// since it fell due. The age comes from queued_at, not from the delivery
// jobs' scheduled_at, which carries a fair-queuing tag.
const pendingMessagesQuery = `SELECT count(*),
		min(greatest(coalesce(queued_at, updated_at), coalesce(send_at, '-infinity')))
	FROM messages
	WHERE state IN ('queued', 'sending') AND (send_at IS NULL OR send_at <= now())`

// PendingMessages counts the messages waiting for delivery across every
// tenant and finds when the oldest was queued. Bounded by a statement
// timeout, for the metrics scrape.
func (s *Store) PendingMessages(ctx context.Context) (PendingMessages, error) {
	var (
		out    PendingMessages
		oldest *time.Time
	)
	err := s.inTx(ctx, operatorScope, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = '2s'`); err != nil {
			return err
		}
		return tx.QueryRow(ctx, pendingMessagesQuery).Scan(&out.Count, &oldest)
	})
	if err != nil {
		return PendingMessages{}, fmt.Errorf("pending messages: %w", err)
	}
	if oldest != nil {
		out.OldestQueuedAt = *oldest
	}
	return out, nil
}
