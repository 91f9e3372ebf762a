package postgres

import (
	"fmt"
	"testing"
	"time"
)

func TestReturnPathCache(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	t.Run("TTL", func(t *testing.T) {
		c := newReturnPathCache(5*time.Minute, 30*time.Second, 10, clock)
		_, _, gen := c.get("hit.example")
		c.put("hit.example", true, gen)
		c.put("miss.example", false, gen)
		now = now.Add(29 * time.Second)
		if found, ok, _ := c.get("hit.example"); !ok || !found {
			t.Fatal("a fresh hit was not cached")
		}
		if found, ok, _ := c.get("miss.example"); !ok || found {
			t.Fatal("a fresh miss was not cached")
		}
		// Misses expire first, hits later.
		now = now.Add(2 * time.Second)
		if _, ok, _ := c.get("miss.example"); ok {
			t.Fatal("a miss outlived its TTL")
		}
		if _, ok, _ := c.get("hit.example"); !ok {
			t.Fatal("a hit expired with the misses")
		}
		now = now.Add(5 * time.Minute)
		if _, ok, _ := c.get("hit.example"); ok {
			t.Fatal("a hit outlived its TTL")
		}
		if c.len() != 0 {
			t.Fatalf("%d expired entries kept", c.len())
		}
	})
	t.Run("Bounded", func(t *testing.T) {
		c := newReturnPathCache(time.Hour, time.Hour, 3, clock)
		_, _, gen := c.get("")
		for i := range 3 {
			c.put(fmt.Sprintf("d%d.example", i), false, gen)
		}
		c.get("d0.example") // d1 is now the least recently used
		for i := 3; i < 100; i++ {
			c.put(fmt.Sprintf("d%d.example", i), false, gen)
			if c.len() > 3 {
				t.Fatalf("%d entries, capacity 3", c.len())
			}
		}
		c = newReturnPathCache(time.Hour, time.Hour, 3, clock)
		for _, d := range []string{"a", "b", "c"} {
			c.put(d, true, gen)
		}
		c.get("a")
		c.put("d", true, gen)
		if _, ok, _ := c.get("b"); ok {
			t.Fatal("the least recently used entry was kept over a newer one")
		}
		if _, ok, _ := c.get("a"); !ok {
			t.Fatal("a recently used entry was evicted")
		}
	})
	t.Run("Invalidate", func(t *testing.T) {
		c := newReturnPathCache(time.Hour, time.Hour, 10, clock)
		_, _, before := c.get("x.example")
		c.put("y.example", true, before)
		c.invalidate()
		if _, ok, _ := c.get("y.example"); ok {
			t.Fatal("an answer survived the invalidation")
		}
		// A lookup that began before the change must not store its answer after it.
		c.put("x.example", false, before)
		if _, ok, _ := c.get("x.example"); ok {
			t.Fatal("a lookup from before the invalidation was cached")
		}
		_, _, after := c.get("x.example")
		c.put("x.example", true, after)
		if found, ok, _ := c.get("x.example"); !ok || !found {
			t.Fatal("a lookup after the invalidation was not cached")
		}
	})
}
