package wire

import (
	"fmt"
	"strings"
	"testing"
)

// Every spelling of a server-owned member that the full check refuses gets
// past the filter to it, and a body without one skips the full check.
func TestServerOwnedFilterLetsEverySpellingThrough(t *testing.T) {
	for name := range serverOwned {
		escaped := fmt.Sprintf(`\u%04x`, name[0]) + name[1:]
		for _, key := range []string{name, strings.ToUpper(name), pascalCase(name), escaped} {
			body := []byte(`{"subject":"hi","` + key + `":"x"}`)
			if !mayNameServerOwned(body) {
				t.Errorf("filter let %s pass without the full check", body)
			}
			if err := checkServerOwnedJSON(body); err == nil {
				t.Errorf("%s was not refused", body)
			}
		}
	}
	for name := range serverOwnedRecipient {
		body := `{"to":[{"email_address":"a@b.example","` + strings.ToUpper(name) + `":1}]}`
		if err := checkServerOwnedJSON([]byte(body)); err == nil {
			t.Errorf("recipient member %s was not refused: %s", name, body)
		}
	}
	plain := []byte(`{"sender_email":"a@b.example","subject":"Hello","body":"All work and no play","to":[{"email_address":"c@d.example"}],"send":true}`)
	if mayNameServerOwned(plain) {
		t.Error("a plain compose body goes through the full check")
	}
}

// The filter never skips a body the full check would refuse.
func FuzzServerOwnedFilter(f *testing.F) {
	for _, seed := range []string{
		`{"state":"sent"}`, `{"State":1}`, `{"IN_REPLY_TO":""}`, `{"inReplyTo":""}`, `{"\u0073tate":"x"}`,
		`{"to":[{"Possible_Duplicate":true}]}`, `{"cc":[{"inflightsince":0}]}`, `{"subject":"state"}`,
		`{"body":"a\"b","bcc":[{"LastCode":1}]}`, `{"to":[{"email_address":"x@y"}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if findServerOwnedJSON(data) != nil && !mayNameServerOwned(data) {
			t.Fatalf("the filter skips %q, which the full check refuses", data)
		}
	})
}

// pascalCase spells a snake_case name as .NET clients do (in_reply_to: InReplyTo).
func pascalCase(name string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(name, "_") {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}
