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

func TestHasExtension(t *testing.T) {
	ehlo := "mx.example.com greets you\nPIPELINING\nstarttls\nAUTH PLAIN LOGIN"
	if !hasExtension(ehlo, "STARTTLS") || !hasExtension(ehlo, "AUTH") {
		t.Error("listed extensions not found")
	}
	if hasExtension(ehlo, "SIZE") || hasExtension("STARTTLS.example.com", "STARTTLS") {
		t.Error("found an extension that is not listed (the first line is the server name)")
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

func TestOneLine(t *testing.T) {
	if got := oneLine("first\nsecond\n"); got != "first second" {
		t.Errorf("oneLine = %q", got)
	}
}
