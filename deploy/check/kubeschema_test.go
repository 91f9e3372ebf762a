package check

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"
)

// The Kubernetes versions the chart is proved against: the oldest it claims
// (Chart.yaml's kubeVersion) and the newest released. Each is checked against
// that release's own OpenAPI document, api/openapi-spec/swagger.json of the
// k8s.io/kubernetes module, fetched through the Go module proxy (checksummed
// by go.sum's database) and cached in the module cache, so the check runs
// offline once the cache is warm.
var kubeReleases = []struct {
	Version string // as the chart's Capabilities see it
	Module  string // k8s.io/kubernetes module version holding its OpenAPI
}{
	{"v1.25.0", "v1.25.16"},
	{"v1.37.0", "v1.37.2"},
}

// kubeSchema validates manifests against one Kubernetes release's OpenAPI
// definitions, the way kubeconform -strict does: an unknown field, a wrong
// type or a null where an object or list belongs fails.
type kubeSchema struct {
	byGVK map[string]*jsonschema.Schema // "apps/v1/Deployment"
}

var kubeSchemas sync.Map // module version -> func() (*kubeSchema, error)

func loadKubeSchema(t testing.TB, module string) *kubeSchema {
	t.Helper()
	once, _ := kubeSchemas.LoadOrStore(module, sync.OnceValues(func() (*kubeSchema, error) { return buildKubeSchema(module) }))
	s, err := once.(func() (*kubeSchema, error))()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func buildKubeSchema(module string) (*kubeSchema, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("the go tool is needed to fetch the Kubernetes %s OpenAPI document: %w", module, err)
	}
	cmd := exec.Command(goBin, "mod", "download", "-json", "k8s.io/kubernetes@"+module)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var dl struct{ Dir, Error string }
	_ = json.Unmarshal(out, &dl)
	if err != nil || dl.Dir == "" {
		return nil, fmt.Errorf("go mod download k8s.io/kubernetes@%s (the Kubernetes OpenAPI document; needs the module proxy once, then the module cache): %v %s %s", module, err, dl.Error, stderr.String())
	}
	raw, err := os.ReadFile(filepath.Join(dl.Dir, "api", "openapi-spec", "swagger.json"))
	if err != nil {
		return nil, err
	}
	var spec struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("kubernetes %s swagger.json: %w", module, err)
	}
	defs := map[string]any{}
	for name, def := range spec.Definitions {
		defs[name] = strictDefinition(name, def)
	}
	const base = "https://kubernetes.example/swagger.json"
	compiler := jsonschema.NewCompiler()
	compiler.DefaultDraft(jsonschema.Draft7)
	if err := compiler.AddResource(base, map[string]any{"definitions": defs}); err != nil {
		return nil, err
	}
	s := &kubeSchema{byGVK: map[string]*jsonschema.Schema{}}
	for name, def := range spec.Definitions {
		gvks, _ := def["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			gvk, _ := g.(map[string]any)
			apiVersion := fmt.Sprint(gvk["version"])
			if group := fmt.Sprint(gvk["group"]); group != "" {
				apiVersion = group + "/" + apiVersion
			}
			key := apiVersion + "/" + fmt.Sprint(gvk["kind"])
			if _, seen := s.byGVK[key]; seen {
				continue
			}
			compiled, err := compiler.Compile(base + "#/definitions/" + jsonPointerEscape(name))
			if err != nil {
				return nil, fmt.Errorf("compile %s: %w", name, err)
			}
			s.byGVK[key] = compiled
		}
	}
	return s, nil
}

// strictDefinition turns one OpenAPI v2 definition into JSON Schema as
// kubeconform's openapi2jsonschema does: refs point into the definitions,
// int-or-string and quantities take either form, and (strict) objects with
// declared properties take no others.
func strictDefinition(name string, def map[string]any) any {
	switch name {
	case "io.k8s.apimachinery.pkg.util.intstr.IntOrString":
		return map[string]any{"type": []any{"string", "integer"}}
	case "io.k8s.apimachinery.pkg.api.resource.Quantity":
		return map[string]any{"type": []any{"string", "number"}}
	}
	return strictNode(def)
}

func strictNode(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, c := range v {
			if strings.HasPrefix(k, "x-kubernetes-") || k == "description" {
				continue
			}
			if k == "$ref" {
				if ref, ok := c.(string); ok {
					out[k] = "#/definitions/" + jsonPointerEscape(strings.TrimPrefix(ref, "#/definitions/"))
					continue
				}
			}
			out[k] = strictNode(c)
		}
		if out["format"] == "int-or-string" {
			delete(out, "format")
			out["type"] = []any{"string", "integer"}
		}
		if _, hasProps := out["properties"]; hasProps {
			if _, set := out["additionalProperties"]; !set {
				out["additionalProperties"] = false
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, c := range v {
			out[i] = strictNode(c)
		}
		return out
	}
	return v
}

func jsonPointerEscape(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// validate checks one manifest; builtIn is false for a kind the release does
// not define (the Prometheus Operator's and KEDA's, decoded strictly into
// their Go types instead).
func (s *kubeSchema) validate(doc string) (builtIn bool, err error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
		return false, err
	}
	schema, ok := s.byGVK[head.APIVersion+"/"+head.Kind]
	if !ok {
		return false, nil
	}
	asJSON, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		return true, err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(asJSON))
	if err != nil {
		return true, err
	}
	return true, schema.Validate(inst)
}

// validateRendered checks every built-in manifest of r against release's
// schema and reports how many it checked.
func validateRendered(t *testing.T, r rendered, module string) int {
	t.Helper()
	schema := loadKubeSchema(t, module)
	checked := 0
	for _, o := range r.Objects {
		builtIn, err := schema.validate(o.YAML)
		if err != nil {
			t.Errorf("%s is invalid for Kubernetes %s: %v", o, module, err)
		}
		if builtIn {
			checked++
		}
	}
	return checked
}

// TestSchemaValidationCatchesMistakes: the validator refuses what kubeconform
// refuses, among them the `annotations: null` the chart once rendered and a
// field the oldest release does not know.
func TestSchemaValidationCatchesMistakes(t *testing.T) {
	oldest := loadKubeSchema(t, kubeReleases[0].Module)
	newest := loadKubeSchema(t, kubeReleases[len(kubeReleases)-1].Module)
	pdb := "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: x}\nspec: {maxUnavailable: 0, unhealthyPodEvictionPolicy: AlwaysAllow}\n"
	if _, err := newest.validate(pdb); err != nil {
		t.Errorf("newest release refuses unhealthyPodEvictionPolicy: %v", err)
	}
	if _, err := oldest.validate(pdb); err == nil {
		t.Error("1.25 accepted unhealthyPodEvictionPolicy, which it does not know")
	}
	for name, doc := range map[string]string{
		"null annotations": "apiVersion: batch/v1\nkind: Job\nmetadata: {name: x, annotations: null}\nspec: {template: {spec: {containers: [{name: a, image: b}]}}}\n",
		"unknown field":    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 2, selector: {}, template: {}}\n",
		"wrong type":       "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: http}]}\n",
	} {
		for _, s := range []*kubeSchema{oldest, newest} {
			if builtIn, err := s.validate(doc); !builtIn || err == nil {
				t.Errorf("%s: accepted (built in: %v)", name, builtIn)
			}
		}
	}
	for _, ok := range []string{
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 80, targetPort: http}]}\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {selector: {}, template: {spec: {containers: [{name: a, resources: {limits: {cpu: 1, memory: 1Gi}}}]}}}\n",
	} {
		if _, err := oldest.validate(ok); err != nil {
			t.Errorf("refused a valid manifest: %v\n%s", err, ok)
		}
	}
}
