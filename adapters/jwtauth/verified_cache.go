package jwtauth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// Verified tokens are remembered, because a tenant sends the same token with
// every request until it expires, and parsing and checking it again each
// time (base64, JSON, the signature) was 7 % of the API's CPU in
// BenchmarkAccept at 16 clients. An entry is found by the SHA-256 of the
// whole token, signature included, so only the exact bytes that were
// verified hit it, and it lives until the token's exp (never past
// maxVerifiedAge): by then the parser, whose answer is the same until exp,
// would see the same token. Failures are not remembered; garbage is cheap
// to refuse and would only fill the cache. Reloading the public keys
// replaces the cache, so a token signed by a removed key stops working at
// once.

const (
	// maxVerifiedTokens bounds the cache: about 100 bytes an entry.
	maxVerifiedTokens = 8192
	// maxVerifiedAge bounds how long a verification is reused, whatever
	// the token's exp says.
	maxVerifiedAge = 5 * time.Minute
)

type verifiedEntry struct {
	claims Claims
	until  time.Time
}

// verifiedCache maps a token's digest to what it granted.
type verifiedCache struct {
	mu      sync.RWMutex
	entries map[[sha256.Size]byte]verifiedEntry
}

func newVerifiedCache() *verifiedCache {
	return &verifiedCache{entries: make(map[[sha256.Size]byte]verifiedEntry)}
}

func tokenDigest(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }

// get returns the claims remembered for digest if they are still good at now.
func (c *verifiedCache) get(digest [sha256.Size]byte, now time.Time) (Claims, bool) {
	c.mu.RLock()
	e, ok := c.entries[digest]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		return Claims{}, false
	}
	return e.claims, true
}

// put remembers claims for digest until their expiry, at most maxVerifiedAge
// from now. A full cache first drops what has expired, then, if that freed
// nothing, an arbitrary entry (map order), which costs that token one more
// parse.
func (c *verifiedCache) put(digest [sha256.Size]byte, claims Claims, now time.Time) {
	until := now.Add(maxVerifiedAge)
	if claims.ExpiresAt.Before(until) {
		until = claims.ExpiresAt
	}
	if !now.Before(until) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxVerifiedTokens {
		for k, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < maxVerifiedTokens {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[digest] = verifiedEntry{claims: claims, until: until}
}

func (c *verifiedCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
