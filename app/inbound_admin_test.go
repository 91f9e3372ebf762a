package app

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

type inboundItem struct {
	ID             string   `json:"id"`
	Status         string   `json:"status"`
	Kind           string   `json:"kind"`
	RcptTo         []string `json:"rcpt_to"`
	Size           int      `json:"size"`
	SubscriptionID *string  `json:"subscription_id"`
	MessageID      *string  `json:"message_id"`
	Detail         string   `json:"detail"`
	ProcessedAt    *string  `json:"processed_at"`
	RawURL         string   `json:"raw_url"`
	Headers        struct {
		From    string `json:"from"`
		Subject string `json:"subject"`
	} `json:"headers"`
}

type inboundPage struct {
	Items      []inboundItem `json:"items"`
	NextCursor string        `json:"next_cursor"`
}

// The operator lists, reads, downloads, reprocesses and deletes inbound
// mail over the admin API; a tenant's token reaches none of it.
func TestOperatorViewOfInboundMail(t *testing.T) {
	t.Parallel()
	g := startInboundGateway(t, nil)
	admin := g.issueAdmin(t)
	id, rp := g.sentMessage(t, "operator view", "victim@dest.example")
	prefix, _, d, _ := domain.SplitTokenAddress(rp)
	unknown := domain.TokenAddress(prefix, testTokens(t).Mint(domain.PurposeBounce, uuid.New()), d)
	for _, rcpt := range []string{unknown, rp} {
		if err := g.sendInbound(t, "", rcpt, postfixDSN("victim@dest.example")); err != nil {
			t.Fatal(err)
		}
	}
	if status, _ := g.inboundStatus(t, unknown); status != "unmatched" {
		t.Fatalf("DSN with an unknown token: %s", status)
	}
	if status, _ := g.inboundStatus(t, rp); status != "processed" {
		t.Fatalf("genuine DSN: %s", status)
	}
	get := func(path string) response { return g.do(t, http.MethodGet, path, "", admin, nil) }

	for _, path := range []string{"/api/admin/inbound", "/api/admin/inbound?status=unmatched"} {
		if res := g.do(t, http.MethodGet, path, "", g.token, nil); res.status != http.StatusForbidden {
			t.Fatalf("a tenant token on %s: %d", path, res.status)
		}
	}
	res := get("/api/admin/inbound?status=unmatched")
	var page inboundPage
	if res.status != http.StatusOK {
		t.Fatalf("list unmatched: %d %s", res.status, res.body)
	}
	res.decode(t, &page)
	if len(page.Items) != 1 || page.Items[0].Status != "unmatched" || page.Items[0].RcptTo[0] != unknown ||
		page.Items[0].SubscriptionID != nil || !strings.Contains(page.Items[0].Detail, "no longer exists") || page.NextCursor != "" {
		t.Fatalf("unmatched list: %s", res.body)
	}
	unmatched := page.Items[0]

	// Every status, one a page: the cursor walks both, newest first, once each.
	var walked []inboundItem
	for cursor := ""; ; {
		res := get("/api/admin/inbound?limit=1&cursor=" + url.QueryEscape(cursor))
		var p inboundPage
		res.decode(t, &p)
		walked = append(walked, p.Items...)
		if cursor = p.NextCursor; cursor == "" || len(walked) > 5 {
			break
		}
	}
	if len(walked) != 2 || walked[0].RcptTo[0] != rp || walked[1].ID != unmatched.ID ||
		walked[0].Status != "processed" || walked[0].MessageID == nil || *walked[0].MessageID != id {
		t.Fatalf("walk of every status: %+v", walked)
	}
	processed := walked[0]

	res = get("/api/admin/inbound/" + unmatched.ID)
	var one inboundItem
	res.decode(t, &one)
	if res.status != http.StatusOK || one.Headers.Subject != "Undelivered Mail Returned to Sender" ||
		!strings.Contains(one.Headers.From, "MAILER-DAEMON") || one.RawURL != "/api/admin/inbound/"+unmatched.ID+"/raw" {
		t.Fatalf("read one: %d %s", res.status, res.body)
	}
	var stored []byte
	if err := g.owner.QueryRow(context.Background(), `SELECT raw FROM inbound_messages WHERE id = $1`, unmatched.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	raw := get(one.RawURL)
	if raw.status != http.StatusOK || raw.header.Get("Content-Type") != "message/rfc822" || !bytes.Equal(raw.body, stored) ||
		!strings.Contains(raw.header.Get("Content-Disposition"), unmatched.ID+".eml") || one.Size != len(stored) {
		t.Fatalf("raw download: %d %q %q, %d bytes of %d", raw.status, raw.header.Get("Content-Type"), raw.header.Get("Content-Disposition"), len(raw.body), len(stored))
	}

	// A processed message has had its effects: reprocessing it is refused.
	if res := g.do(t, http.MethodPost, "/api/admin/inbound/"+processed.ID+"/reprocess", "", admin, nil); res.status != http.StatusConflict {
		t.Fatalf("reprocess a processed message: %d %s", res.status, res.body)
	}
	if res := g.do(t, http.MethodPost, "/api/admin/inbound/"+unmatched.ID+"/reprocess", "", g.token, nil); res.status != http.StatusForbidden {
		t.Fatalf("a tenant reprocessed: %d", res.status)
	}
	res = g.do(t, http.MethodPost, "/api/admin/inbound/"+unmatched.ID+"/reprocess", "", admin, nil)
	var requeued inboundItem
	res.decode(t, &requeued)
	if res.status != http.StatusAccepted || requeued.Status != "received" || requeued.ProcessedAt != nil || requeued.Detail != "" {
		t.Fatalf("reprocess: %d %s", res.status, res.body)
	}
	// The worker takes it again and, the token still naming nothing, keeps it unmatched.
	waitFor(t, 20*time.Second, "the reprocessed message to settle", func() bool {
		var p inboundItem
		get("/api/admin/inbound/"+unmatched.ID).decode(t, &p)
		return p.Status == "unmatched" && p.ProcessedAt != nil
	})

	for _, bad := range []struct {
		path string
		want int
	}{{"/api/admin/inbound?status=lost", http.StatusBadRequest}, {"/api/admin/inbound?sort=up", http.StatusBadRequest},
		{"/api/admin/inbound?cursor=nope", http.StatusBadRequest}, {"/api/admin/inbound/not-an-id", http.StatusNotFound},
		{"/api/admin/inbound/" + uuid.NewString(), http.StatusNotFound}} {
		if res := get(bad.path); res.status != bad.want {
			t.Errorf("GET %s: %d %s, want %d", bad.path, res.status, res.body, bad.want)
		}
	}

	if res := g.do(t, http.MethodDelete, "/api/admin/inbound/"+unmatched.ID, "", g.token, nil); res.status != http.StatusForbidden {
		t.Fatalf("a tenant deleted: %d", res.status)
	}
	if res := g.do(t, http.MethodDelete, "/api/admin/inbound/"+unmatched.ID, "", admin, nil); res.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", res.status, res.body)
	}
	for _, path := range []string{"/api/admin/inbound/" + unmatched.ID, "/api/admin/inbound/" + unmatched.ID + "/raw"} {
		if res := get(path); res.status != http.StatusNotFound {
			t.Fatalf("GET %s after delete: %d", path, res.status)
		}
	}
	if res := g.do(t, http.MethodDelete, "/api/admin/inbound/"+unmatched.ID, "", admin, nil); res.status != http.StatusNotFound {
		t.Fatalf("second delete: %d", res.status)
	}
	if res := g.do(t, http.MethodPost, "/api/admin/inbound/"+unmatched.ID+"/reprocess", "", admin, nil); res.status != http.StatusNotFound {
		t.Fatalf("reprocess a deleted message: %d", res.status)
	}
}
