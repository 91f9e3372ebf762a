package app

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

// seedXML is the seed help page's XML sample with real ids and addresses.
func (g *gateway) seedXML(id string, send bool) []byte {
	s := `<MessageComposeModel xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.datacontract.org/2004/07/CompleteEmpireApp.Api.Models">
<Id xmlns="http://schemas.datacontract.org/2004/07/CompleteEmpireApp.Api.Models.Base">ID</Id>
<SubscriptionId xmlns="http://schemas.datacontract.org/2004/07/CompleteEmpireApp.Api.Models.Base">SUBSCRIPTION</SubscriptionId>
<Ts xmlns="http://schemas.datacontract.org/2004/07/CompleteEmpireApp.Api.Models.Base">QEA=</Ts>
<CanDelete>true</CanDelete>
<Subject>sample string 9</Subject>
<Attachments xmlns:d2p1="http://schemas.microsoft.com/2003/10/Serialization/Arrays">
</Attachments>
<Bcc>
<MessageRecipientModel>
<AccountId>00000000-0000-0000-0000-000000000000</AccountId>
<DisplayName>Hidden One</DisplayName>
<EmailAddress>hidden1@example.net</EmailAddress>
</MessageRecipientModel>
</Bcc>
<Body>sample string 6</Body>
<Cc>
<MessageRecipientModel>
<AccountId>00000000-0000-0000-0000-000000000000</AccountId>
<DisplayName>Cc One</DisplayName>
<EmailAddress>cc1@example.net</EmailAddress>
</MessageRecipientModel>
</Cc>
<CreatedDate>2026-06-09T14:59:25.9028316+08:00</CreatedDate>
<Importance>High</Importance>
<MessageId></MessageId>
<ParentId>00000000-0000-0000-0000-000000000000</ParentId>
<References></References>
<Send>SEND</Send>
<SenderAccountId>ACCOUNT</SenderAccountId>
<SenderDisplayName>Zoë Sender</SenderDisplayName>
<SenderEmail>SENDER</SenderEmail>
<To>
<MessageRecipientModel>
<AccountId>00000000-0000-0000-0000-000000000000</AccountId>
<DisplayName>Ada Lovelace</DisplayName>
<EmailAddress>ada@example.net</EmailAddress>
</MessageRecipientModel>
<MessageRecipientModel>
<AccountId>00000000-0000-0000-0000-000000000000</AccountId>
<DisplayName>Grace Hopper</DisplayName>
<EmailAddress>grace@example.org</EmailAddress>
</MessageRecipientModel>
</To>
</MessageComposeModel>`
	return []byte(strings.NewReplacer("SUBSCRIPTION", g.tenant.ID.String(), "ACCOUNT", g.sender.ID.String(),
		"SENDER", g.sender.Email, "SEND", fmt.Sprint(send), ">ID<", ">"+id+"<").Replace(s))
}

func (g *gateway) seedForm(send bool) []byte {
	v := url.Values{}
	v.Set("sender_email", g.sender.Email)
	v.Set("sender_display_name", "Zoë Sender")
	v.Set("to[0].display_name", "Ada Lovelace")
	v.Set("to[0].email_address", "ada@example.net")
	v.Set("to[1].email_address", "grace@example.org")
	v.Set("cc[0].email_address", "cc1@example.net")
	v.Set("bcc[0].email_address", "hidden1@example.net")
	v.Set("importance", "2")
	v.Set("subject", "sample string 9")
	v.Set("body", "sample string 6")
	v.Set("send", fmt.Sprint(send))
	return []byte(v.Encode())
}

func (g *gateway) request(t *testing.T, method, path, contentType, accept string, headers map[string]string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, g.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+g.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// TestSeedFormatsRoundTrip posts the same message in every seed format and
// reads it back in JSON and XML; the XML answer is posted back as an update.
func TestSeedFormatsRoundTrip(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	cases := []struct {
		name, contentType string
		body              func() []byte
	}{
		{"JSON", "application/json", func() []byte { return g.seedSample(false) }},
		{"TextJSON", "text/json", func() []byte { return g.seedSample(false) }},
		{"XML", "application/xml", func() []byte { return g.seedXML(uuid.NewString(), false) }},
		{"TextXML", "text/xml; charset=utf-8", func() []byte { return g.seedXML(uuid.NewString(), false) }},
		{"Form", "application/x-www-form-urlencoded", func() []byte { return g.seedForm(false) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := g.request(t, "POST", "/api/messages/sendmessage", tc.contentType, "application/json", nil, tc.body())
			if res.status != http.StatusCreated {
				t.Fatalf("create: %d %s", res.status, res.body)
			}
			var v messageView
			res.decode(t, &v)
			if v.State != "draft" || len(v.To) != 2 || v.To[0].EmailAddress != "ada@example.net" || len(v.Bcc) == 0 {
				t.Fatalf("stored %+v", v)
			}

			xmlRes := g.request(t, "GET", "/api/messages/"+v.ID, "", "application/xml", nil, nil)
			if xmlRes.status != 200 || !strings.HasPrefix(xmlRes.header.Get("Content-Type"), "application/xml") {
				t.Fatalf("GET as XML: %d %s %s", xmlRes.status, xmlRes.header.Get("Content-Type"), xmlRes.body)
			}
			for _, want := range []string{
				`xmlns="http://schemas.datacontract.org/2004/07/CompleteEmpireApp.Api.Models"`,
				`<Id xmlns="http://schemas.datacontract.org/2004/07/CompleteEmpireApp.Api.Models.Base">` + v.ID + `</Id>`,
				`<EmailAddress>ada@example.net</EmailAddress>`,
				`<Subject>sample string 9</Subject>`,
			} {
				if !bytes.Contains(xmlRes.body, []byte(want)) {
					t.Fatalf("XML answer lacks %s:\n%s", want, xmlRes.body)
				}
			}

			// Our XML, posted back with its own ts, is an accepted update.
			back := bytes.Replace(xmlRes.body, []byte("<Subject>sample string 9</Subject>"), []byte("<Subject>round trip</Subject>"), 1)
			upd := g.request(t, "POST", "/api/messages/sendmessage", "application/xml", "application/xml", nil, back)
			if upd.status != http.StatusOK || !bytes.Contains(upd.body, []byte("<Subject>round trip</Subject>")) {
				t.Fatalf("posting our XML back: %d %s", upd.status, upd.body)
			}
			if got := g.get(t, v.ID); got.TS == v.TS {
				t.Fatalf("the update did not change ts")
			}
		})
	}
}

func TestSeedXMLSampleIsSent(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	res := g.request(t, "POST", "/api/messages/sendmessage", "text/xml", "", nil, g.seedXML(uuid.NewString(), true))
	if res.status != http.StatusCreated || !strings.HasPrefix(res.header.Get("Content-Type"), "text/xml") && !strings.HasPrefix(res.header.Get("Content-Type"), "application/xml") {
		t.Fatalf("seed XML: %d %s %s", res.status, res.header.Get("Content-Type"), res.body)
	}
	got := g.relay.WaitForMessages(t, 1, 20*time.Second)
	msg, err := mail.ReadMessage(bytes.NewReader(got[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(msg.Header.Get("Importance"), "high") || len(got[0].To) != 4 {
		t.Fatalf("importance %q, envelope %v", msg.Header.Get("Importance"), got[0].To)
	}
	bad := g.request(t, "POST", "/api/messages/sendmessage", "application/xml", "", nil, []byte(`<MessageComposeModel xmlns="urn:wrong"><Subject>x</Subject></MessageComposeModel>`))
	if bad.status != 400 || !strings.HasPrefix(bad.header.Get("Content-Type"), "application/problem+xml") {
		t.Fatalf("a bad XML body wants an XML problem: %d %s %s", bad.status, bad.header.Get("Content-Type"), bad.body)
	}
}

// TestStaleTSRace fires 50 concurrent updates carrying one ts: exactly one wins.
func TestStaleTSRace(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	res := g.postJSON(t, g.seedSample(false))
	var v messageView
	res.decode(t, &v)

	const n = 50
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _ := json.Marshal(map[string]any{
				"id": v.ID, "ts": v.TS, "sender_email": g.sender.Email, "subject": fmt.Sprintf("writer %d", i),
				"to": []map[string]string{{"email_address": "ada@example.net"}},
			})
			statuses[i] = g.postJSON(t, body).status
		}()
	}
	wg.Wait()
	won, conflicts := 0, 0
	for _, s := range statuses {
		switch s {
		case http.StatusOK:
			won++
		case http.StatusConflict:
			conflicts++
		}
	}
	if won != 1 || conflicts != n-1 {
		t.Fatalf("%d updates won and %d got 409; want 1 and %d (%v)", won, conflicts, n-1, statuses)
	}
	stale := g.postJSON(t, mustJSON(map[string]any{"id": v.ID, "ts": v.TS, "sender_email": g.sender.Email}))
	var p struct {
		TS string `json:"ts"`
	}
	stale.decode(t, &p)
	if stale.status != http.StatusConflict || p.TS == "" || p.TS == v.TS || p.TS != g.get(t, v.ID).TS {
		t.Fatalf("a stale ts gets 409 with the current ts: %d %s", stale.status, stale.body)
	}
}

func TestReplyChainThreading(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	var ids, messageIDs []string
	parent := ""
	for i := range 3 {
		body := map[string]any{
			"sender_email": g.sender.Email, "subject": fmt.Sprintf("thread %d", i), "body": "hi", "send": true,
			"to": []map[string]string{{"email_address": "ada@example.net"}},
		}
		if parent != "" {
			body["parent_id"] = parent
		}
		res := g.postJSON(t, mustJSON(body))
		if res.status != http.StatusCreated {
			t.Fatalf("message %d: %d %s", i, res.status, res.body)
		}
		var v messageView
		res.decode(t, &v)
		g.waitForState(t, v.ID, "sent")
		ids, messageIDs, parent = append(ids, v.ID), append(messageIDs, v.MessageID), v.ID
	}
	got := g.relay.WaitForMessages(t, 3, 20*time.Second)
	byMessageID := map[string]*mail.Message{}
	for _, r := range got {
		m, err := mail.ReadMessage(bytes.NewReader(r.Data))
		if err != nil {
			t.Fatal(err)
		}
		byMessageID[m.Header.Get("Message-Id")] = m
	}
	second, third := byMessageID[messageIDs[1]], byMessageID[messageIDs[2]]
	if second.Header.Get("In-Reply-To") != messageIDs[0] || second.Header.Get("References") != messageIDs[0] {
		t.Fatalf("reply 1 headers: In-Reply-To %q References %q", second.Header.Get("In-Reply-To"), second.Header.Get("References"))
	}
	if third.Header.Get("In-Reply-To") != messageIDs[1] || third.Header.Get("References") != messageIDs[0]+" "+messageIDs[1] {
		t.Fatalf("reply 2 headers: In-Reply-To %q References %q", third.Header.Get("In-Reply-To"), third.Header.Get("References"))
	}
	list := g.request(t, "GET", "/api/messages?conversation="+ids[0], "", "", nil, nil)
	var page struct {
		Items []messageView `json:"items"`
	}
	list.decode(t, &page)
	if len(page.Items) != 3 {
		t.Fatalf("conversation lists %d messages, want 3: %s", len(page.Items), list.body)
	}
}

func (g *gateway) upload(t *testing.T, filename, contentType string, data []byte) string {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	h := make(map[string][]string)
	h["Content-Disposition"] = []string{mime.FormatMediaType("form-data", map[string]string{"name": "file", "filename": filename})}
	h["Content-Type"] = []string{contentType}
	part, _ := w.CreatePart(h)
	_, _ = part.Write(data)
	_ = w.Close()
	res := g.request(t, "POST", "/api/attachments", w.FormDataContentType(), "", nil, buf.Bytes())
	if res.status != http.StatusCreated {
		t.Fatalf("upload: %d %s", res.status, res.body)
	}
	var a struct {
		ID       string `json:"id"`
		Filename string `json:"filename"`
		Size     int    `json:"size"`
		SHA256   string `json:"sha256"`
	}
	res.decode(t, &a)
	if a.Filename != filename || a.Size != len(data) || len(a.SHA256) != 64 {
		t.Fatalf("upload answered %+v", a)
	}
	return a.ID
}

func TestAttachmentsAreDeliveredByteIdentical(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	binary := make([]byte, 300_000)
	_, _ = rand.Read(binary)
	binary[0], binary[1] = 0x00, 0xFF
	text := []byte("line one\nline two\r\n.\nlast")
	binID := g.upload(t, "random.bin", "application/octet-stream", binary)
	txtID := g.upload(t, "Zoë notes.txt", "text/plain", text)

	content := g.request(t, "GET", "/api/attachments/"+binID+"/content", "", "", nil, nil)
	if content.status != 200 || !bytes.Equal(content.body, binary) {
		t.Fatalf("content endpoint returned %d and %d bytes", content.status, len(content.body))
	}

	res := g.postJSON(t, mustJSON(map[string]any{
		"sender_email": g.sender.Email, "subject": "files", "body": "<p>See <b>attached</b></p>", "send": true,
		"to": []map[string]string{{"email_address": "ada@example.net"}}, "attachments": []string{binID, txtID},
	}))
	if res.status != http.StatusCreated {
		t.Fatalf("send: %d %s", res.status, res.body)
	}
	got := g.relay.WaitForMessages(t, 1, 20*time.Second)
	msg, err := mail.ReadMessage(bytes.NewReader(got[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string][]byte{}
	var sawHTML, sawText bool
	walkParts(t, msg.Header.Get("Content-Type"), msg.Body, func(h map[string][]string, body []byte) {
		ct, params, _ := mime.ParseMediaType(first(h["Content-Type"]))
		_, dparams, _ := mime.ParseMediaType(first(h["Content-Disposition"]))
		switch {
		case dparams["filename"] != "":
			parts[dparams["filename"]] = body
		case ct == "text/html":
			sawHTML = true
		case ct == "text/plain":
			sawText = strings.Contains(string(body), "attached")
		}
		_ = params
	})
	if !bytes.Equal(parts["random.bin"], binary) || !bytes.Equal(parts["Zoë notes.txt"], text) {
		t.Fatalf("attachments did not arrive byte-identical (got %d parts)", len(parts))
	}
	if !sawHTML || !sawText {
		t.Fatalf("an HTML body must arrive as multipart/alternative with a text part (html %v, text %v)", sawHTML, sawText)
	}
}

func TestInternalRecipientGoesToInbox(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	colleague, err := g.app.Store().CreateAccount(t.Context(), g.tenant.ID, "colleague@"+g.domain, "Colleague")
	if err != nil {
		t.Fatal(err)
	}
	res := g.postJSON(t, mustJSON(map[string]any{
		"sender_email": g.sender.Email, "subject": "internal", "body": "hello", "send": true,
		"to": []map[string]string{{"account_id": colleague.ID.String()}},
	}))
	if res.status != http.StatusCreated {
		t.Fatalf("send: %d %s", res.status, res.body)
	}
	var v messageView
	res.decode(t, &v)
	final := g.waitForState(t, v.ID, "sent")
	if final.To[0].EmailAddress != colleague.Email || final.To[0].Status != "delivered" {
		t.Fatalf("internal recipient %+v", final.To[0])
	}
	inbox := g.request(t, "GET", "/api/messages?folder=inbox&account="+colleague.ID.String(), "", "", nil, nil)
	var page struct {
		Items []messageView `json:"items"`
	}
	inbox.decode(t, &page)
	if len(page.Items) != 1 || page.Items[0].ID != v.ID {
		t.Fatalf("inbox: %s", inbox.body)
	}
	other := g.request(t, "GET", "/api/messages?folder=inbox&account="+g.sender.ID.String(), "", "", nil, nil)
	other.decode(t, &page)
	if len(page.Items) != 0 {
		t.Fatalf("the sender's inbox shows the message: %s", other.body)
	}
	if g.relay.Sessions() != 0 {
		t.Fatalf("internal delivery used SMTP")
	}
}

func TestDraftLifecycle(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	res := g.postJSON(t, g.seedSample(false))
	var v messageView
	res.decode(t, &v)
	etag := res.header.Get("ETag")

	patch := g.request(t, "PATCH", "/api/messages/"+v.ID, "application/merge-patch+json", "", map[string]string{"If-Match": etag}, []byte(`{"subject":"patched"}`))
	if patch.status != 200 {
		t.Fatalf("patch: %d %s", patch.status, patch.body)
	}
	stale := g.request(t, "PATCH", "/api/messages/"+v.ID, "application/json", "", map[string]string{"If-Match": etag}, []byte(`{"subject":"again"}`))
	if stale.status != http.StatusConflict {
		t.Fatalf("a stale If-Match: %d %s", stale.status, stale.body)
	}
	unknown := g.request(t, "PATCH", "/api/messages/"+v.ID, "application/json", "", map[string]string{"If-Match": patch.header.Get("ETag"), "Prefer": "handling=strict"}, []byte(`{"subjekt":"typo"}`))
	assertProblem(t, unknown, 400, "subjekt")

	put := g.request(t, "PUT", "/api/messages/"+v.ID, "application/json", "", map[string]string{"If-Match": patch.header.Get("ETag")},
		mustJSON(map[string]any{"sender_email": g.sender.Email, "subject": "replaced", "to": []map[string]string{{"email_address": "ada@example.net"}}}))
	if put.status != 200 {
		t.Fatalf("put: %d %s", put.status, put.body)
	}
	drafts := g.request(t, "GET", "/api/messages?folder=drafts&q=REPLACED", "", "", nil, nil)
	var page struct {
		Items []messageView `json:"items"`
	}
	drafts.decode(t, &page)
	if len(page.Items) != 1 {
		t.Fatalf("drafts filtered by subject: %s", drafts.body)
	}

	sent := g.request(t, "POST", "/api/messages/"+v.ID+"/send", "", "", map[string]string{"If-Match": put.header.Get("ETag")}, nil)
	if sent.status != http.StatusAccepted {
		t.Fatalf("send: %d %s", sent.status, sent.body)
	}
	g.waitForState(t, v.ID, "sent")
	if edit := g.request(t, "PUT", "/api/messages/"+v.ID, "application/json", "", map[string]string{"If-Match": sent.header.Get("ETag")}, mustJSON(map[string]any{"sender_email": g.sender.Email})); edit.status != http.StatusConflict {
		t.Fatalf("editing a sent message: %d %s", edit.status, edit.body)
	}

	del := g.request(t, "DELETE", "/api/messages/"+v.ID, "", "", nil, nil)
	if del.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", del.status, del.body)
	}
	if gone := g.request(t, "GET", "/api/messages/"+v.ID, "", "", nil, nil); gone.status != 404 {
		t.Fatalf("deleted message reads %d", gone.status)
	}
	events := g.request(t, "GET", "/api/messages/"+v.ID+"/events", "", "", nil, nil)
	var timeline struct {
		Items []struct {
			Type string `json:"type"`
		} `json:"items"`
	}
	events.decode(t, &timeline)
	var types []string
	for _, e := range timeline.Items {
		types = append(types, e.Type)
	}
	want := "created updated updated updated queued attempt delivered sent deleted"
	if strings.Join(types, " ") != want {
		t.Fatalf("timeline %v, want %s", types, want)
	}
}

func TestDeleteRefusedWhileQueued(t *testing.T) {
	t.Parallel()
	// A relay that defers keeps the message queued between attempts.
	g := startGateway(t, smtptest.Options{Rcpt: deferAll})
	res := g.postJSON(t, g.seedSample(true))
	var v messageView
	res.decode(t, &v)
	del := g.request(t, "DELETE", "/api/messages/"+v.ID, "", "", nil, nil)
	assertProblem(t, del, http.StatusConflict, "")
	if got := g.get(t, v.ID); got.CanDelete {
		t.Fatalf("a queued message says can_delete=true")
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// walkParts calls fn with each leaf part of a MIME body, decoded.
func walkParts(t *testing.T, contentType string, body io.Reader, fn func(h map[string][]string, body []byte)) {
	t.Helper()
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(mediaType, "multipart/") {
		b, _ := io.ReadAll(body)
		fn(map[string][]string{"Content-Type": {contentType}}, b)
		return
	}
	r := multipart.NewReader(body, params["boundary"])
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		ct := p.Header.Get("Content-Type")
		if strings.HasPrefix(ct, "multipart/") {
			walkParts(t, ct, p, fn)
			continue
		}
		b, _ := io.ReadAll(p) // multipart.Part decodes quoted-printable itself
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "base64") {
			b = decodeBase64(t, b)
		}
		fn(p.Header, b)
	}
}

func decodeBase64(t *testing.T, b []byte) []byte {
	t.Helper()
	out, err := base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(b)))
	if err != nil {
		t.Fatalf("base64 part: %v", err)
	}
	return out
}

// deferAll answers every RCPT with a 451, so messages stay queued.
func deferAll(string, int) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
}
