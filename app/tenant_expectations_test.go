package app

import (
	"bytes"
	"mime"
	"net/http"
	"net/mail"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

// A text attachment keeps its declared charset, on the API and on the wire.
func TestAttachmentKeepsItsCharset(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	id := g.upload(t, "notes.txt", "text/plain; charset=utf-8", []byte("Grüße\n"))
	res := g.request(t, http.MethodGet, "/api/attachments/"+id, "", "", nil, nil)
	var a struct {
		ContentType string `json:"content_type"`
	}
	res.decode(t, &a)
	if a.ContentType != "text/plain; charset=utf-8" {
		t.Fatalf("stored content type %q, want text/plain; charset=utf-8", a.ContentType)
	}
	v := g.send(t, map[string]any{"send": true, "subject": "notes", "to": rcpts("ada@example.net"), "attachments": []string{id}})
	g.waitForState(t, v.ID, "sent")
	msg, err := mail.ReadMessage(bytes.NewReader(g.relay.Messages()[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	walkParts(t, msg.Header.Get("Content-Type"), msg.Body, func(h map[string][]string, body []byte) {
		if mediaType, params, _ := mime.ParseMediaType(first(h["Content-Type"])); params["name"] == "notes.txt" {
			found = mediaType == "text/plain" && params["charset"] == "utf-8" && string(body) == "Grüße\n"
		}
	})
	if !found {
		t.Fatalf("the attachment went out without its charset:\n%s", headerBlock(g.relay.Messages()[0].Data))
	}
}

// A merge patch's null removes the member (RFC 7396): the subject and body
// are cleared, not kept.
func TestMergePatchNullRemovesMembers(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	v := g.send(t, map[string]any{"send": false, "subject": "to clear", "body": "also to clear", "to": rcpts("ada@example.net")})
	res := g.request(t, http.MethodPatch, "/api/messages/"+v.ID, "application/merge-patch+json", "", map[string]string{"If-Match": `"` + v.TS + `"`},
		[]byte(`{"subject": null, "body": null, "cc": null}`))
	if res.status != http.StatusOK {
		t.Fatalf("patch: %d %s", res.status, res.body)
	}
	var got struct {
		Subject string `json:"subject"`
		Body    string `json:"body"`
		To      []any  `json:"to"`
	}
	res.decode(t, &got)
	if got.Subject != "" || got.Body != "" || len(got.To) != 1 {
		t.Fatalf("after null: subject %q body %q to %d; want both cleared, to kept", got.Subject, got.Body, len(got.To))
	}
}

// Errors name the endpoint's own model; the sandbox flag has one name in
// requests, answers and the tenant; If-Match: * matches any version.
func TestErrorWordingSandboxAndIfMatchStar(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	admin := map[string]string{"Authorization": "Bearer " + g.issueAdmin(t)}

	for path, model := range map[string]string{
		"/api/suppressions":   "NewSuppression",
		"/api/webhooks":       "NewWebhook",
		"/api/messages/retry": "RetryRequest",
	} {
		res := g.request(t, http.MethodPost, path, "application/json", "", nil, []byte(`{"colour":"red"}`))
		assertProblem(t, res, http.StatusBadRequest, "colour")
		if !strings.Contains(string(res.body), model) || strings.Contains(string(res.body), "MessageComposeModel") {
			t.Errorf("%s: %s, want the error to name %s", path, res.body, model)
		}
	}
	res := g.request(t, http.MethodPost, "/api/admin/tenants", "application/json", "", admin, []byte(`{"name":"x","colour":"red"}`))
	if !strings.Contains(string(res.body), "NewTenant") {
		t.Errorf("create tenant: %s, want the error to name NewTenant", res.body)
	}

	tenantPath := "/api/admin/tenants/" + g.tenant.ID.String()
	res = g.request(t, http.MethodPut, tenantPath+"/sandbox", "application/json", "", admin, []byte(`{"sandbox":true}`))
	if res.status != http.StatusOK || !strings.Contains(string(res.body), `"sandbox":true`) {
		t.Fatalf("set sandbox: %d %s", res.status, res.body)
	}
	res = g.request(t, http.MethodGet, tenantPath, "", "", admin, nil)
	if !strings.Contains(string(res.body), `"sandbox":true`) {
		t.Fatalf("GET tenant does not show the sandbox: %s", res.body)
	}
	assertProblem(t, g.request(t, http.MethodPut, tenantPath+"/sandbox", "application/json", "", admin, []byte(`{}`)), http.StatusBadRequest, "sandbox")

	v := g.send(t, map[string]any{"send": false, "subject": "star", "to": rcpts("ada@example.net")})
	res = g.request(t, http.MethodPatch, "/api/messages/"+v.ID, "application/merge-patch+json", "", map[string]string{"If-Match": "*"}, []byte(`{"subject":"starred"}`))
	if res.status != http.StatusOK || !strings.Contains(string(res.body), `"subject":"starred"`) {
		t.Fatalf("PATCH with If-Match: *: %d %s", res.status, res.body)
	}
	res = g.request(t, http.MethodPost, "/api/messages/"+v.ID+"/send", "", "", map[string]string{"If-Match": "*"}, nil)
	if res.status != http.StatusAccepted {
		t.Fatalf("send with If-Match: *: %d %s", res.status, res.body)
	}
	// Sandbox: accepted and evented, never sent.
	g.waitForState(t, v.ID, "sent")
	if n := len(g.relay.Messages()); n != 0 {
		t.Fatalf("a sandbox tenant's mail reached the relay (%d)", n)
	}
}
