package jwtauth

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// movableClock is a test clock that starts at fixedNow and moves on demand.
type movableClock struct{ offset atomic.Int64 }

func (c *movableClock) now() time.Time { return fixedNow().Add(time.Duration(c.offset.Load())) }

func (c *movableClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

func TestVerifiedCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sub := uuid.New()

	t.Run("OKRemembered", func(t *testing.T) {
		t.Parallel()
		a := newTestAuth(t, Options{})
		tok := sign(t, jwt.SigningMethodHS256, testSecret, validClaims(sub))
		for range 3 {
			requireVerifies(t, a, tok, sub)
		}
		if n := a.verified.Load().len(); n != 1 {
			t.Fatalf("cache holds %d entries after verifying one token 3 times, want 1", n)
		}
	})

	t.Run("ErrExpiredWhileRemembered", func(t *testing.T) {
		t.Parallel()
		var clock movableClock
		a := newTestAuth(t, Options{Now: clock.now, Leeway: time.Second})
		claims := validClaims(sub)
		claims["exp"] = fixedNow().Add(time.Minute).Unix()
		tok := sign(t, jwt.SigningMethodHS256, testSecret, claims)
		requireVerifies(t, a, tok, sub)
		clock.advance(time.Minute - time.Second)
		requireVerifies(t, a, tok, sub)
		// Past exp and the leeway the parser refuses it; the cache must not
		// answer for it any longer.
		clock.advance(2 * time.Second)
		_, err := a.Verify(ctx, tok)
		requireUnauthorized(t, err)
	})

	t.Run("ErrOnlyTheExactToken", func(t *testing.T) {
		t.Parallel()
		a := newTestAuth(t, Options{})
		tok := sign(t, jwt.SigningMethodHS256, testSecret, validClaims(sub))
		requireVerifies(t, a, tok, sub)
		// The same header and claims with a spoiled signature.
		spoiled := []byte(tok)
		last := len(spoiled) - 2
		spoiled[last] = map[bool]byte{true: 'B', false: 'A'}[spoiled[last] == 'A']
		_, err := a.Verify(ctx, string(spoiled))
		requireUnauthorized(t, err)
	})

	t.Run("OKMaxAge", func(t *testing.T) {
		t.Parallel()
		c := newVerifiedCache()
		d := tokenDigest("t")
		now := fixedNow()
		c.put(d, Claims{SubscriptionID: sub, ExpiresAt: now.Add(24 * time.Hour)}, now)
		if _, ok := c.get(d, now.Add(maxVerifiedAge-time.Nanosecond)); !ok {
			t.Fatal("entry gone before maxVerifiedAge")
		}
		if _, ok := c.get(d, now.Add(maxVerifiedAge)); ok {
			t.Fatal("entry still served at maxVerifiedAge, however far its token's exp")
		}
	})

	t.Run("OKBounded", func(t *testing.T) {
		t.Parallel()
		c := newVerifiedCache()
		now := fixedNow()
		digest := func(i int) [sha256.Size]byte {
			var d [sha256.Size]byte
			binary.BigEndian.PutUint64(d[:], uint64(i))
			return d
		}
		for i := range maxVerifiedTokens + 100 {
			c.put(digest(i), Claims{ExpiresAt: now.Add(time.Second)}, now)
		}
		if n := c.len(); n != maxVerifiedTokens {
			t.Fatalf("cache holds %d entries, want its bound %d", n, maxVerifiedTokens)
		}
		// Once they have expired, a full cache drops them all first.
		later := now.Add(2 * time.Second)
		c.put(digest(-1), Claims{ExpiresAt: later.Add(time.Hour)}, later)
		if n := c.len(); n != 1 {
			t.Fatalf("cache holds %d entries after its expired ones were dropped, want 1", n)
		}
	})
}

// BenchmarkVerify compares a token's first verification with a remembered one.
func BenchmarkVerify(b *testing.B) {
	a, err := NewHS256(testSecret, Options{})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := a.Issue(uuid.New(), time.Hour, false)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("parsed", func(b *testing.B) {
		for b.Loop() {
			if _, err := a.verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("remembered", func(b *testing.B) {
		for b.Loop() {
			if _, err := a.Verify(context.Background(), tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
