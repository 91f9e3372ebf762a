package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/adapters/postgres"
	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

// account creates an account of the gateway's tenant, local@ its domain.
func (g *gateway) account(t *testing.T, local string) postgres.Account {
	t.Helper()
	a, err := g.app.Store().CreateAccount(t.Context(), g.tenant.ID, local+"@"+g.domain, strings.ToUpper(local[:1])+local[1:])
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type mailboxAttachmentsPage struct {
	Items []struct {
		ID         string `json:"id"`
		Filename   string `json:"filename"`
		Size       int    `json:"size"`
		SHA256     string `json:"sha256"`
		ContentURL string `json:"content_url"`
	} `json:"items"`
}

// An internal recipient's mailbox entry carries the message's attachments:
// listed and downloaded through the entry, only by the entry's own tenant
// and only through the entry that carries them, and kept by the attachment
// purge while the entry holds them, after the sender deleted the message.
func TestMailboxEntryCarriesAttachments(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	ctx := t.Context()
	ann, ben := g.account(t, "ann"), g.account(t, "ben")
	data := make([]byte, 70_000)
	_, _ = rand.Read(data)
	attID := g.upload(t, "report.bin", "application/octet-stream", data)
	withFile := g.send(t, map[string]any{"send": true, "subject": "with a file", "attachments": []string{attID},
		"to": []map[string]string{{"account_id": ann.ID.String()}, {"email_address": "outside@example.net"}}})
	plain := g.send(t, map[string]any{"send": true, "subject": "no file",
		"to": []map[string]string{{"account_id": ben.ID.String()}, {"email_address": "outside@example.net"}}})
	g.waitForState(t, withFile.ID, "sent")
	g.waitForState(t, plain.ID, "sent")
	annEntry, benEntry := g.mailbox(t, ann.ID.String(), "").Items[0].ID, g.mailbox(t, ben.ID.String(), "").Items[0].ID

	list := g.request(t, http.MethodGet, "/api/mailbox/"+annEntry+"/attachments", "", "", nil, nil)
	var page mailboxAttachmentsPage
	if list.status != http.StatusOK {
		t.Fatalf("list entry attachments: %d %s", list.status, list.body)
	}
	list.decode(t, &page)
	if len(page.Items) != 1 || page.Items[0].ID != attID || page.Items[0].Filename != "report.bin" || page.Items[0].Size != len(data) ||
		page.Items[0].ContentURL != "/api/mailbox/"+annEntry+"/attachments/"+attID+"/content" {
		t.Fatalf("entry attachments: %s", list.body)
	}
	// The entry read alone lists the same file; a mailbox listing leaves files out.
	var entry struct {
		Attachments []struct {
			ID         string `json:"id"`
			ContentURL string `json:"content_url"`
		} `json:"attachments"`
	}
	g.request(t, http.MethodGet, "/api/mailbox/"+annEntry, "", "", nil, nil).decode(t, &entry)
	if len(entry.Attachments) != 1 || entry.Attachments[0].ID != attID || entry.Attachments[0].ContentURL != page.Items[0].ContentURL {
		t.Fatalf("the entry lists %+v, want the one file", entry.Attachments)
	}
	if res := g.request(t, http.MethodGet, "/api/mailbox/"+benEntry, "", "", nil, nil); !bytes.Contains(res.body, []byte(`"attachments":[]`)) {
		t.Fatalf("an entry without files: %s", res.body)
	}
	if res := g.request(t, http.MethodGet, "/api/accounts/"+ann.ID.String()+"/mailbox", "", "", nil, nil); bytes.Contains(res.body, []byte(`"attachments"`)) {
		t.Fatalf("the listing carries attachments: %s", res.body)
	}
	download := func(token, entry string) response {
		return g.do(t, http.MethodGet, "/api/mailbox/"+entry+"/attachments/"+attID+"/content", "", token, nil)
	}
	if res := download(g.token, annEntry); res.status != http.StatusOK || !bytes.Equal(res.body, data) {
		t.Fatalf("download through the entry: %d, %d bytes (want %d identical)", res.status, len(res.body), len(data))
	}
	if res := g.request(t, http.MethodGet, "/api/mailbox/"+benEntry+"/attachments", "", "", nil, nil); res.status != http.StatusOK ||
		!bytes.Contains(res.body, []byte(`"items":[]`)) {
		t.Fatalf("an entry without files: %d %s", res.status, res.body)
	}
	// Ben's entry doesn't carry the file, so it doesn't open it.
	if res := download(g.token, benEntry); res.status != http.StatusNotFound {
		t.Fatalf("another account's entry opened the file: %d", res.status)
	}
	other, err := g.app.Store().CreateTenant(ctx, "other "+t.Name(), []string{"o" + g.domain})
	if err != nil {
		t.Fatal(err)
	}
	otherToken := g.issue(t, other.ID)
	if res := download(otherToken, annEntry); res.status != http.StatusNotFound {
		t.Fatalf("another tenant opened the file: %d", res.status)
	}
	if res := g.do(t, http.MethodGet, "/api/mailbox/"+annEntry+"/attachments", "", otherToken, nil); res.status != http.StatusNotFound {
		t.Fatalf("another tenant listed the entry's files: %d", res.status)
	}

	// The sender deletes the message; the purge, even with its grace period
	// over, leaves the file Ann's entry holds.
	if res := g.request(t, http.MethodDelete, "/api/messages/"+withFile.ID, "", "", nil, nil); res.status != http.StatusNoContent {
		t.Fatalf("delete message: %d %s", res.status, res.body)
	}
	purgeAll := func() {
		t.Helper()
		if _, err := g.app.Store().PurgeUnreferencedAttachments(context.Background(), time.Now().Add(time.Hour)); err != nil {
			t.Fatalf("purge: %v", err)
		}
	}
	purgeAll()
	if res := download(g.token, annEntry); res.status != http.StatusOK || !bytes.Equal(res.body, data) {
		t.Fatalf("after the sender's delete and a purge: %d, %d bytes", res.status, len(res.body))
	}
	// Once Ann deletes her entry nothing holds the file, and the purge takes it.
	if res := g.request(t, http.MethodDelete, "/api/mailbox/"+annEntry, "", "", nil, nil); res.status != http.StatusNoContent {
		t.Fatalf("delete entry: %d %s", res.status, res.body)
	}
	purgeAll()
	if n := g.countRows(t, `SELECT count(*) FROM attachments WHERE subscription_id = $1 AND id = '`+attID+`'`); n != 0 {
		t.Fatalf("the purge kept an attachment nothing holds (%d rows)", n)
	}
}
