package metrics

import (
	"runtime"
	"testing"
)

// buildInfoSeries gathers mailgate_build_info and returns its one series.
func buildInfoSeries(t *testing.T, m *Metrics) (map[string]string, float64) {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "mailgate_build_info" {
			continue
		}
		if f.GetType().String() != "GAUGE" || len(f.GetMetric()) != 1 {
			t.Fatalf("mailgate_build_info: type %s with %d series, want one gauge series", f.GetType(), len(f.GetMetric()))
		}
		labels := map[string]string{}
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		return labels, f.GetMetric()[0].GetGauge().GetValue()
	}
	t.Fatal("mailgate_build_info is not exposed")
	return nil, 0
}

func TestBuildInfo(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		build BuildInfo
		want  map[string]string
	}{
		{"Stamped", BuildInfo{Version: "v1.2.3", Commit: "abc123", GoVersion: "go1.26.1"},
			map[string]string{"version": "v1.2.3", "commit": "abc123", "go_version": "go1.26.1"}},
		{"Unknown", BuildInfo{},
			map[string]string{"version": "unknown", "commit": "unknown", "go_version": runtime.Version()}},
	}
	for _, tc := range cases {
		labels, value := buildInfoSeries(t, New(Options{Build: tc.build}))
		if value != 1 || len(labels) != len(tc.want) {
			t.Errorf("%s: value %v labels %v, want 1 and %v", tc.name, value, labels, tc.want)
		}
		for k, v := range tc.want {
			if labels[k] != v {
				t.Errorf("%s: label %s = %q, want %q", tc.name, k, labels[k], v)
			}
		}
	}
}
