package app

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
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

// bouncingRelay is a smarthost built on go-smtp: it answers 250 to every
// recipient, then, as real relays do, mails a DSN to the envelope sender
// (the VERP address) for the recipients listed in bounce, through the
// gateway's inbound listener. The DSN is the Postfix fixture with the
// recipient put in.
type bouncingRelay struct {
	addr    string
	inbound func() string
	bounce  map[string]bool
	mu      sync.Mutex
	sent    []string
	// lastFrom is the return path the last DSN went to.
	lastFrom string
	// beforeReply, when set, makes the relay mail its DSNs first and call
	// it before answering the data: a bounce that lands while the
	// gateway's attempt is still waiting for the relay's reply.
	beforeReply func()
}

func startBouncingRelay(t *testing.T, inbound func() string, bounce ...string) *bouncingRelay {
	t.Helper()
	r := &bouncingRelay{inbound: inbound, bounce: map[string]bool{}}
	for _, b := range bounce {
		r.bounce[b] = true
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &relaySession{relay: r}, nil }))
	srv.Domain, srv.AllowInsecureAuth = "relay.test", true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	r.addr = ln.Addr().String()
	return r
}

type relaySession struct {
	relay *bouncingRelay
	from  string
	to    []string
}

func (s *relaySession) AuthPlain(string, string) error { return nil }
func (s *relaySession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *relaySession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *relaySession) Reset()        { s.from, s.to = "", nil }
func (s *relaySession) Logout() error { return nil }
func (s *relaySession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	from, to := s.from, slices.Clone(s.to)
	if s.relay.beforeReply != nil {
		for _, rcpt := range to {
			if s.relay.bounce[rcpt] {
				if err := deliverSMTP(s.relay.inbound(), "", from, postfixDSN(rcpt)); err != nil {
					return err
				}
			}
		}
		s.relay.beforeReply()
		return nil
	}
	go func() {
		for _, rcpt := range to {
			if s.relay.bounce[rcpt] {
				dsn := postfixDSN(rcpt)
				if err := deliverSMTP(s.relay.inbound(), "", from, dsn); err == nil {
					s.relay.mu.Lock()
					s.relay.sent, s.relay.lastFrom = append(s.relay.sent, rcpt), from
					s.relay.mu.Unlock()
				}
			}
		}
	}()
	return nil
}

// postfixDSN is the unknown-user DSN Postfix wrote, about rcpt.
func postfixDSN(rcpt string) []byte {
	raw, err := os.ReadFile("../adapters/inbound/testdata/postfix/unknown.eml")
	if err != nil {
		panic(err)
	}
	raw = bytes.ReplaceAll(raw, []byte("nosuchuser@local.test"), []byte(rcpt))
	return bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
}

// startInboundGateway boots the whole gateway with the inbound listener,
// relaying through relay when set.
func startInboundGateway(t *testing.T, relay func() string) *gateway {
	t.Helper()
	return startGatewayWith(t, RoleAll, smtptest.Options{}, func(cfg *Config) {
		withInboundAddresses(cfg)
		if relay != nil {
			cfg.SMTPURL = "smtp://" + relay() + "?tls=none"
		}
	})
}

// webhookSink records the events delivered to a registered webhook.
type webhookSink struct {
	mu     sync.Mutex
	events []map[string]any
}

func (g *gateway) registerWebhook(t *testing.T, types ...string) *webhookSink {
	t.Helper()
	sink := &webhookSink{}
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var e map[string]any
		_ = json.Unmarshal(body, &e)
		sink.mu.Lock()
		sink.events = append(sink.events, e)
		sink.mu.Unlock()
	}))
	t.Cleanup(endpoint.Close)
	res := g.do(t, "POST", "/api/webhooks", "application/json", g.token, mustJSON(map[string]any{"url": endpoint.URL, "event_types": types}))
	if res.status != http.StatusCreated {
		t.Fatalf("create webhook: %d %s", res.status, res.body)
	}
	return sink
}

func (s *webhookSink) waitFor(t *testing.T, typ, recipient string) map[string]any {
	t.Helper()
	var found map[string]any
	waitFor(t, 20*time.Second, fmt.Sprintf("a %s webhook for %q", typ, recipient), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, e := range s.events {
			if e["type"] == typ && (recipient == "" || e["recipient"] == recipient) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// inboundStatus waits until the inbound message RCPT to rcpt is settled and returns its status and detail.
func (g *gateway) inboundStatus(t *testing.T, rcpt string) (status, detail string) {
	t.Helper()
	waitFor(t, 20*time.Second, "the inbound message to "+rcpt+" to be processed", func() bool {
		return g.owner.QueryRow(context.Background(), `SELECT status, detail FROM inbound_messages WHERE $1 = ANY (rcpt_to) AND status <> 'received'
			ORDER BY received_at DESC LIMIT 1`, rcpt).Scan(&status, &detail) == nil
	})
	return status, detail
}

func (g *gateway) recipientStatus(t *testing.T, id, email string) string {
	t.Helper()
	var status string
	if err := g.owner.QueryRow(context.Background(), `SELECT status FROM message_recipients WHERE message_id = $1 AND email = $2`, id, email).Scan(&status); err != nil {
		t.Fatal(err)
	}
	return status
}

// TestBounceAfterTheFact: the relay accepts both recipients and later mails
// a DSN for one; that recipient ends bounced, the address suppressed, the
// event in the feed and the webhook delivered; the other stays delivered.
func TestBounceAfterTheFact(t *testing.T) {
	t.Parallel()
	var g *gateway
	relay := startBouncingRelay(t, func() string { return g.app.InboundAddr() }, "gone@dest.example")
	g = startInboundGateway(t, func() string { return relay.addr })
	sink := g.registerWebhook(t, "bounced", "suppression.added")

	id := g.sendSimple(t, "bounce me", "gone@dest.example", "stays@dest.example")
	sink.waitFor(t, "bounced", "gone@dest.example")
	v := g.waitForState(t, id, "partially_sent")
	for _, r := range v.To {
		want := map[string]string{"gone@dest.example": "bounced", "stays@dest.example": "delivered"}[r.EmailAddress]
		if r.Status != want {
			t.Fatalf("recipient %s is %s, want %s", r.EmailAddress, r.Status, want)
		}
	}
	sink.waitFor(t, "suppression.added", "gone@dest.example")
	g.waitForRow(t, "bounce", `SELECT source FROM suppressions WHERE email = 'gone@dest.example'`)
	if status, detail := g.inboundStatus(t, relay.fromFor(t)); status != "processed" {
		t.Fatalf("inbound DSN %s: %s", status, detail)
	}
	// The feed serves an event once every older transaction on the server
	// has ended, so under load it can trail the webhook a moment.
	waitFor(t, 20*time.Second, "a bounced event with the DSN's status in the feed", func() bool {
		var feed struct {
			Items []map[string]any `json:"items"`
		}
		g.do(t, "GET", "/api/events?limit=100", "", g.token, nil).decode(t, &feed)
		for _, e := range feed.Items {
			if e["type"] == "bounced" && e["recipient"] == "gone@dest.example" && strings.HasPrefix(fmt.Sprint(e["detail"]), "5.1.1") {
				return true
			}
		}
		return false
	})
	// The suppression holds for the next message.
	next := g.sendSimple(t, "again", "gone@dest.example")
	if v := g.waitForState(t, next, "failed"); v.To[0].Status != "suppressed" {
		t.Fatalf("next message to a hard-bounced address: %+v", v.To[0])
	}
}

// TestBounceDuringTheAttemptStands: a DSN applied while the attempt that
// handed the message over is still waiting for the relay's reply is not
// overwritten by that attempt's outcome: the attempt decides again on the
// bounced recipient and the message settles as partially sent.
func TestBounceDuringTheAttemptStands(t *testing.T) {
	t.Parallel()
	var g *gateway
	relay := startBouncingRelay(t, func() string { return g.app.InboundAddr() }, "gone@dest.example")
	g = startInboundGateway(t, func() string { return relay.addr })
	relay.beforeReply = func() {
		// The relay answers only once the bounce is applied.
		g.waitForRow(t, "bounced", `SELECT status FROM message_recipients WHERE email = 'gone@dest.example'`)
	}
	id := g.sendSimple(t, "bounced mid-attempt", "gone@dest.example", "stays@dest.example")
	v := g.waitForState(t, id, "partially_sent")
	for _, r := range v.To {
		want := map[string]string{"gone@dest.example": "bounced", "stays@dest.example": "delivered"}[r.EmailAddress]
		if r.Status != want {
			t.Fatalf("recipient %s is %s, want %s", r.EmailAddress, r.Status, want)
		}
	}
	// One bounced event, from the DSN; no delivered event for the bounced recipient.
	g.waitForRow(t, "1", `SELECT count(*)::text FROM message_events WHERE message_id = $1 AND type = 'bounced'`, id)
	g.waitForRow(t, "0", `SELECT count(*)::text FROM message_events WHERE message_id = $1 AND type = 'delivered' AND recipient = 'gone@dest.example'`, id)
	g.waitForRow(t, "0", `SELECT count(*)::text FROM river_job WHERE kind = 'deliver_message' AND state = 'running'`)
}

func (r *bouncingRelay) fromFor(t *testing.T) string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sent) == 0 {
		t.Fatal("the relay sent no DSN")
	}
	return r.lastFrom
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// sendInbound hands raw to the gateway's inbound listener from MAIL FROM
// from to rcpt, as any MTA would.
func (g *gateway) sendInbound(t *testing.T, from, rcpt string, raw []byte) error {
	t.Helper()
	return deliverSMTP(g.app.InboundAddr(), from, rcpt, raw)
}

// deliverSMTP runs one plain SMTP transaction (go-smtp's SendMail insists
// on STARTTLS, which an MTA handing over a bounce may not use).
func deliverSMTP(addr, from, rcpt string, raw []byte) error {
	raw = bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("mta.test"); err != nil {
		return err
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(raw); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// sentMessage sends one message, waits until it is sent and returns its
// id and the return path it went out with.
func (g *gateway) sentMessage(t *testing.T, subject string, to ...string) (id, returnPath string) {
	t.Helper()
	id = g.sendSimple(t, subject, to...)
	g.waitForState(t, id, "sent")
	return id, g.returnPath(t, 1)
}

// returnPath waits for the relay to receive message n and returns its
// envelope sender.
func (g *gateway) returnPath(t testing.TB, n int) string {
	t.Helper()
	return g.relay.WaitForMessages(t, n, 20*time.Second)[n-1].From
}

// TestForgedDSNChangesNothing: a DSN to a VERP address whose token doesn't
// verify, or names no message, is kept for the operator and changes
// nothing.
func TestForgedDSNChangesNothing(t *testing.T) {
	t.Parallel()
	g := startInboundGateway(t, nil)
	id, rp := g.sentMessage(t, "forge", "victim@dest.example")
	prefix, token, d, _ := domain.SplitTokenAddress(rp)
	forgedToken := []byte(token)
	forgedToken[len(forgedToken)-1] ^= 1
	if forgedToken[len(forgedToken)-1] > 'z' || forgedToken[len(forgedToken)-1] < 'a' {
		forgedToken[len(forgedToken)-1] = 'a'
	}
	if string(forgedToken) == token {
		forgedToken[len(forgedToken)-1] = 'b'
	}
	forged := domain.TokenAddress(prefix, string(forgedToken), d)
	// Another key entirely: a token minted by someone who doesn't hold ours.
	otherKey, _ := domain.NewAddressTokens([][]byte{[]byte("attacker-key-0123456789-0123456789-xyz")})
	idOnly := domain.TokenAddress(prefix, otherKey.Mint(domain.PurposeBounce, uuid.MustParse(id)), d)
	unknown := domain.TokenAddress(prefix, testTokens(t).Mint(domain.PurposeBounce, uuid.New()), d)
	for _, rcpt := range []string{forged, idOnly, unknown} {
		if err := g.sendInbound(t, "", rcpt, postfixDSN("victim@dest.example")); err != nil {
			t.Fatalf("DSN to %s refused: %v", rcpt, err)
		}
		if status, detail := g.inboundStatus(t, rcpt); status != "unmatched" {
			t.Fatalf("DSN to %s: %s (%s), want unmatched", rcpt, status, detail)
		}
	}
	if s := g.recipientStatus(t, id, "victim@dest.example"); s != "delivered" {
		t.Fatalf("a forged DSN changed the recipient to %s", s)
	}
	if n := g.countRows(t, `SELECT count(*) FROM suppressions WHERE subscription_id = $1`); n != 0 {
		t.Fatalf("a forged DSN suppressed %d addresses", n)
	}
	// The genuine token, after a key rotation, still works: the old key verifies.
	if err := g.sendInbound(t, "", rp, postfixDSN("victim@dest.example")); err != nil {
		t.Fatal(err)
	}
	if status, detail := g.inboundStatus(t, rp); status != "processed" {
		t.Fatalf("genuine DSN: %s (%s)", status, detail)
	}
}

// TestDSNForEveryAction applies the multi-recipient report: failed bounces
// (and, for 5.1.1, suppresses); delayed, delivered and relayed are events.
func TestDSNForEveryAction(t *testing.T) {
	t.Parallel()
	g := startInboundGateway(t, nil)
	sink := g.registerWebhook(t)
	id, rp := g.sentMessage(t, "actions", "a@dest.example", "b@dest.example", "c@dest.example", "d@dest.example")
	raw, err := os.ReadFile("../adapters/inbound/testdata/reports/every-action.eml")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.sendInbound(t, "", rp, raw); err != nil {
		t.Fatal(err)
	}
	sink.waitFor(t, "dsn.relayed", "a@dest.example")
	sink.waitFor(t, "dsn.delivered", "b@dest.example")
	// c@ was forwarded: the Final-Recipient is elsewhere, the Original-Recipient is ours.
	sink.waitFor(t, "bounced", "c@dest.example")
	sink.waitFor(t, "dsn.delayed", "d@dest.example")
	want := map[string]string{"a@dest.example": "delivered", "b@dest.example": "delivered", "c@dest.example": "bounced", "d@dest.example": "delivered"}
	for addr, status := range want {
		if got := g.recipientStatus(t, id, addr); got != status {
			t.Errorf("%s is %s, want %s", addr, got, status)
		}
	}
	g.waitForState(t, id, "partially_sent")
	g.waitForRow(t, "bounce", `SELECT source FROM suppressions WHERE email = 'c@dest.example'`)
}

// TestComplaintSuppresses: an RFC 5965 abuse report about a recipient of
// one of the tenant's messages suppresses that address with source
// complaint and fires complained.
func TestComplaintSuppresses(t *testing.T) {
	t.Parallel()
	g := startInboundGateway(t, nil)
	sink := g.registerWebhook(t, "complained")
	_, rp := g.sentMessage(t, "newsletter", "user@example.com", "other@example.com")
	raw, err := os.ReadFile("../adapters/inbound/testdata/reports/rfc5965-abuse.eml")
	if err != nil {
		t.Fatal(err)
	}
	// A feedback loop mails its fixed address; the report's Original-Mail-From is our return path.
	raw = bytes.Replace(raw, []byte("Original-Mail-From: <somespammer@example.net>"), []byte("Original-Mail-From: <"+rp+">"), 1)
	if err := g.sendInbound(t, "fbl@isp.example", "fbl@"+testBounceDomain, raw); err != nil {
		t.Fatal(err)
	}
	sink.waitFor(t, "complained", "user@example.com")
	g.waitForRow(t, "complaint", `SELECT source FROM suppressions WHERE email = 'user@example.com'`)
	if n := g.countRows(t, `SELECT count(*) FROM suppressions WHERE subscription_id = $1`); n != 1 {
		t.Fatalf("%d suppressions, want only the complainer's", n)
	}
}

// TestInboundRefusesOtherDomains: never an open relay; size and rate bounds
// answer with clear SMTP errors.
func TestInboundRefusesOtherDomains(t *testing.T) {
	t.Parallel()
	g := startGatewayWith(t, RoleAll, smtptest.Options{}, func(cfg *Config) {
		withInboundAddresses(cfg)
		cfg.Inbound.MaxMessageBytes = 64 << 10
		cfg.Inbound.RatePerIP = 5
	})
	msg := []byte("Subject: hi\r\n\r\nhello\r\n")
	for _, rcpt := range []string{"someone@elsewhere.example", "bounce+x@" + testBounceDomain + ".evil.example", "postmaster@example.com"} {
		err := g.sendInbound(t, "a@b.example", rcpt, msg)
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 550 {
			t.Fatalf("RCPT %s: %v, want 550", rcpt, err)
		}
	}
	huge := append([]byte("Subject: big\r\n\r\n"), bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n"), 2000)...)
	err := g.sendInbound(t, "a@b.example", "postmaster@"+testBounceDomain, huge)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 552 {
		t.Fatalf("oversized message: %v, want 552", err)
	}
	// A flood from one address: the first ones are accepted (and stored),
	// then 450 until the bucket refills.
	accepted, limited := 0, 0
	for range 12 {
		err := g.sendInbound(t, "a@b.example", "postmaster@"+testBounceDomain, msg)
		switch {
		case err == nil:
			accepted++
		case errors.As(err, &se) && se.Code == 450:
			limited++
		default:
			t.Fatalf("flood: %v", err)
		}
	}
	if limited == 0 || accepted == 0 {
		t.Fatalf("flood: %d accepted, %d limited", accepted, limited)
	}
	var stored int
	if err := g.owner.QueryRow(context.Background(), `SELECT count(*) FROM inbound_messages WHERE 'postmaster@`+testBounceDomain+`' = ANY (rcpt_to)`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != accepted {
		t.Fatalf("%d accepted but %d stored", accepted, stored)
	}
}

// dkimKey signs the test replies as example.net, selector sel.
var dkimKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

// testDKIMLookup publishes dkimKey's record, as DNS would.
func testDKIMLookup(_ context.Context, name string) ([]string, error) {
	if name != "sel._domainkey.example.net" {
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return []string{"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(dkimKey.Public().(ed25519.PublicKey))}, nil
}

// TestReplyLandsInInbox: a reply to the Reply-To of a tenant that routes
// replies lands in the sending account's inbox, in the conversation, with
// its bodies, its attachment byte for byte and its DKIM result.
func TestReplyLandsInInbox(t *testing.T) {
	t.Parallel()
	g := startGatewayWith(t, RoleAll, smtptest.Options{}, func(cfg *Config) {
		withInboundAddresses(cfg)
		cfg.Inbound.lookupTXT = testDKIMLookup
	})
	on := true
	if _, err := g.app.Store().SetInboundSettings(context.Background(), g.tenant.ID, nil, &on); err != nil {
		t.Fatal(err)
	}
	sink := g.registerWebhook(t, "inbound.received")
	id := g.sendSimple(t, "question", "ada@example.net")
	original := g.waitForState(t, id, "sent")
	sent, err := mail.ReadMessage(bytes.NewReader(g.relay.WaitForMessages(t, 1, 20*time.Second)[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	replyTo, err := mail.ParseAddress(sent.Header.Get("Reply-To"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../adapters/inbound/testdata/reports/reply.eml")
	if err != nil {
		t.Fatal(err)
	}
	raw = bytes.ReplaceAll(raw, []byte("reply+token@reply.gw.example"), []byte(replyTo.Address))
	raw = bytes.ReplaceAll(raw, []byte("<orig@tenant.example>"), []byte(original.MessageID))
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, bytes.NewReader(raw), &dkim.SignOptions{Domain: "example.net", Selector: "sel", Signer: dkimKey}); err != nil {
		t.Fatal(err)
	}
	if err := g.sendInbound(t, "ada@example.net", replyTo.Address, signed.Bytes()); err != nil {
		t.Fatal(err)
	}
	sink.waitFor(t, "inbound.received", "")
	if status, detail := g.inboundStatus(t, replyTo.Address); status != "processed" {
		t.Fatalf("reply: %s (%s)", status, detail)
	}

	var page struct {
		Items []struct {
			messageView
			Body           string   `json:"body"`
			TextBody       string   `json:"text_body"`
			DKIMResult     string   `json:"dkim_result"`
			Subject        string   `json:"subject"`
			SenderEmail    string   `json:"sender_email"`
			ParentID       string   `json:"parent_id"`
			InReplyTo      string   `json:"in_reply_to"`
			ConversationID string   `json:"conversation_id"`
			Attachments    []string `json:"attachments"`
		} `json:"items"`
	}
	res := g.do(t, "GET", "/api/messages?folder=inbox&account="+g.sender.ID.String(), "", g.token, nil)
	res.decode(t, &page)
	if res.status != http.StatusOK || len(page.Items) != 1 {
		t.Fatalf("inbox: %d %s", res.status, res.body)
	}
	got := page.Items[0]
	var conv struct {
		ConversationID string `json:"conversation_id"`
	}
	g.do(t, "GET", "/api/messages/"+id, "", g.token, nil).decode(t, &conv)
	if got.State != "received" || got.SenderEmail != "ada@example.net" || got.Subject != "Re: Zoë's question" ||
		got.ParentID != id || got.InReplyTo != original.MessageID || got.ConversationID != conv.ConversationID {
		t.Fatalf("inbox message %+v", got)
	}
	if !strings.Contains(got.Body, "<b>Thanks!</b>") || !strings.Contains(got.TextBody, "Thanks!") || got.DKIMResult != "pass d=example.net" {
		t.Fatalf("bodies %q / %q, DKIM %q", got.Body, got.TextBody, got.DKIMResult)
	}
	if len(got.Attachments) != 1 {
		t.Fatalf("attachments %v", got.Attachments)
	}
	content := g.do(t, "GET", "/api/attachments/"+got.Attachments[0]+"/content", "", g.token, nil)
	want := bytes.Repeat(func() []byte {
		b := make([]byte, 256)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}(), 4)
	if content.status != http.StatusOK || !bytes.Equal(content.body, want) {
		t.Fatalf("attachment content: %d, %d bytes, identical %v", content.status, len(content.body), bytes.Equal(content.body, want))
	}
	// The same conversation lists both.
	res = g.do(t, "GET", "/api/messages?conversation="+conv.ConversationID, "", g.token, nil)
	res.decode(t, &page)
	if len(page.Items) != 2 {
		t.Fatalf("conversation has %d messages, want 2: %s", len(page.Items), res.body)
	}

	// A tampered signature is recorded as failing, and still delivered.
	tampered := bytes.Replace(signed.Bytes(), []byte("Thanks!"), []byte("Thanks?"), 1)
	if err := g.sendInbound(t, "ada@example.net", replyTo.Address, tampered); err != nil {
		t.Fatal(err)
	}
	g.waitForRow(t, "1", `SELECT count(*)::text FROM messages WHERE state = 'received' AND dkim_result LIKE 'fail d=example.net%'`)
}

// TestHostileInboundIsKept: deep MIME nesting and malformed reports are
// accepted (what was accepted is never lost), kept for the operator with
// the reason, and change nothing.
func TestHostileInboundIsKept(t *testing.T) {
	t.Parallel()
	g := startInboundGateway(t, nil)
	id, rp := g.sentMessage(t, "hostile", "target@dest.example")
	var deep strings.Builder
	deep.WriteString("From: x@y.example\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&deep, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i-1, i)
	}
	malformed := "From: MAILER-DAEMON@x.example\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n--x--\r\n"
	for _, raw := range []string{deep.String(), malformed} {
		if err := g.sendInbound(t, "", rp, []byte(raw)); err != nil {
			t.Fatalf("hostile message refused: %v", err)
		}
	}
	var stored, unmatched int
	waitFor(t, 20*time.Second, "both hostile messages kept as unreadable", func() bool {
		if err := g.owner.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE status = 'unmatched' AND detail LIKE 'unreadable:%')
			FROM inbound_messages WHERE $1 = ANY (rcpt_to)`, rp).Scan(&stored, &unmatched); err != nil {
			t.Fatal(err)
		}
		return unmatched == 2
	})
	if stored != 2 || unmatched != 2 {
		t.Fatalf("%d stored, %d kept as unreadable; want 2 and 2", stored, unmatched)
	}
	if s := g.recipientStatus(t, id, "target@dest.example"); s != "delivered" {
		t.Fatalf("a malformed report changed the recipient to %s", s)
	}
}

// startProcess runs another process of the same gateway in role, as the
// chart deploys them side by side.
func (g *gateway) startProcess(t *testing.T, cfg Config, role string) *App {
	t.Helper()
	a, err := New(context.Background(), cfg, role, g.app.logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	return a
}

// TestInboundRole runs the listener as its own process, as the chart
// deploys it, and a worker process that processes what it stored.
func TestInboundRole(t *testing.T) {
	t.Parallel()
	g := startGatewayWith(t, RoleAPI, smtptest.Options{}, withInboundAddresses)
	if g.app.InboundAddr() != "" {
		t.Fatal("the api role must not run the inbound listener")
	}
	cfg := g.app.cfg
	cfg.AdminAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	listener := g.startProcess(t, cfg, RoleInbound)
	if listener.HTTPAddr() != "" || listener.InboundAddr() == "" {
		t.Fatalf("inbound role: http %q, inbound %q", listener.HTTPAddr(), listener.InboundAddr())
	}
	rcpt := "postmaster@" + testBounceDomain
	if err := deliverSMTP(listener.InboundAddr(), "someone@example.net", rcpt, []byte("Subject: hello\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	g.waitForRow(t, "available", `SELECT state::text FROM river_job WHERE kind = 'process_inbound' AND args->>'inbound_id' = (SELECT id::text FROM inbound_messages WHERE $1 = ANY (rcpt_to))`, rcpt)

	g.startProcess(t, cfg, RoleWorker)
	// Without a bounce or reply domain, all runs no listener (and starts).
	plain := cfg
	plain.Inbound = InboundConfig{Addr: "127.0.0.1:0"}
	if a := g.startProcess(t, plain, RoleAll); a.InboundAddr() != "" {
		t.Fatalf("role all without inbound domains listens on %s", a.InboundAddr())
	}
	if status, detail := g.inboundStatus(t, rcpt); status != "unmatched" || detail != "no address token of the gateway" {
		t.Fatalf("mail to postmaster: %s (%s)", status, detail)
	}
}

// TestDevInbound: dev gets its own domains, a kept key and a free port
// unless the environment set them.
func TestDevInbound(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	var c InboundConfig
	c.Addr = defaultInboundAddr
	if err := devInbound(&c); err != nil {
		t.Fatal(err)
	}
	if !c.Enabled() || c.Addr != "127.0.0.1:0" || len(c.TokenKeys) != 1 || len(c.TokenKeys[0]) < domain.MinTokenKeyBytes {
		t.Fatalf("dev inbound %+v", c)
	}
	again := InboundConfig{Addr: "127.0.0.1:2526", BounceDomain: "b.example.org"}
	if err := devInbound(&again); err != nil {
		t.Fatal(err)
	}
	if string(again.TokenKeys[0]) != string(c.TokenKeys[0]) || again.Addr != "127.0.0.1:2526" || again.BounceDomain != "b.example.org" {
		t.Fatalf("dev must keep its key and the configured settings: %+v", again)
	}
}

func TestInboundConfig(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	cfg, err := LoadConfig(env())
	if err != nil || cfg.Inbound.Enabled() {
		t.Fatalf("without a bounce domain nothing changes: %+v %v", cfg.Inbound, err)
	}
	cfg, err = LoadConfig(env("MAILGATE_BOUNCE_DOMAIN", "Bounces.GW.example", "MAILGATE_VERP_KEYS", testVERPKey+", "+testOldVERPKey, "MAILGATE_INBOUND_RATE_PER_IP", "7"))
	if err != nil || cfg.Inbound.BounceDomain != "bounces.gw.example" || len(cfg.Inbound.TokenKeys) != 2 || cfg.Inbound.RatePerIP != 7 || cfg.Inbound.Hostname != "bounces.gw.example" {
		t.Fatalf("config %+v %v", cfg.Inbound, err)
	}
	if cfg.Inbound.Retention != domain.DefaultInboundRetention {
		t.Fatalf("default retention %s, want %s", cfg.Inbound.Retention, domain.DefaultInboundRetention)
	}
	for v, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "36h": 36 * time.Hour} {
		if cfg, err := LoadConfig(env("MAILGATE_INBOUND_RETENTION", v)); err != nil || cfg.Inbound.Retention != want {
			t.Errorf("MAILGATE_INBOUND_RETENTION=%s: %s %v, want %s", v, cfg.Inbound.Retention, err, want)
		}
	}
	for name, bad := range map[string][]string{
		"no keys":          {"MAILGATE_BOUNCE_DOMAIN", "bounces.gw.example"},
		"short key":        {"MAILGATE_BOUNCE_DOMAIN", "bounces.gw.example", "MAILGATE_VERP_KEYS", "short"},
		"same domains":     {"MAILGATE_BOUNCE_DOMAIN", "x.gw.example", "MAILGATE_REPLY_DOMAIN", "x.gw.example", "MAILGATE_VERP_KEYS", testVERPKey},
		"not a domain":     {"MAILGATE_BOUNCE_DOMAIN", "localhost", "MAILGATE_VERP_KEYS", testVERPKey},
		"bad prefix":       {"MAILGATE_BOUNCE_PREFIX", "a+b"},
		"cert without key": {"MAILGATE_INBOUND_TLS_CERT", "/x.pem"},
		"bad size":         {"MAILGATE_INBOUND_MAX_BYTES", "10"},
		"bad timeout":      {"MAILGATE_INBOUND_TIMEOUT", "-1s"},
		"retention words":  {"MAILGATE_INBOUND_RETENTION", "a month"},
		"retention short":  {"MAILGATE_INBOUND_RETENTION", "10m"},
		"retention days":   {"MAILGATE_INBOUND_RETENTION", "-3d"},
	} {
		if _, err := LoadConfig(env(bad...)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
