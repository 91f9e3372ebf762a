package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/adapters/mailbuild"
	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
	"github.com/mailgate/mailgate/adapters/webhook"
	"github.com/mailgate/mailgate/domain"
)

func smtpErr(code int, enhanced string, msg string) *smtp.SMTPError {
	var ec smtp.EnhancedCode
	fmt.Sscanf(enhanced, "%d.%d.%d", &ec[0], &ec[1], &ec[2])
	return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg}
}

func (g *gateway) send(t *testing.T, body map[string]any) messageView {
	t.Helper()
	if _, ok := body["sender_email"]; !ok {
		body["sender_email"] = g.sender.Email
	}
	res := g.postJSON(t, mustJSON(body))
	if res.status != http.StatusCreated {
		t.Fatalf("send: %d %s", res.status, res.body)
	}
	var v messageView
	res.decode(t, &v)
	return v
}

func rcpts(addrs ...string) []map[string]string {
	out := make([]map[string]string, len(addrs))
	for i, a := range addrs {
		out[i] = map[string]string{"email_address": a}
	}
	return out
}

// TestReplyCodeMatrix scripts one reply per recipient: 2xx is delivered once,
// 4xx is retried until it succeeds, 5xx bounces without a retry, and a hard
// bounce suppresses the address for later messages.
func TestReplyCodeMatrix(t *testing.T) {
	t.Parallel()
	script := map[string]*smtp.SMTPError{
		"ok@example.net":      nil,
		"busy451@example.net": smtpErr(451, "4.3.0", "try later"),
		"full452@example.net": smtpErr(452, "4.2.2", "mailbox full"),
		"gone550@example.net": smtpErr(550, "5.1.1", "no such user"),
		"spam554@example.net": smtpErr(554, "5.7.1", "rejected by policy"),
		"down421@example.net": smtpErr(421, "4.4.2", "closing"),
	}
	g := startGateway(t, smtptest.Options{Rcpt: func(rcpt string, attempt int) *smtp.SMTPError {
		if attempt > 1 && script[rcpt] != nil && script[rcpt].Code < 500 {
			return nil
		}
		return script[rcpt]
	}})
	// The 421 ends the transaction, so it goes last.
	v := g.send(t, map[string]any{"send": true, "subject": "matrix",
		"to": rcpts("ok@example.net", "busy451@example.net", "full452@example.net", "gone550@example.net", "spam554@example.net", "down421@example.net")})
	final := g.waitForState(t, v.ID, "partially_sent")
	want := map[string]struct {
		status   string
		attempts int
	}{
		// The 421 ends the session before DATA, so even the accepted recipient waits for the retry.
		"ok@example.net": {"delivered", 2}, "busy451@example.net": {"delivered", 2}, "full452@example.net": {"delivered", 2},
		"gone550@example.net": {"bounced", 1}, "spam554@example.net": {"bounced", 1}, "down421@example.net": {"delivered", 2},
	}
	for _, r := range final.To {
		w := want[r.EmailAddress]
		if r.Status != w.status || r.Attempts != w.attempts {
			t.Errorf("%s: %s after %d attempts, want %s after %d", r.EmailAddress, r.Status, r.Attempts, w.status, w.attempts)
		}
		if n := g.relay.RcptAttempts(r.EmailAddress); n != w.attempts {
			t.Errorf("%s: relay saw %d RCPTs, want %d", r.EmailAddress, n, w.attempts)
		}
	}

	sup := g.request(t, "GET", "/api/suppressions", "", "", nil, nil)
	if !bytes.Contains(sup.body, []byte("gone550@example.net")) || bytes.Contains(sup.body, []byte("spam554@example.net")) {
		t.Fatalf("only the hard bounce is suppressed: %s", sup.body)
	}
	later := g.send(t, map[string]any{"send": true, "subject": "again", "to": rcpts("gone550@example.net", "ok@example.net")})
	again := g.waitForState(t, later.ID, "partially_sent")
	if again.To[0].Status != "suppressed" || g.relay.RcptAttempts("gone550@example.net") != 1 {
		t.Fatalf("a suppressed address was sent to: %+v, %d RCPTs", again.To[0], g.relay.RcptAttempts("gone550@example.net"))
	}
	// Removing the suppression lets mail through again.
	if res := g.request(t, "DELETE", "/api/suppressions/gone550@example.net", "", "", nil, nil); res.status != 204 {
		t.Fatalf("remove suppression: %d %s", res.status, res.body)
	}
}

func TestDropAfterDataIsRetriedAndFlagged(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{DropAfterData: func(attempt int) bool { return attempt == 1 }})
	v := g.send(t, map[string]any{"send": true, "subject": "drop", "to": rcpts("ada@example.net")})
	g.waitForState(t, v.ID, "sent")
	res := g.request(t, "GET", "/api/messages/"+v.ID, "", "", nil, nil)
	if !bytes.Contains(res.body, []byte(`"possible_duplicate":true`)) {
		t.Fatalf("the recipient is not flagged as a possible duplicate: %s", res.body)
	}
	events := g.request(t, "GET", "/api/messages/"+v.ID+"/events", "", "", nil, nil)
	if !bytes.Contains(events.body, []byte("possible duplicate")) || !bytes.Contains(events.body, []byte(`"smtp_code":451`)) {
		t.Fatalf("timeline: %s", events.body)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	body := mustJSON(map[string]any{"sender_email": g.sender.Email, "subject": "once", "to": rcpts("ada@example.net")})
	key := map[string]string{"Idempotency-Key": "order-42"}
	first := g.request(t, "POST", "/api/messages/sendmessage", "application/json", "", key, body)
	second := g.request(t, "POST", "/api/messages/sendmessage", "application/json", "", key, body)
	if first.status != 201 || second.status != 201 || !bytes.Equal(first.body, second.body) || second.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("repeat: %d/%d replayed=%q\n%s\n%s", first.status, second.status, second.header.Get("Idempotent-Replayed"), first.body, second.body)
	}
	// An XML answer is replayed as XML.
	xmlKey := map[string]string{"Idempotency-Key": "xml-1"}
	xmlFirst := g.request(t, "POST", "/api/messages/sendmessage", "application/json", "application/xml", xmlKey, body)
	xmlAgain := g.request(t, "POST", "/api/messages/sendmessage", "application/json", "application/xml", xmlKey, body)
	if xmlAgain.header.Get("Content-Type") != xmlFirst.header.Get("Content-Type") || !bytes.Equal(xmlFirst.body, xmlAgain.body) {
		t.Fatalf("XML replay: %q vs %q", xmlFirst.header.Get("Content-Type"), xmlAgain.header.Get("Content-Type"))
	}
	other := g.request(t, "POST", "/api/messages/sendmessage", "application/json", "", key,
		mustJSON(map[string]any{"sender_email": g.sender.Email, "subject": "twice", "to": rcpts("ada@example.net")}))
	assertProblem(t, other, http.StatusUnprocessableEntity, "Idempotency-Key")
	if n := g.countRows(t, `SELECT count(*) FROM messages WHERE subscription_id = $1`); n != 2 {
		t.Fatalf("%d messages for two keys", n)
	}
	// A refused request does not burn its key.
	bad := map[string]string{"Idempotency-Key": "retry-me"}
	assertProblem(t, g.request(t, "POST", "/api/messages/sendmessage", "application/json", "", bad, []byte(`{"subject":`)), 400, "")
	var stored int
	_ = g.owner.QueryRow(t.Context(), `SELECT count(*) FROM idempotency_keys WHERE subscription_id = $1 AND key = 'retry-me'`, g.tenant.ID).Scan(&stored)
	if stored != 1 {
		t.Fatalf("the 400 answer was not stored against its key")
	}
	// Concurrent repeats create one message.
	var wg sync.WaitGroup
	statuses := make([]int, 10)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = g.request(t, "POST", "/api/messages/sendmessage", "application/json", "", map[string]string{"Idempotency-Key": "burst"}, body).status
		}()
	}
	wg.Wait()
	if n := g.countRows(t, `SELECT count(*) FROM messages WHERE subscription_id = $1`); n != 3 {
		t.Fatalf("concurrent repeats created %d messages in all (%v)", n, statuses)
	}
}

func TestScheduledSendAndCancel(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	later := g.send(t, map[string]any{"send": true, "subject": "later", "to": rcpts("ada@example.net"),
		"send_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	res := g.request(t, "POST", "/api/messages/"+later.ID+"/cancel", "", "", nil, nil)
	if res.status != 200 || !bytes.Contains(res.body, []byte(`"state":"cancelled"`)) {
		t.Fatalf("cancel: %d %s", res.status, res.body)
	}
	assertProblem(t, g.request(t, "POST", "/api/messages/"+later.ID+"/cancel", "", "", nil, nil), http.StatusConflict, "")
	var jobState string
	if err := g.owner.QueryRow(t.Context(), `SELECT state::text FROM river_job WHERE args->>'message_id' = $1`, later.ID).Scan(&jobState); err != nil || jobState != "cancelled" {
		t.Fatalf("job of a cancelled message is %q (%v)", jobState, err)
	}

	sendAt := time.Now().Add(1500 * time.Millisecond)
	soon := g.send(t, map[string]any{"send": true, "subject": "soon", "to": rcpts("grace@example.org"), "send_at": sendAt.UTC().Format(time.RFC3339Nano)})
	got := g.relay.WaitForMessages(t, 1, 20*time.Second)
	if time.Now().Before(sendAt) {
		t.Fatalf("a scheduled message went out early")
	}
	g.waitForState(t, soon.ID, "sent")
	if len(got) != 1 || got[0].To[0] != "grace@example.org" {
		t.Fatalf("the cancelled message was sent: %+v", got)
	}
	assertProblem(t, g.postJSON(t, mustJSON(map[string]any{"sender_email": g.sender.Email, "to": rcpts("a@example.net"), "send": true,
		"send_at": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)})), 400, "send_at")
}

// TestBatchIsOneTransaction sends 500 messages, one of them invalid, and
// checks the 499 others and their jobs were written by a single transaction.
func TestBatchIsOneTransaction(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	at := time.Now().Add(time.Hour).UTC().Format(time.RFC3339) // scheduled, so nothing is delivered meanwhile
	msgs := make([]map[string]any, 500)
	for i := range msgs {
		msgs[i] = map[string]any{"sender_email": g.sender.Email, "subject": fmt.Sprint("batch ", i), "send": true, "send_at": at,
			"to": rcpts(fmt.Sprintf("r%d@example.net", i))}
	}
	msgs[137]["sender_email"] = "ceo@bank.example"
	res := g.do(t, "POST", "/api/messages/batch", "application/json", g.token, mustJSON(map[string]any{"messages": msgs}))
	var out struct {
		Results []struct {
			Index   int          `json:"index"`
			Status  int          `json:"status"`
			Message *messageView `json:"message"`
		} `json:"results"`
	}
	res.decode(t, &out)
	if res.status != 200 || len(out.Results) != 500 || out.Results[137].Status != 403 || out.Results[0].Status != 201 || out.Results[499].Message == nil {
		t.Fatalf("batch: %d, %d results", res.status, len(out.Results))
	}
	var xacts, jobs int
	if err := g.owner.QueryRow(t.Context(), `SELECT count(DISTINCT xmin::text), count(*) FROM messages WHERE subscription_id = $1`, g.tenant.ID).Scan(&xacts, &jobs); err != nil {
		t.Fatal(err)
	}
	if xacts != 1 || jobs != 499 {
		t.Fatalf("%d messages written by %d transactions, want 499 by 1", jobs, xacts)
	}
	if err := g.owner.QueryRow(t.Context(), `SELECT count(DISTINCT xmin::text), count(*) FROM river_job WHERE args->>'subscription_id' = $1::text`, g.tenant.ID).Scan(&xacts, &jobs); err != nil {
		t.Fatal(err)
	}
	if xacts != 1 || jobs != 499 {
		t.Fatalf("%d jobs written by %d transactions, want 499 by 1", jobs, xacts)
	}
	assertProblem(t, g.do(t, "POST", "/api/messages/batch", "application/json", g.token, mustJSON(map[string]any{"messages": make([]any, 501)})), 400, "messages")
}

func TestWebhooksAreSignedAndRetried(t *testing.T) {
	t.Parallel()
	var (
		mu       sync.Mutex
		received []map[string]any
		calls    atomic.Int32
		secret   []byte
		badSigs  atomic.Int32
	)
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable) // the first two deliveries fail and must be retried
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if err := webhook.Verify(r.Header.Get("Mailgate-Signature"), secret, body, time.Now(), time.Minute); err != nil {
			badSigs.Add(1)
		}
		var e map[string]any
		_ = json.Unmarshal(body, &e)
		received = append(received, e)
	}))
	defer endpoint.Close()
	g := startGateway(t, smtptest.Options{})
	res := g.do(t, "POST", "/api/webhooks", "application/json", g.token, mustJSON(map[string]any{"url": endpoint.URL, "event_types": []string{"queued", "delivered", "sent"}}))
	var hook struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	res.decode(t, &hook)
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(hook.Secret, "whsec_"))
	if res.status != 201 || err != nil {
		t.Fatalf("create webhook: %d %s", res.status, res.body)
	}
	mu.Lock()
	secret = raw
	mu.Unlock()

	v := g.send(t, map[string]any{"send": true, "subject": "hooked", "to": rcpts("ada@example.net")})
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(received)
		mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d webhook events after %d calls", n, calls.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	types := map[string]bool{}
	for _, e := range received {
		types[e["type"].(string)] = true
		if e["message_id"] != v.ID {
			t.Fatalf("event for another message: %v", e)
		}
	}
	if !types["queued"] || !types["delivered"] || !types["sent"] || badSigs.Load() != 0 {
		t.Fatalf("events %v, %d bad signatures", types, badSigs.Load())
	}
	// The feed has the same events, in commit order, and resumes from its cursor.
	feed := g.request(t, "GET", "/api/events?limit=2", "", "", nil, nil)
	var page struct {
		Items     []map[string]any `json:"items"`
		NextAfter string           `json:"next_after"`
	}
	feed.decode(t, &page)
	if len(page.Items) != 2 || page.Items[0]["type"] != "created" || page.NextAfter == "" {
		t.Fatalf("feed: %s", feed.body)
	}
	rest := g.request(t, "GET", "/api/events?after="+page.NextAfter, "", "", nil, nil)
	if !bytes.Contains(rest.body, []byte(`"type":"sent"`)) || bytes.Contains(rest.body, []byte(`"type":"created"`)) {
		t.Fatalf("resumed feed: %s", rest.body)
	}
}

func TestDKIMSignatureVerifies(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	key, err := mailbuild.GenerateDKIMKey(mailbuild.Ed25519SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.app.Store().SetDKIMKey(t.Context(), g.tenant.ID, domain.DKIMKey{Domain: g.domain, Selector: "mg1", Algorithm: "ed25519-sha256", PrivateKey: key}); err != nil {
		t.Fatal(err)
	}
	record, _ := mailbuild.DKIMRecord(key)
	g.send(t, map[string]any{"send": true, "subject": "signed", "body": "<p>hello</p>", "to": rcpts("ada@example.net")})
	got := g.relay.WaitForMessages(t, 1, 20*time.Second)
	verifications, err := dkim.VerifyWithOptions(bytes.NewReader(got[0].Data), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			if name == "mg1._domainkey."+g.domain {
				return []string{record}, nil
			}
			return nil, fmt.Errorf("no record for %s", name)
		},
	})
	if err != nil || len(verifications) != 1 || verifications[0].Err != nil || verifications[0].Domain != g.domain {
		t.Fatalf("DKIM verification: %v %+v", err, verifications)
	}
}

func TestSandboxSendsNothing(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	admin, _ := g.auth.Issue(uuid.New(), time.Hour, true)
	if res := g.do(t, "PUT", "/api/admin/tenants/"+g.tenant.ID.String()+"/sandbox", "application/json", admin, []byte(`{"enabled":true}`)); res.status != 200 {
		t.Fatalf("sandbox on: %d %s", res.status, res.body)
	}
	v := g.send(t, map[string]any{"send": true, "subject": "sandboxed", "to": rcpts("ada@example.net", "grace@example.org")})
	final := g.waitForState(t, v.ID, "sent")
	if final.To[0].Status != "delivered" || g.relay.Sessions() != 0 {
		t.Fatalf("sandbox: %+v, %d SMTP sessions", final.To, g.relay.Sessions())
	}
	events := g.request(t, "GET", "/api/messages/"+v.ID+"/events", "", "", nil, nil)
	if !bytes.Contains(events.body, []byte("sandbox")) {
		t.Fatalf("timeline doesn't say sandbox: %s", events.body)
	}
}

// TestFloodingTenantIsLimited floods the API as one tenant while another
// tenant's message still goes through.
func TestFloodingTenantIsLimited(t *testing.T) {
	t.Parallel()
	g := startGatewayWith(t, RoleAll, smtptest.Options{}, func(c *Config) { c.RateLimit, c.RateBurst = 2, 5 })
	limited := 0
	for range 20 {
		res := g.do(t, "GET", "/api/messages?limit=1", "", g.token, nil)
		if res.status == http.StatusTooManyRequests {
			limited++
			if res.header.Get("Retry-After") == "" || res.header.Get("RateLimit-Limit") != "5" {
				t.Fatalf("429 without Retry-After/RateLimit headers: %v", res.header)
			}
			assertProblem(t, res, 429, "")
		}
	}
	if limited < 10 {
		t.Fatalf("only %d of 20 flood requests were limited", limited)
	}
	other, err := g.app.Store().CreateTenant(t.Context(), "quiet", []string{"quiet-" + g.domain})
	if err != nil {
		t.Fatal(err)
	}
	quiet := *g
	quiet.tenant, quiet.token = other, g.issue(t, other.ID)
	v := quiet.send(t, map[string]any{"sender_email": "a@quiet-" + g.domain, "send": true, "subject": "still works", "to": rcpts("ada@example.net")})
	// Polled in the database: the API would count the polls against the quiet tenant's limit too.
	g.waitForRow(t, "sent", `SELECT state FROM messages WHERE id = $1`, v.ID)
}

func TestRetryFailedMessage(t *testing.T) {
	t.Parallel()
	var accept atomic.Bool
	g := startGatewayWith(t, RoleAll, smtptest.Options{Rcpt: func(string, int) *smtp.SMTPError {
		if accept.Load() {
			return nil
		}
		return smtpErr(451, "4.3.0", "try later")
	}}, func(c *Config) { c.MaxDeliveryAge = time.Millisecond })
	v := g.send(t, map[string]any{"send": true, "subject": "retry me", "to": rcpts("ada@example.net")})
	failed := g.waitForState(t, v.ID, "failed")
	if failed.To[0].Status != "failed" || !strings.Contains(failed.LastError, "451") {
		t.Fatalf("past its age a deferral fails: %+v", failed)
	}
	accept.Store(true)
	res := g.request(t, "POST", "/api/messages/"+v.ID+"/retry", "", "", nil, nil)
	if res.status != http.StatusAccepted {
		t.Fatalf("retry: %d %s", res.status, res.body)
	}
	g.waitForState(t, v.ID, "sent")
	assertProblem(t, g.request(t, "POST", "/api/messages/"+v.ID+"/retry", "", "", nil, nil), http.StatusConflict, "")
	bulk := g.request(t, "POST", "/api/messages/retry", "application/json", "", nil, []byte(`{"state":"failed"}`))
	if bulk.status != 200 || !bytes.Contains(bulk.body, []byte(`"requeued":0`)) {
		t.Fatalf("bulk retry: %d %s", bulk.status, bulk.body)
	}
}

// TestReconcilerRequeuesLostJobs deletes a queued message's job behind the
// gateway's back; the reconciler finds it and queues it again.
func TestReconcilerRequeuesLostJobs(t *testing.T) {
	t.Parallel()
	g := startGatewayRole(t, RoleAPI)
	v := g.send(t, map[string]any{"send": true, "subject": "lost", "to": rcpts("ada@example.net")})
	if _, err := g.owner.Exec(t.Context(), `DELETE FROM river_job WHERE args->>'message_id' = $1`, v.ID); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stalled, err := findAllStalled(ctx, g.app.Store())
	if err != nil || len(stalled) != 1 || stalled[0].ID.String() != v.ID {
		t.Fatalf("stalled: %+v %v", stalled, err)
	}
	if action, err := g.app.Store().Reconcile(ctx, stalled[0], time.Hour); err != nil || action != domain.StallRequeue {
		t.Fatalf("reconcile: %v %v", action, err)
	}
	var jobs int
	_ = g.owner.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE args->>'message_id' = $1`, v.ID).Scan(&jobs)
	if jobs != 1 {
		t.Fatalf("reconcile queued %d jobs", jobs)
	}
	if again, _ := findAllStalled(ctx, g.app.Store()); len(again) != 0 {
		t.Fatalf("still stalled after reconcile")
	}
}

// TestIdempotencyKeyOfADeadRequestIsReusable: a request that claimed its key
// and died before creating its message (a killed API process) leaves the key
// in progress; after the lease a retry takes it over, creates the message
// once, and a late create by the dead claim's owner is refused.
func TestIdempotencyKeyOfADeadRequestIsReusable(t *testing.T) {
	t.Parallel()
	g := startGatewayRole(t, RoleAPI)
	body := mustJSON(map[string]any{"sender_email": g.sender.Email, "subject": "once", "to": rcpts("ada@example.net")})
	key := map[string]string{"Idempotency-Key": "died-1"}
	first := g.request(t, "POST", "/api/messages/sendmessage", "application/json", "", key, body)
	if first.status != 201 {
		t.Fatalf("%d %s", first.status, first.body)
	}
	// Turn it into a claim whose request died before its create committed.
	if _, err := g.owner.Exec(t.Context(), `DELETE FROM messages WHERE subscription_id = $1`, g.tenant.ID); err != nil {
		t.Fatal(err)
	}
	die := func(age time.Duration) {
		t.Helper()
		if _, err := g.owner.Exec(t.Context(), `UPDATE idempotency_keys SET status = 0, message_ids = '{}', response = NULL, created_at = now() - $3::interval
			WHERE subscription_id = $1 AND key = $2`, g.tenant.ID, "died-1", fmt.Sprintf("%d milliseconds", age.Milliseconds())); err != nil {
			t.Fatal(err)
		}
	}
	die(0)
	assertProblem(t, g.request(t, "POST", "/api/messages/sendmessage", "application/json", "", key, body), http.StatusConflict, "Idempotency-Key")
	die(time.Minute)
	retry := g.request(t, "POST", "/api/messages/sendmessage", "application/json", "", key, body)
	if retry.status != 201 || g.countRows(t, `SELECT count(*) FROM messages WHERE subscription_id = $1`) != 1 {
		t.Fatalf("retry after the lease: %d %s", retry.status, retry.body)
	}
	again := g.request(t, "POST", "/api/messages/sendmessage", "application/json", "", key, body)
	if again.status != 201 || again.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.body, retry.body) {
		t.Fatalf("replay: %d %s", again.status, again.body)
	}
	// The dead claim's owner wakes up and tries to create: refused, nothing written.
	ctx := domain.WithIdempotencyKey(t.Context(), "died-1", domain.IdempotencyClaim{})
	msg := &domain.Message{ID: uuid.New(), SubscriptionID: g.tenant.ID, SenderEmail: g.sender.Email, SenderAccountID: g.sender.ID,
		MessageID: "<late@" + g.domain + ">", ConversationID: uuid.New(), State: domain.StateDraft, CreatedDate: time.Now(), UpdatedAt: time.Now(),
		Recipients: []domain.Recipient{{Kind: domain.KindTo, Email: "ada@example.net", Status: domain.RecipientPending}}}
	if err := g.app.Store().CreateMessage(ctx, g.tenant.ID, msg); err == nil {
		t.Fatal("a second create under one key was accepted")
	}
	if n := g.countRows(t, `SELECT count(*) FROM messages WHERE subscription_id = $1`); n != 1 {
		t.Fatalf("%d messages for one key", n)
	}
}
