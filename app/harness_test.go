package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailgate/mailgate/adapters/jwtauth"
	"github.com/mailgate/mailgate/adapters/postgres"
	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
	"github.com/mailgate/mailgate/db"
	"github.com/mailgate/mailgate/db/dbtest"
	"github.com/mailgate/mailgate/domain"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

const testSecret = "test-secret-0123456789-abcdefghijklmnop"

// gateway is the whole app booted on free ports, with a real SMTP server as its relay.
type gateway struct {
	app *App
	// owner reads the database past row-level security, for assertions.
	owner  *pgxpool.Pool
	relay  *smtptest.Server
	base   string
	auth   *jwtauth.Authenticator
	tenant postgres.Tenant
	sender postgres.Account
	token  string
	domain string
}

func startGateway(t testing.TB, relayOpts smtptest.Options) *gateway {
	t.Helper()
	return startGatewayWith(t, RoleAll, relayOpts, nil)
}

func startGatewayRole(t testing.TB, role string) *gateway {
	t.Helper()
	return startGatewayWith(t, role, smtptest.Options{}, nil)
}

// startGatewayWith boots the app; configure, when set, adjusts its Config.
func startGatewayWith(t testing.TB, role string, relayOpts smtptest.Options, configure func(*Config)) *gateway {
	t.Helper()
	ctx := context.Background()
	relay := smtptest.Start(t, relayOpts)
	dbURL := dbtest.IsolatedURL(t)
	cfg := Config{
		DatabaseURL:  dbURL,
		DatabaseRole: db.DefaultRuntimeRole,
		HTTPAddr:     "127.0.0.1:0",
		AdminAddr:    "127.0.0.1:0",
		SMTPURL:      relay.URL(),
		JWTSecret:    testSecret,
		Workers:      4,
		RetryBase:    20 * time.Millisecond,
		// Generous: these tests aren't about shutdown timing (the SIGTERM
		// tests are), and on a loaded machine a delivery cancelled at the end
		// of a test can take more than a second to record its outcome.
		ShutdownGrace:  20 * time.Second,
		FetchCooldown:  5 * time.Millisecond,
		FetchPollEvery: 20 * time.Millisecond,
		// Test webhook endpoints listen on loopback.
		WebhookAllowPrivate: true,
		MetricsTenantLabels: 10,
	}
	if configure != nil {
		configure(&cfg)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	a, err := New(ctx, cfg, role, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	g := &gateway{app: a, relay: relay, base: "http://" + a.HTTPAddr(), owner: dbtest.OwnerPoolFor(t, dbURL)}
	g.auth, err = jwtauth.NewHS256([]byte(testSecret), jwtauth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g.domain = "t" + uuid.NewString()[:8] + ".example"
	g.tenant, err = a.Store().CreateTenant(ctx, "e2e "+t.Name(), []string{g.domain})
	if err != nil {
		t.Fatal(err)
	}
	g.sender, err = a.Store().CreateAccount(ctx, g.tenant.ID, "sender@"+g.domain, "Sender Name")
	if err != nil {
		t.Fatal(err)
	}
	g.token = g.issue(t, g.tenant.ID)
	return g
}

func (g *gateway) issue(t testing.TB, tenant uuid.UUID) string {
	t.Helper()
	token, err := g.auth.Issue(tenant, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// issueAdmin signs an operator token.
func (g *gateway) issueAdmin(t testing.TB) string {
	t.Helper()
	token, err := g.auth.Issue(g.tenant.ID, time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (g *gateway) do(t testing.TB, method, path, contentType, token string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, g.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func (g *gateway) postJSON(t testing.TB, body any) response {
	t.Helper()
	b, ok := body.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	return g.do(t, http.MethodPost, "/api/messages/sendmessage", "application/json", g.token, b)
}

// messageView mirrors the response fields the tests read.
type messageView struct {
	ID           string `json:"id"`
	MessageID    string `json:"message_id"`
	State        string `json:"state"`
	CanDelete    bool   `json:"can_delete"`
	TS           string `json:"ts"`
	CreatedDate  string `json:"created_date"`
	Subscription string `json:"subscription_id"`
	To, Cc, Bcc  []struct {
		EmailAddress string `json:"email_address"`
		Status       string `json:"status"`
		Attempts     int    `json:"attempts"`
		LastCode     int    `json:"last_code"`
		// PossibleDuplicate: the recipient may have the message twice.
		PossibleDuplicate bool `json:"possible_duplicate"`
	}
	LastError string `json:"last_error"`
}

func (g *gateway) get(t testing.TB, id string) messageView {
	t.Helper()
	res := g.do(t, http.MethodGet, "/api/messages/"+id, "", g.token, nil)
	if res.status != http.StatusOK {
		t.Fatalf("GET message: %d %s", res.status, res.body)
	}
	var v messageView
	res.decode(t, &v)
	return v
}

// waitForState polls the message until it reaches a final state or the time runs out.
func (g *gateway) waitForState(t testing.TB, id string, want string) messageView {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v := g.get(t, id)
		if v.State == want {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s is %s (last error %q), want %s", id, v.State, v.LastError, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitForRow polls query (owner, past row-level security, never through the
// rate-limited API) until it returns want or the time runs out.
func (g *gateway) waitForRow(t testing.TB, want string, query string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got string
		err := g.owner.QueryRow(context.Background(), query, args...).Scan(&got)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s gave %q (%v), want %q", query, got, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (g *gateway) countRows(t testing.TB, query string) int {
	t.Helper()
	var n int
	if err := g.owner.QueryRow(context.Background(), query, g.tenant.ID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// seedSample is the JSON sample of the seed's help page with real addresses and ids.
func (g *gateway) seedSample(send bool) []byte {
	s := `{
"sender_email": "SENDER",
"sender_display_name": "Zoë Sender",
"sender_account_id": "ACCOUNT",
"to": [
{"display_name": "Ada Lovelace", "email_address": "ada@example.net", "account_id": "00000000-0000-0000-0000-000000000000"},
{"display_name": "Grace Hopper", "email_address": "grace@example.org", "account_id": "00000000-0000-0000-0000-000000000000"}
],
"cc": [
{"display_name": "Cc One", "email_address": "cc1@example.net", "account_id": "00000000-0000-0000-0000-000000000000"},
{"display_name": "Cc Two", "email_address": "cc2@example.net", "account_id": "00000000-0000-0000-0000-000000000000"}
],
"bcc": [
{"display_name": "Hidden One", "email_address": "hidden1@example.net", "account_id": "00000000-0000-0000-0000-000000000000"},
{"display_name": "Hidden Two", "email_address": "hidden2@example.net", "account_id": "00000000-0000-0000-0000-000000000000"}
],
"importance": 0,
"message_id": "",
"references": "",
"body": "sample string 6",
"attachments": [],
"parent_id": "00000000-0000-0000-0000-000000000000",
"created_date": "2026-06-09T14:59:25.9028316+08:00",
"send": SEND,
"subject": "sample string 9",
"can_delete": true,
"id": "ID",
"subscription_id": "SUBSCRIPTION",
"ts": "QEA="
}`
	send_ := "false"
	if send {
		send_ = "true"
	}
	return []byte(strings.NewReplacer("SENDER", g.sender.Email, "ACCOUNT", g.sender.ID.String(), "SEND", send_,
		"ID", uuid.NewString(), "SUBSCRIPTION", g.tenant.ID.String()).Replace(s))
}

// findAllStalled runs one reconciler search with a sweep wide enough for a
// test's whole schema, so every stalled message is found in one pass.
func findAllStalled(ctx context.Context, store *postgres.Store) ([]domain.StalledMessage, error) {
	pass, err := store.FindStalled(ctx, domain.StallSearch{Limit: 100, SweepRows: 100_000})
	return pass.Stalled, err
}
