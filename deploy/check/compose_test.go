package check

import (
	"fmt"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// recommendedInstall is the chart README's recommended install: credentials
// in a Secret the operator manages, the image from a private registry.
const recommendedInstall = `
image: {repository: registry.example.com/mailgate, tag: 1.0.0}
secret: {existingSecret: mailgate-credentials}
`

// deployScenarios are the values every Kubernetes release is checked with:
// the defaults, every optional feature, the README's recommended install and
// its GitOps mode, and the settings that change the manifests' shape.
func deployScenarios(t *testing.T) map[string]map[string]any {
	all := valuesFile(t, "all-features.yaml")
	return map[string]map[string]any{
		"defaults":              nil,
		"all-features":          all,
		"all-features-gitops":   merge(all, parseValues(t, "migrations: {hook: false}")),
		"recommended-install":   parseValues(t, recommendedInstall),
		"recommended-gitops":    merge(parseValues(t, recommendedInstall), parseValues(t, "migrations: {hook: false}")),
		"openshift":             parseValues(t, "global: {compatibility: {openshift: {adaptSecurityContext: force}}}"),
		"pdb-no-disruption":     parseValues(t, "api: {pdb: {maxUnavailable: 0}}\nworker: {pdb: {maxUnavailable: 0}}"),
		"network-policy":        parseValues(t, "networkPolicy: {enabled: true}"),
		"migrations-off":        parseValues(t, "migrations: {enabled: false}"),
		"worker-autoscaling":    parseValues(t, "worker: {autoscaling: {enabled: true}}"),
		"metrics-and-dashboard": parseValues(t, "metrics: {serviceMonitor: {enabled: true}, prometheusRule: {enabled: true}}"),
	}
}

// TestChartValidOnOldestAndNewestKubernetes renders every scenario for the
// oldest Kubernetes the chart claims and the newest released, and validates
// each manifest against that release's OpenAPI schema, strictly.
func TestChartValidOnOldestAndNewestKubernetes(t *testing.T) {
	c := loadChart(t)
	oldest := strings.TrimPrefix(kubeReleases[0].Version, "v")
	if claimed := c.Metadata.KubeVersion; !strings.HasPrefix(claimed, ">="+strings.TrimSuffix(oldest, ".0")) {
		t.Fatalf("Chart.yaml claims kubeVersion %q but the oldest release checked is %s", claimed, oldest)
	}
	for _, release := range kubeReleases {
		for name, vals := range deployScenarios(t) {
			t.Run(release.Version+"/"+name, func(t *testing.T) {
				r, err := tryRenderChart(c, vals, release.Version, nil)
				if err != nil {
					t.Fatal(err)
				}
				if n := validateRendered(t, r, release.Module); n == 0 {
					t.Fatal("no manifest was validated")
				}
			})
		}
	}
}

// TestNoNullFields: a key rendered with nothing under it (`annotations:`)
// is null, which Kubernetes' schemas refuse for objects and lists and the
// strict Go decoding lets through; no rendered manifest carries one.
func TestNoNullFields(t *testing.T) {
	for name, vals := range deployScenarios(t) {
		t.Run(name, func(t *testing.T) {
			for _, o := range renderChart(t, vals).Objects {
				var doc any
				if err := yaml.Unmarshal([]byte(o.YAML), &doc); err != nil {
					t.Fatal(err)
				}
				for _, path := range nullPaths("", doc) {
					t.Errorf("%s: %s is null", o, path)
				}
			}
		})
	}
}

func nullPaths(path string, v any) []string {
	var out []string
	switch v := v.(type) {
	case nil:
		return []string{path}
	case map[string]any:
		for k, c := range v {
			out = append(out, nullPaths(path+"."+k, c)...)
		}
	case []any:
		for i, c := range v {
			out = append(out, nullPaths(fmt.Sprintf("%s[%d]", path, i), c)...)
		}
	}
	return out
}

func TestPDBZeroMeansZero(t *testing.T) {
	r := renderChart(t, parseValues(t, "api: {pdb: {maxUnavailable: 0}}"))
	pdb := r.get(t, "PodDisruptionBudget", fullname+"-api").Obj.(*policyv1.PodDisruptionBudget)
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 0 || pdb.Spec.MinAvailable != nil {
		t.Errorf("maxUnavailable: 0 rendered as %+v", pdb.Spec)
	}
	if pdb.Spec.UnhealthyPodEvictionPolicy != nil {
		t.Error("unhealthyPodEvictionPolicy rendered for Kubernetes 1.25, which refuses it")
	}
	r, err := tryRenderChart(loadChart(t), parseValues(t, "worker: {pdb: {minAvailable: 0}}"), kubeReleases[len(kubeReleases)-1].Version, nil)
	if err != nil {
		t.Fatal(err)
	}
	pdb = r.get(t, "PodDisruptionBudget", fullname+"-worker").Obj.(*policyv1.PodDisruptionBudget)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 0 || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("minAvailable: 0 rendered as %+v", pdb.Spec)
	}
	if pdb.Spec.UnhealthyPodEvictionPolicy == nil {
		t.Error("no unhealthyPodEvictionPolicy on the newest Kubernetes")
	}
}

// umbrellaChart is an application chart that depends on Mailgate, as
// `helm dependency build` assembles it: Helm passes the dependency its
// `global` values and the `enabled` key of its condition.
func umbrellaChart(t *testing.T) *chart.Chart {
	// A chart of its own: AddDependency makes the umbrella its parent.
	sub, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	umbrella := &chart.Chart{
		Metadata: &chart.Metadata{
			APIVersion: chart.APIVersionV2, Name: "platform", Version: "1.0.0", Type: "application",
			Dependencies: []*chart.Dependency{{Name: "mailgate", Version: sub.Metadata.Version, Condition: "mailgate.enabled"}},
		},
		Values: map[string]any{"mailgate": map[string]any{"enabled": true}},
	}
	umbrella.AddDependency(sub)
	return umbrella
}

// TestRendersAsSubchart: with the keys Helm injects (helm/helm#10392), the
// strict values schema still accepts the values, global.imageRegistry and
// global.imagePullSecrets reach every pod, and the condition turns it off.
func TestRendersAsSubchart(t *testing.T) {
	vals := parseValues(t, `
global:
  imageRegistry: mirror.example.com
  imagePullSecrets: [mirror-credentials]
  storageClass: fast   # another subchart's global: let through
mailgate:
  enabled: true
  secret: {existingSecret: mailgate-credentials}
`)
	for _, release := range kubeReleases {
		t.Run(release.Version, func(t *testing.T) {
			r, err := tryRenderChart(umbrellaChart(t), vals, release.Version, nil)
			if err != nil {
				t.Fatal(err)
			}
			validateRendered(t, r, release.Module)
			for _, name := range []string{fullname + "-api", fullname + "-worker"} {
				spec := r.get(t, "Deployment", name).Obj.(*appsv1.Deployment).Spec.Template.Spec
				checkMirrored(t, name, spec)
			}
			for _, o := range r.ofKind("Job") {
				checkMirrored(t, o.Meta.Name, o.Obj.(*batchv1.Job).Spec.Template.Spec)
			}
		})
	}
	off := merge(vals, parseValues(t, "mailgate: {enabled: false}"))
	r, err := tryRenderChart(umbrellaChart(t), off, kubeReleases[0].Version, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Objects) != 0 {
		t.Errorf("mailgate.enabled=false still rendered %v", r.Objects)
	}
}

func checkMirrored(t *testing.T, name string, spec corev1.PodSpec) {
	t.Helper()
	if img := spec.Containers[0].Image; !strings.HasPrefix(img, "mirror.example.com/mailgate/mailgate:") {
		t.Errorf("%s: image %s does not come from global.imageRegistry", name, img)
	}
	if len(spec.ImagePullSecrets) == 0 || spec.ImagePullSecrets[0].Name != "mirror-credentials" {
		t.Errorf("%s: imagePullSecrets %v lack global.imagePullSecrets", name, spec.ImagePullSecrets)
	}
}

// TestPodExtensions: what a user used to fork the chart for is in the
// values: Deployment annotations, sidecars, init containers, lifecycle
// hooks, extra volumes and mounts, migration pod annotations and labels.
func TestPodExtensions(t *testing.T) {
	r := renderChart(t, valuesFile(t, "all-features.yaml"))
	api := r.get(t, "Deployment", fullname+"-api").Obj.(*appsv1.Deployment)
	worker := r.get(t, "Deployment", fullname+"-worker").Obj.(*appsv1.Deployment)
	for _, d := range []*appsv1.Deployment{api, worker} {
		if d.Annotations["reloader.stakater.com/auto"] != "true" {
			t.Errorf("%s: Deployment annotations %v", d.Name, d.Annotations)
		}
		if !hasMount(d.Spec.Template.Spec.Containers[0], "postgres-ca") || !hasVolume(d.Spec.Template.Spec, "postgres-ca") {
			t.Errorf("%s: the shared extra volume is not mounted", d.Name)
		}
	}
	spec := api.Spec.Template.Spec
	if len(spec.Containers) != 2 || spec.Containers[1].Name != "log-shipper" || spec.Containers[1].Image != "mirror.example.com/fluent-bit:3.2" {
		t.Errorf("api sidecar (a template) not rendered: %+v", spec.Containers[1:])
	}
	if !hasVolume(spec, "shipper-buffer") || spec.Containers[0].Lifecycle == nil || spec.Containers[0].Lifecycle.PostStart == nil {
		t.Error("api extra volume or lifecycle hook missing")
	}
	wspec := worker.Spec.Template.Spec
	if len(wspec.InitContainers) != 1 || wspec.InitContainers[0].Name != "wait-for-relay" || !hasMount(wspec.Containers[0], "relay-ca") || hasMount(spec.Containers[0], "relay-ca") {
		t.Error("worker init container or its own volume mount not rendered as asked")
	}
	for _, o := range r.ofKind("Job") {
		job := o.Obj.(*batchv1.Job)
		tpl := job.Spec.Template
		if tpl.Annotations["sidecar.istio.io/inject"] != "false" || tpl.Labels["example.com/job"] != "migrate" {
			t.Errorf("%s: migration pod annotations %v, labels %v", o, tpl.Annotations, tpl.Labels)
		}
		if !hasMount(tpl.Spec.Containers[0], "postgres-ca") {
			t.Errorf("%s: the shared extra volume is not mounted", o)
		}
	}
}

func hasMount(c corev1.Container, name string) bool {
	for _, m := range c.VolumeMounts {
		if m.Name == name {
			return true
		}
	}
	return false
}

func hasVolume(s corev1.PodSpec, name string) bool {
	for _, v := range s.Volumes {
		if v.Name == name {
			return true
		}
	}
	return false
}

// TestOpenShiftLeavesIDsToThePlatform: OpenShift's restricted SCC assigns
// UIDs per namespace and refuses fixed ones; on a cluster serving its API
// (or when forced) no pod or container names a user or group.
func TestOpenShiftLeavesIDsToThePlatform(t *testing.T) {
	check := func(t *testing.T, r rendered, wantFixed bool) {
		t.Helper()
		for _, o := range append(r.ofKind("Deployment"), r.ofKind("Job")...) {
			var spec corev1.PodSpec
			switch obj := o.Obj.(type) {
			case *appsv1.Deployment:
				spec = obj.Spec.Template.Spec
			case *batchv1.Job:
				spec = obj.Spec.Template.Spec
			}
			fixed := spec.SecurityContext.RunAsUser != nil || spec.SecurityContext.FSGroup != nil || spec.Containers[0].SecurityContext.RunAsUser != nil
			if fixed != wantFixed {
				t.Errorf("%s: fixed IDs %v, want %v", o, fixed, wantFixed)
			}
			if !isTrue(spec.Containers[0].SecurityContext.RunAsNonRoot) || !isTrue(spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem) {
				t.Errorf("%s: the rest of the security context must stay", o)
			}
		}
	}
	c := loadChart(t)
	auto, err := tryRenderChart(c, nil, kubeVersion, []string{"security.openshift.io/v1"})
	if err != nil {
		t.Fatal(err)
	}
	check(t, auto, false)
	check(t, renderChart(t, parseValues(t, "global: {compatibility: {openshift: {adaptSecurityContext: force}}}")), false)
	disabled, err := tryRenderChart(c, parseValues(t, "global: {compatibility: {openshift: {adaptSecurityContext: disabled}}}"), kubeVersion, []string{"security.openshift.io/v1"})
	if err != nil {
		t.Fatal(err)
	}
	check(t, disabled, true)
	check(t, renderChart(t, nil), true)
}

// TestTerminationGraceCoversDrainAndShutdown: a pod is killed only after
// MAILGATE_DRAIN_DELAY and MAILGATE_SHUTDOWN_GRACE have passed, and a grace
// period too short for them is refused rather than rendered.
func TestTerminationGraceCoversDrainAndShutdown(t *testing.T) {
	grace := func(r rendered, component string) int64 {
		return *r.get(t, "Deployment", fullname+"-"+component).Obj.(*appsv1.Deployment).Spec.Template.Spec.TerminationGracePeriodSeconds
	}
	r := renderChart(t, nil)
	if g := grace(r, "api"); g != 10+25+5 {
		t.Errorf("api terminationGracePeriodSeconds %d, want drainDelay 10 + shutdownGrace 25 + 5", g)
	}
	env := envMap(r.get(t, "Deployment", fullname+"-api").Obj.(*appsv1.Deployment).Spec.Template.Spec.Containers[0])
	if env["MAILGATE_DRAIN_DELAY"].Value != "10s" || env["MAILGATE_SHUTDOWN_GRACE"].Value != "25s" {
		t.Errorf("drain and grace env: %q, %q", env["MAILGATE_DRAIN_DELAY"].Value, env["MAILGATE_SHUTDOWN_GRACE"].Value)
	}
	r = renderChart(t, parseValues(t, "config: {drainDelay: 1m30s, shutdownGrace: 2500ms}\nworker: {terminationGracePeriodSeconds: null}"))
	if g := grace(r, "api"); g != 90+3+5 {
		t.Errorf("api terminationGracePeriodSeconds %d for 1m30s + 2500ms, want 98", g)
	}
	if g := grace(r, "worker"); g != 3+5 {
		t.Errorf("worker terminationGracePeriodSeconds %d for 2500ms, want 8 (no drain)", g)
	}
	_, err := tryRender(parseValues(t, "api: {terminationGracePeriodSeconds: 30}"))
	if err == nil || !strings.Contains(err.Error(), "terminationGracePeriodSeconds") {
		t.Errorf("a grace shorter than drain + shutdown rendered: %v", err)
	}
}
