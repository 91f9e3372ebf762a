// Package postgres is Mailgate's PostgreSQL adapter: tenants, accounts,
// messages and their recipients and events, each write in one transaction
// that also enqueues the River job it implies (the transactional outbox).
package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailgate/mailgate/domain"
)

// Enqueuer inserts the delivery job for a queued message inside the caller's
// transaction, so the message and its job commit or vanish together.
type Enqueuer interface {
	// EnqueueDeliveriesTx inserts delivery jobs in one statement and returns
	// their ids in order.
	EnqueueDeliveriesTx(ctx context.Context, tx pgx.Tx, tenant uuid.UUID, deliveries []domain.ScheduledDelivery) ([]int64, error)
	EnqueueWebhooksTx(ctx context.Context, tx pgx.Tx, tenant uuid.UUID, jobs []domain.WebhookJob) error
	// CancelJobTx cancels a job that is not running, through River's client:
	// River's rows change only through River.
	CancelJobTx(ctx context.Context, tx pgx.Tx, jobID int64) error
	// RetryJobTx makes a waiting (snoozed or retryable) job available now.
	RetryJobTx(ctx context.Context, tx pgx.Tx, jobID int64) error
	// EnqueueReleaseHeldTx schedules a second release of a reinstated
	// tenant's held deliveries, for holds decided just before it.
	EnqueueReleaseHeldTx(ctx context.Context, tx pgx.Tx, tenant uuid.UUID) error
	// EnqueueInboundTx queues the processing of a received inbound message.
	EnqueueInboundTx(ctx context.Context, tx pgx.Tx, inboundID uuid.UUID) error
}

// Store implements the domain's persistence ports on a pgx pool.
type Store struct {
	pool     *pgxpool.Pool
	enqueuer Enqueuer
	// journals and outcomes group the delivery path's concurrent writes
	// into shared transactions. Journals have committers of their own: a
	// delivery waits for its journal holding a relay connection, so it
	// must not queue behind the larger outcome groups.
	journals, outcomes *groupCommitter
	// accepts groups concurrent creates of new messages into shared transactions.
	accepts *acceptCommitter
	// loads coalesces concurrent deliveries' reads.
	loads *deliveryLoader
	// completer completes delivery jobs with their final state.
	completer JobCompleter
	// returnPaths caches the inbound listener's return-path domain lookups.
	returnPaths *returnPathCache
}

// JobCompleter completes River jobs inside the caller's transaction,
// through River's client.
type JobCompleter interface {
	CompleteJobsTx(ctx context.Context, tx pgx.Tx, jobIDs []int64) error
}

// SetJobCompleter lets final delivery outcomes complete their jobs in the
// same transaction (worker processes, once their River client exists).
func (s *Store) SetJobCompleter(c JobCompleter) { s.completer = c }

var _ domain.MessageStore = (*Store)(nil)

// New returns a Store. enqueuer may be nil for processes that never queue
// deliveries (the CLI); queuing then fails loudly.
func New(pool *pgxpool.Pool, enqueuer Enqueuer) *Store {
	s := &Store{pool: pool, enqueuer: enqueuer, returnPaths: newReturnPathCache(returnPathHitTTL, returnPathMissTTL, returnPathCacheSize, time.Now)}
	s.journals = newGroupCommitter(s, 2, 128)
	s.outcomes = newGroupCommitter(s, 2, 128)
	s.accepts = newAcceptCommitter(s, acceptGroupMessages)
	s.loads = newDeliveryLoader(s, 2, 128)
	return s
}

// Close stops the group committers after the writes handed to them; the
// pool is the caller's.
func (s *Store) Close() {
	s.journals.close()
	s.outcomes.close()
	s.accepts.close()
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// scope is whose rows a transaction may see: one tenant, or the operator.
// Row-level security enforces it in the database as a second wall behind the
// explicit tenant argument every query carries.
type scope string

// operatorScope spans tenants; only operator tasks (tenant administration,
// purges) use it.
const operatorScope scope = "operator"

func tenantScope(tenant uuid.UUID) scope { return scope(tenant.String()) }

// setting is the statement that scopes the current transaction. It is set
// per transaction (is_local = true), never per session, so a pooled
// connection can't carry one tenant over to the next transaction.
func (sc scope) setting() string {
	if sc == operatorScope {
		return `SELECT set_config('mailgate.operator', 'on', true)`
	}
	// A UUID's text form is hex and dashes, safe to inline.
	return `SELECT set_config('mailgate.subscription_id', '` + string(sc) + `', true)`
}

// inTx runs fn in a transaction scoped to sc and commits when fn succeeds.
// The scope is set by the BEGIN round trip itself, so it costs nothing extra.
func (s *Store) inTx(ctx context.Context, sc scope, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: "BEGIN; " + sc.setting()})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// newBatch starts a batch scoped to sc. A batch runs as one implicit
// transaction, so the setting holds for the queries queued after it: a
// scoped read in one round trip.
func newBatch(sc scope) *pgx.Batch {
	b := &pgx.Batch{}
	b.Queue(sc.setting())
	return b
}

// read sends a scoped batch on the pool.
func (s *Store) read(ctx context.Context, b *pgx.Batch) error {
	return s.pool.SendBatch(ctx, b).Close()
}

// readOne sends a scoped batch whose query reads one row, its error
// interpreted once (no row is domain.ErrNotFound).
func (s *Store) readOne(ctx context.Context, b *pgx.Batch, what string) error {
	if err := s.read(ctx, b); err != nil {
		return interpretError(err, what)
	}
	return nil
}

// nullUUID maps the domain's "absent" nil UUID to SQL NULL.
func nullUUID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func fromNullUUID(id *uuid.UUID) uuid.UUID {
	if id == nil {
		return uuid.Nil
	}
	return *id
}
