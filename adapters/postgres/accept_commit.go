package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Group commit for accepts. Concurrent creates hand their requests to a few
// committers; a committer takes every request waiting when it is free and
// writes them in one transaction (writeAccepts): a handful of round trips
// and one COMMIT and WAL flush for the lot, instead of five round trips and
// a flush per message. Nobody waits for a timer: a request that finds a
// committer idle goes at once, and requests that arrive during a commit
// ride the next one, so groups grow with the load.
//
// A request that is refused (its sender, its idempotency key) is found by
// the checks that open the transaction, before anything is written, and
// answered alone while the others commit. A write that fails anyway (a
// race such as an attachment purged after the check, or an id of another
// tenant) rolls the group back, and each request is then written alone, so
// the failure lands on its own request only. We chose this over a savepoint
// per request: a savepoint is a round trip or a pipeline break per message
// and a subtransaction each (a group of more than 64 overflows PostgreSQL's
// per-backend subtransaction cache), while these failures are rare races.

// Two committers keep one group filling while the other commits; a group
// holds at most 256 messages (about 1 MB of rows at 2 KB bodies, and well
// under a second of statements), beyond which its latency would grow more
// than its per-message cost shrinks.
const (
	acceptCommitters    = 2
	acceptGroupMessages = 256
)

// acceptWrite is one caller's share of a group.
type acceptWrite struct {
	req  *acceptRequest
	done chan error
}

// acceptCommitter coalesces concurrent accepts into shared transactions.
type acceptCommitter struct {
	store *Store
	// maxMessages bounds one transaction's messages.
	maxMessages int
	// committers is how many groups may be in flight at once.
	committers int
	pending    chan *acceptWrite
	start      sync.Once
	stop       chan struct{}
	wg         sync.WaitGroup
}

func newAcceptCommitter(s *Store, committers, maxMessages int) *acceptCommitter {
	return &acceptCommitter{store: s, maxMessages: maxMessages, committers: committers,
		pending: make(chan *acceptWrite, 4096), stop: make(chan struct{})}
}

// write hands req to a committer and waits for its transaction. req's own
// refusals are set on it; the error is the transaction's.
func (g *acceptCommitter) write(ctx context.Context, req *acceptRequest) error {
	w := &acceptWrite{req: req, done: make(chan error, 1)}
	select {
	case <-g.stop:
		// Shutting down: write alone rather than queue behind stopped committers.
		return g.store.writeAccepts(ctx, []*acceptRequest{req})
	default:
	}
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
		return g.store.writeAccepts(ctx, []*acceptRequest{req})
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		// The group may still commit; an idempotency key then replays it.
		return fmt.Errorf("waiting for the accept commit: %w", ctx.Err())
	}
}

// close stops the committers once the requests already handed over are written.
func (g *acceptCommitter) close() {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	g.wg.Wait()
}

func (g *acceptCommitter) run() {
	for {
		var first *acceptWrite
		select {
		case first = <-g.pending:
		case <-g.stop:
			for {
				select {
				case w := <-g.pending:
					g.commit([]*acceptWrite{w})
				default:
					return
				}
			}
		}
		group, size := []*acceptWrite{first}, len(first.req.msgs)
	collect:
		for size < g.maxMessages {
			select {
			case w := <-g.pending:
				group, size = append(group, w), size+len(w.req.msgs)
			default:
				break collect
			}
		}
		g.commit(group)
	}
}

// acceptTimeout bounds one group transaction; callers wait with their own deadline.
const acceptTimeout = 15 * time.Second

// commit writes a group in one transaction, or each request alone when the
// group's write failed, and answers every caller.
func (g *acceptCommitter) commit(group []*acceptWrite) {
	ctx, cancel := context.WithTimeout(context.Background(), acceptTimeout)
	defer cancel()
	reqs := make([]*acceptRequest, len(group))
	for i, w := range group {
		reqs[i] = w.req
	}
	err := g.store.writeAccepts(ctx, reqs)
	if err != nil && len(group) > 1 && errors.Is(err, errAcceptWrite) {
		for _, w := range group {
			w.req.reset()
			w.done <- g.store.writeAccepts(ctx, []*acceptRequest{w.req})
		}
		return
	}
	for _, w := range group {
		w.done <- err
	}
}
