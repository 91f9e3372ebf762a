package app

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailgate/mailgate/db/dbtest"
)

// TestSIGTERMDrainsWithoutRefusingConnections runs the real binary as an
// API process, keeps requests flowing on fresh connections (as new clients
// routed during endpoint propagation do), sends it SIGTERM and checks that
// /readyz fails at once while every request started within the drain delay
// is still answered, and that the process then exits cleanly. Before the
// drain existed the listener closed on SIGTERM and the next dial was refused.
func TestSIGTERMDrainsWithoutRefusingConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const drainDelay = 4 * time.Second
	// Requests started this long before the drain ends must be answered; the
	// margin covers a dial that starts just before the listener closes.
	const margin = time.Second
	bin := buildMailgate(t, filepath.Join(t.TempDir(), "mailgate"))

	cmd := exec.Command(bin, "serve", "--role", "api")
	cmd.Env = []string{
		"MAILGATE_DATABASE_URL=" + dbtest.IsolatedURL(t),
		"MAILGATE_JWT_SECRET=" + testSecret,
		"MAILGATE_HTTP_ADDR=127.0.0.1:0",
		"MAILGATE_ADMIN_ADDR=127.0.0.1:0",
		"MAILGATE_DRAIN_DELAY=" + drainDelay.String(),
		"MAILGATE_SHUTDOWN_GRACE=5s",
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	addr := make(chan string, 1)
	go func() {
		// The JSON log names the listener once the process serves.
		scanner := bufio.NewScanner(stderr)
		for scanner.Scan() {
			var line struct {
				Msg  string `json:"msg"`
				HTTP string `json:"http"`
			}
			if json.Unmarshal(scanner.Bytes(), &line) == nil && line.Msg == "mailgate started" {
				addr <- line.HTTP
			}
			if testing.Verbose() {
				t.Log(scanner.Text())
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		exited <- cmd.Wait()
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-exited:
		exited <- err
		t.Fatalf("mailgate exited before serving: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("mailgate did not start within a minute")
	}

	// No keep-alive: every request dials, as a newly routed client would.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	type outcome struct {
		started time.Time
		err     error
		status  int
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
	)
	stopLoad := make(chan struct{})
	var load sync.WaitGroup
	for range 4 {
		load.Add(1)
		go func() {
			defer load.Done()
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				o := outcome{started: time.Now()}
				res, err := client.Get(base + "/healthz")
				o.err = err
				if err == nil {
					o.status = res.StatusCode
					_, _ = io.Copy(io.Discard, res.Body)
					_ = res.Body.Close()
				}
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
				if err != nil {
					// The process is gone: nothing more to learn.
					return
				}
			}
		}()
	}
	waitReady := func(want int) time.Time {
		t.Helper()
		deadline := time.Now().Add(drainDelay)
		for {
			res, err := client.Get(base + "/readyz")
			if err == nil {
				_ = res.Body.Close()
				if res.StatusCode == want {
					return time.Now()
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz never answered %d (last: %v)", want, err)
			}
		}
	}
	waitReady(http.StatusOK)

	signalled := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if notReady := waitReady(http.StatusServiceUnavailable); notReady.Sub(signalled) > drainDelay/2 {
		t.Errorf("/readyz failed only %s after SIGTERM", notReady.Sub(signalled))
	}
	var exitErr error
	select {
	case exitErr = <-exited:
		exited <- exitErr
	case <-time.After(drainDelay + 30*time.Second):
		t.Fatal("mailgate did not exit after SIGTERM")
	}
	close(stopLoad)
	load.Wait()
	if exitErr != nil {
		t.Errorf("mailgate exited with %v after SIGTERM, want status 0", exitErr)
	}

	mustAnswer := signalled.Add(drainDelay - margin)
	var during, refused int
	for _, o := range outcomes {
		if o.started.After(mustAnswer) {
			continue
		}
		if o.started.After(signalled) {
			during++
		}
		switch {
		case o.err != nil:
			refused++
			if refused <= 3 {
				t.Errorf("request started %s after SIGTERM failed: %v (refused: %v)",
					o.started.Sub(signalled), o.err, errors.Is(o.err, syscall.ECONNREFUSED))
			}
		case o.status != http.StatusOK:
			t.Errorf("request started %s after SIGTERM answered %d", o.started.Sub(signalled), o.status)
		}
	}
	if refused > 0 {
		t.Errorf("%d requests started within the drain delay were not answered", refused)
	}
	if during == 0 {
		t.Fatal("no request was made during the drain: the test proves nothing")
	}
	t.Logf("%d requests answered during the %s drain", during, drainDelay)
}
