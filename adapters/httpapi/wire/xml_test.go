package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// requireCodecFieldError fails unless err is an invalid-input *domain.Error naming field.
func requireCodecFieldError(t *testing.T, err error, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want an invalid-input error for field %q", field)
	}
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("got %T %v, want a *domain.Error", err, err)
	}
	if de.Code != domain.CodeInvalid {
		t.Fatalf("got code %q (%v), want %q", de.Code, err, domain.CodeInvalid)
	}
	if de.Field != field {
		t.Fatalf("got field %q (%v), want %q", de.Field, err, field)
	}
	if de.Message == "" {
		t.Fatalf("error for field %q has no message", field)
	}
}

// requireSameModel compares two compose models, showing both as JSON on a mismatch.
func requireSameModel(t *testing.T, got, want ComposeModel) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	g, _ := json.MarshalIndent(got, "", "  ")
	w, _ := json.MarshalIndent(want, "", "  ")
	t.Fatalf("model mismatch\ngot:  %s\nwant: %s", g, w)
}

func codecPtr[T any](v T) *T { return &v }

// composeXML wraps members in a MessageComposeModel root that declares the
// seed's prefixes.
func composeXML(members string) string {
	return `<MessageComposeModel xmlns:i="` + NamespaceXSI + `" xmlns="` + NamespaceModels + `">` + members + `</MessageComposeModel>`
}

func TestDecodeXMLSeedSample(t *testing.T) {
	t.Parallel()
	sample, err := os.ReadFile("testdata/seed_sample.xml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeXML(bytes.NewReader(sample), strictDecode)
	if err != nil {
		t.Fatalf("decode seed sample: %v", err)
	}
	seedRecipient := RecipientModel{
		AccountID:    "c188454f-3ac6-495c-869a-e3d255f3326a",
		DisplayName:  "sample string 1",
		EmailAddress: "sample string 2",
	}
	tests := []struct {
		field     string
		got, want any
	}{
		{"id", m.ID, "67160834-f076-41da-862e-3a1c72281b0d"},
		{"subscription_id", m.SubscriptionID, "a5913244-a8f5-459d-9406-72ddf3711f67"},
		{"ts", m.TS, codecPtr[TS]("QEA=")},
		{"can_delete", m.CanDelete, codecPtr(true)},
		{"subject", m.Subject, "sample string 9"},
		{"attachments", m.Attachments, []string{"4d81cd73-e621-4f67-9a2b-dd1c79c17175", "2c8ca046-7360-4646-b7a2-0db2116a8ddb"}},
		{"bcc", m.Bcc, []RecipientModel{seedRecipient, seedRecipient}},
		{"body", m.Body, "sample string 6"},
		{"cc", m.Cc, []RecipientModel{seedRecipient, seedRecipient}},
		{"created_date", m.CreatedDate, "2026-06-09T14:59:25.9028316+08:00"},
		{"importance", string(m.Importance), `"Low"`},
		{"message_id", m.MessageID, "sample string 4"},
		{"parent_id", m.ParentID, "48e91789-1800-4af1-9d0f-a545216ab490"},
		{"references", m.References, "sample string 5"},
		{"send", m.Send, true},
		{"sender_account_id", m.SenderAccountID, "73067954-43ed-4f1e-b2ba-c18e22e9e1fc"},
		{"sender_display_name", m.SenderDisplayName, "sample string 2"},
		{"sender_email", m.SenderEmail, "sample string 1"},
		{"to", m.To, []RecipientModel{seedRecipient, seedRecipient}},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			t.Parallel()
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Fatalf("got %#v, want %#v", tt.got, tt.want)
			}
		})
	}
	t.Run("toRequest", func(t *testing.T) {
		t.Parallel()
		req, err := m.Request()
		if err != nil {
			t.Fatalf("toRequest: %v", err)
		}
		if req.Importance != domain.ImportanceLow {
			t.Errorf("importance = %v, want Low", req.Importance)
		}
		if !bytes.Equal(req.TS, []byte("@@")) {
			t.Errorf("ts = %q, want %q", req.TS, "@@")
		}
		if req.ID.String() != "67160834-f076-41da-862e-3a1c72281b0d" {
			t.Errorf("id = %s", req.ID)
		}
	})
}

func TestDecodeXMLAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want ComposeModel
	}{
		{
			name: "any member order, declaration, BOM and comments",
			body: "\uFEFF" + `<?xml version="1.0" encoding="utf-8"?><!-- hi -->` + composeXML(
				`<Subject>s</Subject><!-- note --><Id xmlns="`+NamespaceBase+`">`+"\n 67160834-f076-41da-862e-3a1c72281b0d \n"+`</Id><Send>1</Send>`),
			want: ComposeModel{Subject: "s", ID: "67160834-f076-41da-862e-3a1c72281b0d", Send: true},
		},
		{
			name: "prefixed namespaces instead of defaults",
			body: `<m:MessageComposeModel xmlns:m="` + NamespaceModels + `" xmlns:b="` + NamespaceBase + `" xmlns:a="` + NamespaceArrays + `">` +
				`<b:SubscriptionId>a5913244-a8f5-459d-9406-72ddf3711f67</b:SubscriptionId>` +
				`<m:Attachments><a:guid>4d81cd73-e621-4f67-9a2b-dd1c79c17175</a:guid></m:Attachments>` +
				`<m:To><m:MessageRecipientModel><m:EmailAddress>a@example.com</m:EmailAddress></m:MessageRecipientModel></m:To>` +
				`</m:MessageComposeModel>`,
			want: ComposeModel{
				SubscriptionID: "a5913244-a8f5-459d-9406-72ddf3711f67",
				Attachments:    []string{"4d81cd73-e621-4f67-9a2b-dd1c79c17175"},
				To:             []RecipientModel{{EmailAddress: "a@example.com"}},
			},
		},
		{
			name: "text kept exactly, CDATA and escapes",
			body: composeXML(`<Body><![CDATA[<p>hi</p>]]> &amp; bye&#xD;&#xA;</Body><Subject>  padded  </Subject>`),
			want: ComposeModel{Body: "<p>hi</p> & bye\r\n", Subject: "  padded  "},
		},
		{
			name: "importance by number, booleans as words, ts with line breaks",
			body: composeXML(`<Importance> 2 </Importance><CanDelete>false</CanDelete><Send>false</Send><Ts xmlns="` + NamespaceBase + `">AAAA` + "\n" + `AAAAAAE=</Ts>`),
			want: ComposeModel{Importance: json.RawMessage(`"2"`), CanDelete: codecPtr(false), TS: codecPtr[TS]("AAAAAAAAAAE=")},
		},
		{
			name: "nil members are absent",
			body: composeXML(`<Id xmlns="` + NamespaceBase + `" i:nil="true"/><Ts xmlns="` + NamespaceBase + `" i:nil="true"/>` +
				`<CanDelete i:nil="true"/><Importance i:nil="true"/><Send i:nil="1"/><Subject i:nil="true"></Subject>` +
				`<To i:nil="true"/><Attachments i:nil="true"/><ParentId i:nil="true"/><Body i:nil="false">b</Body>`),
			want: ComposeModel{Body: "b"},
		},
		{
			name: "nil list items stay in place as empty values",
			body: composeXML(`<Cc><MessageRecipientModel i:nil="true"/><MessageRecipientModel><DisplayName>D</DisplayName><AccountId i:nil="true"/></MessageRecipientModel></Cc>` +
				`<Attachments xmlns:d2p1="` + NamespaceArrays + `"><d2p1:guid i:nil="true"/><d2p1:guid>x</d2p1:guid></Attachments>`),
			want: ComposeModel{Cc: []RecipientModel{{}, {DisplayName: "D"}}, Attachments: []string{"", "x"}},
		},
		{
			name: "empty lists are present but empty",
			body: composeXML(`<Bcc/><Attachments xmlns:d2p1="` + NamespaceArrays + `"></Attachments>`),
			want: ComposeModel{Bcc: []RecipientModel{}, Attachments: []string{}},
		},
		{
			name: "read-only response members are ignored",
			body: composeXML(`<ConversationId>c</ConversationId><InReplyTo/><LastError>e</LastError><State>sent</State><UpdatedAt i:nil="true"/>` +
				`<To><MessageRecipientModel><Attempts>2</Attempts><EmailAddress>a@example.com</EmailAddress><LastCode>250</LastCode><LastReply>ok</LastReply><Status>delivered</Status></MessageRecipientModel></To>`),
			want: ComposeModel{To: []RecipientModel{{EmailAddress: "a@example.com"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeXML(strings.NewReader(tt.body), strictDecode)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			requireSameModel(t, got, tt.want)
		})
	}
}

func TestDecodeXMLRejectsDocument(t *testing.T) {
	t.Parallel()
	base := `xmlns="` + NamespaceBase + `"`
	tests := []struct {
		name     string
		body     string
		contains string
	}{
		{"empty body", "", "empty"},
		{"only whitespace", " \n ", "empty"},
		{"malformed", composeXML(`<Subject>s</Body>`), "not well-formed"},
		{"truncated", `<MessageComposeModel xmlns="` + NamespaceModels + `"><Subject>s`, "not well-formed"},
		{"undefined entity", composeXML(`<Subject>&nbsp;</Subject>`), "not well-formed"},
		{"doctype", `<!DOCTYPE MessageComposeModel>` + composeXML(``), "DOCTYPE"},
		{"entity declaration", `<!DOCTYPE m [<!ENTITY x "xxxxxxxx">]>` + composeXML(`<Subject>&x;</Subject>`), "DOCTYPE"},
		{"processing instruction", composeXML(`<?php echo 1 ?>`), "processing instruction"},
		{"non-UTF-8 encoding", `<?xml version="1.0" encoding="ISO-8859-1"?>` + composeXML(``), "UTF-8"},
		{"wrong root name", `<MessageModel xmlns="` + NamespaceModels + `"/>`, "root element"},
		{"root without namespace", `<MessageComposeModel/>`, "root element"},
		{"root in the base namespace", `<MessageComposeModel ` + base + `/>`, "root element"},
		{"nil root", `<MessageComposeModel xmlns:i="` + NamespaceXSI + `" xmlns="` + NamespaceModels + `" i:nil="true"/>`, "nil"},
		{"two roots", composeXML(``) + composeXML(``), "more than one root"},
		{"text outside the root", composeXML(``) + `junk`, "outside the root"},
		{"text in the root", composeXML(`junk<Subject>s</Subject>`), "not text"},
		{"nesting deeper than 10", composeXML(strings.Repeat("<a>", 10) + strings.Repeat("</a>", 10)), "deeper than 10"},
		{"more than 10,000 elements", composeXML(strings.Repeat("<Subject/>", maxXMLElements)), "more than 10000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeXML(strings.NewReader(tt.body), strictDecode)
			requireCodecFieldError(t, err, "")
			if !strings.Contains(err.Error(), tt.contains) {
				t.Fatalf("got %v, want a message containing %q", err, tt.contains)
			}
		})
	}
}

func TestDecodeXMLRejects(t *testing.T) {
	t.Parallel()
	base := `xmlns="` + NamespaceBase + `"`
	recipient := func(inner string) string { return `<MessageRecipientModel>` + inner + `</MessageRecipientModel>` }
	tests := []struct {
		name  string
		body  string
		field string
	}{
		{"unknown member", composeXML(`<Priority>1</Priority>`), "priority"},
		{"nesting of exactly 10 gets past the limit", composeXML(strings.Repeat("<a>", 9) + strings.Repeat("</a>", 9)), "a"},
		{"exactly 10,000 elements get past the limit", composeXML(strings.Repeat("<Subject/>", maxXMLElements-1)), "subject"},
		{"Id in the models namespace", composeXML(`<Id>67160834-f076-41da-862e-3a1c72281b0d</Id>`), "id"},
		{"Subject in the base namespace", composeXML(`<Subject ` + base + `>s</Subject>`), "subject"},
		{"Subject in no namespace", composeXML(`<Subject xmlns="">s</Subject>`), "subject"},
		{"duplicate member", composeXML(`<Subject>a</Subject><Body/><Subject>a</Subject>`), "subject"},
		{"duplicate read-only member", composeXML(`<State>a</State><State>a</State>`), "state"},
		{"bad send", composeXML(`<Send>yes</Send>`), "send"},
		{"empty send", composeXML(`<Send/>`), "send"},
		{"capitalised send", composeXML(`<Send>True</Send>`), "send"},
		{"bad can_delete", composeXML(`<CanDelete>2</CanDelete>`), "can_delete"},
		{"bad importance", composeXML(`<Importance>Urgent</Importance>`), "importance"},
		{"importance out of range", composeXML(`<Importance>3</Importance>`), "importance"},
		{"empty importance", composeXML(`<Importance/>`), "importance"},
		{"element inside a value", composeXML(`<Subject><b>s</b></Subject>`), "subject"},
		{"element inside a read-only value", composeXML(`<State><b/></State>`), "state"},
		{"text in a list", composeXML(`<To>a@example.com</To>`), "to"},
		{"unexpected attribute", composeXML(`<Subject lang="en">s</Subject>`), "subject"},
		{"xsi:type attribute", composeXML(`<Body i:type="string">s</Body>`), "body"},
		{"bad i:nil", composeXML(`<Subject i:nil="yes"/>`), "subject"},
		{"nil with content", composeXML(`<Subject i:nil="true">s</Subject>`), "subject"},
		{"wrong recipient element", composeXML(`<To><Recipient/></To>`), "to[0]"},
		{"recipient in another namespace", composeXML(`<Cc><MessageRecipientModel ` + base + `/></Cc>`), "cc[0]"},
		{"unknown recipient member", composeXML(`<To>` + recipient(``) + recipient(`<Phone>1</Phone>`) + `</To>`), "to[1].phone"},
		{"duplicate recipient member", composeXML(`<Cc>` + recipient(`<EmailAddress>a</EmailAddress><EmailAddress>b</EmailAddress>`) + `</Cc>`), "cc[0].email_address"},
		{"recipient member in the wrong namespace", composeXML(`<Bcc>` + recipient(`<EmailAddress `+base+`>a</EmailAddress>`) + `</Bcc>`), "bcc[0].email_address"},
		{"recipient member holding elements", composeXML(`<To>` + recipient(`<AccountId><x/></AccountId>`) + `</To>`), "to[0].account_id"},
		{"recipient with text", composeXML(`<To>` + recipient(`a@example.com`) + `</To>`), "to[0]"},
		{"attachment in the models namespace", composeXML(`<Attachments><guid>x</guid></Attachments>`), "attachments[0]"},
		{"attachment with the wrong name", composeXML(`<Attachments xmlns:d2p1="` + NamespaceArrays + `"><d2p1:guid>x</d2p1:guid><d2p1:string>y</d2p1:string></Attachments>`), "attachments[1]"},
		{"attachment holding elements", composeXML(`<Attachments xmlns:d2p1="` + NamespaceArrays + `"><d2p1:guid><x/></d2p1:guid></Attachments>`), "attachments[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeXML(strings.NewReader(tt.body), strictDecode)
			requireCodecFieldError(t, err, tt.field)
		})
	}
}

func TestDecodeXMLReadFailure(t *testing.T) {
	t.Parallel()
	boom := errors.New("connection reset")
	_, err := DecodeXML(iotest.ErrReader(boom), strictDecode)
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the reader's error", err)
	}
	var de *domain.Error
	if errors.As(err, &de) {
		t.Fatalf("a read failure became a domain error: %v", err)
	}
}

// fullMessageView returns a view with every member set, two items in each
// list as in the seed sample.
func fullMessageView() MessageView {
	id := func(s string) uuid.UUID { return uuid.MustParse(s) }
	account := id("c188454f-3ac6-495c-869a-e3d255f3326a")
	recipients := func(prefix string) []RecipientView {
		return []RecipientView{
			{DisplayName: prefix + " One", EmailAddress: "one@example.com", AccountID: &account, Status: domain.RecipientDelivered, Attempts: 1, LastCode: 250, LastReply: "2.0.0 OK"},
			{DisplayName: prefix + " <Two> & \"co\"", EmailAddress: "two@example.com", AccountID: &account, Status: domain.RecipientDeferred, Attempts: 3, LastCode: 451, LastReply: "4.7.1 try later"},
		}
	}
	sender := id("73067954-43ed-4f1e-b2ba-c18e22e9e1fc")
	parent := id("48e91789-1800-4af1-9d0f-a545216ab490")
	return MessageView{
		SenderEmail:       "sender@example.com",
		SenderDisplayName: "Sender & Co",
		SenderAccountID:   &sender,
		To:                recipients("To"),
		Cc:                recipients("Cc"),
		Bcc:               recipients("Bcc"),
		Importance:        int(domain.ImportanceHigh),
		MessageID:         "<abc@example.com>",
		References:        "<parent@example.com>",
		Body:              "line one\r\nline two\ttabbed ]]> <b>&amp;</b> ünïcode",
		Attachments:       []uuid.UUID{id("4d81cd73-e621-4f67-9a2b-dd1c79c17175"), id("2c8ca046-7360-4646-b7a2-0db2116a8ddb")},
		ParentID:          &parent,
		CreatedDate:       time.Date(2026, 6, 9, 14, 59, 25, 902831600, time.FixedZone("", 8*3600)),
		Send:              true,
		Subject:           "  Re: hello  ",
		CanDelete:         true,
		ID:                id("67160834-f076-41da-862e-3a1c72281b0d"),
		SubscriptionID:    id("a5913244-a8f5-459d-9406-72ddf3711f67"),
		TS:                domain.Version(7).String(),
		State:             domain.StatePartiallySent,
		InReplyTo:         "<parent@example.com>",
		ConversationID:    id("0b4f0bde-54ee-4e36-a8c1-d7e0f9f0c2a1"),
		UpdatedAt:         time.Date(2026, 6, 9, 7, 0, 0, 100, time.UTC),
		LastError:         "one recipient deferred",
	}
}

// expectedModel is what decodeXML should make of EncodeXML(v).
func expectedModel(t *testing.T, v MessageView) ComposeModel {
	t.Helper()
	optional := func(id *uuid.UUID) string {
		if id == nil {
			return ""
		}
		return id.String()
	}
	recipients := func(list []RecipientView) []RecipientModel {
		if list == nil {
			return nil
		}
		out := make([]RecipientModel, 0, len(list))
		for _, r := range list {
			out = append(out, RecipientModel{DisplayName: r.DisplayName, EmailAddress: r.EmailAddress, AccountID: optional(r.AccountID)})
		}
		return out
	}
	var attachments []string
	if v.Attachments != nil {
		attachments = make([]string, 0, len(v.Attachments))
		for _, a := range v.Attachments {
			attachments = append(attachments, a.String())
		}
	}
	m := ComposeModel{
		SenderEmail:       v.SenderEmail,
		SenderDisplayName: v.SenderDisplayName,
		SenderAccountID:   optional(v.SenderAccountID),
		To:                recipients(v.To),
		Cc:                recipients(v.Cc),
		Bcc:               recipients(v.Bcc),
		Importance:        json.RawMessage(`"` + domain.Importance(v.Importance).String() + `"`),
		MessageID:         v.MessageID,
		References:        v.References,
		Body:              v.Body,
		Attachments:       attachments,
		ParentID:          optional(v.ParentID),
		CreatedDate:       v.CreatedDate.Format("2006-01-02T15:04:05.0000000Z07:00"),
		Send:              v.Send,
		Subject:           v.Subject,
		CanDelete:         codecPtr(v.CanDelete),
		ID:                v.ID.String(),
		SubscriptionID:    v.SubscriptionID.String(),
	}
	if v.TS != "" {
		m.TS = codecPtr(TS(v.TS))
	}
	return m
}

func TestEncodeXMLRoundTrip(t *testing.T) {
	t.Parallel()
	sparse := MessageView{
		SenderEmail: "a@example.com",
		To:          []RecipientView{{EmailAddress: "b@example.com", Status: domain.RecipientPending}},
		Importance:  int(domain.ImportanceLow),
		CreatedDate: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		ID:          uuid.MustParse("67160834-f076-41da-862e-3a1c72281b0d"),
		State:       domain.StateDraft,
	}
	tests := []struct {
		name string
		view MessageView
	}{
		{"every member set", fullMessageView()},
		{"absent optional members, nil lists, no ts", sparse},
		{"empty lists", func() MessageView {
			v := sparse
			v.Cc, v.Bcc, v.Attachments = []RecipientView{}, []RecipientView{}, []uuid.UUID{}
			return v
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := EncodeXML(tt.view)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			got, err := DecodeXML(bytes.NewReader(out), strictDecode)
			if err != nil {
				t.Fatalf("decode %s: %v", out, err)
			}
			want := expectedModel(t, tt.view)
			requireSameModel(t, got, want)
			created, err := parseDate(got.CreatedDate)
			if err != nil || !created.Equal(tt.view.CreatedDate) {
				t.Fatalf("created_date %q (%v) does not parse back to %v", got.CreatedDate, err, tt.view.CreatedDate)
			}
			if _, err := got.Request(); err != nil {
				t.Fatalf("the decoded model does not convert: %v", err)
			}
		})
	}
}

// elementPaths lists every element of the document in document order as
// "path {namespace}", with the names of its ancestors as the path.
func elementPaths(t *testing.T, doc []byte) []string {
	t.Helper()
	root, err := parseXMLTree(bytes.NewReader(doc), strictDecode)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	var paths []string
	var walk func(n *xmlNode, prefix string)
	walk = func(n *xmlNode, prefix string) {
		p := prefix + "/" + n.name.Local
		paths = append(paths, p+" {"+n.name.Space+"}")
		for _, c := range n.children {
			walk(c, p)
		}
	}
	walk(root, "")
	return paths
}

func TestEncodeXMLMatchesSeedShape(t *testing.T) {
	t.Parallel()
	sample, err := os.ReadFile("testdata/seed_sample.xml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := EncodeXML(fullMessageView())
	if err != nil {
		t.Fatal(err)
	}
	seed := elementPaths(t, sample)
	inSeed := make(map[string]bool, len(seed))
	for _, p := range seed {
		inSeed[p] = true
	}
	var shared []string
	for _, p := range elementPaths(t, out) {
		if inSeed[p] {
			shared = append(shared, p)
		}
	}
	if !reflect.DeepEqual(shared, seed) {
		t.Fatalf("element order or namespaces differ from the seed\ngot:  %q\nwant: %q", shared, seed)
	}

	for _, want := range []string{
		`<MessageComposeModel xmlns:i="` + NamespaceXSI + `" xmlns="` + NamespaceModels + `">`,
		`<Id xmlns="` + NamespaceBase + `">67160834-f076-41da-862e-3a1c72281b0d</Id>`,
		`<Attachments xmlns:d2p1="` + NamespaceArrays + `"><d2p1:guid>4d81cd73-e621-4f67-9a2b-dd1c79c17175</d2p1:guid>`,
		`<CreatedDate>2026-06-09T14:59:25.9028316+08:00</CreatedDate>`,
		`<Importance>High</Importance>`,
		`<State>partially_sent</State>`,
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("output lacks %s\n%s", want, out)
		}
	}
}

func TestEncodeXMLMemberOrder(t *testing.T) {
	t.Parallel()
	out, err := EncodeXML(fullMessageView())
	if err != nil {
		t.Fatal(err)
	}
	root, err := parseXMLTree(bytes.NewReader(out), strictDecode)
	if err != nil {
		t.Fatal(err)
	}
	names := func(n *xmlNode) []string {
		var s []string
		for _, c := range n.children {
			s = append(s, c.name.Local)
		}
		return s
	}
	wantRoot := []string{"Id", "SubscriptionId", "Ts", "CanDelete", "Subject",
		"Attachments", "Bcc", "Body", "Cc", "ConversationId", "CreatedDate", "HeaderMessageId", "HeaderReferences", "Importance", "InReplyTo", "LastError",
		"MessageId", "ParentId", "References", "Send", "SenderAccountId", "SenderDisplayName", "SenderEmail", "State", "To", "UpdatedAt"}
	if got := names(root); !reflect.DeepEqual(got, wantRoot) {
		t.Errorf("members:\ngot  %q\nwant %q", got, wantRoot)
	}
	wantRecipient := []string{"AccountId", "Attempts", "DisplayName", "EmailAddress", "LastCode", "LastReply", "Status"}
	for _, c := range root.children {
		if c.name.Local != "To" {
			continue
		}
		if got := names(c.children[0]); !reflect.DeepEqual(got, wantRecipient) {
			t.Errorf("recipient members:\ngot  %q\nwant %q", got, wantRecipient)
		}
	}
}

func TestEncodeXMLNilMembers(t *testing.T) {
	t.Parallel()
	v := MessageView{
		To:         []RecipientView{{EmailAddress: "b@example.com"}},
		Importance: int(domain.ImportanceNormal),
	}
	out, err := EncodeXML(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`<SenderAccountId i:nil="true"/>`,
		`<ParentId i:nil="true"/>`,
		`<MessageRecipientModel><AccountId i:nil="true"/><Attempts>0</Attempts>`,
		`<Ts xmlns="` + NamespaceBase + `" i:nil="true"/>`,
		`<Cc i:nil="true"/>`,
		`<Attachments i:nil="true"/>`,
		`<Importance>Normal</Importance>`,
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("output lacks %s\n%s", want, out)
		}
	}
	for _, absent := range []string{"<LastError", "<LastCode", "<LastReply"} {
		if bytes.Contains(out, []byte(absent)) {
			t.Errorf("output has an empty %s member\n%s", absent, out)
		}
	}
}

func TestEncodeXMLRejectsUnknownImportance(t *testing.T) {
	t.Parallel()
	if _, err := EncodeXML(MessageView{Importance: 7}); err == nil {
		t.Fatal("encoded an importance that has no name")
	}
}
