package jobs

import (
	"sync"

	"github.com/google/uuid"
)

// tenantSlots caps how many deliveries of one tenant run at once in this
// process, so one tenant's flood can't take every worker: the others' jobs
// still find free workers while the flood waits its turn.
type tenantSlots struct {
	limit int
	mu    sync.Mutex
	busy  map[uuid.UUID]int
}

func newTenantSlots(limit int) *tenantSlots {
	return &tenantSlots{limit: limit, busy: make(map[uuid.UUID]int)}
}

// acquire takes a slot for tenant; false means the tenant is at its cap.
func (s *tenantSlots) acquire(tenant uuid.UUID) bool {
	if s == nil || s.limit <= 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[tenant] >= s.limit {
		return false
	}
	s.busy[tenant]++
	return true
}

func (s *tenantSlots) release(tenant uuid.UUID) {
	if s == nil || s.limit <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[tenant] <= 1 {
		delete(s.busy, tenant)
		return
	}
	s.busy[tenant]--
}
