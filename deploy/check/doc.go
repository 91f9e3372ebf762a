// Package check holds Mailgate's deploy checks, run with `go test ./...` in
// this directory. They are a module of their own so that Helm, the
// Kubernetes API types, Prometheus and BuildKit never enter the gateway's
// module:
//
//   - the Helm chart (charts/mailgate) renders with its default values and
//     with every optional feature on (testdata/all-features.yaml), and every
//     manifest decodes strictly into its Kubernetes (or Prometheus Operator,
//     or KEDA) type, so a misspelled field or a wrong type fails;
//   - every manifest of the defaults, every feature, the README's
//     recommended install and GitOps mode validates against the OpenAPI
//     schema of the oldest Kubernetes the chart claims and the newest
//     released, strictly (kubeconform -strict's rules), with no null field;
//     the chart renders as a dependency of an umbrella chart;
//   - pod security, probes, hooks, references between objects and the
//     dashboard ConfigMap are as the operator contract says;
//   - `helm lint` passes, and values.schema.json refuses bad values;
//   - every PromQL expression in the Grafana dashboard and the PrometheusRule
//     parses, and the metric names they use are listed in
//     testdata/metrics-used.txt (regenerate with `go test ./... -update`);
//     database-wide gauges are never summed over replicas;
//   - the rendered alert rules pass `promtool check rules --lint=all`, the
//     unit tests in testdata/alerts pass `promtool test rules` and show every
//     alert firing, and each alert's runbook_url is a section of
//     docs/runbooks.md (promtool from $PROMTOOL or the PATH; `make promtool`);
//   - the Dockerfile passes BuildKit's lint rules, offline.
package check
