package postgres

import (
	"container/list"
	"sync"
	"time"
)

// The inbound listener asks at every RCPT whether a domain is some tenant's
// return-path domain. The answers are cached per process, bounded in size
// and age, and dropped when this process changes a tenant's return-path
// domain (SetInboundSettings). A change made by another replica (or the
// CLI) is seen here once the cached answer expires, and either stale answer
// is safe for that long:
//   - a stale "yes" (the domain was just released) accepts a little more
//     mail for it; nothing trusts the domain, since the worker matches
//     bounces by their HMAC-signed token (which names the message, and so
//     the tenant), so such mail is matched like any other or ends unmatched;
//   - a stale "no" (the domain was just configured) could refuse a bounce,
//     but only where this process already saw mail for that domain before it
//     was anybody's return path, within the last returnPathMissTTL, while
//     mail with the new return path only leaves after the change. Misses are
//     therefore kept briefly, hits longer.
const (
	returnPathHitTTL    = 5 * time.Minute
	returnPathMissTTL   = 30 * time.Second
	returnPathCacheSize = 10000
)

// returnPathCache remembers recent answers to "is this a return-path
// domain", least recently used out first once full, so a flood of RCPTs for
// random domains costs memory for returnPathCacheSize entries at most.
type returnPathCache struct {
	mu       sync.Mutex
	hitTTL   time.Duration
	missTTL  time.Duration
	capacity int
	now      func() time.Time
	order    *list.List // of *returnPathEntry, most recently used first
	entries  map[string]*list.Element
	// generation grows on every invalidation, so a lookup that started
	// before a change can't store its (possibly outdated) answer after it.
	generation uint64
}

type returnPathEntry struct {
	domain  string
	found   bool
	expires time.Time
}

func newReturnPathCache(hitTTL, missTTL time.Duration, capacity int, now func() time.Time) *returnPathCache {
	return &returnPathCache{hitTTL: hitTTL, missTTL: missTTL, capacity: max(capacity, 1), now: now,
		order: list.New(), entries: map[string]*list.Element{}}
}

// get returns the cached answer for d, if one is fresh, and the generation
// a lookup made now must hand to put.
func (c *returnPathCache) get(d string) (found, ok bool, generation uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.entries[d]
	if el == nil {
		return false, false, c.generation
	}
	e := el.Value.(*returnPathEntry)
	if !c.now().Before(e.expires) {
		c.order.Remove(el)
		delete(c.entries, d)
		return false, false, c.generation
	}
	c.order.MoveToFront(el)
	return e.found, true, c.generation
}

// put stores the answer of a lookup that started at generation, unless an
// invalidation came in between.
func (c *returnPathCache) put(d string, found bool, generation uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if generation != c.generation {
		return
	}
	ttl := c.missTTL
	if found {
		ttl = c.hitTTL
	}
	e := &returnPathEntry{domain: d, found: found, expires: c.now().Add(ttl)}
	if el := c.entries[d]; el != nil {
		el.Value = e
		c.order.MoveToFront(el)
		return
	}
	for c.order.Len() >= c.capacity {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.entries, oldest.Value.(*returnPathEntry).domain)
	}
	c.entries[d] = c.order.PushFront(e)
}

// invalidate forgets every answer: return-path domains change rarely, and a
// change can turn one domain's answer and another's at once.
func (c *returnPathCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.generation++
	c.order.Init()
	clear(c.entries)
}

// len is the number of cached answers.
func (c *returnPathCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
