package check

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	releaseName = "mg"
	namespace   = "mail"
	fullname    = "mg-mailgate"
)

// chartDir is charts/mailgate, two levels up from this module.
var chartDir = filepath.Join("..", "..", "charts", "mailgate")

// kubeVersion is the cluster version the chart is rendered for: the oldest
// the chart supports (Chart.yaml's kubeVersion).
const kubeVersion = "v1.25.0"

var loadChartOnce = sync.OnceValues(func() (*chart.Chart, error) { return loader.Load(chartDir) })

func loadChart(t testing.TB) *chart.Chart {
	t.Helper()
	c, err := loadChartOnce()
	if err != nil {
		t.Fatalf("load chart %s: %v", chartDir, err)
	}
	return c
}

// object is one rendered manifest, decoded strictly into its API type.
type object struct {
	Source string // the template it came from
	Kind   string
	Meta   metav1.ObjectMeta
	Obj    any // *appsv1.Deployment, *corev1.Secret, ...
	YAML   string
}

func (o object) String() string { return o.Kind + "/" + o.Meta.Name + " (" + o.Source + ")" }

func (o object) isHook() bool { return o.Meta.Annotations["helm.sh/hook"] != "" }

// rendered is the chart rendered with one set of values.
type rendered struct {
	Objects []object
	Notes   string
}

func (r rendered) ofKind(kind string) []object {
	var out []object
	for _, o := range r.Objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func (r rendered) get(t testing.TB, kind, name string) object {
	t.Helper()
	for _, o := range r.Objects {
		if o.Kind == kind && o.Meta.Name == name {
			return o
		}
	}
	t.Fatalf("no %s named %s rendered; have %v", kind, name, r.Objects)
	return object{}
}

func (r rendered) find(kind, name string) (object, bool) {
	for _, o := range r.Objects {
		if o.Kind == kind && o.Meta.Name == name {
			return o, true
		}
	}
	return object{}, false
}

// newTyped maps apiVersion and kind to the type a manifest must decode into.
// A kind the chart renders that is missing here fails the test.
var newTyped = map[string]func() any{
	"v1/Secret":                               func() any { return &corev1.Secret{} },
	"v1/ServiceAccount":                       func() any { return &corev1.ServiceAccount{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"v1/ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"apps/v1/Deployment":                      func() any { return &appsv1.Deployment{} },
	"batch/v1/Job":                            func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1/Ingress":            func() any { return &networkingv1.Ingress{} },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return &networkingv1.NetworkPolicy{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &monitoringv1.ServiceMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return &monitoringv1.PrometheusRule{} },
	"keda.sh/v1alpha1/ScaledObject":           func() any { return &scaledObject{} },
	"keda.sh/v1alpha1/TriggerAuthentication":  func() any { return &triggerAuthentication{} },
}

// valuesFile reads a values file of testdata.
func valuesFile(t testing.TB, name string) map[string]any {
	t.Helper()
	v, err := chartutil.ReadValuesFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return v.AsMap()
}

// merge deep-merges overlays into a copy of base (later wins; maps merge,
// everything else is replaced).
func merge(base map[string]any, overlays ...map[string]any) map[string]any {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]any{}
	}
	for _, o := range overlays {
		for k, v := range o {
			if vm, ok := v.(map[string]any); ok {
				if bm, ok := out[k].(map[string]any); ok {
					out[k] = merge(bm, vm)
					continue
				}
			}
			out[k] = v
		}
	}
	return out
}

// parseValues reads YAML values written inline in a test.
func parseValues(t testing.TB, y string) map[string]any {
	t.Helper()
	v, err := chartutil.ReadValues([]byte(y))
	if err != nil {
		t.Fatalf("values %q: %v", y, err)
	}
	return v.AsMap()
}

// renderChart renders the chart as `helm install --dry-run` does without a
// cluster (schema validation included) and decodes every manifest, hooks
// included, strictly into its API type.
func renderChart(t testing.TB, vals map[string]any) rendered {
	t.Helper()
	r, err := tryRender(vals)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func tryRender(vals map[string]any) (rendered, error) {
	c, err := loadChartOnce()
	if err != nil {
		return rendered{}, err
	}
	return tryRenderChart(c, vals, kubeVersion, nil)
}

// tryRenderChart renders c (the chart, or an umbrella chart holding it) for
// a cluster of version kv that serves apiVersions besides the built-in ones.
func tryRenderChart(c *chart.Chart, vals map[string]any, kv string, apiVersions []string) (rendered, error) {
	cfg := &action.Configuration{Log: func(string, ...any) {}}
	install := action.NewInstall(cfg)
	install.DryRun = true
	install.ClientOnly = true
	install.Replace = true
	install.ReleaseName = releaseName
	install.Namespace = namespace
	parsed, err := chartutil.ParseKubeVersion(kv)
	if err != nil {
		return rendered{}, err
	}
	install.KubeVersion = parsed
	install.APIVersions = apiVersions
	rel, err := install.Run(c, vals)
	if err != nil {
		return rendered{}, fmt.Errorf("render: %w", err)
	}
	out := rendered{Notes: rel.Info.Notes}
	docs := []string{rel.Manifest}
	for _, h := range rel.Hooks {
		docs = append(docs, "# Source: "+h.Path+"\n"+h.Manifest)
	}
	var errs []string
	for _, d := range docs {
		split := releaseutil.SplitManifests(d)
		for _, key := range slices.Sorted(maps.Keys(split)) {
			o, err := decodeStrict(split[key])
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			if o.Kind != "" {
				out.Objects = append(out.Objects, o)
			}
		}
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("rendered manifests do not decode strictly:\n%s", strings.Join(errs, "\n"))
	}
	slices.SortFunc(out.Objects, func(a, b object) int {
		return strings.Compare(a.Kind+"/"+a.Meta.Name, b.Kind+"/"+b.Meta.Name)
	})
	return out, nil
}

// decodeStrict decodes one manifest into its type, refusing unknown and
// duplicate fields and wrong types.
func decodeStrict(doc string) (object, error) {
	source := "?"
	for _, line := range strings.Split(doc, "\n") {
		if s, ok := strings.CutPrefix(line, "# Source: "); ok {
			source = s
			break
		}
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
		return object{}, fmt.Errorf("%s: not YAML: %v\n%s", source, err, doc)
	}
	if head.Kind == "" && strings.TrimSpace(stripComments(doc)) == "" {
		return object{}, nil // an empty document
	}
	mk, ok := newTyped[head.APIVersion+"/"+head.Kind]
	if !ok {
		return object{}, fmt.Errorf("%s: no decoder for %s %s: add its type to newTyped", source, head.APIVersion, head.Kind)
	}
	obj := mk()
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		return object{}, fmt.Errorf("%s: %s: %v", source, head.Kind, err)
	}
	meta, err := objectMeta(obj)
	if err != nil {
		return object{}, fmt.Errorf("%s: %v", source, err)
	}
	return object{Source: source, Kind: head.Kind, Meta: meta, Obj: obj, YAML: doc}, nil
}

func stripComments(doc string) string {
	var b bytes.Buffer
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func objectMeta(obj any) (metav1.ObjectMeta, error) {
	switch o := obj.(type) {
	case metav1.Object:
		return metav1.ObjectMeta{
			Name: o.GetName(), Namespace: o.GetNamespace(),
			Labels: o.GetLabels(), Annotations: o.GetAnnotations(),
		}, nil
	case *scaledObject:
		return o.ObjectMeta, nil
	case *triggerAuthentication:
		return o.ObjectMeta, nil
	}
	return metav1.ObjectMeta{}, fmt.Errorf("%T has no object metadata", obj)
}

// readFile reads a file relative to this module.
func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStrictDecodingCatchesMistakes(t *testing.T) {
	for name, doc := range map[string]string{
		"misspelled field": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 2}\n",
		"wrong type":       "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: two}\n",
		"duplicate field":  "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {type: ClusterIP, type: NodePort}\n",
		"ServiceMonitor":   "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec: {endpoint: []}\n",
		"PrometheusRule":   "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: x}\nspec: {groups: [{name: g, rules: [{alert: A, expr: up, four: 5m}]}]}\n",
		"ScaledObject":     "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec: {scaleTargetRef: {name: d}, minReplicas: 1, triggers: []}\n",
		"unknown kind":     "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n",
	} {
		if _, err := decodeStrict("# Source: test\n" + doc); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}
