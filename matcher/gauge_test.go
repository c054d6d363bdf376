package matcher

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/rules"
)

// TestRunGauge runs two Partitions of one Program, one after the other as
// a replay of a partition-by-partition dump does, and checks that their
// gauge peaks at the most partial matches open at once, where the sum of
// their own peaks (5) would overstate it and the largest (3) understate
// it.
func TestRunGauge(t *testing.T) {
	a, _ := newPartition(t, abRule, Options{})
	b, err := NewPartition(a.prog, &collector{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	live := func(want int) {
		t.Helper()
		if got := a.Stats().LiveRuns + b.Stats().LiveRuns; got != want {
			t.Fatalf("open partial matches = %d, want %d", got, want)
		}
		// The one rule holds every partial match.
		id := RuleID{Ruleset: "test", Rule: "ab"}
		if got := a.Stats().ByRule[id].LiveRuns + b.Stats().ByRule[id].LiveRuns; got != want {
			t.Fatalf("open partial matches of %s = %d, want %d", id, got, want)
		}
	}
	// a runs alone first: two open, then both time out.
	push(t, a, []ev{{1, "k1", 0, "a"}, {2, "k2", 1, "a"}})
	a.Advance(2 * ms)
	live(2)
	a.Advance(100 * ms)
	live(0)

	g := NewRunGauge(a.prog)
	for _, p := range []*Partition{a, b, a} { // joining twice is harmless
		if err := p.ShareRuns(g); err != nil {
			t.Fatal(err)
		}
	}
	if g.Peak() != 2 {
		t.Errorf("after a joined: Peak = %d, want 2 (a's own peak)", g.Peak())
	}
	push(t, b, []ev{{3, "k3", 0, "a"}, {4, "k4", 1, "a"}, {5, "k5", 2, "a"}})
	b.Advance(3 * ms)
	live(3)
	push(t, a, []ev{{6, "k6", 200, "a"}})
	a.Advance(201 * ms)
	live(4)
	b.Advance(100 * ms)
	live(1)

	if a.Stats().PeakRuns != 2 || b.Stats().PeakRuns != 3 {
		t.Errorf("own peaks = %d and %d, want 2 and 3", a.Stats().PeakRuns, b.Stats().PeakRuns)
	}
	if g.Peak() != 4 {
		t.Errorf("Peak = %d, want 4", g.Peak())
	}
	if d := cmp.Diff(map[RuleID]int{{Ruleset: "test", Rule: "ab"}: 4}, g.RulePeaks()); d != "" {
		t.Errorf("RulePeaks (-want +got):\n%s", d)
	}

	other, err := NewProgram([]*rules.Compiled{a.prog.rules[0].ruleset})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.ShareRuns(NewRunGauge(other)); err == nil {
		t.Error("ShareRuns with a gauge of another program: no error")
	}
}
