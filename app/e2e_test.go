package app

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

// TestSendSeedSampleEndToEnd posts the seed's JSON sample with send=true and
// follows it through the outbox and the worker to a real SMTP server.
func TestSendSeedSampleEndToEnd(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})

	res := g.postJSON(t, g.seedSample(true))
	if res.status != http.StatusCreated {
		t.Fatalf("sendmessage: %d %s", res.status, res.body)
	}
	var created messageView
	res.decode(t, &created)
	if created.State != "queued" || created.CanDelete {
		t.Fatalf("accepted message should be queued with can_delete=false: %+v", created)
	}
	if !strings.HasPrefix(created.MessageID, "<") || !strings.HasSuffix(created.MessageID, "@"+g.domain+">") {
		t.Fatalf("generated message_id %q is not <uuid@sender-domain>", created.MessageID)
	}
	if created.TS == "" || res.header.Get("ETag") == "" || created.CreatedDate == "" || created.CreatedDate == "2026-06-09T14:59:25.9028316+08:00" {
		t.Fatalf("ts, ETag and a server-set created_date are expected: %+v", created)
	}

	got := g.relay.WaitForMessages(t, 1, 20*time.Second)
	final := g.waitForState(t, created.ID, "sent")
	if !final.CanDelete {
		t.Fatalf("a sent message must have can_delete=true")
	}
	for _, r := range slices.Concat(final.To, final.Cc, final.Bcc) {
		if r.Status != "delivered" || r.LastCode != 250 || r.Attempts != 1 {
			t.Fatalf("recipient %s: %+v", r.EmailAddress, r)
		}
	}
	if len(g.relay.Messages()) != 1 {
		t.Fatalf("relay received %d messages, want exactly 1", len(g.relay.Messages()))
	}
	// River completes the job after the worker wrote the final state.
	g.waitForRow(t, "completed", `SELECT state::text FROM river_job WHERE args->>'message_id' = $1`, created.ID)

	received := got[0]
	if received.From != g.sender.Email {
		t.Fatalf("envelope sender %q, want %q", received.From, g.sender.Email)
	}
	wantRcpts := []string{"ada@example.net", "grace@example.org", "cc1@example.net", "cc2@example.net", "hidden1@example.net", "hidden2@example.net"}
	if !slices.Equal(sorted(received.To), sorted(wantRcpts)) {
		t.Fatalf("envelope recipients %v, want %v", received.To, wantRcpts)
	}
	if bytes.Contains(bytes.ReplaceAll(received.Data, []byte("\r\n"), nil), []byte("\n")) || bytes.Contains(bytes.ReplaceAll(received.Data, []byte("\r\n"), nil), []byte("\r")) {
		t.Fatalf("message has a bare CR or LF")
	}
	msg, err := mail.ReadMessage(bytes.NewReader(received.Data))
	if err != nil {
		t.Fatal(err)
	}
	dec := new(mime.WordDecoder)
	from, _ := dec.DecodeHeader(msg.Header.Get("From"))
	checks := map[string]bool{
		"From has the display name":    strings.Contains(from, "Zoë Sender") && strings.Contains(from, g.sender.Email),
		"To lists both":                strings.Contains(msg.Header.Get("To"), "ada@example.net") && strings.Contains(msg.Header.Get("To"), "grace@example.org"),
		"Cc lists both":                strings.Contains(msg.Header.Get("Cc"), "cc1@example.net") && strings.Contains(msg.Header.Get("Cc"), "cc2@example.net"),
		"no Bcc header":                msg.Header.Get("Bcc") == "",
		"bcc addresses nowhere":        !bytes.Contains(received.Data, []byte("hidden1@")) && !bytes.Contains(received.Data, []byte("hidden2@")),
		"Subject":                      msg.Header.Get("Subject") == "sample string 9",
		"Message-ID matches the API's": msg.Header.Get("Message-Id") == created.MessageID,
		"Date":                         msg.Header.Get("Date") != "",
		"low importance":               strings.EqualFold(msg.Header.Get("Importance"), "low") && strings.HasPrefix(msg.Header.Get("X-Priority"), "5"),
	}
	for name, ok := range checks {
		if !ok {
			t.Errorf("%s: header block was\n%s", name, headerBlock(received.Data))
		}
	}
	body, _ := io.ReadAll(msg.Body)
	if strings.TrimSpace(string(body)) != "sample string 6" {
		t.Errorf("body %q", body)
	}
}

func TestDraftIsStoredNotDelivered(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	res := g.postJSON(t, g.seedSample(false))
	if res.status != http.StatusCreated {
		t.Fatalf("sendmessage: %d %s", res.status, res.body)
	}
	var v messageView
	res.decode(t, &v)
	if v.State != "draft" || !v.CanDelete {
		t.Fatalf("want a deletable draft, got %+v", v)
	}
	if n := g.countRows(t, `SELECT count(*) FROM river_job WHERE args->>'subscription_id' = $1::text`); n != 0 {
		t.Fatalf("a draft queued %d jobs", n)
	}
	if got := g.get(t, v.ID); got.State != "draft" {
		t.Fatalf("draft reads back as %s", got.State)
	}
	if g.relay.Sessions() != 0 {
		t.Fatalf("the relay was contacted for a draft")
	}
}

func TestDeferredRecipientIsRetriedUntilSent(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{
		Rcpt: func(rcpt string, attempt int) *smtp.SMTPError {
			if rcpt == "grace@example.org" && attempt == 1 {
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
			}
			return nil
		},
	})
	res := g.postJSON(t, g.seedSample(true))
	if res.status != http.StatusCreated {
		t.Fatalf("sendmessage: %d %s", res.status, res.body)
	}
	var v messageView
	res.decode(t, &v)
	final := g.waitForState(t, v.ID, "sent")

	got := g.relay.Messages()
	if len(got) != 2 {
		t.Fatalf("relay got %d messages, want 2 (first attempt, then the retry)", len(got))
	}
	if len(got[0].To) != 5 || !slices.Equal(got[1].To, []string{"grace@example.org"}) {
		t.Fatalf("retry must go to the deferred recipient only: %v then %v", got[0].To, got[1].To)
	}
	for _, r := range final.To {
		wantAttempts := 1
		if r.EmailAddress == "grace@example.org" {
			wantAttempts = 2
		}
		if r.Status != "delivered" || r.Attempts != wantAttempts {
			t.Fatalf("recipient %+v, want delivered after %d attempts", r, wantAttempts)
		}
	}
	if g.relay.RcptAttempts("ada@example.net") != 1 {
		t.Fatalf("a delivered recipient was sent to again")
	}
}

func TestBouncedRecipientFailsOthersSucceed(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{
		Rcpt: func(rcpt string, attempt int) *smtp.SMTPError {
			if rcpt == "cc2@example.net" {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			}
			return nil
		},
	})
	res := g.postJSON(t, g.seedSample(true))
	var v messageView
	res.decode(t, &v)
	final := g.waitForState(t, v.ID, "partially_sent")
	if !final.CanDelete || !strings.Contains(final.LastError, "cc2@example.net") {
		t.Fatalf("final message %+v", final)
	}
	for _, r := range slices.Concat(final.To, final.Cc, final.Bcc) {
		want := "delivered"
		if r.EmailAddress == "cc2@example.net" {
			want = "bounced"
		}
		if r.Status != want {
			t.Fatalf("recipient %s is %s, want %s", r.EmailAddress, r.Status, want)
		}
	}
	if g.relay.RcptAttempts("cc2@example.net") != 1 {
		t.Fatalf("a bounced recipient was retried")
	}
	if n := len(g.relay.Messages()); n != 1 {
		t.Fatalf("relay got %d messages, want 1", n)
	}
}

// TestBadInputIsRefusedAndWritesNothing covers the 4xx answers of sendmessage.
func TestBadInputIsRefusedAndWritesNothing(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	valid := func(edit func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(g.seedSample(true), &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, _ := json.Marshal(m)
		return b
	}
	tests := []struct {
		name      string
		body      []byte
		status    int
		wantField string
	}{
		{"MalformedJSON", []byte(`{"subject": "x",`), 400, ""},
		{"NotAnObject", []byte(`[1,2]`), 400, ""},
		{"ServerOwnedField", valid(func(m map[string]any) { m["state"] = "sent" }), 400, "state"},
		{"WrongType", valid(func(m map[string]any) { m["send"] = "yes" }), 400, "send"},
		{"BadGUID", valid(func(m map[string]any) { m["sender_account_id"] = "not-a-guid" }), 400, "sender_account_id"},
		{"BadBase64TS", valid(func(m map[string]any) { m["ts"] = "%%%" }), 400, "ts"},
		{"BadDate", valid(func(m map[string]any) { m["created_date"] = "yesterday" }), 400, "created_date"},
		{"UnknownSenderDomain", valid(func(m map[string]any) { m["sender_email"] = "ceo@bank.example"; delete(m, "sender_account_id") }), 403, "sender_email"},
		{"OtherSubscription", valid(func(m map[string]any) { m["subscription_id"] = uuid.NewString() }), 403, "subscription_id"},
		{"EmptyRecipients", valid(func(m map[string]any) { m["to"], m["cc"], m["bcc"] = []any{}, []any{}, []any{} }), 400, "to"},
		{"CRLFInSubject", valid(func(m map[string]any) { m["subject"] = "hi\r\nBcc: victim@example.com" }), 400, "subject"},
		{"LFInDisplayName", valid(func(m map[string]any) {
			m["to"] = []any{map[string]any{"display_name": "Ada\nX-Evil: 1", "email_address": "ada@example.net"}}
		}), 400, "to[0].display_name"},
		{"CRLFInSenderName", valid(func(m map[string]any) { m["sender_display_name"] = "Zoë\r\n" }), 400, "sender_display_name"},
		{"BadRecipientAddress", valid(func(m map[string]any) {
			m["cc"] = []any{map[string]any{"email_address": `"x" <victim@example.com>`}}
		}), 400, "cc[0].email_address"},
		{"BadImportance", valid(func(m map[string]any) { m["importance"] = 7 }), 400, "importance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := g.postJSON(t, tt.body)
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			assertProblem(t, res, tt.status, tt.wantField)
		})
	}
	t.Run("UnsupportedMediaType", func(t *testing.T) {
		res := g.do(t, http.MethodPost, "/api/messages/sendmessage", "text/plain", g.token, g.seedSample(true))
		assertProblem(t, res, http.StatusUnsupportedMediaType, "")
	})
	for _, table := range []string{"messages", "message_recipients", "message_events"} {
		if n := g.countRows(t, `SELECT count(*) FROM `+table+` WHERE subscription_id = $1`); n != 0 {
			t.Fatalf("refused requests left %d rows in %s", n, table)
		}
	}
	if n := g.countRows(t, `SELECT count(*) FROM river_job WHERE args->>'subscription_id' = $1::text`); n != 0 {
		t.Fatalf("refused requests queued %d jobs", n)
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	sign := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now()
	tests := []struct {
		name  string
		token string
	}{
		{"Missing", ""},
		{"Malformed", "not.a.jwt"},
		{"Expired", sign(jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"subscription_id": g.tenant.ID.String(), "exp": now.Add(-time.Hour).Unix()})},
		{"NoExpiry", sign(jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"subscription_id": g.tenant.ID.String()})},
		{"WrongKey", sign(jwt.SigningMethodHS256, []byte("another-secret-that-is-32-bytes-long!!"), jwt.MapClaims{"subscription_id": g.tenant.ID.String(), "exp": now.Add(time.Hour).Unix()})},
		{"AlgNone", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"subscription_id": g.tenant.ID.String(), "exp": now.Add(time.Hour).Unix()})},
		{"NoSubscription", sign(jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"exp": now.Add(time.Hour).Unix()})},
	}
	// Every bad token gets the same answer, so none tells an attacker why.
	details := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, req := range []struct{ method, path string }{{"POST", "/api/messages/sendmessage"}, {"GET", "/api/messages/" + uuid.NewString()}} {
				res := g.do(t, req.method, req.path, "application/json", tt.token, g.seedSample(true))
				assertProblem(t, res, http.StatusUnauthorized, "")
				var p struct{ Detail string }
				res.decode(t, &p)
				details[p.Detail] = true
			}
		})
	}
	if len(details) != 2 { // "a bearer token is required" for the missing one, one text for all others
		t.Fatalf("401 details differ by cause: %v", details)
	}
	if n := g.countRows(t, `SELECT count(*) FROM messages WHERE subscription_id = $1`); n != 0 {
		t.Fatalf("unauthenticated requests wrote %d messages", n)
	}
}

func TestOtherTenantsMessageIsNotFound(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	res := g.postJSON(t, g.seedSample(false))
	var v messageView
	res.decode(t, &v)

	other, err := g.app.Store().CreateTenant(t.Context(), "other", []string{"other-" + g.domain})
	if err != nil {
		t.Fatal(err)
	}
	otherToken := g.issue(t, other.ID)
	got := g.do(t, http.MethodGet, "/api/messages/"+v.ID, "", otherToken, nil)
	assertProblem(t, got, http.StatusNotFound, "")
	got = g.do(t, http.MethodGet, "/api/messages/not-a-uuid", "", g.token, nil)
	assertProblem(t, got, http.StatusNotFound, "")

	// Reusing another tenant's id is not found and never touches the message.
	var m map[string]any
	_ = json.Unmarshal(g.seedSample(false), &m)
	m["id"], m["subscription_id"], m["sender_email"] = v.ID, other.ID.String(), "x@other-"+g.domain
	delete(m, "sender_account_id")
	body, _ := json.Marshal(m)
	res = g.do(t, http.MethodPost, "/api/messages/sendmessage", "application/json", otherToken, body)
	assertProblem(t, res, http.StatusNotFound, "id")
	if mine := g.get(t, v.ID); mine.TS != v.TS || mine.Subscription != g.tenant.ID.String() {
		t.Fatalf("another tenant's write changed this tenant's message")
	}
}

func assertProblem(t *testing.T, res response, status int, field string) {
	t.Helper()
	if res.status != status {
		t.Fatalf("status %d, want %d: %s", res.status, status, res.body)
	}
	if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("content type %q, want application/problem+json", ct)
	}
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
		Field  string `json:"field"`
	}
	res.decode(t, &p)
	if p.Status != status || p.Title == "" || p.Type == "" || p.Detail == "" {
		t.Fatalf("incomplete problem: %s", res.body)
	}
	if field != "" && p.Field != field {
		t.Fatalf("problem names field %q, want %q: %s", p.Field, field, res.body)
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func headerBlock(data []byte) string {
	head, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
	return string(head)
}
