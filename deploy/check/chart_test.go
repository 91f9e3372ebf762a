package check

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// scenarios are the value sets every structural check runs on.
func scenarios(t *testing.T) map[string]map[string]any {
	all := valuesFile(t, "all-features.yaml")
	return map[string]map[string]any{
		"defaults":     nil,
		"all-features": all,
		"gitops":       merge(all, parseValues(t, "migrations: {hook: false, ttlSecondsAfterFinished: 86400}")),
		"existing-secret": merge(all, parseValues(t, `
secret:
  existingSecret: mailgate-credentials
  keys: {databaseUrl: DATABASE_URL, smtpUrl: SMTP_URL}
jwtPublicKeys: {mount: true}
worker: {keda: {enabled: false}, autoscaling: {enabled: true}}
serviceAccount: {create: false, name: mail-sa}
`)),
	}
}

func TestManifestsDecodeStrictlyAndHangTogether(t *testing.T) {
	for name, vals := range scenarios(t) {
		t.Run(name, func(t *testing.T) {
			r := renderChart(t, vals)
			checkMetadata(t, r)
			checkWorkloads(t, r)
			checkReferences(t, r, vals)
		})
	}
}

// checkMetadata: valid names and labels, the release namespace, the
// standard labels on everything.
func checkMetadata(t *testing.T, r rendered) {
	seen := map[string]bool{}
	for _, o := range r.Objects {
		id := o.Kind + "/" + o.Meta.Name
		if seen[id] {
			t.Errorf("%s rendered twice", id)
		}
		seen[id] = true
		nameErrs := validation.IsDNS1123Subdomain(o.Meta.Name)
		if o.Kind == "Service" {
			nameErrs = validation.IsDNS1035Label(o.Meta.Name)
		}
		for _, e := range nameErrs {
			t.Errorf("%s: name: %s", o, e)
		}
		if o.Kind != "ConfigMap" && o.Meta.Namespace != namespace {
			t.Errorf("%s: namespace %q, want the release's %q", o, o.Meta.Namespace, namespace)
		}
		for k, v := range o.Meta.Labels {
			for _, e := range validation.IsQualifiedName(k) {
				t.Errorf("%s: label key %q: %s", o, k, e)
			}
			for _, e := range validation.IsValidLabelValue(v) {
				t.Errorf("%s: label %s=%q: %s", o, k, v, e)
			}
		}
		for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "helm.sh/chart"} {
			if o.Meta.Labels[k] == "" {
				t.Errorf("%s: no %s label", o, k)
			}
		}
	}
}

// pod is a pod template with the object it came from.
type pod struct {
	owner object
	spec  corev1.PodTemplateSpec
}

func pods(r rendered) []pod {
	var out []pod
	for _, o := range r.Objects {
		switch w := o.Obj.(type) {
		case *appsv1.Deployment:
			out = append(out, pod{o, w.Spec.Template})
		case *batchv1.Job:
			out = append(out, pod{o, w.Spec.Template})
		}
	}
	return out
}

// checkWorkloads: the security, probes and arguments of every pod.
func checkWorkloads(t *testing.T, r rendered) {
	ps := pods(r)
	if len(ps) < 2 {
		t.Fatalf("want at least the api and worker Deployments, got %d pod templates", len(ps))
	}
	for _, p := range ps {
		checkPodSecurity(t, p)
	}
	for _, component := range []string{"api", "worker"} {
		o := r.get(t, "Deployment", fullname+"-"+component)
		d := o.Obj.(*appsv1.Deployment)
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("%s: selector %v does not match the pod labels %v (%v)", o, d.Spec.Selector, d.Spec.Template.Labels, err)
		}
		if d.Spec.Template.Labels["app.kubernetes.io/component"] != component {
			t.Errorf("%s: pods labelled component=%q", o, d.Spec.Template.Labels["app.kubernetes.io/component"])
		}
		c := d.Spec.Template.Spec.Containers[0]
		if got := strings.Join(c.Args, " "); got != "serve --role "+component {
			t.Errorf("%s: args %q, want %q", o, got, "serve --role "+component)
		}
		http := containerPort(c, "http")
		if http == nil || http.ContainerPort != 8080 {
			t.Errorf("%s: no container port http 8080: %v", o, c.Ports)
		}
		if m := containerPort(c, "metrics"); m == nil || m.ContainerPort != 9090 {
			t.Errorf("%s: no container port metrics 9090: %v", o, c.Ports)
		}
		for name, pr := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
			want := "/healthz"
			if name == "readiness" {
				want = "/readyz"
			}
			switch {
			case pr == nil:
				t.Errorf("%s: no %s probe", o, name)
			case pr.HTTPGet == nil:
				t.Errorf("%s: %s probe is not an HTTP GET", o, name)
			case pr.HTTPGet.Path != want:
				t.Errorf("%s: %s probe path %q, want %q", o, name, pr.HTTPGet.Path, want)
			case !portResolves(c, pr.HTTPGet.Port):
				t.Errorf("%s: %s probe port %s is not a port of the container", o, name, pr.HTTPGet.Port.String())
			}
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: want cpu and memory requests and a memory limit, got %v", o, c.Resources)
		}
		if len(d.Spec.Template.Spec.TopologySpreadConstraints) == 0 {
			t.Errorf("%s: no topology spread constraints", o)
		}
		for _, tsc := range d.Spec.Template.Spec.TopologySpreadConstraints {
			s, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
			if err != nil || !s.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("%s: topology spread on %s does not select its own pods", o, tsc.TopologyKey)
			}
		}
		env := envMap(c)
		for _, k := range []string{"MAILGATE_DATABASE_ROLE", "MAILGATE_WORKERS", "MAILGATE_HTTP_ADDR", "MAILGATE_ADMIN_ADDR", "MAILGATE_RATE_LIMIT", "MAILGATE_RATE_BURST", "MAILGATE_REQUEST_TIMEOUT"} {
			if env[k].Value == "" {
				t.Errorf("%s: %s not set", o, k)
			}
		}
		// Least privilege: relay credentials stay out of the API, token keys out of the workers.
		for _, k := range map[string][]string{"api": {"MAILGATE_SMTP_URL"}, "worker": {"MAILGATE_JWT_SECRET", "MAILGATE_JWT_PUBLIC_KEYS"}}[component] {
			if _, ok := env[k]; ok {
				t.Errorf("%s: %s set; the %s does not use it", o, k, component)
			}
		}
		if env["MAILGATE_DATABASE_URL"].ValueFrom == nil || env["MAILGATE_DATABASE_URL"].ValueFrom.SecretKeyRef == nil {
			if _, hasURL := env["MAILGATE_DATABASE_URL"]; hasURL {
				t.Errorf("%s: MAILGATE_DATABASE_URL must come from a Secret", o)
			}
		}
	}
	for _, p := range ps {
		for _, c := range p.spec.Spec.Containers {
			for _, e := range c.Env {
				if e.Value != "" && (strings.Contains(e.Name, "URL") || strings.Contains(e.Name, "SECRET") || strings.Contains(e.Name, "PASSWORD")) {
					t.Errorf("%s: %s is a plain value; credentials come from a Secret", p.owner, e.Name)
				}
			}
		}
	}
}

// chartContainers are the containers the chart itself defines.
var chartContainers = map[string]bool{"mailgate": true, "migrate": true}

func checkPodSecurity(t *testing.T, p pod) {
	t.Helper()
	s := p.spec.Spec
	if s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken must be false", p.owner)
	}
	psc := s.SecurityContext
	if psc == nil {
		t.Fatalf("%s: no pod securityContext", p.owner)
	}
	if !isTrue(psc.RunAsNonRoot) || psc.RunAsUser == nil || *psc.RunAsUser != 65532 {
		t.Errorf("%s: pod must run as non-root user 65532: %+v", p.owner, psc)
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod seccompProfile must be RuntimeDefault", p.owner)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range s.Volumes {
		volumes[v.Name] = v
	}
	if len(s.Containers) == 0 {
		t.Fatalf("%s: no containers", p.owner)
	}
	for _, c := range append(slices.Clone(s.InitContainers), s.Containers...) {
		if !chartContainers[c.Name] {
			continue // a sidecar or init container of the user's (api.sidecars, ...): theirs to secure
		}
		where := fmt.Sprintf("%s container %s", p.owner, c.Name)
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s: no securityContext", where)
			continue
		}
		if !isTrue(sc.RunAsNonRoot) {
			t.Errorf("%s: runAsNonRoot must be true", where)
		}
		if sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
			t.Errorf("%s: runAsUser must be 65532", where)
		}
		if !isTrue(sc.ReadOnlyRootFilesystem) {
			t.Errorf("%s: readOnlyRootFilesystem must be true", where)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation must be false", where)
		}
		if isTrue(sc.Privileged) {
			t.Errorf("%s: privileged", where)
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s: capabilities must drop ALL and add none: %+v", where, sc.Capabilities)
		}
		if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: seccompProfile must be RuntimeDefault", where)
		}
		if strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") && !strings.Contains(c.Image, "@") {
			t.Errorf("%s: image %q has no pinned tag", where, c.Image)
		}
		tmp := false
		for _, m := range c.VolumeMounts {
			v, ok := volumes[m.Name]
			if !ok {
				t.Errorf("%s: mount %s has no volume", where, m.Name)
				continue
			}
			if m.MountPath == "/tmp" && v.EmptyDir != nil {
				tmp = true
			}
			if v.Secret != nil && !m.ReadOnly {
				t.Errorf("%s: secret volume %s mounted writable", where, m.Name)
			}
		}
		if !tmp {
			t.Errorf("%s: no emptyDir at /tmp (the root filesystem is read-only)", where)
		}
	}
}

// checkReferences: every name one object gives for another resolves to an
// object of this release (or, with existingSecret, to the operator's Secret).
func checkReferences(t *testing.T, r rendered, vals map[string]any) {
	existing := ""
	if s, ok := vals["secret"].(map[string]any); ok {
		existing, _ = s["existingSecret"].(string)
	}
	secretKeys := map[string]map[string]bool{}
	for _, o := range r.ofKind("Secret") {
		s := o.Obj.(*corev1.Secret)
		keys := map[string]bool{}
		for k := range s.StringData {
			keys[k] = true
		}
		for k := range s.Data {
			keys[k] = true
		}
		secretKeys[s.Name] = keys
	}
	secretRef := func(where, name, key string, optional bool) {
		t.Helper()
		if name == existing && existing != "" {
			return
		}
		keys, ok := secretKeys[name]
		switch {
		case !ok:
			t.Errorf("%s: Secret %s is not rendered", where, name)
		case key != "" && !keys[key] && !optional:
			t.Errorf("%s: Secret %s has no key %s (has %v)", where, name, key, slices.Sorted(maps.Keys(keys)))
		}
	}
	serviceAccounts := map[string]object{}
	for _, o := range r.ofKind("ServiceAccount") {
		serviceAccounts[o.Meta.Name] = o
		if sa := o.Obj.(*corev1.ServiceAccount); sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken must be false", o)
		}
	}
	createSA := true
	if sa, ok := vals["serviceAccount"].(map[string]any); ok && sa["create"] == false {
		createSA = false
	}
	for _, p := range pods(r) {
		s := p.spec.Spec
		if sa, ok := serviceAccounts[s.ServiceAccountName]; !ok && createSA {
			t.Errorf("%s: ServiceAccount %q is not rendered", p.owner, s.ServiceAccountName)
		} else if ok && p.owner.isHook() && !sa.isHook() {
			t.Errorf("%s: a hook uses ServiceAccount %s, which is created only after the hooks", p.owner, sa.Meta.Name)
		}
		for _, v := range s.Volumes {
			if v.Secret != nil {
				for _, it := range v.Secret.Items {
					secretRef(p.owner.String()+" volume "+v.Name, v.Secret.SecretName, it.Key, false)
				}
			}
		}
		for _, c := range s.Containers {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					ref := e.ValueFrom.SecretKeyRef
					secretRef(fmt.Sprintf("%s env %s", p.owner, e.Name), ref.Name, ref.Key, isTrue(ref.Optional))
					if p.owner.isHook() && ref.Name != existing {
						if so, ok := r.find("Secret", ref.Name); ok && !so.isHook() {
							t.Errorf("%s: a hook reads Secret %s, which is created only after the hooks", p.owner, ref.Name)
						}
					}
				}
			}
		}
	}
	deployments := map[string]*appsv1.Deployment{}
	for _, o := range r.ofKind("Deployment") {
		deployments[o.Meta.Name] = o.Obj.(*appsv1.Deployment)
	}
	selectsPods := func(sel labels.Selector, port string) bool {
		for _, d := range deployments {
			if sel.Matches(labels.Set(d.Spec.Template.Labels)) && (port == "" || portResolves(d.Spec.Template.Spec.Containers[0], intstr.FromString(port))) {
				return true
			}
		}
		return false
	}
	services := map[string]*corev1.Service{}
	for _, o := range r.ofKind("Service") {
		svc := o.Obj.(*corev1.Service)
		services[svc.Name] = svc
		for _, p := range svc.Spec.Ports {
			if !selectsPods(labels.SelectorFromSet(svc.Spec.Selector), p.TargetPort.String()) {
				t.Errorf("%s: port %s selects no pod with target port %s", o, p.Name, p.TargetPort.String())
			}
		}
	}
	if svc := services[fullname+"-api"]; svc == nil || svc.Spec.Ports[0].Port != 8080 {
		t.Errorf("want the API Service on 8080")
	}
	if svc := services[fullname+"-metrics"]; svc == nil || svc.Spec.Ports[0].Port != 9090 || svc.Spec.Ports[0].Name != "metrics" {
		t.Errorf("want the metrics Service on 9090, port name metrics")
	}
	for _, o := range r.ofKind("PodDisruptionBudget") {
		pdb := o.Obj.(*policyv1.PodDisruptionBudget)
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || !selectsPods(sel, "") {
			t.Errorf("%s: selects no Deployment's pods", o)
		}
		if (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
			t.Errorf("%s: want exactly one of minAvailable and maxUnavailable", o)
		}
	}
	scaled := map[string]string{}
	for _, o := range r.ofKind("HorizontalPodAutoscaler") {
		h := o.Obj.(*autoscalingv2.HorizontalPodAutoscaler)
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || deployments[h.Spec.ScaleTargetRef.Name] == nil {
			t.Errorf("%s: scales %v, not a Deployment of the release", o, h.Spec.ScaleTargetRef)
		}
		if len(h.Spec.Metrics) == 0 || h.Spec.MinReplicas == nil || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			t.Errorf("%s: want metrics and minReplicas <= maxReplicas", o)
		}
		scaled[h.Spec.ScaleTargetRef.Name] += "HPA "
	}
	auths := map[string]*triggerAuthentication{}
	for _, o := range r.ofKind("TriggerAuthentication") {
		ta := o.Obj.(*triggerAuthentication)
		auths[ta.Name] = ta
		for _, ref := range ta.Spec.SecretTargetRef {
			if !slices.Contains(postgresqlAuthParams, ref.Parameter) {
				t.Errorf("%s: %q is not a postgresql scaler parameter", o, ref.Parameter)
			}
			secretRef(o.String(), ref.Name, ref.Key, false)
		}
	}
	for _, o := range r.ofKind("ScaledObject") {
		so := o.Obj.(*scaledObject)
		if so.Spec.ScaleTargetRef == nil || deployments[so.Spec.ScaleTargetRef.Name] == nil {
			t.Errorf("%s: scales no Deployment of the release", o)
			continue
		}
		scaled[so.Spec.ScaleTargetRef.Name] += "KEDA "
		if len(so.Spec.Triggers) == 0 {
			t.Errorf("%s: no triggers", o)
		}
		for _, tr := range so.Spec.Triggers {
			if tr.Type != "postgresql" {
				t.Errorf("%s: trigger type %q", o, tr.Type)
			}
			for k := range tr.Metadata {
				if !slices.Contains(postgresqlTriggerMetadata, k) {
					t.Errorf("%s: %q is not postgresql trigger metadata", o, k)
				}
			}
			if q := tr.Metadata["query"]; q != "SELECT count(*) FROM river_job WHERE state = 'available' AND queue = 'delivery'" {
				t.Errorf("%s: query %q", o, q)
			}
			if tr.AuthenticationRef == nil || auths[tr.AuthenticationRef.Name] == nil {
				t.Errorf("%s: authenticationRef does not name a rendered TriggerAuthentication", o)
			}
		}
	}
	for name, by := range scaled {
		if strings.Count(by, " ") > 1 {
			t.Errorf("Deployment %s is scaled by %s", name, by)
		}
		if deployments[name].Spec.Replicas != nil {
			t.Errorf("Deployment %s sets replicas although %s scales it (every upgrade would reset it)", name, by)
		}
	}
	for _, o := range r.ofKind("Ingress") {
		ing := o.Obj.(*networkingv1.Ingress)
		for _, rule := range ing.Spec.Rules {
			for _, p := range rule.HTTP.Paths {
				b := p.Backend.Service
				svc := services[b.Name]
				if svc == nil || !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool {
					return sp.Name == b.Port.Name && b.Port.Name != "" || sp.Port == b.Port.Number
				}) {
					t.Errorf("%s: backend %s:%v is not a rendered Service port", o, b.Name, b.Port)
				}
			}
		}
	}
	for _, o := range r.ofKind("ServiceMonitor") {
		sm := o.Obj.(*monitoringv1.ServiceMonitor)
		sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		var matched []*corev1.Service
		for _, svc := range services {
			if sel.Matches(labels.Set(svc.Labels)) {
				matched = append(matched, svc)
			}
		}
		if len(matched) != 1 || matched[0].Name != fullname+"-metrics" {
			t.Errorf("%s: selects %d Services, want the metrics Service alone", o, len(matched))
		}
		for _, ep := range sm.Spec.Endpoints {
			if ep.Port != "metrics" || ep.Path != "/metrics" {
				t.Errorf("%s: endpoint %s %s, want port metrics path /metrics", o, ep.Port, ep.Path)
			}
		}
	}
	for _, o := range r.ofKind("NetworkPolicy") {
		np := o.Obj.(*networkingv1.NetworkPolicy)
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			t.Fatal(err)
		}
		matches := selectsPods(sel, "")
		for _, p := range pods(r) {
			matches = matches || sel.Matches(labels.Set(p.spec.Labels))
		}
		if !matches {
			t.Errorf("%s: selects no pod of the release", o)
		}
	}
}

func TestSecurityDefaults(t *testing.T) {
	r := renderChart(t, nil)
	sa := r.get(t, "ServiceAccount", fullname).Obj.(*corev1.ServiceAccount)
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("the ServiceAccount must not automount its token")
	}
	for _, kind := range []string{"NetworkPolicy", "ServiceMonitor", "PrometheusRule", "ScaledObject", "HorizontalPodAutoscaler", "Ingress"} {
		if len(r.ofKind(kind)) > 0 {
			t.Errorf("%s rendered by default; it is optional", kind)
		}
	}
	for _, kind := range []string{"Deployment", "Service", "PodDisruptionBudget"} {
		if n := len(r.ofKind(kind)); n != 2 {
			t.Errorf("%d %s rendered by default, want 2", n, kind)
		}
	}
}

func TestMigrationHook(t *testing.T) {
	r := renderChart(t, valuesFile(t, "all-features.yaml"))
	o := r.get(t, "Job", fullname+"-migrate")
	job := o.Obj.(*batchv1.Job)
	if got := o.Meta.Annotations["helm.sh/hook"]; got != "pre-install,pre-upgrade" {
		t.Errorf("helm.sh/hook = %q, want pre-install,pre-upgrade", got)
	}
	if o.Meta.Annotations["helm.sh/hook-delete-policy"] == "" {
		t.Error("no helm.sh/hook-delete-policy")
	}
	c := job.Spec.Template.Spec.Containers[0]
	if !slices.Equal(c.Args, []string{"migrate"}) {
		t.Errorf("args %v, want [migrate]", c.Args)
	}
	if job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q", job.Spec.Template.Spec.RestartPolicy)
	}
	env := envMap(c)
	if ref := env["MAILGATE_MIGRATION_DATABASE_URL"].ValueFrom; ref == nil || ref.SecretKeyRef.Key != "migration-database-url" {
		t.Errorf("MAILGATE_MIGRATION_DATABASE_URL not from the migration-database-url item: %+v", env["MAILGATE_MIGRATION_DATABASE_URL"])
	}
	if env["MAILGATE_DATABASE_ROLE"].Value != "mailgate_app" {
		t.Errorf("MAILGATE_DATABASE_ROLE = %q", env["MAILGATE_DATABASE_ROLE"].Value)
	}
	// What the hook needs exists before it: lower hook weights.
	jobWeight := o.Meta.Annotations["helm.sh/hook-weight"]
	for _, kind := range []string{"Secret", "ServiceAccount", "NetworkPolicy"} {
		dep := r.get(t, kind, fullname+"-migrate")
		if dep.Meta.Annotations["helm.sh/hook"] != "pre-install,pre-upgrade" || !(atoi(t, dep.Meta.Annotations["helm.sh/hook-weight"]) < atoi(t, jobWeight)) {
			t.Errorf("%s: must be a pre-install,pre-upgrade hook weighted before the Job (%s)", dep, jobWeight)
		}
	}
	// The release's own objects are no hooks.
	for _, o := range r.Objects {
		if o.isHook() && !strings.HasSuffix(o.Meta.Name, "-migrate") {
			t.Errorf("%s is a hook", o)
		}
	}
}

func TestMigrationGitOps(t *testing.T) {
	r := renderChart(t, merge(valuesFile(t, "all-features.yaml"), parseValues(t, "migrations: {hook: false}")))
	jobs := r.ofKind("Job")
	if len(jobs) != 1 {
		t.Fatalf("%d Jobs, want 1", len(jobs))
	}
	for _, o := range r.Objects {
		for k := range o.Meta.Annotations {
			if strings.HasPrefix(k, "helm.sh/hook") {
				t.Errorf("%s: annotation %s in GitOps mode", o, k)
			}
		}
	}
	job := jobs[0].Obj.(*batchv1.Job)
	if !strings.HasPrefix(job.Name, fullname+"-migrate-") {
		t.Errorf("job name %q: want %s-migrate-<image hash>", job.Name, fullname)
	}
	if job.Spec.Template.Spec.ServiceAccountName != fullname {
		t.Errorf("plain Job uses ServiceAccount %q, want the release's", job.Spec.Template.Spec.ServiceAccountName)
	}
	other := renderChart(t, merge(valuesFile(t, "all-features.yaml"), parseValues(t, "migrations: {hook: false}\nimage: {tag: '9.9.9'}")))
	if other.ofKind("Job")[0].Meta.Name == job.Name {
		t.Error("a new image must give the plain migration Job a new name (a Job's template is immutable)")
	}
	if _, ok := r.find("Secret", fullname+"-migrate"); ok {
		t.Error("no hook Secret in GitOps mode")
	}
}

func TestSecretChecksumRestartsPods(t *testing.T) {
	base := valuesFile(t, "all-features.yaml")
	a := renderChart(t, base)
	b := renderChart(t, merge(base, parseValues(t, "secret: {values: {smtpUrl: 'smtp://other:pw@relay.example.com:587'}}")))
	for _, component := range []string{"api", "worker"} {
		name := fullname + "-" + component
		ca := a.get(t, "Deployment", name).Obj.(*appsv1.Deployment).Spec.Template.Annotations["checksum/secret"]
		cb := b.get(t, "Deployment", name).Obj.(*appsv1.Deployment).Spec.Template.Annotations["checksum/secret"]
		if ca == "" || ca == cb {
			t.Errorf("%s: checksum/secret %q -> %q: must change with the Secret", name, ca, cb)
		}
	}
	ext := renderChart(t, merge(base, parseValues(t, "secret: {existingSecret: creds}")))
	if _, ok := ext.find("Secret", fullname); ok {
		t.Error("a Secret is rendered although existingSecret is set")
	}
	d := ext.get(t, "Deployment", fullname+"-api").Obj.(*appsv1.Deployment)
	if _, ok := d.Spec.Template.Annotations["checksum/secret"]; ok {
		t.Error("checksum/secret with existingSecret: the chart can't know its content")
	}
	env := envMap(d.Spec.Template.Spec.Containers[0])
	if ref := env["MAILGATE_DATABASE_URL"].ValueFrom.SecretKeyRef; ref.Name != "creds" || isTrue(ref.Optional) {
		t.Errorf("MAILGATE_DATABASE_URL ref %+v: want the existing Secret, not optional", ref)
	}
	w := ext.get(t, "Deployment", fullname+"-worker").Obj.(*appsv1.Deployment)
	if ref := envMap(w.Spec.Template.Spec.Containers[0])["MAILGATE_SMTP_URL"].ValueFrom.SecretKeyRef; ref.Name != "creds" || !isTrue(ref.Optional) {
		t.Errorf("MAILGATE_SMTP_URL ref %+v: want the existing Secret, optional", ref)
	}
}

func TestJWTPublicKeysMountedAsFile(t *testing.T) {
	r := renderChart(t, valuesFile(t, "all-features.yaml"))
	d := r.get(t, "Deployment", fullname+"-api").Obj.(*appsv1.Deployment)
	c := d.Spec.Template.Spec.Containers[0]
	path := envMap(c)["MAILGATE_JWT_PUBLIC_KEYS"].Value
	var mount *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if strings.HasPrefix(path, m.MountPath+"/") {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil || mount.SubPath != "" {
		t.Fatalf("MAILGATE_JWT_PUBLIC_KEYS=%q is not in a mounted directory (without subPath, so rotation reaches the pod)", path)
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == mount.Name {
			if v.Secret == nil || len(v.Secret.Items) != 1 || mount.MountPath+"/"+v.Secret.Items[0].Path != path {
				t.Errorf("volume %s does not put the jwt-public-keys item at %s", v.Name, path)
			}
		}
	}
	def := renderChart(t, nil).get(t, "Deployment", fullname+"-api").Obj.(*appsv1.Deployment)
	if _, ok := envMap(def.Spec.Template.Spec.Containers[0])["MAILGATE_JWT_PUBLIC_KEYS"]; ok {
		t.Error("MAILGATE_JWT_PUBLIC_KEYS set with no keys configured")
	}
}

func TestNetworkPolicies(t *testing.T) {
	r := renderChart(t, merge(valuesFile(t, "all-features.yaml"), parseValues(t, `
networkPolicy:
  egress:
    smtp: {ports: [25, 465, 587], to: []}
    postgresql: {ports: [5432], to: []}
    webhooks: {enabled: true, ports: [443], to: []}
`)))
	worker := r.get(t, "NetworkPolicy", fullname+"-worker").Obj.(*networkingv1.NetworkPolicy)
	if !slices.Contains(worker.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Fatal("worker policy does not restrict egress")
	}
	got := map[string]bool{}
	for _, rule := range worker.Spec.Egress {
		for _, p := range rule.Ports {
			got[fmt.Sprintf("%s/%s", *p.Protocol, p.Port.String())] = true
		}
	}
	// 443: the tenants' webhooks (networkPolicy.egress.webhooks).
	want := []string{"UDP/53", "TCP/53", "TCP/5432", "TCP/25", "TCP/465", "TCP/587", "TCP/443"}
	if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(slices.Values(want))) {
		t.Errorf("worker egress ports %v, want exactly %v", slices.Sorted(maps.Keys(got)), want)
	}
	api := r.get(t, "NetworkPolicy", fullname+"-api").Obj.(*networkingv1.NetworkPolicy)
	in := map[string]bool{}
	for _, rule := range api.Spec.Ingress {
		for _, p := range rule.Ports {
			in[p.Port.String()] = true
		}
	}
	if !in["8080"] || !in["9090"] || len(in) != 2 {
		t.Errorf("api ingress ports %v, want 8080 and 9090", in)
	}
	for _, rule := range api.Spec.Egress {
		for _, p := range rule.Ports {
			if p.Port.IntValue() == 25 || p.Port.IntValue() == 587 || p.Port.IntValue() == 465 {
				t.Errorf("the API may not send SMTP: egress port %s", p.Port.String())
			}
		}
	}
}

// TestNetworkPolicyWebhookEgress: with the policy on, workers still reach
// webhook endpoints on the public internet over HTTPS (they used to get no
// 443 and disabled every endpoint after a day), never the cloud metadata
// address or private ranges by default, and the rule is configurable.
func TestNetworkPolicyWebhookEgress(t *testing.T) {
	webhookRule := func(t *testing.T, vals string) *networkingv1.NetworkPolicyEgressRule {
		t.Helper()
		r := renderChart(t, merge(parseValues(t, "networkPolicy: {enabled: true}"), parseValues(t, vals)))
		worker := r.get(t, "NetworkPolicy", fullname+"-worker").Obj.(*networkingv1.NetworkPolicy)
		base := r.get(t, "NetworkPolicy", fullname+"-api").Obj.(*networkingv1.NetworkPolicy)
		// The worker's rules are the API's (DNS, PostgreSQL), SMTP, then webhooks.
		if n := len(worker.Spec.Egress) - len(base.Spec.Egress); n == 1 {
			return nil
		} else if n != 2 {
			t.Fatalf("worker has %d egress rules beyond the API's, want SMTP and webhooks", n)
		}
		return &worker.Spec.Egress[len(worker.Spec.Egress)-1]
	}
	rule := webhookRule(t, "{}")
	if rule == nil || len(rule.Ports) != 1 || rule.Ports[0].Port.IntValue() != 443 {
		t.Fatalf("default webhook egress %+v, want TCP 443", rule)
	}
	var v4 *networkingv1.IPBlock
	for _, peer := range rule.To {
		if peer.IPBlock != nil && peer.IPBlock.CIDR == "0.0.0.0/0" {
			v4 = peer.IPBlock
		}
	}
	if v4 == nil {
		t.Fatalf("default webhook peers %+v do not include the IPv4 internet", rule.To)
	}
	for _, private := range []string{"169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8"} {
		if !slices.Contains(v4.Except, private) {
			t.Errorf("default webhook egress reaches %s", private)
		}
	}
	rule = webhookRule(t, "networkPolicy: {egress: {webhooks: {enabled: true, ports: [], to: [{ipBlock: {cidr: 203.0.113.0/24}}]}}}")
	if rule == nil || len(rule.Ports) != 0 || len(rule.To) != 1 || rule.To[0].IPBlock.CIDR != "203.0.113.0/24" {
		t.Errorf("webhook egress with every port to 203.0.113.0/24: %+v", rule)
	}
	if rule := webhookRule(t, "networkPolicy: {egress: {webhooks: {enabled: false}}}"); rule != nil {
		t.Errorf("webhooks disabled, yet a rule: %+v", rule)
	}
}

func TestDashboardConfigMap(t *testing.T) {
	for name, vals := range map[string]map[string]any{"defaults": nil, "all-features": valuesFile(t, "all-features.yaml")} {
		t.Run(name, func(t *testing.T) {
			r := renderChart(t, vals)
			o := r.get(t, "ConfigMap", fullname+"-dashboard")
			if o.Meta.Labels["grafana_dashboard"] != "1" {
				t.Errorf("labels %v: want grafana_dashboard: \"1\"", o.Meta.Labels)
			}
			cm := o.Obj.(*corev1.ConfigMap)
			data := cm.Data["mailgate.json"]
			if data != strings.TrimRight(string(readFile(t, dashboardPath)), "\n") {
				t.Error("the ConfigMap's mailgate.json differs from dashboards/mailgate.json")
			}
			if !json.Valid([]byte(data)) {
				t.Error("the dashboard is not valid JSON")
			}
		})
	}
	r := renderChart(t, parseValues(t, "grafanaDashboard: {enabled: false}"))
	if len(r.ofKind("ConfigMap")) != 0 {
		t.Error("dashboard ConfigMap rendered although disabled")
	}
}

func TestIngressWithoutHost(t *testing.T) {
	r := renderChart(t, parseValues(t, `
ingress:
  enabled: true
  hosts:
    - paths: [{path: /, pathType: Prefix}]
`))
	ing := r.get(t, "Ingress", fullname).Obj.(*networkingv1.Ingress)
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != "" || ing.Spec.Rules[0].HTTP == nil {
		t.Errorf("rules %+v", ing.Spec.Rules)
	}
}

func TestLongReleaseNamesFit(t *testing.T) {
	r := renderChart(t, merge(valuesFile(t, "all-features.yaml"), parseValues(t, "fullnameOverride: "+strings.Repeat("x", 50))))
	for _, o := range r.Objects {
		if len(o.Meta.Name) > 63 {
			t.Errorf("%s: name longer than 63 characters", o)
		}
	}
}

func containerPort(c corev1.Container, name string) *corev1.ContainerPort {
	for i := range c.Ports {
		if c.Ports[i].Name == name {
			return &c.Ports[i]
		}
	}
	return nil
}

func portResolves(c corev1.Container, p intstr.IntOrString) bool {
	for _, cp := range c.Ports {
		if p.Type == intstr.String && cp.Name == p.StrVal || p.Type == intstr.Int && cp.ContainerPort == p.IntVal {
			return true
		}
	}
	return false
}

func envMap(c corev1.Container) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

func isTrue(b *bool) bool { return b != nil && *b }

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("%q is not a number", s)
	}
	return n
}
