package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

// Group commit for the delivery path's writes (the attempt journal and each
// attempt's outcome). Concurrent deliveries hand their statements to a few
// committers; each committer takes every write waiting when it is free and
// runs them in one transaction: one round trip for the statements, one for
// the webhook jobs they fan out to, one COMMIT and one WAL flush for the lot,
// instead of three round trips and a flush per write. Nobody waits for a
// timer: a write that finds a committer idle goes at once, and writes that
// arrive during a commit ride the next one. Each write keeps its own tenant
// scope (set_config before its statements). When a group fails, each of its
// writes is retried alone, so one bad write never fails the others.

// groupWrite is one caller's share of a group commit.
type groupWrite struct {
	tenant uuid.UUID
	queue  func(b *pgx.Batch, hooks *[]domain.WebhookJob)
	hooks  []domain.WebhookJob
	done   chan error
}

// groupCommitter batches writes across concurrent callers.
type groupCommitter struct {
	store *Store
	// maxGroup bounds one transaction's writes.
	maxGroup int
	pending  chan *groupWrite
	start    sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
	// committers is how many groups may be in flight at once.
	committers int
}

func newGroupCommitter(s *Store, committers, maxGroup int) *groupCommitter {
	return &groupCommitter{store: s, maxGroup: maxGroup, committers: committers, pending: make(chan *groupWrite, 4096), stop: make(chan struct{})}
}

// write runs queue's statements in a group transaction scoped to tenant and
// waits for its commit. A nil committer writes alone.
func (g *groupCommitter) write(ctx context.Context, tenant uuid.UUID, queue func(*pgx.Batch, *[]domain.WebhookJob)) error {
	w := &groupWrite{tenant: tenant, queue: queue, done: make(chan error, 1)}
	g.start.Do(func() {
		for range g.committers {
			g.wg.Go(g.run)
		}
	})
	select {
	case g.pending <- w:
	case <-ctx.Done():
		return ctx.Err()
	case <-g.stop:
		return g.store.writeAlone(ctx, w)
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		// The group may still commit; the caller treats this as unknown.
		return fmt.Errorf("waiting for the group commit: %w", ctx.Err())
	}
}

// close stops the committers once the writes already handed over are done.
func (g *groupCommitter) close() {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	g.wg.Wait()
}

func (g *groupCommitter) run() {
	for {
		var first *groupWrite
		select {
		case first = <-g.pending:
		case <-g.stop:
			// Drain what was handed over before the stop.
			for {
				select {
				case w := <-g.pending:
					w.done <- g.store.writeAlone(context.Background(), w)
				default:
					return
				}
			}
		}
		group := []*groupWrite{first}
	collect:
		for len(group) < g.maxGroup {
			select {
			case w := <-g.pending:
				group = append(group, w)
			default:
				break collect
			}
		}
		g.commit(group)
	}
}

// commit writes a group in one transaction, or each write alone when the
// group fails.
func (g *groupCommitter) commit(group []*groupWrite) {
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	// Each write runs in its own tenant's scope, set before its statements;
	// the transaction starts in the first one's.
	err := g.store.inTx(ctx, tenantScope(group[0].tenant), func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, w := range group {
			w.hooks = w.hooks[:0]
			b.Queue(tenantScope(w.tenant).setting())
			w.queue(b, &w.hooks)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		for _, w := range group {
			if len(w.hooks) == 0 {
				continue
			}
			if _, err := tx.Exec(ctx, tenantScope(w.tenant).setting()); err != nil {
				return err
			}
			if err := g.store.flushWebhooks(ctx, tx, w.tenant, w.hooks); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(group) == 1 {
		for _, w := range group {
			w.done <- wrapGroupErr(err)
		}
		return
	}
	for _, w := range group {
		w.done <- g.store.writeAlone(ctx, w)
	}
}

// groupTimeout bounds one group transaction.
const groupTimeout = 15 * time.Second

// writeAlone runs one write in its own transaction.
func (s *Store) writeAlone(ctx context.Context, w *groupWrite) error {
	return wrapGroupErr(s.inTx(ctx, tenantScope(w.tenant), func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		w.hooks = w.hooks[:0]
		w.queue(b, &w.hooks)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		return s.flushWebhooks(ctx, tx, w.tenant, w.hooks)
	}))
}

// wrapGroupErr keeps domain errors (a conflict) as they are.
func wrapGroupErr(err error) error {
	var de *domain.Error
	if err == nil || errors.As(err, &de) {
		return err
	}
	return fmt.Errorf("delivery write: %w", err)
}
