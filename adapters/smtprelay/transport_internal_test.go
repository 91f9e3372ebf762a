package smtprelay

import (
	"strings"
	"testing"
)

func TestAuthenticateRefusesPasswordInClear(t *testing.T) {
	for _, mode := range []TLSMode{TLSOpportunistic, TLSRequired} {
		transport := NewTransport(Config{Host: "relay.example.com", Username: "u", Password: "p", TLSMode: mode})
		// The refusal comes before the client is used, so none is needed.
		err := transport.authenticate(nil, false)
		if err == nil || !strings.Contains(err.Error(), "unencrypted") {
			t.Errorf("%v: authenticate = %v, want a refusal", mode, err)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost":         true,
		"LOCALHOST":         true,
		"127.0.0.1":         true,
		"127.8.9.10":        true,
		"::1":               true,
		"relay.example.com": false,
		"10.0.0.1":          false,
		"localhost.evil":    false,
	} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestParseExtensions(t *testing.T) {
	ext := parseExtensions("mx.example.com greets you\nPIPELINING\nstarttls\nAUTH PLAIN LOGIN\nSIZE  1000 ")
	if _, ok := ext["STARTTLS"]; !ok || ext["AUTH"] != "PLAIN LOGIN" || ext["SIZE"] != "1000" {
		t.Errorf("parseExtensions = %q", ext)
	}
	if _, ok := parseExtensions("STARTTLS.example.com")["STARTTLS.EXAMPLE.COM"]; ok {
		t.Error("the first line, the server name, was read as an extension")
	}
}

func TestSanitizeForFileName(t *testing.T) {
	tests := map[string]string{
		"<abc-123.x@example.com>":              "abc-123.x@example.com",
		"<../../etc/passwd@x>":                 ".._.._etc_passwd@x",
		`<a\b:c*d?e"f|g@h>`:                    "a_b_c_d_e_f_g@h",
		"<é@example.com>":                      "_@example.com",
		"":                                     "",
		"<" + strings.Repeat("x", 200) + "@y>": strings.Repeat("x", maxIDInName),
	}
	for in, want := range tests {
		if got := sanitizeForFileName(in); got != want {
			t.Errorf("sanitizeForFileName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReplyText(t *testing.T) {
	tests := map[string]string{
		"first\nsecond\n":                       "first second",
		"5.1.1 No such user\n5.1.1 Try another": "5.1.1 No such user Try another",
		"2.0.0 OK\n":                            "2.0.0 OK",
		"1.2.3 not a status code\n1.2.3 x":      "1.2.3 not a status code 1.2.3 x",
	}
	for in, want := range tests {
		if got := replyText(in); got != want {
			t.Errorf("replyText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTooManyRecipients(t *testing.T) {
	if code, text := tooManyRecipients(552, "5.5.3 Too many recipients"); code != 452 || !strings.Contains(text, "5.5.3 Too many recipients") {
		t.Errorf("552 5.5.3 = %d %q, want 452", code, text)
	}
	if code, _ := tooManyRecipients(552, "5.2.2 Mailbox full"); code != 552 {
		t.Errorf("552 5.2.2 = %d, want it kept", code)
	}
}
