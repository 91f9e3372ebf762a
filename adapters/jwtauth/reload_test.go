package jwtauth

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

func TestReload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := keys(t)
	sub := uuid.New()
	oldTok := signKID(t, jwt.SigningMethodRS256, k.rsa1, "old", validClaims(sub))
	newTok := signKID(t, jwt.SigningMethodEdDSA, k.ed1, "new", validClaims(sub))
	oldPEM := pemKey(t, k.rsa1.Public(), "old")
	newPEM := pemKey(t, k.ed1.Public(), "new")

	t.Run("OKRotation", func(t *testing.T) {
		t.Parallel()
		path := writeKeysFile(t, oldPEM)
		a := newKeysAuth(t, Options{PublicKeysFile: path})
		requireVerifies(t, a, oldTok, sub)

		// The new key is published beside the old one; until a reload the
		// authenticator does not know it.
		rewrite(t, path, oldPEM, newPEM)
		_, err := a.Verify(ctx, newTok)
		requireUnauthorized(t, err)
		if err := a.Reload(); err != nil {
			t.Fatalf("Reload: %v", err)
		}
		requireVerifies(t, a, newTok, sub)
		requireVerifies(t, a, oldTok, sub)

		// Retiring the old key takes effect at the next reload.
		rewrite(t, path, newPEM)
		if err := a.Reload(); err != nil {
			t.Fatalf("Reload: %v", err)
		}
		requireVerifies(t, a, newTok, sub)
		_, err = a.Verify(ctx, oldTok)
		requireUnauthorized(t, err)
		if !strings.Contains(err.Error(), "unknown kid") {
			t.Fatalf("cause = %v, want unknown kid", err)
		}
	})

	t.Run("ErrBrokenFileKeepsOldKeys", func(t *testing.T) {
		t.Parallel()
		path := writeKeysFile(t, oldPEM)
		a := newKeysAuth(t, Options{PublicKeysFile: path})
		for _, broken := range [][]byte{
			[]byte("{not json"),
			newPEM[:len(newPEM)-10],
			jwksBytes(t),
		} {
			rewrite(t, path, broken)
			if err := a.Reload(); err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("Reload of %q: err = %v, want an error naming the file", broken, err)
			}
			requireVerifies(t, a, oldTok, sub)
			_, err := a.Verify(ctx, newTok)
			requireUnauthorized(t, err)
		}
	})

	t.Run("ErrNoKeysFile", func(t *testing.T) {
		t.Parallel()
		a := newTestAuth(t, Options{})
		if err := a.Reload(); err == nil {
			t.Fatal("Reload without a keys file succeeded")
		}
	})

	// Run under -race: Verify reads the key set while Reload swaps it.
	t.Run("OKConcurrentVerify", func(t *testing.T) {
		t.Parallel()
		path := writeKeysFile(t, oldPEM, newPEM)
		a := newKeysAuth(t, Options{PublicKeysFile: path})
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := a.Verify(ctx, newTok); err != nil {
						t.Errorf("Verify during reload: %v", err)
						return
					}
				}
			})
		}
		for range 20 {
			if err := a.Reload(); err != nil {
				t.Errorf("Reload: %v", err)
			}
		}
		close(stop)
		wg.Wait()
	})
}
