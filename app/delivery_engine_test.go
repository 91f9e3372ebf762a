package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/mailgate/mailgate/adapters/mailbuild"
	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
	"github.com/mailgate/mailgate/domain"
	"github.com/mailgate/mailgate/jobs"
)

// waitWorkedOnce waits until the message's job has been picked up at least
// once and is waiting again (held or scheduled).
func (g *gateway) waitWorkedOnce(t *testing.T, id string) {
	t.Helper()
	g.waitForRow(t, "scheduled", `SELECT state::text FROM river_job WHERE args->>'message_id' = $1 AND attempted_at IS NOT NULL`, id)
}

func TestSuspendedTenantMailIsHeldThenDelivered(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	admin := g.issueAdmin(t)
	v := g.send(t, map[string]any{"send": true, "subject": "held", "to": rcpts("ada@example.net"),
		"send_at": time.Now().Add(700 * time.Millisecond).UTC().Format(time.RFC3339Nano)})
	if res := g.do(t, "POST", "/api/admin/tenants/"+g.tenant.ID.String()+"/suspend", "", admin, nil); res.status != 200 {
		t.Fatalf("suspend: %d %s", res.status, res.body)
	}
	g.waitWorkedOnce(t, v.ID)
	var state string
	if err := g.owner.QueryRow(t.Context(), `SELECT state FROM messages WHERE id = $1`, v.ID).Scan(&state); err != nil || state != "queued" {
		t.Fatalf("a held message stays queued, got %q (%v)", state, err)
	}
	if n := len(g.relay.Messages()); n != 0 {
		t.Fatalf("a suspended tenant's mail went out (%d)", n)
	}
	if res := g.do(t, "POST", "/api/admin/tenants/"+g.tenant.ID.String()+"/resume", "", admin, nil); res.status != 200 {
		t.Fatalf("resume: %d %s", res.status, res.body)
	}
	// Released at once, not at the next hold check a minute later.
	g.relay.WaitForMessages(t, 1, 10*time.Second)
	g.waitForState(t, v.ID, "sent")
}

func TestHeldMessageCanBeCancelled(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	admin := g.issueAdmin(t)
	// Scheduled a moment ahead, so the suspension lands before any worker
	// looks at it: the worker then certainly holds it.
	v := g.send(t, map[string]any{"send": true, "subject": "held", "to": rcpts("ada@example.net"),
		"send_at": time.Now().Add(700 * time.Millisecond).UTC().Format(time.RFC3339Nano)})
	if res := g.do(t, "POST", "/api/admin/tenants/"+g.tenant.ID.String()+"/suspend", "", admin, nil); res.status != 200 {
		t.Fatalf("suspend: %d %s", res.status, res.body)
	}
	g.waitWorkedOnce(t, v.ID)
	// The tenant's own token is refused while suspended, so the cancel is
	// the store's (what the API's cancel calls).
	cancelled, err := g.app.Store().CancelMessage(t.Context(), g.tenant.ID, uuid.MustParse(v.ID))
	if err != nil || cancelled.State != domain.StateCancelled {
		t.Fatalf("cancel a held message: %v %+v", err, cancelled)
	}
	g.waitForRow(t, "cancelled", `SELECT state::text FROM river_job WHERE args->>'message_id' = $1`, v.ID)
	if n := len(g.relay.Messages()); n != 0 {
		t.Fatalf("a held message was sent (%d)", n)
	}
}

func TestRemovedSenderDomainFailsAtDelivery(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	admin := g.issueAdmin(t)
	// One plain address and one account, both on the domain about to go.
	plain := g.send(t, map[string]any{"sender_email": "news@" + g.domain, "send": true, "subject": "plain", "to": rcpts("ada@example.net"),
		"send_at": time.Now().Add(700 * time.Millisecond).UTC().Format(time.RFC3339Nano)})
	account := g.send(t, map[string]any{"send": true, "subject": "account", "to": rcpts("grace@example.org"),
		"send_at": time.Now().Add(700 * time.Millisecond).UTC().Format(time.RFC3339Nano)})
	if res := g.do(t, "DELETE", "/api/admin/tenants/"+g.tenant.ID.String()+"/domains/"+g.domain, "", admin, nil); res.status != 200 {
		t.Fatalf("remove domain: %d %s", res.status, res.body)
	}
	for _, id := range []string{plain.ID, account.ID} {
		final := g.waitForState(t, id, "failed")
		if !strings.Contains(final.LastError, "no longer a verified domain") || final.To[0].Status != "failed" {
			t.Fatalf("message %s: %q %+v", id, final.LastError, final.To)
		}
	}
	if n := len(g.relay.Messages()); n != 0 {
		t.Fatalf("mail from a removed domain went out (%d)", n)
	}
}

// TestLateTenantIsNotQueuedBehindAFlood: tenant A queues 300 messages in one
// batch, then tenant B one; B's comes out long before A's are done, and A
// alone still used every worker.
func TestLateTenantIsNotQueuedBehindAFlood(t *testing.T) {
	t.Parallel()
	g := startGatewayWith(t, RoleAll, smtptest.Options{}, func(c *Config) { c.RateLimit = 0 })
	items := make([]map[string]any, 300)
	for i := range items {
		items[i] = map[string]any{"sender_email": g.sender.Email, "send": true, "subject": fmt.Sprint("flood ", i), "to": rcpts("ada@example.net")}
	}
	if res := g.request(t, "POST", "/api/messages/batch", "application/json", "", nil, mustJSON(map[string]any{"messages": items})); res.status != 200 && res.status != 201 && res.status != 207 {
		t.Fatalf("batch: %d %s", res.status, res.body)
	}
	other, err := g.app.Store().CreateTenant(t.Context(), "late", []string{"late-" + g.domain})
	if err != nil {
		t.Fatal(err)
	}
	late := *g
	late.tenant, late.token = other, g.issue(t, other.ID)
	v := late.send(t, map[string]any{"sender_email": "a@late-" + g.domain, "send": true, "subject": "late", "to": rcpts("grace@example.org")})
	got := g.relay.WaitForMessages(t, 301, 60*time.Second)
	position := slices.IndexFunc(got, func(m smtptest.Received) bool { return slices.Contains(m.To, "grace@example.org") })
	if position < 0 || position > 150 {
		t.Fatalf("the late tenant's message was delivered %dth of 301", position+1)
	}
	late.waitForRow(t, "sent", `SELECT state FROM messages WHERE id = $1`, v.ID)
}

// failingRecord makes the outcome write fail, as when the worker dies or the
// database goes away right after the relay accepted the data.
type failingRecord struct {
	jobs.DeliveryStore
	fail bool
}

func (f *failingRecord) RecordAttempt(ctx context.Context, tenant uuid.UUID, rec domain.AttemptRecord, completeJob int64) error {
	if f.fail {
		return errors.New("worker died")
	}
	return f.DeliveryStore.RecordAttempt(ctx, tenant, rec, completeJob)
}

// scriptedTransport accepts the recipients in accept at RCPT, journals them
// and answers 250 for them, 550 for the rest.
type scriptedTransport struct {
	accept map[string]bool
	sent   [][]string
}

func (s *scriptedTransport) Deliver(ctx context.Context, _ string, to []string, _ domain.RenderedMessage, beforeData func(context.Context, []string) error) []domain.RecipientReply {
	var accepted []string
	replies := make([]domain.RecipientReply, len(to))
	for i, r := range to {
		replies[i] = domain.RecipientReply{Email: r, Code: 550, Text: "5.1.1 no such user"}
		if s.accept[r] {
			accepted = append(accepted, r)
			replies[i] = domain.RecipientReply{Email: r, Code: 250, Text: "2.0.0 ok"}
		}
	}
	if err := beforeData(ctx, accepted); err != nil {
		for i := range replies {
			replies[i] = domain.RecipientReply{Email: to[i], Text: err.Error()}
		}
		return replies
	}
	s.sent = append(s.sent, accepted)
	return replies
}

// TestInterruptedAttemptFlagsOnlyHandedOverRecipients runs the delivery
// worker against the real store: an attempt journals what the relay took and
// dies before writing its outcome; the next attempt flags exactly those
// recipients as possible duplicates, and none it never handed over.
func TestInterruptedAttemptFlagsOnlyHandedOverRecipients(t *testing.T) {
	t.Parallel()
	g := startGatewayRole(t, RoleAPI)
	v := g.send(t, map[string]any{"send": true, "subject": "journal", "to": rcpts("taken@example.net", "refused@example.net")})
	id := uuid.MustParse(v.ID)
	store := &failingRecord{DeliveryStore: g.app.Store(), fail: true}
	first := &scriptedTransport{accept: map[string]bool{"taken@example.net": true}}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	worker := jobs.NewDeliveryWorker(store, first, mailbuild.NewRenderer().Render, 0, logger)
	job := &river.Job[jobs.DeliverMessageArgs]{JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: 25}, Args: jobs.DeliverMessageArgs{SubscriptionID: g.tenant.ID, MessageID: id}}
	if err := worker.Work(t.Context(), job); err == nil {
		t.Fatal("the first attempt's outcome write failed; Work must say so")
	}
	after := g.get(t, v.ID)
	if after.State != "sending" {
		t.Fatalf("the journal marks the message sending while its attempt is unresolved, got %s", after.State)
	}
	// The next attempt: the relay takes both this time.
	store.fail = false
	second := &scriptedTransport{accept: map[string]bool{"taken@example.net": true, "refused@example.net": true}}
	worker = jobs.NewDeliveryWorker(store, second, mailbuild.NewRenderer().Render, 0, logger)
	job.Attempt = 2
	if err := worker.Work(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	final := g.get(t, v.ID)
	if final.State != "sent" {
		t.Fatalf("state %s", final.State)
	}
	for _, r := range final.To {
		want := r.EmailAddress == "taken@example.net"
		if r.PossibleDuplicate != want {
			t.Fatalf("%s: possible_duplicate %v, want %v", r.EmailAddress, r.PossibleDuplicate, want)
		}
	}
	var inFlight int
	_ = g.owner.QueryRow(t.Context(), `SELECT count(*) FROM message_recipients WHERE message_id = $1 AND in_flight_since IS NOT NULL`, id).Scan(&inFlight)
	if inFlight != 0 {
		t.Fatalf("%d journal marks left after the outcome was written", inFlight)
	}
}

// TestReconcilerResetsAnInterruptedAttempt: a message left in sending while
// its job waits for a retry goes back to queued, without a second job.
func TestReconcilerResetsAnInterruptedAttempt(t *testing.T) {
	t.Parallel()
	g := startGatewayRole(t, RoleAPI)
	v := g.send(t, map[string]any{"send": true, "subject": "interrupted", "to": rcpts("ada@example.net")})
	if _, err := g.owner.Exec(t.Context(), `UPDATE messages SET state = 'sending' WHERE id = $1`, v.ID); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stalled, err := findAllStalled(ctx, g.app.Store())
	if err != nil || len(stalled) != 1 {
		t.Fatalf("stalled: %+v %v", stalled, err)
	}
	if action, err := g.app.Store().Reconcile(ctx, stalled[0], time.Hour); err != nil || action != domain.StallReset {
		t.Fatalf("reconcile: %v %v", action, err)
	}
	if got := g.get(t, v.ID); got.State != "queued" || got.CanDelete {
		t.Fatalf("after reset: %s can_delete=%v", got.State, got.CanDelete)
	}
	if n := g.countRows(t, `SELECT count(*) FROM river_job WHERE args->>'subscription_id' = $1::text`); n != 1 {
		t.Fatalf("%d jobs for one message", n)
	}
}

func TestDeliveryPolicyAdmin(t *testing.T) {
	t.Parallel()
	g := startGatewayRole(t, RoleAPI)
	admin := g.issueAdmin(t)
	path := "/api/admin/tenants/" + g.tenant.ID.String() + "/delivery"
	res := g.do(t, "PUT", path, "application/json", admin, []byte(`{"delivery_weight":3,"max_send_rate":25}`))
	if res.status != 200 || !strings.Contains(string(res.body), `"delivery_weight":3`) || !strings.Contains(string(res.body), `"max_send_rate":25`) {
		t.Fatalf("set: %d %s", res.status, res.body)
	}
	assertProblem(t, g.do(t, "PUT", path, "application/json", admin, []byte(`{"delivery_weight":0}`)), 400, "delivery_weight")
	assertProblem(t, g.do(t, "PUT", path, "application/json", admin, []byte(`{"max_send_rate":-1}`)), 400, "max_send_rate")
	if res := g.do(t, "PUT", path, "application/json", g.token, []byte(`{"delivery_weight":5}`)); res.status != 403 {
		t.Fatalf("a tenant sets its own weight: %d", res.status)
	}
}

// TestMaxSendRateHoldsAcrossWorkers sends 12 messages for a tenant capped at
// 10 a second: the relay sees them spread over at least a second.
func TestMaxSendRateSpacesDeliveries(t *testing.T) {
	t.Parallel()
	g := startGatewayWith(t, RoleAll, smtptest.Options{}, func(c *Config) { c.RateLimit = 0 })
	admin := g.issueAdmin(t)
	if res := g.do(t, "PUT", "/api/admin/tenants/"+g.tenant.ID.String()+"/delivery", "application/json", admin, []byte(`{"max_send_rate":10}`)); res.status != 200 {
		t.Fatalf("%d %s", res.status, res.body)
	}
	start := time.Now()
	for i := range 12 {
		g.send(t, map[string]any{"send": true, "subject": fmt.Sprint("rated ", i), "to": rcpts("ada@example.net")})
	}
	g.relay.WaitForMessages(t, 12, 30*time.Second)
	// 12 slots 100 ms apart: the last is at least 1.1 s after the first.
	if elapsed := time.Since(start); elapsed < 1100*time.Millisecond {
		t.Fatalf("12 messages at 10/s took %v", elapsed)
	}
}

// TestRetryKeepsTheDateHeader: a message whose first attempt was cut off
// after the data is sent again with the same Date (and Message-ID).
func TestRetryKeepsTheDateHeader(t *testing.T) {
	t.Parallel()
	// The relay takes the first copy; the proxy cuts the connection before
	// its 250 reaches the gateway, which sends it again.
	sink := smtptest.Start(t, smtptest.Options{})
	proxy := smtptest.StartProxy(t, sink.Addr(), smtptest.ProxyOptions{AfterDot: func(message int) smtptest.Fault {
		if message == 1 {
			return smtptest.FaultClose
		}
		return smtptest.FaultNone
	}})
	// The retry comes at least 1.1 s later (1.5 s ± 25 %), so a Date taken
	// at attempt time could not match the first one at second resolution.
	g := startGatewayWith(t, RoleAll, smtptest.Options{}, func(c *Config) {
		c.SMTPURL, c.RetryBase = "smtp://"+proxy.Addr(), 1500*time.Millisecond
	})
	v := g.send(t, map[string]any{"send": true, "subject": "dated", "to": rcpts("ada@example.net")})
	// Generous: River moves the retry to available on its scheduler's tick,
	// late on a loaded machine.
	got := sink.WaitForMessages(t, 2, 90*time.Second)
	header := func(data []byte, name string) string {
		m, err := mail.ReadMessage(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		return m.Header.Get(name)
	}
	if a, b := header(got[0].Data, "Date"), header(got[1].Data, "Date"); a == "" || a != b {
		t.Fatalf("Date %q on the first attempt, %q on the retry", a, b)
	}
	if a, b := header(got[0].Data, "Message-Id"), header(got[1].Data, "Message-Id"); a != b {
		t.Fatalf("Message-ID changed across the retry: %q, %q", a, b)
	}
	final := g.waitForState(t, v.ID, "sent")
	if !final.To[0].PossibleDuplicate {
		t.Fatal("the resend after a lost reply is flagged")
	}
}

// TestResumeReleasesHeldMailTwice: a hold decided just before a resume is
// recorded by River a moment after it, so the resume schedules a second
// release a few seconds later.
func TestResumeReleasesHeldMailTwice(t *testing.T) {
	t.Parallel()
	g := startGatewayRole(t, RoleAPI)
	admin := g.issueAdmin(t)
	for _, action := range []string{"suspend", "resume"} {
		if res := g.do(t, "POST", "/api/admin/tenants/"+g.tenant.ID.String()+"/"+action, "", admin, nil); res.status != 200 {
			t.Fatalf("%s: %d %s", action, res.status, res.body)
		}
	}
	var in float64
	if err := g.owner.QueryRow(t.Context(), `SELECT extract(epoch FROM scheduled_at - now()) FROM river_job
		WHERE kind = 'release_held' AND args->>'subscription_id' = $1::text`, g.tenant.ID).Scan(&in); err != nil {
		t.Fatalf("no second release scheduled: %v", err)
	}
	if in < 2 || in > 6 {
		t.Fatalf("the second release is due in %.1f s, want about 5", in)
	}
}
