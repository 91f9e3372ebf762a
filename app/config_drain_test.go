package app

import (
	"testing"
	"time"
)

func TestLoadConfigDrainDelay(t *testing.T) {
	t.Parallel()
	for value, want := range map[string]time.Duration{"": 5 * time.Second, "0": 0, "12s": 12 * time.Second} {
		cfg, err := LoadConfig(envOf(map[string]string{"MAILGATE_DRAIN_DELAY": value}))
		if err != nil || cfg.DrainDelay != want {
			t.Errorf("MAILGATE_DRAIN_DELAY=%q: %s, %v; want %s", value, cfg.DrainDelay, err, want)
		}
	}
	for _, bad := range []string{"-1s", "soon", "5"} {
		if _, err := LoadConfig(envOf(map[string]string{"MAILGATE_DRAIN_DELAY": bad})); err == nil {
			t.Errorf("MAILGATE_DRAIN_DELAY=%q was accepted", bad)
		}
	}
}

// envOf is a getenv over vars, for LoadConfig.
func envOf(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}
