package app

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
)

// statusCache remembers tenant statuses briefly, so authenticating a request
// does not cost a database round trip each time; a suspension takes effect
// within the TTL.
type statusCache struct {
	load func(ctx context.Context, tenant uuid.UUID) (string, error)
	ttl  time.Duration
	now  func() time.Time

	mu      sync.Mutex
	entries map[uuid.UUID]statusEntry
}

type statusEntry struct {
	status  string
	expires time.Time
}

func newStatusCache(load func(ctx context.Context, tenant uuid.UUID) (string, error), ttl time.Duration) *statusCache {
	return &statusCache{load: load, ttl: ttl, now: time.Now, entries: make(map[uuid.UUID]statusEntry)}
}

func (c *statusCache) get(ctx context.Context, tenant uuid.UUID) (string, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[tenant]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.status, nil
	}
	status, err := c.load(ctx, tenant)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) > 100_000 {
		// Bounded memory: a token flood with random tenants can't grow the map forever.
		clear(c.entries)
	}
	c.entries[tenant] = statusEntry{status: status, expires: now.Add(c.ttl)}
	return status, nil
}
