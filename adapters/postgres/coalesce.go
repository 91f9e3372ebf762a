package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// coalescer shares round trips and commits between concurrent callers: the
// accept path's group commit, the delivery path's journals and outcomes,
// and its batched reads. Callers hand their item to a few runners; a runner
// takes every item waiting when it is free (up to a bound) and handles them
// together. Nobody waits for a timer: an item that finds a runner idle goes
// at once, and items that arrive meanwhile ride the next group, so groups
// grow with the load and stay single under light load.
//
// Our own code because the policy is this store's (what bounds a group,
// what a failed group does, going alone at shutdown) and it is small; a
// batcher that flushes on a timer would add that timer's latency to every
// write at low load.
type coalescer[T any] struct {
	runners int
	// limit bounds a group's weight; weight is 1 an item when nil.
	limit  int
	weight func(T) int
	// timeout bounds one group's handling; callers wait with their own deadline.
	timeout time.Duration
	// handle does a group's work and returns one error per item. It calls
	// handoff (at most once) when what is left of its work is the last
	// round trip; an overlapped coalescer's next group starts then.
	handle func(ctx context.Context, group []T, handoff func()) []error
	// collecting, when not nil, is held by the one runner collecting and
	// starting a group, until that group's handoff (see newOverlappedCoalescer).
	collecting chan struct{}
	// what names the work in a caller's timeout error.
	what string

	pending chan coalescedItem[T]
	start   sync.Once
	stop    chan struct{}
	wg      sync.WaitGroup
}

type coalescedItem[T any] struct {
	item T
	done chan error
}

func newCoalescer[T any](what string, runners, limit int, timeout time.Duration, handle func(context.Context, []T) []error) *coalescer[T] {
	return &coalescer[T]{what: what, runners: runners, limit: limit, timeout: timeout,
		handle:  func(ctx context.Context, group []T, _ func()) []error { return handle(ctx, group) },
		pending: make(chan coalescedItem[T], 4096), stop: make(chan struct{})}
}

// newOverlappedCoalescer is a coalescer whose groups overlap only in their
// last round trip: one runner at a time collects a group and runs it up to
// its handoff (the round trip that writes and commits), and the next runner
// collects then. Two independent runners would split the waiting items
// into groups half the size, each paying its own statements and commit;
// one runner alone leaves PostgreSQL's second backend idle while a group
// commits. Here a group fills while the one before it runs its checks, and
// the commit of one overlaps the checks of the next.
func newOverlappedCoalescer[T any](what string, limit int, timeout time.Duration, handle func(context.Context, []T, func()) []error) *coalescer[T] {
	return &coalescer[T]{what: what, runners: 2, limit: limit, timeout: timeout, handle: handle,
		collecting: make(chan struct{}, 1), pending: make(chan coalescedItem[T], 4096), stop: make(chan struct{})}
}

// submit hands item to a runner and waits for its group. After close, or
// when closing, the item is handled alone on the caller's goroutine rather
// than queued behind stopped runners.
func (c *coalescer[T]) submit(ctx context.Context, item T) error {
	select {
	case <-c.stop:
		return c.handle(ctx, []T{item}, func() {})[0]
	default:
	}
	c.start.Do(func() {
		for range c.runners {
			c.wg.Go(c.run)
		}
	})
	w := coalescedItem[T]{item: item, done: make(chan error, 1)}
	select {
	case c.pending <- w:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.stop:
		return c.handle(ctx, []T{item}, func() {})[0]
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		// The group may still complete; the caller treats the outcome as unknown.
		return fmt.Errorf("waiting for the %s: %w", c.what, ctx.Err())
	}
}

// close stops the runners once the items already handed over are handled.
func (c *coalescer[T]) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.wg.Wait()
}

func (c *coalescer[T]) run() {
	for {
		if c.collecting != nil {
			select {
			case c.collecting <- struct{}{}:
			case <-c.stop:
				// The runner collecting, if any, finishes what was handed over.
				return
			}
		}
		handoff := c.handoff()
		var first coalescedItem[T]
		select {
		case first = <-c.pending:
		case <-c.stop:
			// Finish what was handed over before the stop, one at a time.
			for {
				select {
				case w := <-c.pending:
					c.runGroup([]coalescedItem[T]{w}, func() {})
				default:
					handoff()
					return
				}
			}
		}
		group, size := []coalescedItem[T]{first}, c.weigh(first.item)
	collect:
		for size < c.limit {
			select {
			case w := <-c.pending:
				group, size = append(group, w), size+c.weigh(w.item)
			default:
				break collect
			}
		}
		c.runGroup(group, handoff)
	}
}

// handoff returns what lets the next runner collect: once, whoever calls it.
func (c *coalescer[T]) handoff() func() {
	if c.collecting == nil {
		return func() {}
	}
	var once sync.Once
	return func() { once.Do(func() { <-c.collecting }) }
}

func (c *coalescer[T]) weigh(item T) int {
	if c.weight == nil {
		return 1
	}
	return c.weight(item)
}

// runGroup handles a group on a context of its own and answers every
// caller; a handler that did not hand off does when it returns.
func (c *coalescer[T]) runGroup(group []coalescedItem[T], handoff func()) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	items := make([]T, len(group))
	for i, w := range group {
		items[i] = w.item
	}
	errs := c.handle(ctx, items, handoff)
	handoff()
	for i, w := range group {
		w.done <- errs[i]
	}
}
