package app

import (
	"testing"
	"time"
)

func TestLoadConfigDrainDelay(t *testing.T) {
	t.Parallel()
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	for value, want := range map[string]time.Duration{"": 5 * time.Second, "0": 0, "12s": 12 * time.Second} {
		cfg, err := LoadConfig(env(map[string]string{"MAILGATE_DRAIN_DELAY": value}))
		if err != nil || cfg.DrainDelay != want {
			t.Errorf("MAILGATE_DRAIN_DELAY=%q: %s, %v; want %s", value, cfg.DrainDelay, err, want)
		}
	}
	for _, bad := range []string{"-1s", "soon", "5"} {
		if _, err := LoadConfig(env(map[string]string{"MAILGATE_DRAIN_DELAY": bad})); err == nil {
			t.Errorf("MAILGATE_DRAIN_DELAY=%q was accepted", bad)
		}
	}
}
