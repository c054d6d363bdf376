package matcher

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestKeyTableAgreesWithAMap puts and removes keys at random, with hashes
// from a tiny range so that probe sequences collide, wrap around the end
// of the table and shift back on removal, and checks every lookup against
// a map.
func TestKeyTableAgreesWithAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	tab := newKeyTable()
	ref := map[string]*keyState{}
	for step := range 50_000 {
		key := fmt.Sprintf("k%d", rng.IntN(300))
		// 300 keys over 24 hashes, half of which are home to the table's
		// last slots, whatever its size.
		hash := rng.Uint64N(12)
		if rng.IntN(2) == 0 {
			hash = ^hash
		}
		if ks := ref[key]; ks != nil {
			hash = ks.hash
		}
		if got := tab.get(key, hash); got != ref[key] {
			t.Fatalf("step %d: get(%s) = %p, want %p", step, key, got, ref[key])
		}
		if ks := ref[key]; ks != nil && rng.IntN(2) == 0 {
			tab.remove(ks)
			delete(ref, key)
		} else if ks == nil {
			ks = newKeyState(key, hash)
			tab.put(ks)
			ref[key] = ks
		}
		if tab.len() != len(ref) {
			t.Fatalf("step %d: len %d, want %d", step, tab.len(), len(ref))
		}
	}
	seen := 0
	for e := range tab.all() {
		if ks := e.full(); ref[ks.key] != ks {
			t.Fatalf("all yielded %s, which is not resident", ks.key)
		}
		seen++
	}
	if seen != len(ref) {
		t.Fatalf("all yielded %d states, want %d", seen, len(ref))
	}
	// Removing every state while iterating empties the table.
	for e := range tab.all() {
		tab.remove(e.full())
	}
	for key := range ref {
		if tab.lookup(key) != nil {
			t.Fatalf("%s still resident after removing all", key)
		}
	}
	if tab.len() != 0 {
		t.Fatalf("len %d after removing all", tab.len())
	}
}

// TestKeyTableRemovingInFromOrderKeepsProbesShort: a table that a caller
// thins by removing the states from gives it, then fills again, as
// eviction does at every checkpoint, keeps short probe sequences for keys
// it does not hold (most lookups, when most keys are evicted).
func TestKeyTableRemovingInFromOrderKeepsProbesShort(t *testing.T) {
	tb := newKeyTable()
	next := 0
	add := func(n int) {
		for range n {
			k := fmt.Sprintf("acct-%07d", next)
			next++
			tb.put(&keyState{key: k, hash: hashKey(k)})
		}
	}
	absentProbes := func() float64 {
		var total int
		const lookups = 5000
		for i := range lookups {
			h := hashKey(fmt.Sprintf("absent-%d", i))
			m := tb.mask()
			for j := h & m; ; j = (j + 1) & m {
				total++
				if tb.slots[j].ref == nil {
					break
				}
			}
		}
		return float64(total) / lookups
	}
	add(22_000)
	var pos uint64
	for round := range 8 {
		// A state that removal moves back may be missed in one lap.
		for laps := 0; tb.len() > 2_000 && laps < 3; laps++ {
			pos = tb.from(pos, func(e keySlot) bool {
				tb.remove(e.full())
				return tb.len() > 2_000
			})
		}
		if tb.len() != 2_000 {
			t.Fatalf("round %d: %d states left, want 2,000", round, tb.len())
		}
		add(20_000)
		// At the load of 22,000 keys in 32,768 slots, a probe for a key
		// not held takes about 5 slots when entries lie at random.
		if got := absentProbes(); got > 15 {
			t.Fatalf("round %d: %.1f slots probed per key not held (load %d/%d): removal left the table clustered", round, got, tb.len(), len(tb.slots))
		}
	}
}

// TestKeyTableFromVisitsEverySlot: from gives every state once when none
// is removed, from any position, and goes on where it stopped.
func TestKeyTableFromVisitsEverySlot(t *testing.T) {
	tb := newKeyTable()
	for i := range 1000 {
		k := fmt.Sprintf("k%d", i)
		tb.put(&keyState{key: k, hash: hashKey(k)})
	}
	for _, start := range []uint64{0, 1, 12345} {
		seen := map[string]int{}
		end := tb.from(start, func(e keySlot) bool {
			seen[e.key()]++
			return true
		})
		if len(seen) != 1000 || end != start+uint64(len(tb.slots)) {
			t.Errorf("from %d: %d keys given, ended at %d: want 1000, at %d", start, len(seen), end, start+uint64(len(tb.slots)))
		}
		for k, n := range seen {
			if n != 1 {
				t.Errorf("from %d: %s given %d times", start, k, n)
			}
		}
	}
	// Stopped after 10 states, the next call goes on with the 11th.
	var first, rest []string
	pos := tb.from(0, func(e keySlot) bool {
		first = append(first, e.key())
		return len(first) < 10
	})
	tb.from(pos, func(e keySlot) bool {
		rest = append(rest, e.key())
		return false
	})
	var all []string
	tb.from(0, func(e keySlot) bool {
		all = append(all, e.key())
		return len(all) < 11
	})
	if len(rest) != 1 || rest[0] != all[10] {
		t.Errorf("went on with %q, want %q", rest, all[10])
	}
}
