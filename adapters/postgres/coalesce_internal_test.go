package postgres

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// groupRecorder is an overlapped coalescer's handler that reports each
// group it starts and runs it as its test says.
type groupRecorder struct {
	started chan []int
	// run is called with the group and its handoff; nil answers at once.
	run func(group []int, handoff func())
}

func (g *groupRecorder) handle(_ context.Context, group []int, handoff func()) []error {
	g.started <- slices.Clone(group)
	if g.run != nil {
		g.run(group, handoff)
	}
	return make([]error, len(group))
}

func submitAsync(c *coalescer[int], item int) <-chan error {
	done := make(chan error, 1)
	go func() { done <- c.submit(context.Background(), item) }()
	return done
}

// handOver puts item where the runners collect from, as submit does, and
// returns where its answer comes.
func handOver(c *coalescer[int], item int) <-chan error {
	w := coalescedItem[int]{item: item, done: make(chan error, 1)}
	c.pending <- w
	return w.done
}

func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestOverlappedCoalescerStartsTheNextGroupAtHandoff(t *testing.T) {
	release := make(chan struct{})
	rec := &groupRecorder{started: make(chan []int, 8)}
	rec.run = func(group []int, handoff func()) {
		if group[0] == 1 {
			handoff()
			<-release // the first group's last round trip, still running
		}
	}
	c := newOverlappedCoalescer("test", 10, time.Minute, rec.handle)
	defer c.close()
	stopBlocking := sync.OnceFunc(func() { close(release) })
	defer stopBlocking() // before close, when the test fails

	first := submitAsync(c, 1)
	if got := waitFor(t, rec.started, "the first group"); !slices.Equal(got, []int{1}) {
		t.Fatalf("first group %v, want [1]", got)
	}
	second := submitAsync(c, 2)
	if got := waitFor(t, rec.started, "the second group"); !slices.Equal(got, []int{2}) {
		t.Fatalf("second group %v, want [2]", got)
	}
	if err := waitFor(t, second, "the second item's answer, while the first group still runs"); err != nil {
		t.Fatal(err)
	}
	stopBlocking()
	if err := waitFor(t, first, "the first item's answer"); err != nil {
		t.Fatal(err)
	}
}

func TestOverlappedCoalescerCollectsOneGroupAtATime(t *testing.T) {
	release := make(chan struct{})
	rec := &groupRecorder{started: make(chan []int, 8)}
	rec.run = func(group []int, _ func()) {
		if group[0] == 1 {
			<-release // checks still running: no handoff yet
		}
	}
	c := newOverlappedCoalescer("test", 10, time.Minute, rec.handle)
	defer c.close()
	stopBlocking := sync.OnceFunc(func() { close(release) })
	defer stopBlocking()

	first := submitAsync(c, 1)
	waitFor(t, rec.started, "the first group")
	if len(c.collecting) != 1 {
		t.Fatal("the first group runs its checks without holding the right to collect")
	}
	// Handed over directly, so both are waiting before the first group ends.
	second, third := handOver(c, 2), handOver(c, 3)
	select {
	case g := <-rec.started:
		t.Fatalf("group %v started before the first group handed off", g)
	default:
	}
	stopBlocking()
	got := waitFor(t, rec.started, "the next group")
	slices.Sort(got)
	if !slices.Equal(got, []int{2, 3}) {
		t.Fatalf("next group %v, want [2 3] together", got)
	}
	for _, done := range []<-chan error{first, second, third} {
		if err := waitFor(t, done, "an answer"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOverlappedCoalescerHandlesAloneAfterClose(t *testing.T) {
	rec := &groupRecorder{started: make(chan []int, 8)}
	c := newOverlappedCoalescer("test", 10, time.Minute, rec.handle)
	if err := c.submit(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	c.close()
	if err := c.submit(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]int{{1}, {2}} {
		if got := waitFor(t, rec.started, "a group"); !slices.Equal(got, want) {
			t.Fatalf("group %v, want %v", got, want)
		}
	}
}
