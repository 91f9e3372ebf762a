package app

import (
	"testing"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

// TestPoolGrowsWithWorkersOnlyWhereTheyRun: a process running 200 workers
// keeps up to 36 database connections, an API-only one 16, whatever
// MAILGATE_WORKERS says (four API replicas sized for workers held 144 of a
// default server's 100).
func TestPoolGrowsWithWorkersOnlyWhereTheyRun(t *testing.T) {
	t.Parallel()
	for role, want := range map[string]int32{RoleAPI: 16, RoleWorker: 36} {
		g := startGatewayWith(t, role, smtptest.Options{}, func(cfg *Config) { cfg.Workers = 200 })
		if got := g.app.pool.Config().MaxConns; got != want {
			t.Errorf("role %s with 200 workers: pool of %d connections, want %d", role, got, want)
		}
	}
}
