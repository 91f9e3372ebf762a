//go:build unix

package jwtauth

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// TestWatchSIGHUP signals the test process itself. It is not parallel, and
// it sends SIGHUP only while WatchSIGHUP's handler is installed: without one
// the signal would end the whole test binary.
func TestWatchSIGHUP(t *testing.T) {
	ctx := context.Background()
	k := keys(t)
	sub := uuid.New()
	oldTok := signKID(t, jwt.SigningMethodRS256, k.rsa1, "old", validClaims(sub))
	newTok := signKID(t, jwt.SigningMethodEdDSA, k.ed1, "new", validClaims(sub))

	path := writeKeysFile(t, pemKey(t, k.rsa1.Public(), "old"))
	a := newKeysAuth(t, Options{PublicKeysFile: path})

	logs := make(chan string, 10)
	logf := func(format string, args ...any) { logs <- fmt.Sprintf(format, args...) }
	watchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.WatchSIGHUP(watchCtx, logf)

	hangUp := func(wantLog string) {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		select {
		case msg := <-logs:
			if !strings.Contains(msg, wantLog) {
				t.Fatalf("log = %q, want it to mention %q", msg, wantLog)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no reload logged after SIGHUP")
		}
	}

	rewrite(t, path, pemKey(t, k.ed1.Public(), "new"))
	_, err := a.Verify(ctx, newTok)
	requireUnauthorized(t, err)
	hangUp("loaded 1 public keys")
	requireVerifies(t, a, newTok, sub)
	_, err = a.Verify(ctx, oldTok)
	requireUnauthorized(t, err)

	rewrite(t, path, []byte("not a key"))
	hangUp("keeping the previous public keys")
	requireVerifies(t, a, newTok, sub)

	t.Run("OKNoKeysFile", func(t *testing.T) {
		a := newTestAuth(t, Options{})
		a.WatchSIGHUP(ctx, logf)
		if msg := <-logs; !strings.Contains(msg, "not watched") {
			t.Fatalf("log = %q", msg)
		}
	})
}
