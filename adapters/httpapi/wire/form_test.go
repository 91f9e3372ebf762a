package wire

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// parseFormBody decodes body as the server does, so '+' and %XX behave as on the wire.
func parseFormBody(t *testing.T, body string) url.Values {
	t.Helper()
	values, err := url.ParseQuery(body)
	if err != nil {
		t.Fatalf("parse %q: %v", body, err)
	}
	return values
}

func TestDecodeFormAccepts(t *testing.T) {
	t.Parallel()
	const (
		guid1 = "4d81cd73-e621-4f67-9a2b-dd1c79c17175"
		guid2 = "2c8ca046-7360-4646-b7a2-0db2116a8ddb"
	)
	tests := []struct {
		name string
		body string
		want ComposeModel
	}{
		{"empty form", "", ComposeModel{}},
		{"sender_email", "sender_email=a%40example.com", ComposeModel{SenderEmail: "a@example.com"}},
		{"SenderEmail", "SenderEmail=a%40example.com", ComposeModel{SenderEmail: "a@example.com"}},
		{"sender_display_name", "sender_display_name=Ann+Smith", ComposeModel{SenderDisplayName: "Ann Smith"}},
		{"SenderDisplayName", "SenderDisplayName=Ann", ComposeModel{SenderDisplayName: "Ann"}},
		{"sender_account_id", "sender_account_id=" + guid1, ComposeModel{SenderAccountID: guid1}},
		{"SenderAccountId", "SenderAccountId=" + guid1, ComposeModel{SenderAccountID: guid1}},
		{"importance by name", "importance=High", ComposeModel{Importance: json.RawMessage(`"High"`)}},
		{"importance by number", "Importance=2", ComposeModel{Importance: json.RawMessage(`"2"`)}},
		{"importance in lower case", "importance=low", ComposeModel{Importance: json.RawMessage(`"low"`)}},
		{"message_id", "message_id=%3Cabc%40example.com%3E", ComposeModel{MessageID: "<abc@example.com>"}},
		{"MessageId", "MessageId=x", ComposeModel{MessageID: "x"}},
		{"references", "references=%3Ca%3E+%3Cb%3E", ComposeModel{References: "<a> <b>"}},
		{"References", "References=r", ComposeModel{References: "r"}},
		{"body", "body=line+one%0D%0Aline+two", ComposeModel{Body: "line one\r\nline two"}},
		{"Body", "Body=b", ComposeModel{Body: "b"}},
		{"parent_id", "parent_id=" + guid1, ComposeModel{ParentID: guid1}},
		{"ParentId", "ParentId=" + guid1, ComposeModel{ParentID: guid1}},
		{"created_date", "created_date=2026-06-09T14%3A59%3A25.9028316%2B08%3A00", ComposeModel{CreatedDate: "2026-06-09T14:59:25.9028316+08:00"}},
		{"CreatedDate", "CreatedDate=2026-06-09", ComposeModel{CreatedDate: "2026-06-09"}},
		{"send=true", "send=true", ComposeModel{Send: true}},
		{"send=on", "send=on", ComposeModel{Send: true}},
		{"send=1", "Send=1", ComposeModel{Send: true}},
		{"send=TRUE", "send=TRUE", ComposeModel{Send: true}},
		{"send=false", "send=false", ComposeModel{}},
		{"send=0", "send=0", ComposeModel{}},
		{"subject", "subject=Hello+world", ComposeModel{Subject: "Hello world"}},
		{"Subject", "Subject=Hi", ComposeModel{Subject: "Hi"}},
		{"subject kept exactly", "subject=++padded++", ComposeModel{Subject: "  padded  "}},
		{"can_delete=true", "can_delete=true", ComposeModel{CanDelete: codecPtr(true)}},
		{"CanDelete=0", "CanDelete=0", ComposeModel{CanDelete: codecPtr(false)}},
		{"can_delete empty is absent", "can_delete=", ComposeModel{}},
		{"id", "id=" + guid1, ComposeModel{ID: guid1}},
		{"Id", "Id=" + guid1, ComposeModel{ID: guid1}},
		{"subscription_id", "subscription_id=" + guid2, ComposeModel{SubscriptionID: guid2}},
		{"SubscriptionId", "SubscriptionId=" + guid2, ComposeModel{SubscriptionID: guid2}},
		{"ts percent-encoded", "ts=QE%2B%2F", ComposeModel{TS: codecPtr[TS]("QE+/")}},
		{"ts with '+' sent raw", "ts=QE+%2F", ComposeModel{TS: codecPtr[TS]("QE+/")}},
		{"Ts", "Ts=QEA%3D", ComposeModel{TS: codecPtr[TS]("QEA=")}},
		{"empty ts is absent", "ts=", ComposeModel{}},
		{"names in any case", "SUBJECT=s&sender_EMAIL=e", ComposeModel{Subject: "s", SenderEmail: "e"}},
		{"repeated scalar with the same value", "subject=s&Subject=s&subject=s", ComposeModel{Subject: "s"}},
		{
			"to, ASP.NET style",
			"to[0].email_address=a%40example.com&to[0].display_name=A&to[0].account_id=" + guid1 + "&to[1].email_address=b%40example.com",
			ComposeModel{To: []RecipientModel{{EmailAddress: "a@example.com", DisplayName: "A", AccountID: guid1}, {EmailAddress: "b@example.com"}}},
		},
		{
			"To, .NET names",
			"To[0].EmailAddress=a&To[0].DisplayName=A&To[0].AccountId=" + guid1,
			ComposeModel{To: []RecipientModel{{EmailAddress: "a", DisplayName: "A", AccountID: guid1}}},
		},
		{
			"cc, jQuery style",
			"cc%5B0%5D%5Bemail_address%5D=a&cc%5B1%5D%5BEmailAddress%5D=b&cc%5B1%5D%5Bdisplay_name%5D=B",
			ComposeModel{Cc: []RecipientModel{{EmailAddress: "a"}, {EmailAddress: "b", DisplayName: "B"}}},
		},
		{
			"bcc, mixed spellings of one item",
			"bcc[0].email_address=a&Bcc[0][DisplayName]=A&BCC[0].ACCOUNT_ID=" + guid1,
			ComposeModel{Bcc: []RecipientModel{{EmailAddress: "a", DisplayName: "A", AccountID: guid1}}},
		},
		{"attachments indexed", "attachments[1]=" + guid2 + "&attachments[0]=" + guid1, ComposeModel{Attachments: []string{guid1, guid2}}},
		{"Attachments indexed", "Attachments[0]=" + guid1, ComposeModel{Attachments: []string{guid1}}},
		{"attachments[]", "attachments%5B%5D=" + guid1 + "&attachments%5B%5D=" + guid2, ComposeModel{Attachments: []string{guid1, guid2}}},
		{"attachments repeated", "attachments=" + guid1 + "&attachments=" + guid2, ComposeModel{Attachments: []string{guid1, guid2}}},
		{"last index allowed", "to[0].email_address=a" + indexedRecipients(1, 100), ComposeModel{To: recipientsUpTo(100)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeForm(parseFormBody(t, tt.body), strictDecode)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			requireSameModel(t, got, tt.want)
		})
	}
}

// indexedRecipients is "&to[from].email_address=..." up to index to-1.
func indexedRecipients(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "&to[%d].email_address=a", i)
	}
	return b.String()
}

func recipientsUpTo(n int) []RecipientModel {
	list := make([]RecipientModel, n)
	for i := range list {
		list[i].EmailAddress = "a"
	}
	return list
}

func TestDecodeFormSeedFields(t *testing.T) {
	t.Parallel()
	// The seed's JSON sample, as a form with .NET names.
	body := strings.Join([]string{
		"SenderEmail=sample+string+1", "SenderDisplayName=sample+string+2", "SenderAccountId=73067954-43ed-4f1e-b2ba-c18e22e9e1fc",
		"To[0].DisplayName=sample+string+1", "To[0].EmailAddress=sample+string+2", "To[0].AccountId=c188454f-3ac6-495c-869a-e3d255f3326a",
		"Importance=0", "MessageId=sample+string+4", "References=sample+string+5", "Body=sample+string+6",
		"Attachments[0]=4d81cd73-e621-4f67-9a2b-dd1c79c17175", "ParentId=48e91789-1800-4af1-9d0f-a545216ab490",
		"CreatedDate=2026-06-09T14:59:25.9028316%2B08:00", "Send=true", "Subject=sample+string+9", "CanDelete=true",
		"Id=67160834-f076-41da-862e-3a1c72281b0d", "SubscriptionId=a5913244-a8f5-459d-9406-72ddf3711f67", "Ts=QEA=",
	}, "&")
	m, err := DecodeForm(parseFormBody(t, body), strictDecode)
	if err != nil {
		t.Fatal(err)
	}
	req, err := m.Request()
	if err != nil {
		t.Fatalf("toRequest: %v", err)
	}
	if req.SenderEmail != "sample string 1" || len(req.To) != 1 || req.To[0].EmailAddress != "sample string 2" ||
		string(req.TS) != "@@" || !req.Send || req.Importance != 0 || len(req.Attachments) != 1 {
		t.Fatalf("unexpected request %+v", req)
	}
}

func TestDecodeFormRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		body  string
		field string
	}{
		{"unknown key", "priority=1", "priority"},
		{"unknown .NET key", "SenderPhone=1", "sender_phone"},
		{"read-only member", "state=sent", "state"},
		{"scalar repeated with different values", "subject=a&subject=b", "subject"},
		{"scalar under two spellings", "subject=a&Subject=b", "subject"},
		{"scalar with an index", "subject[0]=a", "subject[0]"},
		{"scalar with a member", "Subject.Text=a", "subject.text"},
		{"bad send", "send=yes", "send"},
		{"empty send", "send=", "send"},
		{"send=off", "send=off", "send"},
		{"bad can_delete", "can_delete=maybe", "can_delete"},
		{"bad importance", "importance=Urgent", "importance"},
		{"importance out of range", "importance=3", "importance"},
		{"empty importance", "importance=", "importance"},
		{"list without an index", "to=a%40example.com", "to"},
		{"recipient without a member", "to[0]=a", "to[0]"},
		{"recipient with empty brackets", "to[].email_address=a", "to[].email_address"},
		{"recipient index not a number", "To[x].EmailAddress=a", "to[x].email_address"},
		{"recipient index with a leading zero", "to[01].email_address=a", "to[01].email_address"},
		{"recipient index negative", "cc[-1].email_address=a", "cc[-1].email_address"},
		{"unclosed bracket", "to[0.email_address=a", "to[0.email_address"},
		{"unclosed member bracket", "to[0][email_address=a", "to[0][email_address"},
		{"nested member", "to[0].email_address.x=a", "to[0].email_address.x"},
		{"unknown recipient member", "To[0].Phone=1", "to[0].phone"},
		{"recipient gap", "to[0].email_address=a&to[2].email_address=c", "to"},
		{"recipients not from 0", "bcc[1].email_address=a", "bcc"},
		{"recipient index past 99", "to[100].email_address=a", "to"},
		{"recipient index huge", "cc[99999999999999999999].email_address=a", "cc"},
		{"recipient member twice", "to[0].email_address=a&To[0][EmailAddress]=b", "to[0].email_address"},
		{"attachment gap", "attachments[1]=x", "attachments"},
		{"attachment index past 99", "attachments[100]=x", "attachments"},
		{"attachment index not a number", "attachments[one]=x", "attachments[one]"},
		{"attachment with a member", "attachments[0].id=x", "attachments[0].id"},
		{"attachment index twice", "attachments[0]=x&Attachments[0]=y", "attachments[0]"},
		{"indexed and unindexed attachments", "attachments[0]=x&attachments%5B%5D=y", "attachments"},
		{"unindexed attachments under two keys", "attachments=x&Attachments=y", "attachments"},
		{"too many attachments", strings.Repeat("attachments=x&", 100) + "attachments=x", "attachments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeForm(parseFormBody(t, tt.body), strictDecode)
			requireCodecFieldError(t, err, tt.field)
		})
	}
}

func TestDecodeFormLongUnknownKeyIsTruncated(t *testing.T) {
	t.Parallel()
	_, err := DecodeForm(url.Values{strings.Repeat("x", 5000): {"1"}}, strictDecode)
	if err == nil || len(err.Error()) > 400 {
		t.Fatalf("got %v", err)
	}
}
