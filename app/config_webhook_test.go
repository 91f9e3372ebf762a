package app

import (
	"testing"
	"time"
)

func TestLoadConfigWebhookIsolation(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(envOf(nil))
	if err != nil || cfg.WebhookTimeout != 5*time.Second || cfg.WebhookMaxEndpoints != 10 {
		t.Fatalf("defaults: timeout %s, max endpoints %d, %v", cfg.WebhookTimeout, cfg.WebhookMaxEndpoints, err)
	}
	cfg, err = LoadConfig(envOf(map[string]string{"MAILGATE_WEBHOOK_TIMEOUT": "2500ms", "MAILGATE_WEBHOOK_MAX_ENDPOINTS": "3"}))
	if err != nil || cfg.WebhookTimeout != 2500*time.Millisecond || cfg.WebhookMaxEndpoints != 3 {
		t.Fatalf("set: timeout %s, max endpoints %d, %v", cfg.WebhookTimeout, cfg.WebhookMaxEndpoints, err)
	}
	for _, bad := range []map[string]string{
		{"MAILGATE_WEBHOOK_TIMEOUT": "0s"},
		{"MAILGATE_WEBHOOK_TIMEOUT": "soon"},
		{"MAILGATE_WEBHOOK_MAX_ENDPOINTS": "0"},
		{"MAILGATE_WEBHOOK_MAX_ENDPOINTS": "many"},
	} {
		if _, err := LoadConfig(envOf(bad)); err == nil {
			t.Errorf("%v was accepted", bad)
		}
	}
}
