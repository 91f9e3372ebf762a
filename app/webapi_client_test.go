package app

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"mime"
	"net/http"
	"net/mail"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

// The seed's help page (/work/shared/seed/sendmessage.md) as its ASP.NET Web
// API serves it. Only addresses and ids are replaced below.
const seedHelpJSON = `{
"sender_email": "sample string 1",
"sender_display_name": "sample string 2",
"sender_account_id": "73067954-43ed-4f1e-b2ba-c18e22e9e1fc",
"to": [
{
"display_name": "sample string 1",
"email_address": "sample string 2",
"account_id": "c188454f-3ac6-495c-869a-e3d255f3326a"
},
{
"display_name": "sample string 1",
"email_address": "sample string 2",
"account_id": "c188454f-3ac6-495c-869a-e3d255f3326a"
}
],
"cc": [
{
"display_name": "sample string 1",
"email_address": "sample string 2",
"account_id": "c188454f-3ac6-495c-869a-e3d255f3326a"
},
{
"display_name": "sample string 1",
"email_address": "sample string 2",
"account_id": "c188454f-3ac6-495c-869a-e3d255f3326a"
}
],
"bcc": [
{
"display_name": "sample string 1",
"email_address": "sample string 2",
"account_id": "c188454f-3ac6-495c-869a-e3d255f3326a"
},
{
"display_name": "sample string 1",
"email_address": "sample string 2",
"account_id": "c188454f-3ac6-495c-869a-e3d255f3326a"
}
],
"importance": 0,
"message_id": "sample string 4",
"references": "sample string 5",
"body": "sample string 6",
"attachments": [
"4d81cd73-e621-4f67-9a2b-dd1c79c17175",
"2c8ca046-7360-4646-b7a2-0db2116a8ddb"
],
"parent_id": "48e91789-1800-4af1-9d0f-a545216ab490",
"created_date": "2026-06-09T14:59:25.9028316+08:00",
"send": true,
"subject": "sample string 9",
"can_delete": true,
"id": "67160834-f076-41da-862e-3a1c72281b0d",
"subscription_id": "a5913244-a8f5-459d-9406-72ddf3711f67",
"ts": "QEA="
}`

const seedHelpXML = `<MessageComposeModel xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.datacontract.org/2004/07/CompleteEmpireApp.Api.Models">
<Id xmlns="http://schemas.datacontract.org/2004/07/CompleteEmpireApp.Api.Models.Base">67160834-f076-41da-862e-3a1c72281b0d</Id>
<SubscriptionId xmlns="http://schemas.datacontract.org/2004/07/CompleteEmpireApp.Api.Models.Base">a5913244-a8f5-459d-9406-72ddf3711f67</SubscriptionId>
<Ts xmlns="http://schemas.datacontract.org/2004/07/CompleteEmpireApp.Api.Models.Base">QEA=</Ts>
<CanDelete>true</CanDelete>
<Subject>sample string 9</Subject>
<Attachments xmlns:d2p1="http://schemas.microsoft.com/2003/10/Serialization/Arrays">
<d2p1:guid>4d81cd73-e621-4f67-9a2b-dd1c79c17175</d2p1:guid>
<d2p1:guid>2c8ca046-7360-4646-b7a2-0db2116a8ddb</d2p1:guid>
</Attachments>
<Bcc>
<MessageRecipientModel>
<AccountId>c188454f-3ac6-495c-869a-e3d255f3326a</AccountId>
<DisplayName>sample string 1</DisplayName>
<EmailAddress>sample string 2</EmailAddress>
</MessageRecipientModel>
<MessageRecipientModel>
<AccountId>c188454f-3ac6-495c-869a-e3d255f3326a</AccountId>
<DisplayName>sample string 1</DisplayName>
<EmailAddress>sample string 2</EmailAddress>
</MessageRecipientModel>
</Bcc>
<Body>sample string 6</Body>
<Cc>
<MessageRecipientModel>
<AccountId>c188454f-3ac6-495c-869a-e3d255f3326a</AccountId>
<DisplayName>sample string 1</DisplayName>
<EmailAddress>sample string 2</EmailAddress>
</MessageRecipientModel>
<MessageRecipientModel>
<AccountId>c188454f-3ac6-495c-869a-e3d255f3326a</AccountId>
<DisplayName>sample string 1</DisplayName>
<EmailAddress>sample string 2</EmailAddress>
</MessageRecipientModel>
</Cc>
<CreatedDate>2026-06-09T14:59:25.9028316+08:00</CreatedDate>
<Importance>Low</Importance>
<MessageId>sample string 4</MessageId>
<ParentId>48e91789-1800-4af1-9d0f-a545216ab490</ParentId>
<References>sample string 5</References>
<Send>true</Send>
<SenderAccountId>73067954-43ed-4f1e-b2ba-c18e22e9e1fc</SenderAccountId>
<SenderDisplayName>sample string 2</SenderDisplayName>
<SenderEmail>sample string 1</SenderEmail>
<To>
<MessageRecipientModel>
<AccountId>c188454f-3ac6-495c-869a-e3d255f3326a</AccountId>
<DisplayName>sample string 1</DisplayName>
<EmailAddress>sample string 2</EmailAddress>
</MessageRecipientModel>
<MessageRecipientModel>
<AccountId>c188454f-3ac6-495c-869a-e3d255f3326a</AccountId>
<DisplayName>sample string 1</DisplayName>
<EmailAddress>sample string 2</EmailAddress>
</MessageRecipientModel>
</To>
</MessageComposeModel>`

// The help page in the shared checkout must still say what the constants
// above copy, so a change to the seed is noticed.
func TestSeedHelpSamplesAreVerbatim(t *testing.T) {
	t.Parallel()
	page, err := os.ReadFile("/work/shared/seed/sendmessage.md")
	if os.IsNotExist(err) {
		t.Skip("the seed help page is not on this machine")
	}
	if err != nil {
		t.Fatal(err)
	}
	for name, sample := range map[string]string{"JSON": seedHelpJSON, "XML": seedHelpXML} {
		if !bytes.Contains(page, []byte(sample)) {
			t.Errorf("the %s sample is not the help page's, verbatim", name)
		}
	}
}

// seedFixture holds what the samples' ids and addresses are replaced with.
type seedFixture struct {
	g           *gateway
	parent      messageView
	attachments []string
	id          string
	recipients  []string
}

func newSeedFixture(t *testing.T, g *gateway) *seedFixture {
	t.Helper()
	f := &seedFixture{g: g, id: uuid.NewString()}
	f.parent = g.send(t, map[string]any{"to": rcpts("root@example.net"), "subject": "parent", "body": "p",
		"message_id": "<thread-root@client.example>", "send": false})
	f.attachments = []string{
		g.upload(t, "a.txt", "text/plain", []byte("first attachment")),
		g.upload(t, "b.txt", "text/plain", []byte("second attachment")),
	}
	return f
}

// replace fills a sample with the fixture's ids and, in order of appearance,
// one distinct external address per recipient entry.
func (f *seedFixture) replace(sample string) string {
	n := 0
	f.recipients = nil
	out := strings.NewReplacer(
		"73067954-43ed-4f1e-b2ba-c18e22e9e1fc", f.g.sender.ID.String(),
		"c188454f-3ac6-495c-869a-e3d255f3326a", uuid.Nil.String(),
		"4d81cd73-e621-4f67-9a2b-dd1c79c17175", f.attachments[0],
		"2c8ca046-7360-4646-b7a2-0db2116a8ddb", f.attachments[1],
		"48e91789-1800-4af1-9d0f-a545216ab490", f.parent.ID,
		"67160834-f076-41da-862e-3a1c72281b0d", f.id,
		"a5913244-a8f5-459d-9406-72ddf3711f67", f.g.tenant.ID.String(),
		`"sample string 1",
"email_address"`, `"sample string 1",
"email_address"`, // display names stay
	).Replace(sample)
	out = strings.Replace(out, `"sender_email": "sample string 1"`, `"sender_email": "`+f.g.sender.Email+`"`, 1)
	out = strings.Replace(out, `<SenderEmail>sample string 1</SenderEmail>`, `<SenderEmail>`+f.g.sender.Email+`</SenderEmail>`, 1)
	for _, marker := range []string{`"email_address": "sample string 2"`, `<EmailAddress>sample string 2</EmailAddress>`} {
		for strings.Contains(out, marker) {
			addr := "seed" + string(rune('a'+n)) + "@example.net"
			f.recipients = append(f.recipients, addr)
			out = strings.Replace(out, marker, strings.Replace(marker, "sample string 2", addr, 1), 1)
			n++
		}
	}
	return out
}

// seedAnswer is the part of the answer the seed samples are checked against.
type seedAnswer struct {
	ID               string `json:"id"`
	MessageID        string `json:"message_id"`
	References       string `json:"references"`
	HeaderMessageID  string `json:"header_message_id"`
	HeaderReferences string `json:"header_references"`
	InReplyTo        string `json:"in_reply_to"`
	Importance       int    `json:"importance"`
	State            string `json:"state"`
	Subject          string `json:"subject"`
}

// checkSeedSample checks the answer to a seed sample, what was stored, and
// the message on the wire.
func checkSeedSample(t *testing.T, f *seedFixture, res response) {
	t.Helper()
	if res.status != http.StatusCreated {
		t.Fatalf("seed sample: %d %s", res.status, res.body)
	}
	var a seedAnswer
	if strings.HasPrefix(res.header.Get("Content-Type"), "application/json") {
		res.decode(t, &a)
	} else {
		var x struct {
			ID               string `xml:"Id"`
			MessageID        string `xml:"MessageId"`
			References       string `xml:"References"`
			HeaderMessageID  string `xml:"HeaderMessageId"`
			HeaderReferences string `xml:"HeaderReferences"`
			InReplyTo        string `xml:"InReplyTo"`
			Importance       string `xml:"Importance"`
			State            string `xml:"State"`
			Subject          string `xml:"Subject"`
		}
		if err := xml.Unmarshal(res.body, &x); err != nil {
			t.Fatalf("XML answer: %v\n%s", err, res.body)
		}
		a = seedAnswer{ID: x.ID, MessageID: x.MessageID, References: x.References, HeaderMessageID: x.HeaderMessageID,
			HeaderReferences: x.HeaderReferences, InReplyTo: x.InReplyTo, State: x.State, Subject: x.Subject}
		if x.Importance != "Low" {
			t.Errorf("XML importance %q, want Low", x.Importance)
		}
	}
	wantRefs := "<thread-root@client.example>"
	switch {
	case a.ID != f.id:
		t.Errorf("id %q, want the sample's (replaced) %q", a.ID, f.id)
	case a.MessageID != "sample string 4" || a.References != "sample string 5":
		t.Errorf("message_id, references = %q, %q; want the client's own values", a.MessageID, a.References)
	case !strings.HasSuffix(a.HeaderMessageID, "@"+f.g.domain+">") || !strings.HasPrefix(a.HeaderMessageID, "<"):
		t.Errorf("header_message_id %q, want a generated <uuid@%s>", a.HeaderMessageID, f.g.domain)
	case a.InReplyTo != f.parent.MessageID || a.HeaderReferences != wantRefs:
		t.Errorf("in_reply_to, header_references = %q, %q; want the parent's %q", a.InReplyTo, a.HeaderReferences, wantRefs)
	case a.State != "queued" || a.Subject != "sample string 9":
		t.Errorf("state, subject = %q, %q", a.State, a.Subject)
	}
	var storedClientID, storedWireID string
	if err := f.g.owner.QueryRow(t.Context(), `SELECT client_message_id, message_id FROM messages WHERE id = $1`, f.id).Scan(&storedClientID, &storedWireID); err != nil {
		t.Fatal(err)
	}
	if storedClientID != "sample string 4" || storedWireID != a.HeaderMessageID {
		t.Errorf("stored ids %q, %q", storedClientID, storedWireID)
	}
	var received *smtptest.Received
	waitFor(t, 20*time.Second, "message "+a.HeaderMessageID+" at the relay", func() bool {
		for _, m := range f.g.relay.Messages() {
			if bytes.Contains(m.Data, []byte(a.HeaderMessageID)) {
				received = &m
			}
		}
		return received != nil
	})
	if received == nil {
		t.Fatalf("no message %s reached the relay", a.HeaderMessageID)
	}
	if !slices.Equal(sorted(received.To), sorted(f.recipients)) {
		t.Errorf("RCPT %v, want %v", received.To, f.recipients)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(received.Data))
	if err != nil {
		t.Fatal(err)
	}
	for header, want := range map[string]string{
		"Message-Id": a.HeaderMessageID, "In-Reply-To": f.parent.MessageID, "References": wantRefs,
		"Subject": "sample string 9", "Importance": "low",
	} {
		if got := msg.Header.Get(header); got != want {
			t.Errorf("%s: %q, want %q", header, got, want)
		}
	}
	if strings.Contains(string(received.Data), "sample string 4") {
		t.Errorf("the client's free-form message_id went out on the wire")
	}
	var files []string
	walkParts(t, msg.Header.Get("Content-Type"), msg.Body, func(h map[string][]string, body []byte) {
		if _, params, _ := mime.ParseMediaType(first(h["Content-Disposition"])); params["filename"] != "" {
			files = append(files, params["filename"]+"="+string(body))
		}
	})
	if want := []string{"a.txt=first attachment", "b.txt=second attachment"}; !slices.Equal(files, want) {
		t.Errorf("attachments on the wire %q, want %q", files, want)
	}
}

// TestSeedSamplesVerbatim posts the seed help page's own samples, with only
// addresses and ids replaced: "sample string 4" and "sample string 5" are
// the client's references, and valid ids go on the wire.
func TestSeedSamplesVerbatim(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	t.Run("JSON", func(t *testing.T) {
		f := newSeedFixture(t, g)
		checkSeedSample(t, f, g.request(t, http.MethodPost, "/api/messages/sendmessage", "application/json", "", nil, []byte(f.replace(seedHelpJSON))))
	})
	t.Run("XML", func(t *testing.T) {
		f := newSeedFixture(t, g)
		checkSeedSample(t, f, g.request(t, http.MethodPost, "/api/messages/sendmessage", "application/xml", "", nil, []byte(f.replace(seedHelpXML))))
	})
}

// utf16LE encodes s as .NET's Encoding.Unicode does, optionally with its BOM.
func utf16LE(s string, bom bool) []byte {
	var out []byte
	if bom {
		out = append(out, 0xFF, 0xFE)
	}
	for _, u := range utf16.Encode([]rune(s)) {
		out = append(out, byte(u), byte(u>>8))
	}
	return out
}

// TestWebAPIClientRequests posts what ASP.NET Web API itself accepts and a
// seed client sends, and checks what is stored and what goes out.
func TestWebAPIClientRequests(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	plain := func(to string, extra map[string]any) []byte {
		body := map[string]any{"sender_email": g.sender.Email, "to": rcpts(to), "subject": "web api " + to, "body": "hello", "send": true}
		for k, v := range extra {
			body[k] = v
		}
		return mustJSON(body)
	}
	created := func(t *testing.T, res response) messageView {
		t.Helper()
		if res.status != http.StatusCreated {
			t.Fatalf("%d %s", res.status, res.body)
		}
		var v messageView
		res.decode(t, &v)
		return v
	}
	deliveredTo := func(t *testing.T, addr string) smtptest.Received {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			for _, m := range g.relay.Messages() {
				if slices.Contains(m.To, addr) {
					return m
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("nothing reached the relay for %s", addr)
		return smtptest.Received{}
	}

	t.Run("RoutesAnyCase", func(t *testing.T) {
		v := created(t, g.request(t, http.MethodPost, "/api/Messages/SendMessage", "application/json", "", nil, plain("case@example.net", nil)))
		deliveredTo(t, "case@example.net")
		if got := g.get(t, v.ID); got.To[0].EmailAddress != "case@example.net" {
			t.Fatalf("stored %+v", got)
		}
	})
	t.Run("TrailingSlashWithoutRedirect", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, g.base+"/api/messages/sendmessage/", bytes.NewReader(plain("slash@example.net", nil)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+g.token)
		req.Header.Set("Content-Type", "application/json")
		// Many clients drop a POST's body on a redirect: there must be none.
		noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		raw, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = raw.Body.Close()
		if raw.StatusCode != http.StatusCreated {
			t.Fatalf("POST with a trailing slash: %d %s, want 201 without a redirect", raw.StatusCode, raw.Header.Get("Location"))
		}
		deliveredTo(t, "slash@example.net")
		if res := g.request(t, http.MethodGet, "/API/Messages/"+strings.ToUpper(g.sender.ID.String())+"/", "", "", nil, nil); res.status != http.StatusNotFound {
			t.Fatalf("an account id is no message: %d", res.status)
		}
	})
	t.Run("UnknownMembersIgnoredUnlessStrict", func(t *testing.T) {
		body := plain("ahead@example.net", map[string]any{"priority_hint": "later version", "tracking": map[string]any{"open": true}})
		created(t, g.request(t, http.MethodPost, "/api/messages/sendmessage", "application/json", "", nil, body))
		deliveredTo(t, "ahead@example.net")
		strict := g.request(t, http.MethodPost, "/api/messages/sendmessage", "application/json", "", map[string]string{"Prefer": "handling=strict"}, body)
		assertProblem(t, strict, http.StatusBadRequest, "priority_hint")
		xmlBody := `<MessageComposeModel xmlns="http://schemas.datacontract.org/2004/07/CompleteEmpireApp.Api.Models">` +
			`<Body>hi</Body><FutureMember>x</FutureMember><Send>true</Send><SenderEmail>` + g.sender.Email + `</SenderEmail><Subject>xml ahead</Subject>` +
			`<To><MessageRecipientModel><EmailAddress>xmlahead@example.net</EmailAddress><Nickname>x</Nickname></MessageRecipientModel></To></MessageComposeModel>`
		if res := g.request(t, http.MethodPost, "/api/messages/sendmessage", "application/xml", "application/json", nil, []byte(xmlBody)); res.status != http.StatusCreated {
			t.Fatalf("XML with unknown elements: %d %s", res.status, res.body)
		}
		deliveredTo(t, "xmlahead@example.net")
		strictXML := g.request(t, http.MethodPost, "/api/messages/sendmessage", "application/xml", "application/json", map[string]string{"Prefer": "handling=strict"}, []byte(xmlBody))
		assertProblem(t, strictXML, http.StatusBadRequest, "future_member")
		// Members only the gateway sets are refused in every mode.
		owned := g.request(t, http.MethodPost, "/api/messages/sendmessage", "application/json", "", nil, plain("owned@example.net", map[string]any{"state": "sent"}))
		assertProblem(t, owned, http.StatusBadRequest, "state")
		ownedRcpt := g.request(t, http.MethodPost, "/api/messages/sendmessage", "application/json", "", nil,
			plain("x@example.net", map[string]any{"to": []map[string]any{{"email_address": "owned@example.net", "Status": "delivered"}}}))
		assertProblem(t, ownedRcpt, http.StatusBadRequest, "to[0].status")
	})
	t.Run("UTF16XML", func(t *testing.T) {
		for i, tc := range []struct {
			contentType string
			bom         bool
		}{{"application/xml; charset=utf-16", false}, {"text/xml", true}} {
			to := "utf16-" + string(rune('a'+i)) + "@example.net"
			doc := `<?xml version="1.0" encoding="utf-16"?><MessageComposeModel xmlns="http://schemas.datacontract.org/2004/07/CompleteEmpireApp.Api.Models">` +
				`<Body>Grüße</Body><Send>true</Send><SenderEmail>` + g.sender.Email + `</SenderEmail><Subject>Grüße aus .NET</Subject>` +
				`<To><MessageRecipientModel><EmailAddress>` + to + `</EmailAddress></MessageRecipientModel></To></MessageComposeModel>`
			res := g.request(t, http.MethodPost, "/api/messages/sendmessage", tc.contentType, "application/json", nil, utf16LE(doc, tc.bom))
			v := created(t, res)
			m, err := mail.ReadMessage(bytes.NewReader(deliveredTo(t, to).Data))
			if err != nil {
				t.Fatal(err)
			}
			subject, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
			if subject != "Grüße aus .NET" || v.State != "queued" {
				t.Errorf("%s: subject on the wire %q", tc.contentType, subject)
			}
		}
	})
	t.Run("DataContractJSONDatesAndByteArrayTS", func(t *testing.T) {
		draft := created(t, g.request(t, http.MethodPost, "/api/messages/sendmessage", "application/json", "", nil,
			plain("dcjs@example.net", map[string]any{"send": false, "created_date": `/Date(1749452365902+0800)/`})))
		ts := mustDecodeBase64(t, draft.TS)
		byteArray := make([]int, len(ts))
		for i, b := range ts {
			byteArray[i] = int(b)
		}
		sendAt := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
		body := plain("dcjs@example.net", map[string]any{"id": draft.ID, "ts": byteArray,
			"send_at": "/Date(" + strconvI64(sendAt.UnixMilli()) + "+0000)/"})
		// DataContractJsonSerializer escapes "/" as "\/".
		body = bytes.ReplaceAll(body, []byte(`"/Date(`), []byte(`"\/Date(`))
		body = bytes.ReplaceAll(body, []byte(`)/"`), []byte(`)\/"`))
		res := g.request(t, http.MethodPost, "/api/messages/sendmessage", "application/json", "", nil, body)
		if res.status != http.StatusOK {
			t.Fatalf("update with byte-array ts: %d %s", res.status, res.body)
		}
		var v struct {
			State  string    `json:"state"`
			SendAt time.Time `json:"send_at"`
		}
		res.decode(t, &v)
		if v.State != "queued" || !v.SendAt.Equal(sendAt) {
			t.Fatalf("state %s send_at %v, want queued at %v", v.State, v.SendAt, sendAt)
		}
	})
	t.Run("MVCCheckboxPair", func(t *testing.T) {
		form := "SenderEmail=" + g.sender.Email + "&To[0].EmailAddress=checkbox@example.net&Subject=form&Body=hi&Send=true&Send=false"
		v := created(t, g.request(t, http.MethodPost, "/api/messages/sendmessage", "application/x-www-form-urlencoded", "", nil, []byte(form)))
		if v.State != "queued" {
			t.Fatalf("state %s, want queued (the ticked box)", v.State)
		}
		deliveredTo(t, "checkbox@example.net")
		unticked := created(t, g.request(t, http.MethodPost, "/api/messages/sendmessage", "application/x-www-form-urlencoded", "", nil,
			[]byte(strings.Replace(form, "Send=true&Send=false", "Send=false", 1))))
		if unticked.State != "draft" {
			t.Fatalf("state %s, want draft", unticked.State)
		}
	})
	t.Run("AcceptQValuesAndHTML", func(t *testing.T) {
		res := g.request(t, http.MethodPost, "/api/messages/sendmessage", "application/json", "application/json;q=0, application/xml", nil, plain("q@example.net", nil))
		if res.status != http.StatusCreated || !strings.HasPrefix(res.header.Get("Content-Type"), "application/xml") {
			t.Fatalf("q=0 for JSON: %d %s", res.status, res.header.Get("Content-Type"))
		}
		res = g.request(t, http.MethodPost, "/api/messages/sendmessage", "application/json", "text/html", nil, plain("html@example.net", nil))
		if res.status != http.StatusCreated || !strings.HasPrefix(res.header.Get("Content-Type"), "application/json") {
			t.Fatalf("text/html: %d %s", res.status, res.header.Get("Content-Type"))
		}
		deliveredTo(t, "html@example.net")
	})
	t.Run("ListsAndEventsInXML", func(t *testing.T) {
		v := created(t, g.request(t, http.MethodPost, "/api/messages/sendmessage", "application/json", "", nil, plain("listed@example.net", nil)))
		g.waitForState(t, v.ID, "sent")
		var list struct {
			XMLName xml.Name `xml:"http://schemas.datacontract.org/2004/07/CompleteEmpireApp.Api.Models MessageList"`
			Items   []struct {
				ID string `xml:"Id"`
			} `xml:"Items>MessageComposeModel"`
		}
		decodeXMLAnswer(t, g.request(t, http.MethodGet, "/api/messages?limit=100", "", "application/xml", nil, nil), &list)
		if !slices.ContainsFunc(list.Items, func(i struct {
			ID string `xml:"Id"`
		}) bool {
			return i.ID == v.ID
		}) {
			t.Errorf("the XML list does not hold %s", v.ID)
		}
		var events struct {
			Items []struct {
				Type string `xml:"Type"`
			} `xml:"Items>MessageEvent"`
			MessageID string `xml:"MessageId"`
		}
		decodeXMLAnswer(t, g.request(t, http.MethodGet, "/api/messages/"+v.ID+"/events", "", "text/xml", nil, nil), &events)
		if events.MessageID != v.ID || len(events.Items) == 0 || events.Items[0].Type != "created" {
			t.Errorf("XML events %+v", events)
		}
		var feed struct {
			Items []struct {
				ID string `xml:"Id"`
			} `xml:"Items>Event"`
			NextAfter string `xml:"NextAfter"`
		}
		// The feed shows events once no older transaction can still commit
		// before them (its horizon, README "The event feed"); the parallel
		// tests' transactions can hold that back for a moment.
		waitFor(t, 15*time.Second, "events in the XML feed", func() bool {
			decodeXMLAnswer(t, g.request(t, http.MethodGet, "/api/events?limit=5", "", "application/xml", nil, nil), &feed)
			return len(feed.Items) > 0
		})
		if feed.NextAfter == "" {
			t.Errorf("XML feed %+v", feed)
		}
	})
}

func decodeXMLAnswer(t *testing.T, res response, v any) {
	t.Helper()
	if res.status != http.StatusOK || !strings.Contains(res.header.Get("Content-Type"), "xml") {
		t.Fatalf("%d %s: %s", res.status, res.header.Get("Content-Type"), res.body)
	}
	if err := xml.Unmarshal(res.body, v); err != nil {
		t.Fatalf("XML answer: %v\n%s", err, res.body)
	}
}

func mustDecodeBase64(t *testing.T, s string) []byte {
	t.Helper()
	var b []byte
	if err := json.Unmarshal([]byte(`"`+s+`"`), &b); err != nil {
		t.Fatalf("ts %q: %v", s, err)
	}
	return b
}

func strconvI64(n int64) string { return strings.TrimSpace(string(mustJSON(n))) }
