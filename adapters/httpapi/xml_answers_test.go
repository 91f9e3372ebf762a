package httpapi

import (
	"encoding/xml"
	"testing"
)

func TestEncodeProblemXML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		problem Problem
		want    string
	}{
		{
			name: "every member",
			problem: Problem{
				Type: "https://mailgate.dev/problems/version_mismatch", Title: "Conflict", Status: 409,
				Detail: "the message changed", Instance: "/api/messages/sendmessage",
				Code: "version_mismatch", Field: "ts", TS: "AAAAAAAAAAc=", RequestID: "req-1",
			},
			want: xml.Header + `<problem xmlns="urn:ietf:rfc:7807">` +
				`<type>https://mailgate.dev/problems/version_mismatch</type><title>Conflict</title><status>409</status>` +
				`<detail>the message changed</detail><instance>/api/messages/sendmessage</instance>` +
				`<code>version_mismatch</code><field>ts</field><ts>AAAAAAAAAAc=</ts><request_id>req-1</request_id></problem>`,
		},
		{
			name:    "empty members left out, text escaped",
			problem: Problem{Type: "about:blank", Title: "Bad Request", Status: 400, Detail: `to[0].email_address: "<x>" & more`, Code: "invalid"},
			want: xml.Header + `<problem xmlns="urn:ietf:rfc:7807">` +
				`<type>about:blank</type><title>Bad Request</title><status>400</status>` +
				`<detail>to[0].email_address: &#34;&lt;x&gt;&#34; &amp; more</detail><code>invalid</code></problem>`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := encodeProblemXML(tt.problem)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.want {
				t.Fatalf("got  %s\nwant %s", out, tt.want)
			}
			var parsed struct {
				XMLName xml.Name
				Detail  string `xml:"detail"`
				Status  int    `xml:"status"`
			}
			if err := xml.Unmarshal(out, &parsed); err != nil {
				t.Fatalf("not well-formed: %v", err)
			}
			if parsed.XMLName.Space != nsProblem || parsed.XMLName.Local != "problem" {
				t.Errorf("root is %v", parsed.XMLName)
			}
			if parsed.Detail != tt.problem.Detail || parsed.Status != tt.problem.Status {
				t.Errorf("parsed back detail %q status %d", parsed.Detail, parsed.Status)
			}
		})
	}
}
