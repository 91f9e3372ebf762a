package check

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// promtoolVersion is the Prometheus module promtool is built from; `make
// promtool` installs it, and the deploy checks' PromQL parser is the same
// module at the same version (go.mod).
const promtoolVersion = "v0.316.0"

var (
	alertTestsDir = filepath.Join("testdata", "alerts")
	runbooksPath  = filepath.Join("..", "..", "docs", "runbooks.md")
)

// promtool finds the promtool binary: $PROMTOOL, then the PATH.
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMTOOL"); p != "" {
		return p
	}
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not installed, so the alert rules can't be linted or unit-tested: run `make promtool` "+
			"(go install github.com/prometheus/prometheus/cmd/promtool@%s) or set PROMTOOL", promtoolVersion)
	}
	return p
}

// renderedRules is the PrometheusRule the chart renders with every feature on.
func renderedRules(t *testing.T) *monitoringv1.PrometheusRule {
	t.Helper()
	rules := renderChart(t, valuesFile(t, "all-features.yaml")).ofKind("PrometheusRule")
	if len(rules) != 1 {
		t.Fatalf("%d PrometheusRules rendered with all features, want 1", len(rules))
	}
	return rules[0].Obj.(*monitoringv1.PrometheusRule)
}

// writeRuleFile writes the rule groups as a Prometheus rule file.
func writeRuleFile(t *testing.T, path string, spec monitoringv1.PrometheusRuleSpec) {
	t.Helper()
	out, err := yaml.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func runPromtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("promtool %s: %v", strings.Join(args, " "), err)
		}
		t.Errorf("promtool %s failed:\n%s", strings.Join(args, " "), out.String())
	}
}

// TestAlertRulesLint runs `promtool check rules --lint=all` on the rendered
// rules: they load as Prometheus would load them, annotations' templates
// included.
func TestAlertRulesLint(t *testing.T) {
	dir := t.TempDir()
	writeRuleFile(t, filepath.Join(dir, "rules.yaml"), renderedRules(t).Spec)
	runPromtool(t, dir, "check", "rules", "--lint=all", "--lint-fatal", "rules.yaml")
}

// TestAlertRulesFire runs the unit tests in testdata/alerts (`promtool test
// rules`) against the rendered rules: synthetic series for each alert, the
// relay outage among them, each checked to fire within its `for` and not
// before. The annotations are left out of the rules the tests load, so
// that a test states the labels it expects and not every description;
// TestAlertRulesLint checks the full rules and TestAlertRunbooks their links.
func TestAlertRulesFire(t *testing.T) {
	pr := renderedRules(t)
	spec := *pr.Spec.DeepCopy()
	for g := range spec.Groups {
		for r := range spec.Groups[g].Rules {
			spec.Groups[g].Rules[r].Annotations = nil
		}
	}
	dir := t.TempDir()
	writeRuleFile(t, filepath.Join(dir, "rules.yaml"), spec)

	tests, err := filepath.Glob(filepath.Join(alertTestsDir, "*.test.yaml"))
	if err != nil || len(tests) == 0 {
		t.Fatalf("no alert tests in %s (%v)", alertTestsDir, err)
	}
	fires := map[string]bool{}
	var names []string
	for _, path := range tests {
		raw := readFile(t, path)
		var file struct {
			Tests []struct {
				AlertRuleTest []struct {
					Alertname string `json:"alertname"`
					ExpAlerts []any  `json:"exp_alerts"`
				} `json:"alert_rule_test"`
			} `json:"tests"`
		}
		if err := yaml.Unmarshal(raw, &file); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, tc := range file.Tests {
			for _, a := range tc.AlertRuleTest {
				fires[a.Alertname] = fires[a.Alertname] || len(a.ExpAlerts) > 0
			}
		}
		name := filepath.Base(path)
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	for _, g := range pr.Spec.Groups {
		for _, rule := range g.Rules {
			if rule.Alert != "" && !fires[rule.Alert] {
				t.Errorf("alert %s: no test in %s shows it firing", rule.Alert, alertTestsDir)
			}
		}
	}
	runPromtool(t, dir, append([]string{"test", "rules"}, names...)...)
}

// githubAnchor is the fragment GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	heading = strings.ToLower(strings.TrimSpace(heading))
	var b strings.Builder
	for _, r := range heading {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

var markdownHeading = regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*$`)

// TestAlertRunbooks checks that every alert links to a section of
// docs/runbooks.md, and that each section says what the alert means, how
// to confirm it and what to do.
func TestAlertRunbooks(t *testing.T) {
	doc := string(readFile(t, runbooksPath))
	anchors := map[string]string{} // anchor to the section's text
	headings := markdownHeading.FindAllStringSubmatchIndex(doc, -1)
	for i, h := range headings {
		end := len(doc)
		if i+1 < len(headings) {
			end = headings[i+1][0]
		}
		anchors[githubAnchor(doc[h[2]:h[3]])] = doc[h[1]:end]
	}
	base := "https://github.com/mailgate/mailgate/blob/main/docs/runbooks.md#"
	for _, g := range renderedRules(t).Spec.Groups {
		for _, rule := range g.Rules {
			if rule.Alert == "" {
				continue
			}
			where := "alert " + rule.Alert
			url := rule.Annotations["runbook_url"]
			anchor, ok := strings.CutPrefix(url, base)
			if !ok {
				t.Errorf("%s: runbook_url %q is not a section of docs/runbooks.md (%s...)", where, url, base)
				continue
			}
			if anchor != strings.ToLower(rule.Alert) {
				t.Errorf("%s: runbook_url anchor %q, want %q", where, anchor, strings.ToLower(rule.Alert))
			}
			section, ok := anchors[anchor]
			if !ok {
				t.Errorf("%s: docs/runbooks.md has no heading for #%s", where, anchor)
				continue
			}
			for _, part := range []string{"What it means", "How to confirm", "What to do"} {
				if !strings.Contains(section, part) {
					t.Errorf("%s: its runbook section does not say %q", where, part)
				}
			}
		}
	}
}

// databaseWideFamilies are the gauges every replica reads from the database
// alike. Summing them over replicas multiplies them by the pod count, so
// the dashboard and the rules must aggregate them with max (or min).
var databaseWideFamilies = []string{
	"mailgate_queue_jobs",
	"mailgate_queue_oldest_job_age_seconds",
	"mailgate_pending_messages",
	"mailgate_oldest_pending_message_age_seconds",
	"mailgate_event_feed_lag_seconds",
}

// TestDatabaseWideGaugesNotSummed fails on any dashboard query or rule that
// sums (or averages, or counts) a database-wide gauge over replicas.
func TestDatabaseWideGaugesNotSummed(t *testing.T) {
	check := func(where, expr string) {
		problems, err := aggregatesOverReplicas(expr, databaseWideFamilies)
		if err != nil {
			t.Errorf("%s: %v\n%s", where, err, expr)
		}
		for _, p := range problems {
			t.Errorf("%s: %s\n%s", where, p, expr)
		}
	}
	for _, p := range flatPanels(loadDashboard(t).Panels) {
		for _, tg := range p.Targets {
			check(fmt.Sprintf("dashboard panel %q query %s", p.Title, tg.RefID), substitute(tg.Expr))
		}
	}
	for _, g := range renderedRules(t).Spec.Groups {
		for _, rule := range g.Rules {
			check("rule "+rule.Alert+rule.Record, rule.Expr.String())
		}
	}
	// The check itself: a sum is caught, a max is not.
	if p, _ := aggregatesOverReplicas(`sum(mailgate_queue_jobs{state="available"})`, databaseWideFamilies); len(p) != 1 {
		t.Errorf("a sum of mailgate_queue_jobs passed: %v", p)
	}
	if p, _ := aggregatesOverReplicas(`max by (queue) (mailgate_queue_jobs)`, databaseWideFamilies); len(p) != 0 {
		t.Errorf("a max of mailgate_queue_jobs was refused: %v", p)
	}
	if !slices.Contains(knownFamilies, "mailgate_pending_messages") {
		t.Error("knownFamilies lacks mailgate_pending_messages")
	}
}

// aggregatesOverReplicas parses expr and reports each selector of one of
// families whose nearest enclosing aggregation is not max, min, topk,
// bottomk or group: a sum, average or count of a figure every replica
// reports alike.
func aggregatesOverReplicas(expr string, families []string) ([]string, error) {
	ast, err := promqlParser.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	deduplicating := []parser.ItemType{parser.MAX, parser.MIN, parser.TOPK, parser.BOTTOMK, parser.GROUP}
	var problems []string
	parser.Inspect(ast, func(node parser.Node, path []parser.Node) error {
		sel, ok := node.(*parser.VectorSelector)
		if !ok || !slices.Contains(families, sel.Name) {
			return nil
		}
		for i := len(path) - 1; i >= 0; i-- {
			agg, ok := path[i].(*parser.AggregateExpr)
			if !ok {
				continue
			}
			if !slices.Contains(deduplicating, agg.Op) {
				problems = append(problems, fmt.Sprintf("%s is database-wide, reported by every replica alike: aggregate it with max, not %s", sel.Name, agg.Op))
			}
			break
		}
		return nil
	})
	return problems, nil
}

// TestPromtoolVersion keeps promtool (the Makefile's PROMTOOL_VERSION) on
// the Prometheus version whose PromQL parser the other checks use.
func TestPromtoolVersion(t *testing.T) {
	want := regexp.MustCompile(`(?m)^\s*github\.com/prometheus/prometheus (v\S+)`).FindSubmatch(readFile(t, "go.mod"))
	if want == nil {
		t.Fatal("go.mod does not require github.com/prometheus/prometheus")
	}
	if promtoolVersion != string(want[1]) {
		t.Errorf("promtoolVersion %s, but go.mod has github.com/prometheus/prometheus %s", promtoolVersion, want[1])
	}
	if v := os.Getenv("PROMTOOL_VERSION"); v != "" && v != string(want[1]) {
		t.Errorf("the Makefile installs promtool %s, but go.mod has github.com/prometheus/prometheus %s", v, want[1])
	}
}
