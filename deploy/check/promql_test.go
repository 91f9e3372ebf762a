package check

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

var update = flag.Bool("update", false, "rewrite testdata/metrics-used.txt")

var (
	dashboardPath   = filepath.Join(chartDir, "dashboards", "mailgate.json")
	metricsUsedPath = filepath.Join("testdata", "metrics-used.txt")
)

// knownFamilies are the metric families the gateway exposes (see the issue
// that introduced the chart); a name outside them is a typo or a metric
// that has to be added to the gateway first. The main module's test checks
// testdata/metrics-used.txt against the running gateway's /metrics.
var knownFamilies = []string{
	"mailgate_build_info",
	"mailgate_http_requests_total",
	"mailgate_http_request_duration_seconds",
	"mailgate_deliveries_total",
	"mailgate_delivery_latency_seconds",
	"mailgate_queue_jobs",
	"mailgate_queue_oldest_job_age_seconds",
	"mailgate_workers_running",
	"mailgate_webhook_deliveries_total",
	"mailgate_smtp_replies_total",
	"mailgate_smtp_deferrals_total",
	"mailgate_messages_accepted_total",
	"mailgate_pending_messages",
	"mailgate_oldest_pending_message_age_seconds",
	"mailgate_event_feed_lag_seconds",
	"mailgate_queue_stats_up",
	"mailgate_pending_messages_stats_up",
	"mailgate_event_feed_stats_up",
	"mailgate_inbound_smtp_total",
	"mailgate_dsn_recipients_total",
	"mailgate_complaints_total",
	"mailgate_bounced_after_delivery_total",
}

// grafanaVar matches Grafana's variable syntaxes: $name, ${name},
// ${name:format} and [[name]].
var grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::[\w-]+)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// substitute turns a Grafana query into PromQL: the interval variables
// become 5m, any other variable a plain word.
func substitute(expr string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		name := strings.Trim(m, "${}[]")
		name, _, _ = strings.Cut(name, ":")
		switch name {
		case "__rate_interval", "__interval", "__range":
			return "5m"
		case "__interval_ms", "__range_ms", "__range_s":
			return "300"
		}
		return "placeholder"
	})
}

var promqlParser = parser.NewParser(parser.Options{})

// metricsIn parses expr and returns the metric names it selects. Every
// range must be 5m (that is, $__rate_interval after substitution) when
// wantRange is set.
func metricsIn(expr string, wantRange time.Duration) ([]string, error) {
	ast, err := promqlParser.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	var problems []string
	parser.Inspect(ast, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			name := n.Name
			for _, m := range n.LabelMatchers {
				if m.Name == labels.MetricName {
					if m.Type != labels.MatchEqual {
						problems = append(problems, "a regular expression on __name__ hides which metrics are used")
					}
					name = m.Value
				}
			}
			if name == "" {
				problems = append(problems, "a selector without a metric name")
			}
			names = append(names, name)
		case *parser.MatrixSelector:
			if wantRange != 0 && n.Range != wantRange {
				problems = append(problems, fmt.Sprintf("range %s: use $__rate_interval", n.Range))
			}
		case *parser.SubqueryExpr:
			problems = append(problems, "a subquery")
		}
		return nil
	})
	if len(problems) > 0 {
		return names, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return names, nil
}

// The dashboard's JSON, as far as the checks read it.
type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Editable   *bool   `json:"editable"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasourceRef  `json:"datasource"`
			Multi      bool            `json:"multi"`
			IncludeAll bool            `json:"includeAll"`
		} `json:"list"`
	} `json:"templating"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID          int                      `json:"id"`
	Type        string                   `json:"type"`
	Title       string                   `json:"title"`
	Description string                   `json:"description"`
	Datasource  *datasourceRef           `json:"datasource"`
	GridPos     struct{ H, W, X, Y int } `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(readFile(t, dashboardPath), &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

func flatPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatPanels(p.Panels)...)
	}
	return out
}

var rangeInBrackets = regexp.MustCompile(`\[([^\]]*)\]`)

func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard needs a uid and a title")
	}
	var dsVar bool
	for _, v := range d.Templating.List {
		if v.Name == "datasource" {
			var q string
			_ = json.Unmarshal(v.Query, &q)
			dsVar = v.Type == "datasource" && q == "prometheus"
		}
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("variable %s does not query the $datasource", v.Name)
		}
	}
	if !dsVar {
		t.Error("no template variable `datasource` of type datasource querying prometheus")
	}
	wantRows := []string{"API", "Deliveries", "Queue", "Workers", "Webhooks", "Top tenants"}
	var rows []string
	ids := map[int]bool{}
	for _, p := range flatPanels(d.Panels) {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			rows = append(rows, p.Title)
			continue
		}
		where := fmt.Sprintf("panel %q", p.Title)
		if p.Description == "" {
			t.Errorf("%s: no description", where)
		}
		if p.FieldConfig.Defaults.Unit == "" {
			t.Errorf("%s: no unit", where)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: datasource %+v, want uid ${datasource}", where, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no queries", where)
		}
		if p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("%s: gridPos %+v", where, p.GridPos)
		}
		for _, tg := range p.Targets {
			if tg.Datasource != nil && tg.Datasource.UID != "${datasource}" {
				t.Errorf("%s query %s: datasource %+v", where, tg.RefID, tg.Datasource)
			}
			for _, m := range rangeInBrackets.FindAllStringSubmatch(tg.Expr, -1) {
				if m[1] != "$__rate_interval" {
					t.Errorf("%s query %s: range [%s]: use [$__rate_interval]", where, tg.RefID, m[1])
				}
			}
			if _, err := metricsIn(substitute(tg.Expr), 5*time.Minute); err != nil {
				t.Errorf("%s query %s: %v\n%s", where, tg.RefID, err, tg.Expr)
			}
		}
	}
	for _, want := range wantRows {
		if !slices.ContainsFunc(rows, func(r string) bool { return strings.HasPrefix(r, want) }) {
			t.Errorf("no row %q (rows: %q)", want, rows)
		}
	}
}

// TestDashboardLinterRules applies grafana/dashboard-linter's rules, in a
// test because its binary is not served by the module proxy as a release:
// template-job-rule and template-instance-rule (multi-value, all-including
// job and instance variables on the datasource), target-job-rule and
// target-instance-rule (every selector of every query filters by them, so
// two releases in one namespace never merge and a pod can be picked out),
// plus editable false for the provisioned copy and a 5xx ratio that reads
// 0, not "No data", when nothing failed.
func TestDashboardLinterRules(t *testing.T) {
	d := loadDashboard(t)
	if d.Editable == nil || *d.Editable {
		t.Error("editable must be false: the provisioned dashboard is overwritten on every sync")
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			vars[v.Name] = v.Multi && v.IncludeAll && v.Datasource != nil && v.Datasource.UID == "${datasource}"
		}
	}
	for _, name := range []string{"job", "instance"} {
		if !vars[name] {
			t.Errorf("template-%s-rule: no multi-value, all-including %s variable on $datasource", name, name)
		}
	}
	for _, p := range flatPanels(d.Panels) {
		for _, tg := range p.Targets {
			expr, err := promqlParser.ParseExpr(strings.ReplaceAll(tg.Expr, "$__rate_interval", "5m"))
			if err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
				continue
			}
			parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
				sel, ok := node.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				for _, name := range []string{"job", "instance"} {
					if !slices.ContainsFunc(sel.LabelMatchers, func(m *labels.Matcher) bool {
						return m.Name == name && m.Type == labels.MatchRegexp && m.Value == "$"+name
					}) {
						t.Errorf("target-%s-rule: panel %q selects %s without %s=~\"$%s\"", name, p.Title, sel.Name, name, name)
					}
				}
				return nil
			})
			if p.Title == "5xx error ratio" && !strings.Contains(tg.Expr, "or vector(0)") {
				t.Errorf("panel %q shows no data when nothing failed: %s", p.Title, tg.Expr)
			}
		}
	}
}

// TestMetricsUsed parses every PromQL expression of the dashboard and the
// PrometheusRule and keeps the metric names in testdata/metrics-used.txt.
func TestMetricsUsed(t *testing.T) {
	used := map[string]bool{}
	add := func(where, expr string, wantRange time.Duration) {
		names, err := metricsIn(expr, wantRange)
		if err != nil {
			t.Errorf("%s: %v\n%s", where, err, expr)
		}
		for _, n := range names {
			used[n] = true
		}
	}

	d := loadDashboard(t)
	for _, p := range flatPanels(d.Panels) {
		for _, tg := range p.Targets {
			add(fmt.Sprintf("dashboard panel %q query %s", p.Title, tg.RefID), substitute(tg.Expr), 5*time.Minute)
		}
	}
	labelValues := regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*,\s*\w+\s*\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			_ = json.Unmarshal(v.Query, &q.Query)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(metric, label)", v.Name, q.Query)
			continue
		}
		used[m[1]] = true
	}

	r := renderChart(t, valuesFile(t, "all-features.yaml"))
	rules := r.ofKind("PrometheusRule")
	if len(rules) != 1 {
		t.Fatalf("%d PrometheusRules rendered with all features, want 1", len(rules))
	}
	pr := rules[0].Obj.(*monitoringv1.PrometheusRule)
	wantAlerts := map[string]bool{
		"MailgateAPIHighErrorRatio": false, "MailgateDeliveryFailureRatio": false,
		"MailgateQueueOldestJobTooOld": false, "MailgateQueueBacklog": false, "MailgateNoRunningWorkers": false,
		"MailgateNoSuccessfulDelivery": false, "MailgateDeliveryDeferralRatioHigh": false,
		"MailgateOldestPendingMessageTooOld": false, "MailgateWebhookFailureRatio": false,
		"MailgateEventFeedLagHigh": false,
	}
	for _, g := range pr.Spec.Groups {
		for _, rule := range g.Rules {
			where := "rule " + rule.Alert + rule.Record
			add(where, rule.Expr.String(), 0)
			if rule.Alert == "" {
				continue
			}
			if _, ok := wantAlerts[rule.Alert]; ok {
				wantAlerts[rule.Alert] = true
			}
			if rule.Labels["severity"] == "" || rule.Annotations["summary"] == "" || rule.Annotations["description"] == "" || rule.Annotations["runbook_url"] == "" {
				t.Errorf("%s: wants a severity label and summary, description and runbook_url annotations", where)
			}
			if rule.For == nil || *rule.For == "" {
				t.Errorf("%s: no `for`: one bad scrape would page", where)
			}
			if !strings.Contains(rule.Expr.String(), `namespace="`+namespace+`"`) {
				t.Errorf("%s: not scoped to the release's metrics", where)
			}
		}
	}
	for a, ok := range wantAlerts {
		if !ok {
			t.Errorf("no alert %s", a)
		}
	}

	var names []string
	for n := range used {
		family := n
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if f, ok := strings.CutSuffix(n, suffix); ok && slices.Contains(knownFamilies, f) {
				family = f
			}
		}
		if !slices.Contains(knownFamilies, family) {
			t.Errorf("metric %s is not one the gateway exposes (knownFamilies)", n)
		}
		names = append(names, n)
	}
	slices.Sort(names)
	want := strings.Join(names, "\n") + "\n"
	if *update {
		if err := os.WriteFile(metricsUsedPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(metricsUsedPath)
	if err != nil || string(got) != want {
		t.Errorf("%s is stale: run `go test ./... -run TestMetricsUsed -update` in deploy/check.\nwant:\n%s\ngot:\n%s", metricsUsedPath, want, got)
	}
}

func TestSubstitute(t *testing.T) {
	for in, want := range map[string]string{
		`rate(x{a=~"$namespace"}[$__rate_interval])`:    `rate(x{a=~"placeholder"}[5m])`,
		`rate(x{a=~"${namespace:regex}"}[$__interval])`: `rate(x{a=~"placeholder"}[5m])`,
		`x{a="[[pod]]"}`: `x{a="placeholder"}`,
	} {
		if got := substitute(in); got != want {
			t.Errorf("substitute(%q) = %q, want %q", in, got, want)
		}
	}
	if _, err := metricsIn(`rate(x[1h])`, 5*time.Minute); err == nil {
		t.Error("a fixed range passed the $__rate_interval check")
	}
	if _, err := metricsIn(`sum(rate(x[5m]`, 0); err == nil {
		t.Error("a broken expression parsed")
	}
}
