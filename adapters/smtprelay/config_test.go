package smtprelay_test

import (
	"strings"
	"testing"

	"github.com/mailgate/mailgate/adapters/smtprelay"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		raw  string
		want smtprelay.Config
		addr string
	}{
		{"smtp://relay.example.com", smtprelay.Config{Host: "relay.example.com"}, "relay.example.com:25"},
		{"smtp://relay.example.com:587", smtprelay.Config{Host: "relay.example.com", Port: "587"}, "relay.example.com:587"},
		{"smtp://relay.example.com:2525/", smtprelay.Config{Host: "relay.example.com", Port: "2525"}, "relay.example.com:2525"},
		{"smtps://relay.example.com", smtprelay.Config{Host: "relay.example.com", ImplicitTLS: true}, "relay.example.com:465"},
		{"SMTPS://relay.example.com:4650", smtprelay.Config{Host: "relay.example.com", Port: "4650", ImplicitTLS: true}, "relay.example.com:4650"},
		{"smtp://relay.example.com?tls=required", smtprelay.Config{Host: "relay.example.com", TLSMode: smtprelay.TLSRequired}, "relay.example.com:25"},
		{"smtp://relay.example.com?tls=NONE", smtprelay.Config{Host: "relay.example.com", TLSMode: smtprelay.TLSNone}, "relay.example.com:25"},
		{"smtp://relay.example.com?tls=opportunistic", smtprelay.Config{Host: "relay.example.com"}, "relay.example.com:25"},
		{"smtps://relay.example.com?tls=required", smtprelay.Config{Host: "relay.example.com", ImplicitTLS: true, TLSMode: smtprelay.TLSRequired}, "relay.example.com:465"},
		{
			"smtp://user%40example.com:p%40ss%3Aw%2Frd%20%25@relay.example.com:587?tls=required",
			smtprelay.Config{Host: "relay.example.com", Port: "587", Username: "user@example.com", Password: "p@ss:w/rd %", TLSMode: smtprelay.TLSRequired},
			"relay.example.com:587",
		},
		{"smtp://apikey@relay.example.com", smtprelay.Config{Host: "relay.example.com", Username: "apikey"}, "relay.example.com:25"},
		{"smtp://[::1]:2525", smtprelay.Config{Host: "::1", Port: "2525"}, "[::1]:2525"},
		{"smtp://relay.example.com?helo=mail.example.org", smtprelay.Config{Host: "relay.example.com", HeloName: "mail.example.org"}, "relay.example.com:25"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := smtprelay.ParseURL(tt.raw)
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if got.Addr() != tt.addr {
				t.Errorf("Addr() = %q, want %q", got.Addr(), tt.addr)
			}
		})
	}
}

func TestParseURLRejects(t *testing.T) {
	tests := map[string]string{
		"http://relay.example.com":                       "scheme",
		"relay.example.com:25":                           "scheme",
		"smtp:relay.example.com":                         "host",
		"smtp://":                                        "host",
		"smtp://:25":                                     "host",
		"smtp://relay.example.com:smtp":                  "port",
		"smtp://relay.example.com:0":                     "port",
		"smtp://relay.example.com:70000":                 "port",
		"smtp://relay.example.com:":                      "port",
		"smtp://relay.example.com/path":                  "path",
		"smtp://relay.example.com?tls=maybe":             "tls",
		"smtps://relay.example.com?tls=none":             "tls=none",
		"smtp://relay.example.com?tls=none&tls=required": "tls",
		"smtp://relay.example.com?tsl=none":              "unknown",
		"smtp://:secret@relay.example.com":               "user name",
		"smtp://relay.example.com?helo=a%20b":            "helo",
		"smtp://us er:pw@relay.example.com":              "malformed",
	}
	for raw, wantInError := range tests {
		t.Run(raw, func(t *testing.T) {
			cfg, err := smtprelay.ParseURL(raw)
			if err == nil {
				t.Fatalf("ParseURL succeeded: %+v", cfg)
			}
			if !strings.Contains(err.Error(), wantInError) {
				t.Errorf("error %q does not mention %q", err, wantInError)
			}
		})
	}
}

func TestParseURLErrorHidesPassword(t *testing.T) {
	_, err := smtprelay.ParseURL("smtp://user:hunter2@relay.example.com:badport")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %v, want one without the password", err)
	}
}

func TestConfigStringHidesPassword(t *testing.T) {
	cfg, err := smtprelay.ParseURL("smtp://user:hunter2@relay.example.com:587?tls=required")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.String()
	if strings.Contains(s, "hunter2") || !strings.Contains(s, "user@relay.example.com:587") || !strings.Contains(s, "tls=required") {
		t.Errorf("String() = %q", s)
	}
}

func TestTLSModeString(t *testing.T) {
	for mode, want := range map[smtprelay.TLSMode]string{
		smtprelay.TLSOpportunistic: "opportunistic",
		smtprelay.TLSRequired:      "required",
		smtprelay.TLSNone:          "none",
		smtprelay.TLSMode(9):       "TLSMode(9)",
	} {
		if got := mode.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(mode), got, want)
		}
	}
}
