package metrics

import "testing"

// deferralSeries gathers mailgate_smtp_deferrals_total by code.
func deferralSeries(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "mailgate_smtp_deferrals_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			out[s.GetLabel()[0].GetValue()] = s.GetCounter().GetValue()
		}
	}
	return out
}

// TestDeferralsByReplyCode: each 4xx reply and each recipient with no reply
// counts as a deferral under its code, other replies don't, and however
// many distinct codes a relay invents the label stays within 4xx and none.
func TestDeferralsByReplyCode(t *testing.T) {
	t.Parallel()
	m := New(Options{})
	if got := deferralSeries(t, m); len(got) != 1 || got["none"] != 0 {
		t.Errorf("before any reply: %v, want none at 0", got)
	}
	for _, code := range []int{451, 451, 421, 0, 250, 550, 999, -1} {
		m.ObserveReply(code)
	}
	got := deferralSeries(t, m)
	want := map[string]float64{"451": 2, "421": 1, "none": 3}
	if len(got) != len(want) {
		t.Errorf("deferrals %v, want %v", got, want)
	}
	for code, n := range want {
		if got[code] != n {
			t.Errorf("deferrals{code=%q} = %v, want %v", code, got[code], n)
		}
	}
	for code := range 1000 {
		m.ObserveReply(code)
	}
	if n := len(deferralSeries(t, m)); n != 101 {
		t.Errorf("%d deferral series after every code, want 101 (400-499 and none)", n)
	}
}
