package app

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

// TestMetricSeriesStayBoundedUnderHostileRequests: invented methods, random
// paths and the tokens of unknown and many real tenants don't grow the
// gateway's series; a second hostile round with fresh values adds none, and
// every label value comes from a closed set.
func TestMetricSeriesStayBoundedUnderHostileRequests(t *testing.T) {
	t.Parallel()
	const tenantLabels = 3
	g := startGatewayWith(t, RoleAPI, smtptest.Options{}, func(c *Config) { c.MetricsTenantLabels = tenantLabels; c.RateLimit = 0 })
	ctx := context.Background()
	hostileRound := func(round int) {
		for i := range 100 {
			method := fmt.Sprintf("BREW%d-%d", round, i)
			for _, path := range []string{"/api/messages", fmt.Sprintf("/nowhere/%d/%d", round, i), "/healthz"} {
				if res := g.do(t, method, path, "", g.token, nil); res.status < 400 {
					t.Fatalf("%s %s: %d", method, path, res.status)
				}
			}
			g.do(t, http.MethodGet, fmt.Sprintf("/api/messages/%s/zz%d", uuid.NewString(), i), "", g.token, nil)
			g.do(t, http.MethodGet, "/api/messages", "", g.issue(t, uuid.New()), nil)
		}
		// Real tenants, more than get a label of their own, each accepting a message.
		for i := range 2 * tenantLabels {
			domainName := fmt.Sprintf("r%d-%d-%s", round, i, g.domain)
			tn, err := g.app.Store().CreateTenant(ctx, "hostile "+domainName, []string{domainName})
			if err != nil {
				t.Fatal(err)
			}
			body := mustJSON(map[string]any{"sender_email": "noreply@" + domainName, "subject": "s", "body": "b", "send": false,
				"to": []map[string]string{{"email_address": "ada@example.net"}}})
			if res := g.do(t, http.MethodPost, "/api/messages/sendmessage", "application/json", g.issue(t, tn.ID), body); res.status != http.StatusCreated {
				t.Fatalf("tenant %d: %d %s", i, res.status, res.body)
			}
		}
	}
	series := func() (int, map[string]map[string]bool) {
		families, err := g.app.metrics.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		n, values := 0, map[string]map[string]bool{}
		for _, f := range families {
			if !strings.HasPrefix(f.GetName(), "mailgate_http_") && f.GetName() != "mailgate_messages_accepted_total" {
				continue
			}
			n += len(f.GetMetric())
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if values[l.GetName()] == nil {
						values[l.GetName()] = map[string]bool{}
					}
					values[l.GetName()][l.GetValue()] = true
				}
			}
		}
		return n, values
	}

	hostileRound(1)
	after1, _ := series()
	hostileRound(2)
	after2, values := series()
	if after2 != after1 {
		t.Errorf("a second hostile round grew the series from %d to %d", after1, after2)
	}
	for method := range values["method"] {
		switch method {
		case "GET", "POST", "other":
		default:
			t.Errorf("method label %q is not from the closed set", method)
		}
	}
	if !values["method"]["other"] {
		t.Error("invented methods are not counted as other")
	}
	for route := range values["route"] {
		if route != "unmatched" && !strings.HasPrefix(route, "/") {
			t.Errorf("route label %q is not a route template", route)
		}
		if strings.Contains(route, "nowhere") || strings.Contains(route, "zz") {
			t.Errorf("route label %q comes from a request path", route)
		}
	}
	if n := len(values["tenant"]); n > tenantLabels+2 { // the labelled ones, other and all
		t.Errorf("%d tenant label values for a limit of %d: %v", n, tenantLabels, values["tenant"])
	}
	if after2 > 60 {
		t.Errorf("%d series after the hostile rounds; want a small bounded number", after2)
	}
}
