package app

import (
	"context"
	"net/http"
	"testing"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

// TestAccountOnRemovedDomainIsRefusedAtAccept: an account is authorised
// through its domain. Once the operator removes the domain, the account can
// neither create mail (alone or in a batch), update a draft nor send a
// draft saved before; nothing is written or queued. An account on a domain
// that stays keeps sending.
func TestAccountOnRemovedDomainIsRefusedAtAccept(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	admin := g.issueAdmin(t)
	tenantPath := "/api/admin/tenants/" + g.tenant.ID.String()
	gone, kept := "gone-"+g.domain, "kept-"+g.domain
	for _, d := range []string{gone, kept} {
		if res := g.do(t, "POST", tenantPath+"/domains", "application/json", admin, mustJSON(map[string]string{"domain": d})); res.status != http.StatusOK && res.status != http.StatusCreated {
			t.Fatalf("add domain %s: %d %s", d, res.status, res.body)
		}
	}
	account := func(email string) string {
		t.Helper()
		res := g.do(t, "POST", tenantPath+"/accounts", "application/json", admin, mustJSON(map[string]string{"email": email}))
		if res.status != http.StatusOK && res.status != http.StatusCreated {
			t.Fatalf("create account %s: %d %s", email, res.status, res.body)
		}
		var a struct {
			ID string `json:"account_id"`
		}
		res.decode(t, &a)
		if a.ID == "" {
			t.Fatalf("account without id: %s", res.body)
		}
		return a.ID
	}
	goneAccount, keptAccount := account("leaver@"+gone), account("stayer@"+kept)
	draft := g.send(t, map[string]any{"sender_account_id": goneAccount, "sender_email": "leaver@" + gone, "subject": "saved before", "to": rcpts("ada@example.net")})
	if draft.State != "draft" {
		t.Fatalf("draft is %s", draft.State)
	}
	if res := g.do(t, "DELETE", tenantPath+"/domains/"+gone, "", admin, nil); res.status != http.StatusOK {
		t.Fatalf("remove domain: %d %s", res.status, res.body)
	}

	messagesBefore := g.countRows(t, `SELECT count(*) FROM messages WHERE subscription_id = $1`)
	var jobsBefore int
	if err := g.owner.QueryRow(context.Background(), `SELECT count(*) FROM river_job`).Scan(&jobsBefore); err != nil {
		t.Fatal(err)
	}

	send := map[string]any{"send": true, "subject": "after removal", "to": rcpts("ada@example.net")}
	with := func(extra map[string]any) []byte {
		body := map[string]any{}
		for k, v := range send {
			body[k] = v
		}
		for k, v := range extra {
			body[k] = v
		}
		return mustJSON(body)
	}
	assertProblem(t, g.postJSON(t, with(map[string]any{"sender_account_id": goneAccount})), http.StatusForbidden, "sender_account_id")
	assertProblem(t, g.postJSON(t, with(map[string]any{"sender_email": "leaver@" + gone})), http.StatusForbidden, "sender_email")
	assertProblem(t, g.postJSON(t, with(map[string]any{"sender_email": "news@" + gone})), http.StatusForbidden, "sender_email")
	assertProblem(t, g.request(t, "PUT", "/api/messages/"+draft.ID, "application/json", "", nil,
		with(map[string]any{"sender_account_id": goneAccount, "send": false})), http.StatusForbidden, "sender_account_id")
	assertProblem(t, g.request(t, "PATCH", "/api/messages/"+draft.ID, "application/merge-patch+json", "", nil,
		mustJSON(map[string]any{"subject": "edited"})), http.StatusForbidden, "sender_account_id")
	assertProblem(t, g.request(t, "POST", "/api/messages/"+draft.ID+"/send", "", "", nil, nil), http.StatusForbidden, "sender_account_id")

	batch := g.request(t, "POST", "/api/messages/batch", "application/json", "", nil,
		mustJSON(map[string]any{"messages": []any{map[string]any{"sender_account_id": goneAccount, "send": true, "to": rcpts("ada@example.net")}}}))
	var items struct {
		Results []struct {
			Status  int `json:"status"`
			Problem *struct {
				Field string `json:"field"`
			} `json:"problem"`
		} `json:"results"`
	}
	batch.decode(t, &items)
	if len(items.Results) != 1 || items.Results[0].Status != http.StatusForbidden || items.Results[0].Problem == nil || items.Results[0].Problem.Field != "sender_account_id" {
		t.Fatalf("batch item from the removed domain's account: %d %s", batch.status, batch.body)
	}

	if after := g.get(t, draft.ID); after.State != "draft" || after.TS != draft.TS {
		t.Fatalf("the refused draft changed: %+v, was ts %s", after, draft.TS)
	}
	if n := g.countRows(t, `SELECT count(*) FROM messages WHERE subscription_id = $1`); n != messagesBefore {
		t.Fatalf("%d messages after refused requests, want %d", n, messagesBefore)
	}
	var jobsAfter int
	if err := g.owner.QueryRow(context.Background(), `SELECT count(*) FROM river_job`).Scan(&jobsAfter); err != nil {
		t.Fatal(err)
	}
	if jobsAfter != jobsBefore {
		t.Fatalf("%d jobs queued by refused requests", jobsAfter-jobsBefore)
	}

	// The account on the domain that stays still sends, and it is the only mail out.
	ok := g.postJSON(t, with(map[string]any{"sender_account_id": keptAccount}))
	if ok.status != http.StatusCreated {
		t.Fatalf("account on a kept domain: %d %s", ok.status, ok.body)
	}
	var sent messageView
	ok.decode(t, &sent)
	g.waitForState(t, sent.ID, "sent")
	if got := g.relay.Messages(); len(got) != 1 {
		t.Fatalf("%d messages relayed, want only the kept account's", len(got))
	}
}
