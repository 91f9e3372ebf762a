package app

import (
	"testing"
	"time"
)

func TestLoadConfigDeliveryTimeouts(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(envOf(nil))
	if err != nil || cfg.SMTPTimeout != 30*time.Second || cfg.SMTPDataTimeout != 10*time.Minute || cfg.DeliveryTimeout != 15*time.Minute {
		t.Fatalf("defaults: step %s, data %s, delivery %s, %v", cfg.SMTPTimeout, cfg.SMTPDataTimeout, cfg.DeliveryTimeout, err)
	}
	if cfg.TenantMaxDeliveries != 0 {
		t.Fatalf("the per-tenant cap is off by default, got %d", cfg.TenantMaxDeliveries)
	}
	cfg, err = LoadConfig(envOf(map[string]string{"MAILGATE_SMTP_TIMEOUT": "3s", "MAILGATE_SMTP_DATA_TIMEOUT": "10s", "MAILGATE_WORKERS": "200"}))
	if err != nil || cfg.DeliveryTimeout != 40*time.Second || cfg.Workers != 200 {
		t.Fatalf("derived delivery timeout %s, workers %d, %v", cfg.DeliveryTimeout, cfg.Workers, err)
	}
	cfg, err = LoadConfig(envOf(map[string]string{"MAILGATE_DELIVERY_TIMEOUT": "20m", "MAILGATE_TENANT_MAX_DELIVERIES": "7"}))
	if err != nil || cfg.DeliveryTimeout != 20*time.Minute || cfg.TenantMaxDeliveries != 7 {
		t.Fatalf("set: delivery %s, cap %d, %v", cfg.DeliveryTimeout, cfg.TenantMaxDeliveries, err)
	}
	for _, bad := range []map[string]string{
		// Shorter than the SMTP steps it has to contain.
		{"MAILGATE_DELIVERY_TIMEOUT": "1m"},
		{"MAILGATE_SMTP_TIMEOUT": "0s"},
		{"MAILGATE_SMTP_DATA_TIMEOUT": "later"},
	} {
		if _, err := LoadConfig(envOf(bad)); err == nil {
			t.Errorf("%v was accepted", bad)
		}
	}
}
