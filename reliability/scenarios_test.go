//go:build reliability

package reliability

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// progress waits until the sink has logged at least n deliveries; false
// after the bound means delivery stalled.
func (s *suite) progress(ctx context.Context, st *stack, n int) bool {
	_, ok := waitFor(ctx, s.scale.Bound, 20*time.Millisecond, func() bool { return st.sink.received() >= n })
	return ok
}

// workerKill: the worker is SIGKILLed three times while it delivers, and
// restarted each time.
func (s *suite) workerKill(t *testing.T) {
	ctx := context.Background()
	st := s.newStack(t, "worker-sigkill", stackOptions{Workers: 20})
	st.sink.replyDelay.Store(int64(20 * time.Millisecond))
	n := s.scale.KillMessages
	r := row{Scenario: "worker SIGKILL ×3", Load: fmt.Sprintf("%d msgs × 3 rcpts, 16 clients, 20 workers", n),
		Faults: "SIGKILL at 20/45/70 % of deliveries, restart at once; relay answers after 20 ms"}
	loadDone := make(chan loadResult)
	go func() { loadDone <- st.sendLoad(ctx, loadSpec{Messages: n, Concurrency: 16, Tag: "kill"}) }()
	var lastRestart time.Time
	for k, pct := range []int{20, 45, 70} {
		if !s.progress(ctx, st, 3*n*pct/100) {
			r.Failures = append(r.Failures, fmt.Sprintf("delivery stalled before kill %d (%d of %d deliveries logged)", k+1, st.sink.received(), 3*n*pct/100))
			break
		}
		st.worker.kill()
		st.startWorker(ctx)
		lastRestart = time.Now()
	}
	res := <-loadDone
	s.awaitFinal(ctx, st, &r)
	if !lastRestart.IsZero() {
		r.Recovery = seconds(time.Since(lastRestart)) + " after the 3rd restart"
	}
	tl, err := st.count(ctx, res.Accepted)
	if err != nil {
		t.Fatal(err)
	}
	r.check(tl, false)
	r.Notes = append(r.Notes, loadNote(res))
	r.Failures = append(r.Failures, st.checkFlagsViaAPI(ctx, tl, 50)...)
	s.record(t, r)
}

// postgresFaults: PostgreSQL crashes (immediate stop) and restarts, then
// the network to it is partitioned and healed, while mail flows; the API
// and worker processes must carry on without being restarted.
func (s *suite) postgresFaults(t *testing.T) {
	ctx := context.Background()
	st := s.newStack(t, "postgres-crash-partition", stackOptions{Workers: 20, Env: []string{"MAILGATE_REQUEST_TIMEOUT=" + requestDeadline.String()}})
	st.sink.replyDelay.Store(int64(10 * time.Millisecond))
	n := s.scale.PGMessages
	const outage, partition = 5 * time.Second, 10 * time.Second
	r := row{Scenario: "PostgreSQL crash + partition", Load: fmt.Sprintf("%d msgs × 3 rcpts, 8 clients retrying with Idempotency-Key", n),
		Faults: fmt.Sprintf("pg_ctl stop -m immediate at 25 %%, restart after %s; partition (frozen, then dropped) for %s at 60 %%; MAILGATE_REQUEST_TIMEOUT=%s, a probe client without retries throughout each outage", outage, partition, requestDeadline)}
	apiPID, workerPID := st.api.pid(), st.worker.pid()
	loadDone := make(chan loadResult)
	go func() { loadDone <- st.sendLoad(ctx, loadSpec{Messages: n, Concurrency: 8, Retry: true, Tag: "pg"}) }()
	var healed time.Time
	if s.progress(ctx, st, 3*n/4) {
		if err := s.cluster.crash(ctx); err != nil {
			t.Fatal(err)
		}
		stopProbe := make(chan struct{})
		probe := st.outageProbe(ctx, stopProbe)
		// Fault injection: the database stays down for the outage.
		time.Sleep(outage)
		close(stopProbe)
		r.addProbe(<-probe, "crash")
		if err := s.cluster.start(ctx, t.Logf); err != nil {
			t.Fatal(err)
		}
		st.awaitReady(ctx, &r, "restart")
		if s.progress(ctx, st, 3*n*60/100) {
			st.pg.partition()
			stopProbe := make(chan struct{})
			probe := st.outageProbe(ctx, stopProbe)
			time.Sleep(partition)
			close(stopProbe)
			r.addProbe(<-probe, "partition")
			st.pg.heal()
			healed = time.Now()
			st.awaitReady(ctx, &r, "heal")
		} else {
			r.Failures = append(r.Failures, fmt.Sprintf("no delivery progress within %s after PostgreSQL restarted (%d logged)", s.scale.Bound, st.sink.received()))
		}
	} else {
		r.Failures = append(r.Failures, "delivery stalled before the crash")
	}
	res := <-loadDone
	s.awaitFinal(ctx, st, &r)
	if !healed.IsZero() {
		r.Recovery = seconds(time.Since(healed)) + " after the heal"
	}
	tl, err := st.count(ctx, res.Accepted)
	if err != nil {
		t.Fatal(err)
	}
	r.check(tl, false)
	if !st.api.alive() || st.api.pid() != apiPID {
		r.Failures = append(r.Failures, "the API process did not survive (it needed a restart)")
	}
	if !st.worker.alive() || st.worker.pid() != workerPID {
		r.Failures = append(r.Failures, "the worker process did not survive (it needed a restart)")
	}
	if int(res.Status2xx) != n {
		// Not this scenario's criterion (issue 10's API scenarios hold it),
		// but worth knowing.
		r.Notes = append(r.Notes, fmt.Sprintf("only %d of %d sends were accepted, even with retries", res.Status2xx, n))
	}
	r.Notes = append(r.Notes, loadNote(res), fmt.Sprintf("proxy dropped %d database connections at the heal", st.pg.dropped.Load()))
	// Jobs the worker's own fetch marked running while its reply was lost
	// come back through jobs/stranded.go, not River's rescue after the job timeout.
	if log, err := os.ReadFile(st.worker.logPath); err == nil {
		r.Notes = append(r.Notes, fmt.Sprintf("the worker gave back stranded jobs %d time(s)", bytes.Count(log, []byte("fetched but never started"))))
	}
	r.Failures = append(r.Failures, st.checkFlagsViaAPI(ctx, tl, 50)...)
	s.record(t, r)
}

// relayFaults: the relay path is slow and faulty for the whole scenario.
func (s *suite) relayFaults(t *testing.T) {
	ctx := context.Background()
	st := s.newStack(t, "relay-faults", stackOptions{Workers: 20})
	n := s.scale.RelayMessages
	f := faults{Latency: 20 * time.Millisecond, ResetConn: 0.2, ResetWithin: 20000, CloseAfterDot: 0.05, SwallowReply: 0.03, SwallowHold: 15 * time.Second}
	st.relay.set(f)
	r := row{Scenario: "relay faults", Load: fmt.Sprintf("%d msgs × 3 rcpts, 16 clients, 20 workers", n)}
	started := time.Now()
	res := st.sendLoad(ctx, loadSpec{Messages: n, Concurrency: 16, Tag: "relay"})
	took := s.awaitFinal(ctx, st, &r)
	r.Recovery = seconds(took) + " after the last send (" + seconds(time.Since(started)) + " in all)"
	r.Faults = fmt.Sprintf("latency %s/chunk; reset of %.0f %% of connections (%d); close after final dot %.0f %% of messages (%d); reply swallowed %.0f %%, %s silence (%d)",
		f.Latency, f.ResetConn*100, st.relay.resets.Load(), f.CloseAfterDot*100, st.relay.closesAfterDot.Load(), f.SwallowReply*100, f.SwallowHold, st.relay.swallowed.Load())
	tl, err := st.count(ctx, res.Accepted)
	if err != nil {
		t.Fatal(err)
	}
	r.check(tl, false)
	if int(res.Status2xx) != n {
		r.Failures = append(r.Failures, fmt.Sprintf("only %d of %d sends were accepted", res.Status2xx, n))
	}
	if st.relay.closesAfterDot.Load()+st.relay.swallowed.Load() > 0 && tl.DupFlagged+tl.DupUnflagged == 0 {
		r.Notes = append(r.Notes, "no re-send reached the sink twice although replies were lost after the dot")
	}
	r.Notes = append(r.Notes, loadNote(res))
	r.Failures = append(r.Failures, st.checkFlagsViaAPI(ctx, tl, 50)...)
	s.record(t, r)
}

// workerTerm: SIGTERM while deliveries are in flight that outlast the grace.
func (s *suite) workerTerm(t *testing.T) {
	ctx := context.Background()
	const grace, slack = 3 * time.Second, time.Second
	st := s.newStack(t, "worker-sigterm", stackOptions{Workers: 10, ShutdownGrace: grace})
	st.sink.replyDelay.Store(int64(4 * grace))
	n := s.scale.TermMessages
	r := row{Scenario: "worker SIGTERM", Load: fmt.Sprintf("%d msgs × 3 rcpts, 10 workers", n),
		Faults: fmt.Sprintf("relay answers DATA after %s; SIGTERM with MAILGATE_SHUTDOWN_GRACE=%s once 10 deliveries are in flight", 4*grace, grace)}
	res := st.sendLoad(ctx, loadSpec{Messages: n, Concurrency: 8, Tag: "term"})
	if _, ok := waitFor(ctx, time.Minute, 20*time.Millisecond, func() bool { return st.sink.inData.Load() >= 10 }); !ok {
		r.Failures = append(r.Failures, fmt.Sprintf("only %d deliveries in flight after a minute", st.sink.inData.Load()))
	}
	signalled := time.Now()
	_ = st.worker.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-st.worker.done:
	case <-time.After(grace + time.Minute):
		r.Failures = append(r.Failures, "the worker had not exited a minute past the grace; killed it")
		st.worker.kill()
	}
	exit := st.worker.exited.Sub(signalled)
	r.Notes = append(r.Notes, fmt.Sprintf("worker exited %s after SIGTERM (%v)", exit.Round(10*time.Millisecond), st.worker.err))
	if exit > grace+slack {
		r.Failures = append(r.Failures, fmt.Sprintf("the worker took %s to exit, more than MAILGATE_SHUTDOWN_GRACE=%s (+%s slack)", exit.Round(10*time.Millisecond), grace, slack))
	}
	var sending, running int
	if err := st.db.QueryRow(ctx, `SELECT count(*) FROM messages WHERE state = 'sending'`).Scan(&sending); err != nil {
		t.Fatal(err)
	}
	if err := st.db.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'deliver_message' AND state = 'running'`).Scan(&running); err != nil {
		t.Fatal(err)
	}
	if sending > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d messages left `sending` after the worker exited", sending))
	}
	if running > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d delivery jobs left `running` after the worker exited", running))
	}
	st.sink.replyDelay.Store(0)
	restarted := time.Now()
	st.startWorker(ctx)
	s.awaitFinal(ctx, st, &r)
	r.Recovery = seconds(time.Since(restarted)) + " after the restart"
	tl, err := st.count(ctx, res.Accepted)
	if err != nil {
		t.Fatal(err)
	}
	r.check(tl, false)
	r.Notes = append(r.Notes, loadNote(res))
	r.Failures = append(r.Failures, st.checkFlagsViaAPI(ctx, tl, 50)...)
	s.record(t, r)
}

// suspension: a suspended tenant's queued and scheduled mail is held, not
// sent and not failed, and goes out after reinstatement.
func (s *suite) suspension(t *testing.T) {
	ctx := context.Background()
	st := s.newStack(t, "tenant-suspension", stackOptions{Workers: 20, Tenants: 2, NoWorker: true})
	n := s.scale.SuspendMessages
	r := row{Scenario: "tenant suspended mid-queue", Load: fmt.Sprintf("2 tenants × (%d now + %d scheduled +20 s) msgs × 3 rcpts", n, n),
		Faults: "tenant A suspended while its mail is queued, worker started, A resumed once B's mail is all final"}
	sendAt := time.Now().Add(20 * time.Second)
	var a, b loadResult
	a.add(st.sendLoad(ctx, loadSpec{Messages: n, Tenants: []int{0}, Tag: "a-now"}))
	a.add(st.sendLoad(ctx, loadSpec{Messages: n, Tenants: []int{0}, SendAt: sendAt, Tag: "a-later"}))
	b.add(st.sendLoad(ctx, loadSpec{Messages: n, Tenants: []int{1}, Tag: "b-now"}))
	b.add(st.sendLoad(ctx, loadSpec{Messages: n, Tenants: []int{1}, SendAt: sendAt, Tag: "b-later"}))
	if code, body, err := st.adminCall(ctx, http.MethodPost, "/api/admin/tenants/"+st.tenants[0].ID+"/suspend"); err != nil || code != http.StatusOK {
		t.Fatalf("suspend: %d %v %s", code, err, body)
	}
	st.startWorker(ctx)
	// B's mail, queued after A's and scheduled at the same time, being all
	// final shows the worker has been through A's too.
	var left int
	if _, ok := waitFor(ctx, s.scale.Bound, 250*time.Millisecond, func() bool {
		n, err := st.unfinishedOf(ctx, ids(b.Accepted))
		left = n
		return err == nil && n == 0
	}); !ok {
		r.Failures = append(r.Failures, fmt.Sprintf("tenant B: %d messages not final after %s", left, s.scale.Bound))
	}
	held, err := st.count(ctx, a.Accepted)
	if err != nil {
		t.Fatal(err)
	}
	if held.Delivered > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d of A's %d recipients were sent while A was suspended", held.Delivered, held.Accepted))
	}
	if held.Failed > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d of A's recipients were failed while A was suspended (must be held)", held.Failed))
	}
	r.Notes = append(r.Notes, fmt.Sprintf("while suspended: A %d of %d recipients sent, %d failed; B %d messages accepted", held.Delivered, held.Accepted, held.Failed, len(b.Accepted)))
	if code, body, err := st.adminCall(ctx, http.MethodPost, "/api/admin/tenants/"+st.tenants[0].ID+"/resume"); err != nil || code != http.StatusOK {
		t.Fatalf("resume: %d %v %s", code, err, body)
	}
	resumed := time.Now()
	s.awaitFinal(ctx, st, &r)
	r.Recovery = seconds(time.Since(resumed)) + " after the resume"
	all := append(append([]sent{}, a.Accepted...), b.Accepted...)
	tl, err := st.count(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	r.check(tl, true)
	if tl.Failed > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d recipients failed; all should be delivered after the resume", tl.Failed))
	}
	if len(all) != 4*n {
		r.Failures = append(r.Failures, fmt.Sprintf("only %d of %d sends were accepted", len(all), 4*n))
	}
	s.record(t, r)
}

// domainRemoved: mail from a sender domain removed after it was queued
// fails with a reason instead of going out.
func (s *suite) domainRemoved(t *testing.T) {
	ctx := context.Background()
	st := s.newStack(t, "sender-domain-removed", stackOptions{Workers: 20, ExtraDomains: true, NoWorker: true})
	n := s.scale.DomainMessages
	removed := "d2." + st.tenants[0].Domain
	r := row{Scenario: "sender domain removed", Load: fmt.Sprintf("%d msgs from an account + %d from noreply@%s, × 3 rcpts", n, n, removed),
		Faults: "DELETE the second sender domain while its mail is queued, then start the worker"}
	kept := st.sendLoad(ctx, loadSpec{Messages: n, Tag: "kept"})
	gone := st.sendLoad(ctx, loadSpec{Messages: n, Tag: "gone", Sender: func(tenant) string { return "noreply@" + removed }})
	if code, body, err := st.adminCall(ctx, http.MethodDelete, "/api/admin/tenants/"+st.tenants[0].ID+"/domains/"+removed); err != nil || code != http.StatusOK {
		t.Fatalf("remove domain: %d %v %s", code, err, body)
	}
	started := time.Now()
	st.startWorker(ctx)
	s.awaitFinal(ctx, st, &r)
	r.Recovery = seconds(time.Since(started)) + " after the worker started"
	all := append(append([]sent{}, kept.Accepted...), gone.Accepted...)
	tl, err := st.count(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	r.check(tl, true)
	goneTally, err := st.count(ctx, gone.Accepted)
	if err != nil {
		t.Fatal(err)
	}
	if goneTally.Delivered > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d of %d recipients of mail from the removed domain went out", goneTally.Delivered, goneTally.Accepted))
	}
	unclear := 0
	var example string
	for _, g := range gone.Accepted {
		for _, rcpt := range g.Recipients {
			row := tl.rows[delivery{MessageID: g.MessageID, Recipient: strings.ToLower(rcpt)}]
			if row.State != "failed" || !strings.Contains(strings.ToLower(row.LastError), removed) {
				unclear++
				if example == "" {
					example = fmt.Sprintf("message %s, recipient %s, last_error %q", row.State, row.Status, row.LastError)
				}
			}
		}
	}
	if unclear > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d recipients of mail from the removed domain did not end in a failed message whose reason names %s, e.g. %s", unclear, removed, example))
	}
	if kept.Status2xx != int64(n) || gone.Status2xx != int64(n) {
		r.Failures = append(r.Failures, fmt.Sprintf("sends accepted: %d and %d of %d each", kept.Status2xx, gone.Status2xx, n))
	}
	keptTally, err := st.count(ctx, kept.Accepted)
	if err != nil {
		t.Fatal(err)
	}
	if keptTally.Delivered != keptTally.Accepted {
		r.Failures = append(r.Failures, fmt.Sprintf("only %d of %d recipients of the still-authorised sender were delivered", keptTally.Delivered, keptTally.Accepted))
	}
	r.Notes = append(r.Notes, fmt.Sprintf("removed domain: %d of %d recipients sent, %d failed", goneTally.Delivered, goneTally.Accepted, goneTally.Failed))
	s.record(t, r)
}

// apiKill (issue 10): the API is SIGKILLed three times under load and
// restarted on the same address; clients retry with Idempotency-Keys, so
// every message is accepted exactly once.
func (s *suite) apiKill(t *testing.T) {
	ctx := context.Background()
	st := s.newStack(t, "api-sigkill", stackOptions{Workers: 20})
	n := s.scale.APIKillMessages
	r := row{Scenario: "API SIGKILL ×3 (issue 10)", Load: fmt.Sprintf("%d msgs × 3 rcpts, 16 clients retrying with Idempotency-Key", n),
		Faults: "API SIGKILLed at 25/50/75 % of accepted sends, restarted on the same address"}
	loadDone := make(chan loadResult)
	go func() {
		loadDone <- st.sendLoad(ctx, loadSpec{Messages: n, Concurrency: 16, Retry: true, Tag: "apikill"})
	}()
	var lastRestart time.Time
	for k, pct := range []int{25, 50, 75} {
		want := n * pct / 100
		if _, ok := waitFor(ctx, s.scale.Bound, 20*time.Millisecond, func() bool {
			var c int
			_ = st.db.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&c)
			return c >= want
		}); !ok {
			r.Failures = append(r.Failures, fmt.Sprintf("accepting stalled before kill %d", k+1))
			break
		}
		st.restartAPI(ctx)
		lastRestart = time.Now()
	}
	res := <-loadDone
	s.awaitFinal(ctx, st, &r)
	if !lastRestart.IsZero() {
		r.Recovery = seconds(time.Since(lastRestart)) + " after the 3rd restart"
	}
	tl, err := st.count(ctx, res.Accepted)
	if err != nil {
		t.Fatal(err)
	}
	r.check(tl, true)
	if int(res.Status2xx) != n {
		r.Failures = append(r.Failures, fmt.Sprintf("only %d of %d sends were accepted, even with retries", res.Status2xx, n))
	}
	var twice, total int
	if err := st.db.QueryRow(ctx, `SELECT count(*) FROM (SELECT subject FROM messages GROUP BY subject HAVING count(*) > 1) d`).Scan(&twice); err != nil {
		t.Fatal(err)
	}
	if err := st.db.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if twice > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d sends were stored more than once despite their Idempotency-Key", twice))
	}
	keyFailures, keyNote := st.checkIdempotentSends(ctx, res.Accepted)
	r.Failures = append(r.Failures, keyFailures...)
	r.Notes = append(r.Notes, loadNote(res), fmt.Sprintf("%d messages stored for %d distinct sends", total, n), keyNote)
	s.record(t, r)
}

// soak: a steady 100 msg/s across 10 tenants.
func (s *suite) soak(t *testing.T) {
	ctx := context.Background()
	st := s.newStack(t, "soak", stackOptions{Workers: 30, Tenants: s.scale.SoakTenants})
	n := int(s.scale.SoakRate * s.scale.SoakDuration.Seconds())
	r := row{Scenario: "soak", Load: fmt.Sprintf("%.0f msg/s × %s across %d tenants (%d msgs × 3 rcpts), 32 clients", s.scale.SoakRate, s.scale.SoakDuration, s.scale.SoakTenants, n),
		Faults: "none"}
	tenants := make([]int, s.scale.SoakTenants)
	for i := range tenants {
		tenants[i] = i
	}
	samplerCtx, stopSampler := context.WithCancel(ctx)
	samples := make(chan [2][]int64, 1)
	go func() { samples <- sampleRSS(samplerCtx, st.api, st.worker, s.scale.SoakDuration/30) }()
	res := st.sendLoad(ctx, loadSpec{Messages: n, Concurrency: 32, Rate: s.scale.SoakRate, Tenants: tenants, Tag: "soak"})
	stopSampler()
	rss := <-samples
	took := s.awaitFinal(ctx, st, &r)
	r.Recovery = seconds(took) + " drain after the last send"
	tl, err := st.count(ctx, res.Accepted)
	if err != nil {
		t.Fatal(err)
	}
	r.check(tl, true)
	achieved := float64(res.Status2xx) / res.Elapsed.Seconds()
	if res.Status5 > 0 || res.TransportErrors > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d 5xx answers and %d transport errors", res.Status5, res.TransportErrors))
	}
	if achieved < 0.95*s.scale.SoakRate {
		r.Failures = append(r.Failures, fmt.Sprintf("sustained %.1f msg/s, below 95 %% of %.0f", achieved, s.scale.SoakRate))
	}
	for i, name := range []string{"api", "worker"} {
		ok, note := flatRSS(rss[i])
		r.Notes = append(r.Notes, name+" RSS "+note)
		if !ok {
			r.Failures = append(r.Failures, name+" RSS is not flat: "+note)
		}
	}
	r.Notes = append(r.Notes, loadNote(res), fmt.Sprintf("sustained %.1f msg/s accepted", achieved))
	s.record(t, r)
}

// addProbe records one outage's probe in the row.
func (r *row) addProbe(p probeResult, outage string) {
	failures, note := p.judge(outage)
	r.Failures = append(r.Failures, failures...)
	r.Notes = append(r.Notes, note)
}

// restartAPI kills the API and starts a new one on the same address.
func (st *stack) restartAPI(ctx context.Context) {
	st.t.Helper()
	addr, admin := st.api.addr, st.api.admin
	st.api.kill()
	st.api = st.startAt(ctx, "api", addr, admin)
}
