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
	// handle does a group's work and returns one error per item.
	handle func(ctx context.Context, group []T) []error
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
	return &coalescer[T]{what: what, runners: runners, limit: limit, timeout: timeout, handle: handle,
		pending: make(chan coalescedItem[T], 4096), stop: make(chan struct{})}
}

// submit hands item to a runner and waits for its group. After close, or
// when closing, the item is handled alone on the caller's goroutine rather
// than queued behind stopped runners.
func (c *coalescer[T]) submit(ctx context.Context, item T) error {
	select {
	case <-c.stop:
		return c.handle(ctx, []T{item})[0]
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
		return c.handle(ctx, []T{item})[0]
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
		var first coalescedItem[T]
		select {
		case first = <-c.pending:
		case <-c.stop:
			// Finish what was handed over before the stop, one at a time.
			for {
				select {
				case w := <-c.pending:
					c.runGroup([]coalescedItem[T]{w})
				default:
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
		c.runGroup(group)
	}
}

func (c *coalescer[T]) weigh(item T) int {
	if c.weight == nil {
		return 1
	}
	return c.weight(item)
}

// runGroup handles a group on a context of its own and answers every caller.
func (c *coalescer[T]) runGroup(group []coalescedItem[T]) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	items := make([]T, len(group))
	for i, w := range group {
		items[i] = w.item
	}
	errs := c.handle(ctx, items)
	for i, w := range group {
		w.done <- errs[i]
	}
}
