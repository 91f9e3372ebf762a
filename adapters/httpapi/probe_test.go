package httpapi

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// recordingObserver keeps the routes of the requests it was told about.
type recordingObserver struct {
	mu     sync.Mutex
	routes []string
}

func (o *recordingObserver) ObserveRequest(_, route string, _ int, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.routes = append(o.routes, route)
}

func (o *recordingObserver) ObserveAccepted(uuid.UUID, int) {}

// TestProbesAreNotAPITraffic: the kubelet's /healthz and /readyz polls are
// neither counted in the request metrics nor logged at info, while an API
// request still is; a failing /readyz still says why at warn.
func TestProbesAreNotAPITraffic(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	observer := &recordingObserver{}
	ready := error(nil)
	s := New(Deps{
		Observer: observer,
		Logger:   slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Ready:    func(context.Context) error { return ready },
	})
	get := func(path string) int {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	for range 3 {
		if code := get("/healthz"); code != http.StatusOK {
			t.Fatalf("/healthz: %d", code)
		}
		if code := get("/readyz"); code != http.StatusOK {
			t.Fatalf("/readyz: %d", code)
		}
	}
	if code := get("/api/openapi.json"); code != http.StatusOK {
		t.Fatalf("/api/openapi.json: %d", code)
	}
	if strings.Join(observer.routes, ",") != "/api/openapi.json" {
		t.Errorf("observed routes %v, want only /api/openapi.json", observer.routes)
	}
	out := logs.String()
	if strings.Contains(out, `"route":"/healthz"`) || strings.Contains(out, `"route":"/readyz"`) {
		t.Errorf("probes logged at info:\n%s", out)
	}
	if !strings.Contains(out, `"route":"/api/openapi.json"`) {
		t.Errorf("the API request was not logged:\n%s", out)
	}
	ready = context.DeadlineExceeded
	if code := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("failing /readyz: %d", code)
	}
	if !strings.Contains(logs.String(), `"level":"WARN","msg":"not ready"`) {
		t.Errorf("a failing /readyz did not log why:\n%s", logs.String())
	}
}
