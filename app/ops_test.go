package app

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

func (g *gateway) admin(t *testing.T, path string, header map[string]string) response {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+g.app.AdminAddr()+path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: buf.Bytes()}
}

// TestMetricsCoverDashboardAndAlerts scrapes a gateway that has done some
// work: the exposition passes promlint, and every metric the Grafana
// dashboard and the alert rules use is exposed.
func TestMetricsCoverDashboardAndAlerts(t *testing.T) {
	t.Parallel()
	// One recipient is deferred once (451) before it is delivered, so the
	// failure-side series are exposed too.
	g := startGateway(t, smtptest.Options{Rcpt: func(rcpt string, attempt int) *smtp.SMTPError {
		if strings.HasPrefix(rcpt, "later@") && attempt == 1 {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
		}
		return nil
	}})
	v := g.send(t, map[string]any{"send": true, "subject": "metrics", "to": rcpts("ada@example.net", "later@example.net")})
	g.waitForState(t, v.ID, "sent")
	res := g.admin(t, "/metrics", nil)
	if res.status != 200 {
		t.Fatalf("/metrics: %d", res.status)
	}
	problems, err := promlint.New(bytes.NewReader(res.body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "mailgate_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
	exposed := map[string]bool{}
	for _, line := range strings.Split(string(res.body), "\n") {
		if name, _, ok := strings.Cut(line, " "); ok && !strings.HasPrefix(line, "#") {
			name, _, _ = strings.Cut(name, "{")
			exposed[name] = true
		}
	}
	used, err := os.Open("../deploy/check/testdata/metrics-used.txt")
	if err != nil {
		t.Fatalf("the deploy checks list the metrics the dashboard uses: %v", err)
	}
	defer used.Close()
	scanner := bufio.NewScanner(used)
	n := 0
	for scanner.Scan() {
		name := strings.TrimSpace(scanner.Text())
		if name == "" {
			continue
		}
		n++
		if !exposed[name] {
			t.Errorf("the dashboard or an alert uses %s, which the gateway does not expose", name)
		}
	}
	if n == 0 {
		t.Fatal("metrics-used.txt is empty")
	}
	if !exposed["mailgate_event_feed_lag_seconds"] {
		t.Error("missing mailgate_event_feed_lag_seconds")
	}
	build := currentBuild()
	for _, want := range []string{fmt.Sprintf(`mailgate_build_info{commit=%q,go_version=%q,version=%q} 1`, build.Commit, build.GoVersion, build.Version),
		`mailgate_messages_accepted_total{tenant="` + g.tenant.ID.String() + `"} 1`, `mailgate_deliveries_total{outcome="sent",tenant="` + g.tenant.ID.String() + `"} 2`, `mailgate_smtp_deferrals_total{code="451"} 1`,
		"\nmailgate_event_feed_stats_up 1\n"} {
		if !bytes.Contains(res.body, []byte(want)) {
			t.Errorf("missing %s", want)
		}
	}
}

func TestRiverUINeedsOperator(t *testing.T) {
	t.Parallel()
	g := startGatewayWith(t, RoleAll, smtptest.Options{}, func(c *Config) { c.RiverUIUsername, c.RiverUIPassword = "ops", "s3cret-password" })
	admin, _ := g.auth.Issue(uuid.New(), time.Hour, true)
	cases := []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"NoCredentials", nil, 401},
		{"TenantToken", map[string]string{"Authorization": "Bearer " + g.token}, 401},
		{"WrongPassword", map[string]string{"Authorization": "Basic b3BzOm5vcGU="}, 401},
		{"AdminToken", map[string]string{"Authorization": "Bearer " + admin}, 200},
		{"BasicAuth", map[string]string{"Authorization": "Basic b3BzOnMzY3JldC1wYXNzd29yZA=="}, 200},
	}
	for _, tc := range cases {
		if res := g.admin(t, "/admin/river/", tc.header); res.status != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, res.status, tc.want)
		}
	}
	if res := g.admin(t, "/debug/pprof/", nil); res.status != 401 {
		t.Errorf("pprof is open: %d", res.status)
	}
}

func TestHealthAndRequestID(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	if res := g.do(t, "GET", "/healthz", "", "", nil); res.status != 200 {
		t.Fatalf("/healthz: %d", res.status)
	}
	if res := g.do(t, "GET", "/readyz", "", "", nil); res.status != 200 {
		t.Fatalf("/readyz: %d %s", res.status, res.body)
	}
	req, _ := http.NewRequest("GET", g.base+"/healthz", nil)
	req.Header.Set("X-Request-ID", "trace-123")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Header.Get("X-Request-ID") != "trace-123" {
		t.Fatalf("request id not echoed: %q", res.Header.Get("X-Request-ID"))
	}
	// A schema behind the binary makes the gateway unready.
	if _, err := g.owner.Exec(t.Context(), `DELETE FROM goose_db_version WHERE version_id = (SELECT max(version_id) FROM goose_db_version)`); err != nil {
		t.Fatal(err)
	}
	if res := g.do(t, "GET", "/readyz", "", "", nil); res.status != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with an old schema: %d", res.status)
	}
}

// TestShutdownLetsDeliveriesFinish stops the gateway while a slow relay is
// still reading a message: the delivery completes within the grace period.
func TestShutdownLetsDeliveriesFinish(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{Data: func(int) *smtp.SMTPError {
		time.Sleep(time.Second)
		return nil
	}})
	v := g.send(t, map[string]any{"send": true, "subject": "slow", "to": rcpts("ada@example.net")})
	deadline := time.Now().Add(10 * time.Second)
	for g.relay.DataAttempts() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := g.app.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	var state string
	if err := g.owner.QueryRow(context.Background(), `SELECT state FROM messages WHERE id = $1`, v.ID).Scan(&state); err != nil || state != "sent" {
		t.Fatalf("after shutdown the message is %q (%v)", state, err)
	}
}
