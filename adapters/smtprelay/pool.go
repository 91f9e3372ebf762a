package smtprelay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// acquire returns a connection ready for MAIL FROM that watches ctx until
// release, and whether it came from the pool. A pooled connection used
// within CheckAfterIdle is taken as it is, with no round trip: if the relay
// dropped it meanwhile, Send notices before anything was delivered and
// tries again on a new one. One idle longer must first answer NOOP, so a
// connection that died in silence costs a short check, not a full Timeout.
func (t *Transport) acquire(ctx context.Context) (*connection, bool, error) {
	c, check := t.takeIdle()
	if c == nil {
		c, err := t.dial(ctx)
		return c, false, err
	}
	c.stopWatch = context.AfterFunc(ctx, func() { _ = c.raw.Close() })
	if !check {
		return c, true, nil
	}
	_, _, err := c.cmd(min(t.cfg.Timeout, checkTimeout), 250, "NOOP")
	if err == nil && c.text.R.Buffered() > 0 {
		// More than the one reply came: replies and commands no longer pair up.
		c.broken = true
		err = errors.New("the relay sent more than the reply to NOOP")
	}
	if err == nil {
		return c, true, nil
	}
	c.stopWatch()
	c.quit(t.cfg.Timeout)
	if ctx.Err() != nil {
		// Not the connection's fault; leave the rest of the pool alone.
		return nil, false, fmt.Errorf("NOOP: %w", err)
	}
	// A relay that dropped one idle connection has likely dropped the
	// others too; checking each of them would only delay this message.
	c, err = t.dial(ctx)
	return c, false, err
}

// takeIdle removes the most recently used idle connection from the pool,
// closing any found past their time; nil when none is left. check reports
// whether it waited long enough to need a NOOP before reuse.
func (t *Transport) takeIdle() (c *connection, check bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	for n := len(t.idle); n > 0; n = len(t.idle) {
		c := t.idle[n-1]
		t.idle = t.idle[:n-1]
		c.idleTimer.Stop()
		idle := now.Sub(c.idleSince)
		if idle < t.cfg.IdleTimeout && now.Sub(c.opened) < t.cfg.MaxConnLifetime {
			return c, idle >= t.cfg.CheckAfterIdle
		}
		// Its timer is due any moment; closing a socket does not block.
		c.close()
	}
	return nil, false
}

// release ends a Send's use of c: back to the pool when the session is
// healthy and has time and messages left, else QUIT, or just close when
// broken.
func (t *Transport) release(c *connection) {
	if !c.stopWatch() {
		// The context ended and its watcher closed the socket.
		c.broken = true
	}
	c.stopWatch = nil
	c.sends++
	if c.text.R.Buffered() > 0 {
		// The relay said more than it was asked: replies could no longer be
		// matched to commands.
		c.broken = true
	}
	if c.broken {
		c.close()
		return
	}
	now := time.Now()
	if c.sends >= t.cfg.MaxMessagesPerConn || now.Sub(c.opened) >= t.cfg.MaxConnLifetime || !t.putIdle(c, now) {
		c.quit(t.cfg.Timeout)
	}
}

// putIdle adds c to the pool and reports whether there was room.
func (t *Transport) putIdle(c *connection, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || len(t.idle) >= t.cfg.MaxIdleConns {
		return false
	}
	c.idleSince = now
	wait := min(t.cfg.IdleTimeout, t.cfg.MaxConnLifetime-now.Sub(c.opened))
	c.idleTimer = time.AfterFunc(wait, func() { t.expire(c) })
	t.idle = append(t.idle, c)
	return true
}

// expire closes c when its idle time or lifetime ran out in the pool. A
// connection no longer in the pool belongs to a Send or to Close instead.
func (t *Transport) expire(c *connection) {
	t.mu.Lock()
	i := slices.Index(t.idle, c)
	if i < 0 {
		t.mu.Unlock()
		return
	}
	t.idle = slices.Delete(t.idle, i, i+1)
	// Added under the lock, while not closed, so it happens before Close waits.
	t.expiring.Add(1)
	t.mu.Unlock()
	defer t.expiring.Done()
	c.quit(t.cfg.Timeout)
}

// Close says QUIT on the idle connections and closes them. Sends still
// running finish normally; later Sends open a connection each and close it
// afterwards. Close always returns nil; the error is for io.Closer.
func (t *Transport) Close() error {
	t.mu.Lock()
	t.closed = true
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range idle {
		c.idleTimer.Stop()
		wg.Go(func() { c.quit(t.cfg.Timeout) })
	}
	wg.Wait()
	t.expiring.Wait()
	return nil
}
