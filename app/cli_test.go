package app

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/adapters/jwtauth"
	"github.com/mailgate/mailgate/db/dbtest"
)

// runCLI runs the CLI as the binary would, with env as its whole environment.
func runCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(context.Background(), Env{
		Args:   args,
		Getenv: func(k string) string { return env[k] },
		Stdout: &out,
		Stderr: &errOut,
	})
	return code, out.String(), errOut.String()
}

func TestOperatorCLI(t *testing.T) {
	t.Parallel()
	env := map[string]string{"MAILGATE_DATABASE_URL": dbtest.IsolatedURL(t), "MAILGATE_JWT_SECRET": testSecret}

	for range 2 {
		if code, out, errOut := runCLI(t, env, "migrate"); code != 0 || !strings.Contains(out, `"applied"`) {
			t.Fatalf("migrate: exit %d, %s %s", code, out, errOut)
		}
	}

	code, out, errOut := runCLI(t, env, "tenant", "create", "--name", "Acme", "--sender-domain", "Acme.Example", "--sender-domain", "mail.acme.example")
	if code != 0 {
		t.Fatalf("tenant create: exit %d: %s", code, errOut)
	}
	var tenant struct {
		SubscriptionID uuid.UUID `json:"subscription_id"`
		SenderDomains  []string  `json:"sender_domains"`
	}
	if err := json.Unmarshal([]byte(out), &tenant); err != nil || tenant.SubscriptionID == uuid.Nil {
		t.Fatalf("tenant create printed %q: %v", out, err)
	}
	if strings.Join(tenant.SenderDomains, ",") != "acme.example,mail.acme.example" {
		t.Fatalf("sender domains %v", tenant.SenderDomains)
	}

	code, out, errOut = runCLI(t, env, "account", "create", "--subscription", tenant.SubscriptionID.String(), "--email", "ops@acme.example", "--display-name", "Ops")
	if code != 0 {
		t.Fatalf("account create: exit %d: %s", code, errOut)
	}
	var account struct {
		AccountID uuid.UUID `json:"account_id"`
		Email     string    `json:"email"`
	}
	if err := json.Unmarshal([]byte(out), &account); err != nil || account.AccountID == uuid.Nil || account.Email != "ops@acme.example" {
		t.Fatalf("account create printed %q: %v", out, err)
	}

	code, _, errOut = runCLI(t, env, "account", "create", "--subscription", tenant.SubscriptionID.String(), "--email", "ceo@bank.example")
	if code == 0 || !strings.Contains(errOut, "verified domain") {
		t.Fatalf("an account off the tenant's domains must be refused: exit %d %s", code, errOut)
	}

	code, out, errOut = runCLI(t, env, "token", "issue", "--subscription", tenant.SubscriptionID.String(), "--ttl", "1h", "--admin")
	if code != 0 {
		t.Fatalf("token issue: exit %d: %s", code, errOut)
	}
	auth, _ := jwtauth.NewHS256([]byte(testSecret), jwtauth.Options{})
	claims, err := auth.Verify(context.Background(), strings.TrimSpace(out))
	if err != nil || claims.SubscriptionID != tenant.SubscriptionID || !claims.Admin {
		t.Fatalf("issued token does not verify as an admin token of the tenant: %+v %v", claims, err)
	}

	code, out, errOut = runCLI(t, env, "tenant", "dkim", "--subscription", tenant.SubscriptionID.String(), "--domain", "ACME.example", "--selector", "mg1", "--algorithm", "ed25519-sha256")
	if code != 0 || !strings.Contains(out, `"dns_name": "mg1._domainkey.acme.example"`) || !strings.Contains(out, "v=DKIM1; k=ed25519; p=") {
		t.Fatalf("tenant dkim: exit %d %s %s", code, out, errOut)
	}
	if code, _, _ := runCLI(t, env, "tenant", "dkim", "--subscription", tenant.SubscriptionID.String(), "--domain", "other.example", "--selector", "mg1"); code == 0 {
		t.Fatal("a DKIM key for an unverified domain must be refused")
	}

	for _, bad := range [][]string{
		{"bogus"},
		{"serve", "--role", "everything"},
		{"token", "issue", "--subscription", "not-a-uuid"},
		{"tenant", "create", "--name", "x"},
	} {
		if code, _, _ := runCLI(t, env, bad...); code == 0 {
			t.Fatalf("%v should fail", bad)
		}
	}
}

// TestSeparateRoles accepts a message on an api-only process and delivers it
// from a worker-only process, as the Helm chart deploys them.
func TestSeparateRoles(t *testing.T) {
	t.Parallel()
	g := startGatewayRole(t, RoleAPI)
	if g.app.river == nil || g.relay.Sessions() != 0 {
		t.Fatal("api role must not deliver")
	}
	res := g.postJSON(t, g.seedSample(true))
	var v messageView
	res.decode(t, &v)
	if v.State != "queued" {
		t.Fatalf("accepted message is %s", v.State)
	}

	cfg := g.app.cfg
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	worker, err := New(context.Background(), cfg, RoleWorker, g.app.logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := worker.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = worker.Shutdown(context.Background()) })
	if worker.HTTPAddr() != "" {
		t.Fatal("worker role must not serve the API")
	}
	g.waitForState(t, v.ID, "sent")
	g.relay.WaitForMessages(t, 1, 0)
}
