package app

import (
	"net/http"
	"testing"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

// TestOtherTenantsIDsAreNotFound uses tenant A's ids with tenant B's token on
// every endpoint: each answers 404 and A's data is unchanged.
func TestOtherTenantsIDsAreNotFound(t *testing.T) {
	t.Parallel()
	a := startGateway(t, smtptest.Options{})
	draftRes := a.postJSON(t, a.seedSample(false))
	var draft messageView
	draftRes.decode(t, &draft)
	attachment := a.upload(t, "a.txt", "text/plain", []byte("tenant A's file"))

	// Tenant B lives in the same gateway.
	b := *a
	other, err := a.app.Store().CreateTenant(t.Context(), "tenant B", []string{"b-" + a.domain})
	if err != nil {
		t.Fatal(err)
	}
	b.tenant = other
	b.token = a.issue(t, other.ID)
	if b.sender, err = a.app.Store().CreateAccount(t.Context(), other.ID, "sender@b-"+a.domain, "B"); err != nil {
		t.Fatal(err)
	}
	etag := map[string]string{"If-Match": draftRes.header.Get("ETag")}
	composeOfB := mustJSON(map[string]any{"sender_email": b.sender.Email, "to": []map[string]string{{"email_address": "x@example.net"}}})

	endpoints := []struct {
		method, path, contentType string
		headers                   map[string]string
		body                      []byte
	}{
		{"GET", "/api/messages/" + draft.ID, "", nil, nil},
		{"PUT", "/api/messages/" + draft.ID, "application/json", etag, composeOfB},
		{"PATCH", "/api/messages/" + draft.ID, "application/json", etag, []byte(`{"subject":"stolen"}`)},
		{"POST", "/api/messages/" + draft.ID + "/send", "", etag, nil},
		{"DELETE", "/api/messages/" + draft.ID, "", etag, nil},
		{"GET", "/api/messages/" + draft.ID + "/events", "", nil, nil},
		{"GET", "/api/attachments/" + attachment, "", nil, nil},
		{"GET", "/api/attachments/" + attachment + "/content", "", nil, nil},
		{"POST", "/api/messages/sendmessage", "application/json", nil, mustJSON(map[string]any{
			"sender_email": b.sender.Email, "parent_id": draft.ID, "to": []map[string]string{{"email_address": "x@example.net"}}})},
		{"POST", "/api/messages/sendmessage", "application/json", nil, mustJSON(map[string]any{
			"sender_email": b.sender.Email, "attachments": []string{attachment}, "to": []map[string]string{{"email_address": "x@example.net"}}})},
	}
	for _, ep := range endpoints {
		t.Run(ep.method+" "+ep.path, func(t *testing.T) {
			res := b.request(t, ep.method, ep.path, ep.contentType, "", ep.headers, ep.body)
			assertProblem(t, res, http.StatusNotFound, "")
		})
	}
	// A recipient account of tenant A is not an account of tenant B: 400.
	res := b.request(t, "POST", "/api/messages/sendmessage", "application/json", "", nil, mustJSON(map[string]any{
		"sender_email": b.sender.Email, "to": []map[string]string{{"account_id": a.sender.ID.String()}}}))
	assertProblem(t, res, http.StatusBadRequest, "to[0].account_id")

	// A's ids in B's query are not found either.
	assertProblem(t, b.request(t, "GET", "/api/messages?account="+a.sender.ID.String(), "", "", nil, nil), http.StatusNotFound, "account")
	assertProblem(t, b.request(t, "GET", "/api/messages?folder=inbox&account="+a.sender.ID.String(), "", "", nil, nil), http.StatusNotFound, "account")
	assertProblem(t, b.request(t, "GET", "/api/messages?conversation="+draft.ID, "", "", nil, nil), http.StatusNotFound, "conversation")
	list := b.request(t, "GET", "/api/messages", "", "", nil, nil)
	var page struct {
		Items []messageView `json:"items"`
	}
	list.decode(t, &page)
	if list.status != 200 || len(page.Items) != 0 {
		t.Fatalf("B's list shows A's messages: %s", list.body)
	}
	if got := a.get(t, draft.ID); got.TS != draft.TS || got.State != "draft" {
		t.Fatalf("tenant B changed tenant A's message")
	}
}
