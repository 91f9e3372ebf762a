package app

import (
	"testing"
	"time"
)

func TestLoadConfigRequestBounds(t *testing.T) {
	t.Parallel()
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	cfg, err := LoadConfig(env(nil))
	if err != nil || cfg.RequestTimeout != 30*time.Second || cfg.BodyMinRate != 1024 || cfg.BodyGrace != 5*time.Second || cfg.HeaderTimeout != 10*time.Second {
		t.Fatalf("defaults: %s %d %s %s, %v", cfg.RequestTimeout, cfg.BodyMinRate, cfg.BodyGrace, cfg.HeaderTimeout, err)
	}
	cfg, err = LoadConfig(env(map[string]string{"MAILGATE_REQUEST_TIMEOUT": "5s", "MAILGATE_REQUEST_BODY_MIN_RATE": "0",
		"MAILGATE_REQUEST_BODY_GRACE": "2s", "MAILGATE_HTTP_HEADER_TIMEOUT": "3s"}))
	if err != nil || cfg.RequestTimeout != 5*time.Second || cfg.BodyMinRate != 0 || cfg.BodyGrace != 2*time.Second || cfg.HeaderTimeout != 3*time.Second {
		t.Fatalf("set: %s %d %s %s, %v", cfg.RequestTimeout, cfg.BodyMinRate, cfg.BodyGrace, cfg.HeaderTimeout, err)
	}
	for _, bad := range []map[string]string{
		{"MAILGATE_REQUEST_TIMEOUT": "0s"},
		{"MAILGATE_REQUEST_TIMEOUT": "soon"},
		{"MAILGATE_REQUEST_BODY_MIN_RATE": "-1"},
		{"MAILGATE_REQUEST_BODY_MIN_RATE": "fast"},
		{"MAILGATE_REQUEST_BODY_GRACE": "-2s"},
		{"MAILGATE_HTTP_HEADER_TIMEOUT": "0"},
	} {
		if _, err := LoadConfig(env(bad)); err == nil {
			t.Errorf("%v was accepted", bad)
		}
	}
}
