package app

import (
	"bytes"
	"context"
	"net/http"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
	"github.com/mailgate/mailgate/domain"
)

const (
	testBounceDomain = "bounces.gw.example"
	testReplyDomain  = "reply.gw.example"
	// testOldVERPKey signed tokens before a rotation; it still verifies.
	testOldVERPKey = "old-verp-key-0123456789-0123456789-abcdef"
	testVERPKey    = "new-verp-key-0123456789-0123456789-abcdef"
)

// withInboundAddresses configures the bounce and reply domains with a
// rotated key pair.
func withInboundAddresses(cfg *Config) {
	cfg.Inbound = InboundConfig{BounceDomain: testBounceDomain, ReplyDomain: testReplyDomain, BouncePrefix: "bounce", ReplyPrefix: "reply",
		TokenKeys: [][]byte{[]byte(testVERPKey), []byte(testOldVERPKey)}, Addr: "127.0.0.1:0", Hostname: "mx.gw.example",
		MaxMessageBytes: 1 << 20, MaxConnections: 20, RatePerIP: 1000, Timeout: 10 * time.Second}
}

func testTokens(t testing.TB) *domain.AddressTokens {
	t.Helper()
	tokens, err := domain.NewAddressTokens([][]byte{[]byte(testVERPKey), []byte(testOldVERPKey)})
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

// sendSimple sends one message from the gateway's sender to the recipients
// and returns its id.
func (g *gateway) sendSimple(t testing.TB, subject string, to ...string) string {
	t.Helper()
	var rcpts []map[string]string
	for _, addr := range to {
		rcpts = append(rcpts, map[string]string{"email_address": addr})
	}
	res := g.postJSON(t, map[string]any{"sender_email": g.sender.Email, "sender_account_id": g.sender.ID, "to": rcpts,
		"subject": subject, "body": "Hello.", "importance": 1, "send": true})
	if res.status != http.StatusCreated {
		t.Fatalf("sendmessage: %d %s", res.status, res.body)
	}
	var v messageView
	res.decode(t, &v)
	return v.ID
}

// TestVERPEnvelope: with a bounce domain the envelope sender is a VERP
// address whose token names the message, at the tenant's own return-path
// domain when it has one; tenants that route replies get a Reply-To.
func TestVERPEnvelope(t *testing.T) {
	t.Parallel()
	g := startGatewayWith(t, RoleAll, smtptest.Options{}, withInboundAddresses)
	tokens := testTokens(t)
	ctx := context.Background()

	id := g.sendSimple(t, "verp", "ada@example.net", "grace@example.org")
	got := g.relay.WaitForMessages(t, 1, 20*time.Second)[0]
	prefix, token, d, ok := domain.SplitTokenAddress(got.From)
	if !ok || prefix != "bounce" || d != testBounceDomain {
		t.Fatalf("envelope sender %q is not a VERP address at the bounce domain", got.From)
	}
	if named, ok := tokens.Verify(domain.PurposeBounce, token); !ok || named.String() != id {
		t.Fatalf("token of %q names %v (%v), want message %s", got.From, named, ok, id)
	}
	if len(got.To) != 2 {
		t.Fatalf("one transaction should carry both recipients, got %v", got.To)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(got.Data))
	if err != nil {
		t.Fatal(err)
	}
	if rt := msg.Header.Get("Reply-To"); rt != "" {
		t.Fatalf("Reply-To %q without the tenant's reply routing", rt)
	}

	rpd := "rp." + g.domain
	on := true
	if _, err := g.app.Store().SetInboundSettings(ctx, g.tenant.ID, &rpd, &on); err != nil {
		t.Fatal(err)
	}
	id = g.sendSimple(t, "custom return path", "ada@example.net")
	got = g.relay.WaitForMessages(t, 2, 20*time.Second)[1]
	if _, token, d, ok := domain.SplitTokenAddress(got.From); !ok || d != rpd {
		t.Fatalf("envelope sender %q, want one at %s", got.From, rpd)
	} else if named, _ := tokens.Verify(domain.PurposeBounce, token); named.String() != id {
		t.Fatalf("token names %v, want %s", named, id)
	}
	msg, err = mail.ReadMessage(bytes.NewReader(got.Data))
	if err != nil {
		t.Fatal(err)
	}
	addr, err := mail.ParseAddress(msg.Header.Get("Reply-To"))
	if err != nil {
		t.Fatalf("Reply-To %q: %v", msg.Header.Get("Reply-To"), err)
	}
	_, replyToken, replyDomain, ok := domain.SplitTokenAddress(addr.Address)
	if named, verified := tokens.Verify(domain.PurposeReply, replyToken); !ok || replyDomain != testReplyDomain || !verified || named.String() != id {
		t.Fatalf("Reply-To %q does not name message %s", addr.Address, id)
	}

	other, err := g.app.Store().CreateTenant(ctx, "other", []string{"o" + uuid.NewString()[:8] + ".example"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.app.Store().SetInboundSettings(ctx, other.ID, &rpd, nil); !strings.Contains(errString(err), "another tenant") {
		t.Fatalf("a second tenant took the same return-path domain: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
