package jwtauth

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
)

// Reload re-reads the public keys file and installs its keys in one step, so
// a concurrent Verify sees the old set or the new one, never a mix. If the
// file cannot be used the old keys stay in place and the error says why.
func (a *Authenticator) Reload() error {
	_, err := a.reload()
	return err
}

// reload is Reload reporting how many keys it installed, for the log.
func (a *Authenticator) reload() (int, error) {
	if a.keysFile == "" {
		return 0, errors.New("jwtauth: no public keys file to reload")
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	ks, err := loadKeySet(a.keysFile)
	if err != nil {
		return 0, err
	}
	a.keys.Store(ks)
	a.verified.Store(newVerifiedCache())
	return len(ks.byKID), nil
}

// WatchSIGHUP reloads the public keys file each time the process receives
// SIGHUP, until ctx ends, reporting each outcome through logf (nil discards).
// The handler is installed before WatchSIGHUP returns, so from then on SIGHUP
// no longer terminates the process. Without a keys file it installs nothing.
func (a *Authenticator) WatchSIGHUP(ctx context.Context, logf func(string, ...any)) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if a.keysFile == "" {
		logf("jwtauth: no public keys file, SIGHUP not watched")
		return
	}
	// One buffered slot coalesces a burst of signals into one more reload,
	// which reads the file as it is by then anyway.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				n, err := a.reload()
				if err != nil {
					logf("jwtauth: SIGHUP: keeping the previous public keys: %v", err)
					continue
				}
				logf("jwtauth: SIGHUP: loaded %d public keys from %s", n, a.keysFile)
			}
		}
	}()
}
