package app

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

// TestJWTMatrix drives the token rules over HTTP with an HS256 secret and an
// RS256 and an EdDSA public key configured side by side.
func TestJWTMatrix(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rsaDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	edDER, _ := x509.MarshalPKIXPublicKey(edPub)
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"kid": "rsa-1"}, Bytes: rsaDER})
	edPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"kid": "ed-1"}, Bytes: edDER})
	keysFile := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(keysFile, append(rsaPEM, edPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGatewayWith(t, RoleAll, smtptest.Options{}, func(c *Config) {
		c.JWTPublicKeys = keysFile
		c.JWTIssuer, c.JWTAudience = "https://issuer.example", "mailgate"
	})
	now := time.Now()
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"subscription_id": g.tenant.ID.String(), "exp": now.Add(time.Hour).Unix(),
			"iss": "https://issuer.example", "aud": "mailgate"}
		if edit != nil {
			edit(c)
		}
		return c
	}
	sign := func(method jwt.SigningMethod, kid string, key any, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(method, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	tests := []struct {
		name  string
		token string
		want  int
	}{
		{"RS256", sign(jwt.SigningMethodRS256, "rsa-1", rsaKey, claims(nil)), 200},
		{"EdDSA", sign(jwt.SigningMethodEdDSA, "ed-1", edKey, claims(nil)), 200},
		{"HS256", sign(jwt.SigningMethodHS256, "", []byte(testSecret), claims(nil)), 200},
		{"UnknownKid", sign(jwt.SigningMethodRS256, "rsa-2", rsaKey, claims(nil)), 401},
		{"RS256NoKid", sign(jwt.SigningMethodRS256, "", rsaKey, claims(nil)), 401},
		{"RS256WrongKey", sign(jwt.SigningMethodRS256, "rsa-1", otherRSA, claims(nil)), 401},
		{"EdDSAHeaderOnRSAKid", sign(jwt.SigningMethodEdDSA, "rsa-1", edKey, claims(nil)), 401},
		{"HS256WithRSAPublicKeyPEM", sign(jwt.SigningMethodHS256, "rsa-1", rsaPEM, claims(nil)), 401},
		{"HS256WithRSAPublicKeyDER", sign(jwt.SigningMethodHS256, "", rsaDER, claims(nil)), 401},
		{"AlgNone", sign(jwt.SigningMethodNone, "", jwt.UnsafeAllowNoneSignatureType, claims(nil)), 401},
		{"Expired", sign(jwt.SigningMethodRS256, "rsa-1", rsaKey, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() })), 401},
		{"NotYetValid", sign(jwt.SigningMethodRS256, "rsa-1", rsaKey, claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() })), 401},
		{"WrongIssuer", sign(jwt.SigningMethodRS256, "rsa-1", rsaKey, claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })), 401},
		{"WrongAudience", sign(jwt.SigningMethodRS256, "rsa-1", rsaKey, claims(func(c jwt.MapClaims) { c["aud"] = "someone-else" })), 401},
		{"UnknownSubscription", sign(jwt.SigningMethodRS256, "rsa-1", rsaKey, claims(func(c jwt.MapClaims) { c["subscription_id"] = uuid.NewString() })), 401},
		{"Oversize", "eyJ" + strings.Repeat("A", 9000), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := g.do(t, "GET", "/api/messages?limit=1", "", tt.token, nil)
			if res.status != tt.want {
				t.Fatalf("status %d, want %d: %s", res.status, tt.want, res.body)
			}
			if tt.want == 401 {
				assertProblem(t, res, 401, "")
			}
		})
	}

	t.Run("SuspendedTenantIs403", func(t *testing.T) {
		if _, err := g.app.Store().SetTenantStatus(t.Context(), g.tenant.ID, "suspended"); err != nil {
			t.Fatal(err)
		}
		token := sign(jwt.SigningMethodRS256, "rsa-1", rsaKey, claims(nil))
		deadline := time.Now().Add(10 * time.Second) // the status cache lives 5 s
		for {
			res := g.do(t, "GET", "/api/messages?limit=1", "", token, nil)
			if res.status == http.StatusForbidden {
				assertProblem(t, res, 403, "")
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a suspended tenant still gets %d", res.status)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	admin, err := g.auth.Issue(uuid.New(), time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	call := func(token, method, path string, body []byte) response {
		return g.do(t, method, path, "application/json", token, body)
	}

	// A tenant token is not an operator token.
	assertProblem(t, call(g.token, "GET", "/api/admin/tenants", nil), http.StatusForbidden, "")

	created := call(admin, "POST", "/api/admin/tenants", mustJSON(map[string]any{"name": "Bücher GmbH", "sender_domains": []string{"BÜCHER.example."}}))
	if created.status != http.StatusCreated {
		t.Fatalf("create tenant: %d %s", created.status, created.body)
	}
	var tenant struct {
		SubscriptionID string   `json:"subscription_id"`
		SenderDomains  []string `json:"sender_domains"`
		Status         string   `json:"status"`
	}
	created.decode(t, &tenant)
	if len(tenant.SenderDomains) != 1 || tenant.SenderDomains[0] != "xn--bcher-kva.example" || tenant.Status != "active" {
		t.Fatalf("tenant %+v: the domain must be stored in its ASCII form", tenant)
	}
	base := "/api/admin/tenants/" + tenant.SubscriptionID
	if res := call(admin, "POST", base+"/domains", mustJSON(map[string]string{"domain": "mail.bücher.example"})); res.status != 200 {
		t.Fatalf("add domain: %d %s", res.status, res.body)
	}
	acc := call(admin, "POST", base+"/accounts", mustJSON(map[string]string{"email": "info@BÜCHER.example", "display_name": "Info"}))
	if acc.status != http.StatusCreated || !bytes.Contains(acc.body, []byte("info@xn--bcher-kva.example")) {
		t.Fatalf("create account: %d %s", acc.status, acc.body)
	}
	assertProblem(t, call(admin, "POST", base+"/accounts", mustJSON(map[string]string{"email": "ceo@bank.example"})), http.StatusForbidden, "email")
	assertProblem(t, call(admin, "POST", "/api/admin/tenants/"+uuid.NewString()+"/accounts", mustJSON(map[string]string{"email": "a@b.example"})), http.StatusNotFound, "")
	assertProblem(t, call(admin, "POST", "/api/admin/tenants", []byte(`{"name":"x","sender_domains":["ok.example"],"extra":1}`)), 400, "extra")

	list := call(admin, "GET", "/api/admin/tenants", nil)
	if list.status != 200 || !bytes.Contains(list.body, []byte(tenant.SubscriptionID)) || !bytes.Contains(list.body, []byte(g.tenant.ID.String())) {
		t.Fatalf("list tenants: %d %s", list.status, list.body)
	}
	accounts := call(admin, "GET", base+"/accounts", nil)
	if !bytes.Contains(accounts.body, []byte("info@xn--bcher-kva.example")) {
		t.Fatalf("list accounts: %s", accounts.body)
	}

	// Sending as the new tenant with a Unicode sender address works once normalized.
	newToken := g.issue(t, uuid.MustParse(tenant.SubscriptionID))
	send := g.do(t, "POST", "/api/messages/sendmessage", "application/json", newToken, mustJSON(map[string]any{
		"sender_email": "news@Bücher.example", "to": []map[string]string{{"email_address": "ada@example.net"}}, "subject": "idna"}))
	if send.status != http.StatusCreated || !bytes.Contains(send.body, []byte(`"sender_email":"news@xn--bcher-kva.example"`)) {
		t.Fatalf("send as an IDNA domain: %d %s", send.status, send.body)
	}

	if res := call(admin, "POST", base+"/suspend", nil); res.status != 200 || !bytes.Contains(res.body, []byte(`"suspended"`)) {
		t.Fatalf("suspend: %d %s", res.status, res.body)
	}
	if res := call(admin, "DELETE", base+"/domains/mail.xn--bcher-kva.example", nil); res.status != 200 {
		t.Fatalf("remove domain: %d %s", res.status, res.body)
	}
	assertProblem(t, call(admin, "DELETE", base+"/domains/never.example", nil), http.StatusNotFound, "")
}

// TestNoOpenRelay tries to send as addresses the tenant does not own.
func TestNoOpenRelay(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	for _, sender := range []string{
		"ceo@bank.example",
		`"sender@` + g.domain + `" <ceo@bank.example>`,
		"Sender <sender@" + g.domain + ">",
		"sender@" + g.domain + "@bank.example",
		"\"sender\r\n\"@" + g.domain,
		"sender\x00@" + g.domain,
		"sender@" + g.domain + ".bank.example",
		"sender@sub." + g.domain,
		"sender@" + g.domain + "\r\nRCPT TO:<victim@example.com>",
		"<sender@" + g.domain + ">",
	} {
		t.Run(sender, func(t *testing.T) {
			res := g.postJSON(t, mustJSON(map[string]any{
				"sender_email": sender, "send": true, "to": []map[string]string{{"email_address": "victim@example.com"}}}))
			if res.status != http.StatusForbidden && res.status != http.StatusBadRequest {
				t.Fatalf("sender %q: %d %s", sender, res.status, res.body)
			}
		})
	}
	// The verified forms pass, after normalization of case and a trailing dot.
	for _, sender := range []string{"SENDER@" + strings.ToUpper(g.domain), "anyone@" + g.domain + "."} {
		res := g.postJSON(t, mustJSON(map[string]any{"sender_email": sender, "to": []map[string]string{{"email_address": "a@example.net"}}}))
		if res.status != http.StatusCreated {
			t.Fatalf("verified sender %q refused: %d %s", sender, res.status, res.body)
		}
	}
	if n := g.countRows(t, `SELECT count(*) FROM river_job WHERE args->>'subscription_id' = $1::text`); n != 0 {
		t.Fatalf("refused senders queued %d jobs", n)
	}
}
