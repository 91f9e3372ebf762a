package app

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

// After a relay-wide 5xx incident, a tenant requeues its bounced mail, and
// an operator requeues everyone's by time window and reply code; the
// suppression list is checked at retry time.
func TestRetryBouncedMail(t *testing.T) {
	t.Parallel()
	var incident atomic.Bool
	incident.Store(true)
	g := startGateway(t, smtptest.Options{Rcpt: func(rcpt string, _ int) *smtp.SMTPError {
		switch {
		case !incident.Load():
			return nil
		case rcpt == "gone@example.net":
			return smtpErr(550, "5.1.1", "no such user (the incident's lookups failed)")
		case rcpt == "dora@example.net":
			return smtpErr(552, "5.2.2", "mailbox full")
		}
		return smtpErr(550, "5.7.1", "relay incident: refused")
	}})
	windowStart := time.Now().Add(-time.Second).UTC()
	m1 := g.send(t, map[string]any{"send": true, "subject": "incident", "to": rcpts("ada@example.net", "gone@example.net")})
	g.waitForState(t, m1.ID, "failed")
	m2 := g.send(t, map[string]any{"send": true, "subject": "incident 2", "to": rcpts("carl@example.net")})
	m3 := g.send(t, map[string]any{"send": true, "subject": "full", "to": rcpts("dora@example.net")})
	g.waitForState(t, m2.ID, "failed")
	g.waitForState(t, m3.ID, "failed")
	incident.Store(false)

	// gone@ hard-bounced (5.1.1) and is suppressed: the tenant's retry sends
	// ada@ again and leaves gone@ suppressed, saying so.
	res := g.request(t, http.MethodPost, "/api/messages/"+m1.ID+"/retry", "", "", nil, nil)
	if res.status != http.StatusAccepted {
		t.Fatalf("retry of bounced mail: %d %s", res.status, res.body)
	}
	v := g.waitForState(t, m1.ID, "partially_sent")
	if v.To[0].Status != "delivered" || v.To[1].Status != "suppressed" {
		t.Fatalf("after retry: ada %s, gone %s; want delivered, suppressed", v.To[0].Status, v.To[1].Status)
	}
	// With the suppression removed, a second retry reaches gone@ too.
	if res := g.request(t, http.MethodDelete, "/api/suppressions/gone@example.net", "", "", nil, nil); res.status != http.StatusNoContent {
		t.Fatalf("remove suppression: %d %s", res.status, res.body)
	}
	if res := g.request(t, http.MethodPost, "/api/messages/"+m1.ID+"/retry", "", "", nil, nil); res.status != http.StatusAccepted {
		t.Fatalf("second retry: %d %s", res.status, res.body)
	}
	if v := g.waitForState(t, m1.ID, "sent"); v.To[1].Status != "delivered" || v.To[0].Attempts != 2 {
		t.Fatalf("after the second retry: %+v", v.To)
	}
	assertProblem(t, g.request(t, http.MethodPost, "/api/messages/"+m1.ID+"/retry", "", "", nil, nil), http.StatusConflict, "")

	// The operator's bulk retry takes the incident's 550s in its window and
	// leaves the 552 alone; a tenant token may not call it.
	body := []byte(fmt.Sprintf(`{"reply_code":550,"replied_after":%q,"replied_before":%q}`,
		windowStart.Format(time.RFC3339Nano), time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)))
	if res := g.request(t, http.MethodPost, "/api/admin/messages/retry", "application/json", "", nil, body); res.status != http.StatusForbidden {
		t.Fatalf("a tenant token on the operator retry: %d", res.status)
	}
	admin := map[string]string{"Authorization": "Bearer " + g.issueAdmin(t)}
	res = g.request(t, http.MethodPost, "/api/admin/messages/retry", "application/json", "", admin, body)
	var out struct {
		Requeued int `json:"requeued"`
		Tenants  []struct {
			SubscriptionID string   `json:"subscription_id"`
			IDs            []string `json:"ids"`
		} `json:"tenants"`
	}
	res.decode(t, &out)
	if res.status != http.StatusOK || out.Requeued != 1 || len(out.Tenants) != 1 || out.Tenants[0].IDs[0] != m2.ID {
		t.Fatalf("operator retry: %d %s; want m2 (%s) alone", res.status, res.body, m2.ID)
	}
	g.waitForState(t, m2.ID, "sent")
	if v := g.get(t, m3.ID); v.State != "failed" {
		t.Fatalf("the 552 was retried: %s", v.State)
	}
	missingWindow := g.request(t, http.MethodPost, "/api/admin/messages/retry", "application/json", "", admin, []byte(`{"reply_code":550}`))
	assertProblem(t, missingWindow, http.StatusBadRequest, "replied_after")
	// A tenant's bulk retry by reply code takes the 552.
	res = g.request(t, http.MethodPost, "/api/messages/retry", "application/json", "", nil, []byte(`{"reply_code":552}`))
	if res.status != http.StatusOK {
		t.Fatalf("tenant bulk retry: %d %s", res.status, res.body)
	}
	g.waitForState(t, m3.ID, "sent")
}
