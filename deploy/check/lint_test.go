package check

import (
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint/support"
)

// helmLint runs `helm lint --strict` on the chart with vals over its defaults.
func helmLint(t *testing.T, vals map[string]any) (errs []string, all []string) {
	t.Helper()
	lint := action.NewLint()
	lint.Strict = true
	lint.Namespace = namespace
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	lint.KubeVersion = kv
	res := lint.Run([]string{chartDir}, vals)
	for _, e := range res.Errors {
		errs = append(errs, e.Error())
	}
	for _, m := range res.Messages {
		all = append(all, m.Error())
		if m.Severity >= support.WarningSev {
			errs = append(errs, m.Error())
		}
	}
	return errs, all
}

func TestHelmLintPasses(t *testing.T) {
	for name, vals := range map[string]map[string]any{
		"defaults":     nil,
		"all-features": valuesFile(t, "all-features.yaml"),
		"gitops":       merge(valuesFile(t, "all-features.yaml"), parseValues(t, "migrations: {hook: false}")),
	} {
		t.Run(name, func(t *testing.T) {
			errs, all := helmLint(t, vals)
			if len(errs) > 0 {
				t.Errorf("helm lint --strict:\n%s", strings.Join(errs, "\n"))
			}
			for _, m := range all {
				t.Log(m)
			}
		})
	}
}

// TestSchemaRefusesBadValues: values.schema.json turns mistakes into lint
// (and install) errors instead of broken manifests.
func TestSchemaRefusesBadValues(t *testing.T) {
	cases := []struct {
		name, values, want string
	}{
		{"replicas as a word", `api: {replicas: "three"}`, "replicas"},
		{"unknown top-level key", `replicaCount: 3`, "replicaCount"},
		{"misspelled nested key", `worker: {resource: {}}`, "resource"},
		{"probe typo", `api: {livenessProbe: {httpGet: {path: /healthz, prot: http}}}`, "prot"},
		{"root user", `securityContext: {runAsUser: 0}`, "runAsUser"},
		{"bad runtime role", `config: {databaseRole: Mailgate-App}`, "databaseRole"},
		{"workers out of range", `config: {workers: 0}`, "workers"},
		{"duration", `config: {shutdownGrace: soon}`, "shutdownGrace"},
		{"negative rate limit", `config: {rateLimit: -1}`, "rateLimit"},
		{"burst below one", `config: {rateBurst: 0}`, "rateBurst"},
		{"request timeout", `config: {requestTimeout: forever}`, "requestTimeout"},
		{"secret key name", `secret: {keys: {databaseUrl: "database url"}}`, "databaseUrl"},
		{"hook delete policy", `migrations: {hookDeletePolicy: always}`, "hookDeletePolicy"},
		{"pull policy", `image: {pullPolicy: Sometimes}`, "pullPolicy"},
		{"port", `ports: {http: 80800}`, "http"},
		{"hpa and keda together", `worker: {autoscaling: {enabled: true}, keda: {enabled: true}}`, "/worker/keda/enabled"},
		{"hpa without a target", `api: {autoscaling: {enabled: true, targetCPUUtilizationPercentage: 0}}`, "/api/autoscaling"},
		{"label value type", `commonLabels: {tier: 1}`, "tier"},
		{"ratio above one", `metrics: {prometheusRule: {thresholds: {apiErrorRatio: 5}}}`, "apiErrorRatio"},
		{"ingress path type", `ingress: {enabled: true, hosts: [{host: a.example, paths: [{path: /, pathType: Any}]}]}`, "pathType"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vals := parseValues(t, c.values)
			errs, _ := helmLint(t, vals)
			joined := strings.Join(errs, "\n")
			if len(errs) == 0 {
				t.Fatalf("helm lint accepted %s", c.values)
			}
			if !strings.Contains(joined, c.want) {
				t.Errorf("helm lint failed without naming %q:\n%s", c.want, joined)
			}
			if _, err := tryRender(vals); err == nil {
				t.Errorf("helm install --dry-run accepted %s", c.values)
			}
		})
	}
}
