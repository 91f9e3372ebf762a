package app

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

type mailboxPage struct {
	Items []struct {
		ID        string `json:"id"`
		MessageID string `json:"message_id"`
		Kind      string `json:"kind"`
		Folder    string `json:"folder"`
		Read      bool   `json:"read"`
		Subject   string `json:"subject"`
		Cc        []struct {
			EmailAddress string `json:"email_address"`
		} `json:"cc"`
	} `json:"items"`
}

func (g *gateway) mailbox(t *testing.T, account, query string) mailboxPage {
	t.Helper()
	res := g.request(t, http.MethodGet, "/api/accounts/"+account+"/mailbox"+query, "", "", nil, nil)
	if res.status != http.StatusOK {
		t.Fatalf("mailbox: %d %s", res.status, res.body)
	}
	var p mailboxPage
	res.decode(t, &p)
	return p
}

// Each internal recipient has a mailbox of its own: its copy has its own
// read state and folder, deleting it touches nobody else's, the sender's
// DELETE leaves it, and nobody sees another recipient's Bcc.
func TestInternalInboxIsAMailboxPerRecipient(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	ann, ben := g.account(t, "ann"), g.account(t, "ben")
	v := g.send(t, map[string]any{"send": true, "subject": "team news",
		"to":  []map[string]string{{"account_id": ann.ID.String()}},
		"cc":  rcpts("outside@example.net"),
		"bcc": []map[string]string{{"account_id": ben.ID.String()}, {"email_address": "secret@example.net"}}})
	g.waitForState(t, v.ID, "sent")

	annBox, benBox := g.mailbox(t, ann.ID.String(), ""), g.mailbox(t, ben.ID.String(), "?unread=true")
	if len(annBox.Items) != 1 || len(benBox.Items) != 1 || annBox.Items[0].ID == benBox.Items[0].ID {
		t.Fatalf("mailboxes: ann %+v, ben %+v; want one entry each, distinct", annBox, benBox)
	}
	if a, b := annBox.Items[0], benBox.Items[0]; a.Kind != "to" || b.Kind != "bcc" || a.Folder != "inbox" || a.Read || a.Subject != "team news" ||
		len(a.Cc) != 1 || a.Cc[0].EmailAddress != "outside@example.net" {
		t.Fatalf("entries: %+v / %+v", a, b)
	}
	for _, box := range []string{ann.ID.String(), ben.ID.String()} {
		res := g.request(t, http.MethodGet, "/api/accounts/"+box+"/mailbox", "", "", nil, nil)
		if strings.Contains(string(res.body), "secret@example.net") || strings.Contains(string(res.body), `"bcc":`) {
			t.Errorf("a mailbox shows Bcc: %s", res.body)
		}
	}
	inbox := g.request(t, http.MethodGet, "/api/messages?folder=inbox&account="+ann.ID.String(), "", "", nil, nil)
	if !strings.Contains(string(inbox.body), v.ID) || strings.Contains(string(inbox.body), "secret@example.net") {
		t.Errorf("the inbox list must hold the message without its Bcc: %s", inbox.body)
	}

	// Ann reads and files hers; Ben's stays unread in his inbox.
	annEntry := annBox.Items[0].ID
	res := g.request(t, http.MethodPatch, "/api/mailbox/"+annEntry, "application/json", "", nil, []byte(`{"read":true,"folder":"archive"}`))
	if res.status != http.StatusOK || !strings.Contains(string(res.body), `"read":true`) || !strings.Contains(string(res.body), `"folder":"archive"`) {
		t.Fatalf("mark read and archive: %d %s", res.status, res.body)
	}
	if p := g.mailbox(t, ann.ID.String(), "?folder=inbox"); len(p.Items) != 0 {
		t.Errorf("ann's inbox still holds the archived entry: %+v", p)
	}
	if p := g.mailbox(t, ben.ID.String(), "?unread=true&folder=inbox"); len(p.Items) != 1 {
		t.Errorf("ben's entry changed with ann's: %+v", p)
	}
	assertProblem(t, g.request(t, http.MethodPatch, "/api/mailbox/"+annEntry, "application/json", "", nil, []byte(`{"folder":"Bad Name"}`)), http.StatusBadRequest, "folder")

	// The sender deletes the message: both copies stay. Ben deletes his: Ann's stays.
	if res := g.request(t, http.MethodDelete, "/api/messages/"+v.ID, "", "", nil, nil); res.status != http.StatusNoContent {
		t.Fatalf("sender's delete: %d %s", res.status, res.body)
	}
	if p := g.mailbox(t, ben.ID.String(), ""); len(p.Items) != 1 || p.Items[0].MessageID != v.ID {
		t.Fatalf("the sender's delete removed ben's copy: %+v", p)
	}
	if res := g.request(t, http.MethodDelete, "/api/mailbox/"+benBox.Items[0].ID, "", "", nil, nil); res.status != http.StatusNoContent {
		t.Fatalf("ben's delete: %d %s", res.status, res.body)
	}
	if p := g.mailbox(t, ann.ID.String(), ""); len(p.Items) != 1 {
		t.Fatalf("ben's delete touched ann's copy: %+v", p)
	}
	if res := g.request(t, http.MethodGet, "/api/mailbox/"+benBox.Items[0].ID, "", "", nil, nil); res.status != http.StatusNotFound {
		t.Fatalf("a deleted entry: %d", res.status)
	}
}
