package matcher

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shrike-cep/shrike/rules"
)

// familyRuleset has n single-event rules and n pattern rules of one shape
// that differ only in an amount threshold: the amount comparisons of each
// kind form a slot family. 70 thresholds put members on both sides of
// Prepare's 64 slots.
func familyRuleset(n int) string {
	var b strings.Builder
	b.WriteString("ruleset: fam\nrules:\n")
	for i := range n {
		fmt.Fprintf(&b, `  - id: big-%d
    when: event.type == "t" && event.amount > %d.5
  - id: pair-%d
    within: 50ms
    pattern:
      - step: a
        where: event.type == "t" && event.amount >= %d.0
      - step: b
        where: event.type == "t" && event.amount < %d.25
`, i, 100+i, i, 100+2*i, 150-i)
	}
	return b.String()
}

// familyEvents is a stream over a few keys whose amounts are fractional
// numbers (decided by the families), integral ones (left to each
// condition: an int under no schema), strings (a CEL error per condition)
// and missing.
func familyEvents(t *testing.T, n int) []*Record {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	var recs []*Record
	for i := range n {
		var amount string
		switch rng.IntN(10) {
		case 0:
			amount = fmt.Sprintf(`,"amount":%d`, 90+rng.IntN(100))
		case 1:
			amount = `,"amount":"120.5"`
		case 2:
		default:
			amount = fmt.Sprintf(`,"amount":%d.%d`, 90+rng.IntN(100), rng.IntN(100))
		}
		typ := "t"
		if rng.IntN(8) == 0 {
			typ = "u"
		}
		raw := fmt.Sprintf(`{"id":%d,"type":%q%s}`, i, typ, amount)
		e, err := rules.ParseEvent([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &Record{Event: e, Key: fmt.Sprintf("k%d", rng.IntN(4)), Time: int64(i) * ms, Pos: Position{Source: "test", Offset: int64(i + 1)}})
	}
	return recs
}

// TestSlotFamiliesMatchEachRuleAlone: a Program whose threshold conditions
// are decided together by a family gives the alerts (ids included) and the
// per-rule counters (CEL errors included) that each rule gives in a Program
// of its own with every condition evaluated on its own; with the records
// prepared, as the engine prepares them, and without.
func TestSlotFamiliesMatchEachRuleAlone(t *testing.T) {
	const n = 35
	rs, err := rules.Load("fam.yaml", []byte(familyRuleset(n)), rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	together, err := NewProgram([]*rules.Compiled{rs})
	if err != nil {
		t.Fatal(err)
	}
	if len(together.families) != 1 || len(together.families[0].slots) != 3*n {
		t.Fatalf("%d families, want 1 of the %d amount comparisons", len(together.families), 3*n)
	}
	run := func(prog *Program, prepare bool) ([]string, map[RuleID]RuleStats) {
		c := &collector{}
		p, err := NewPartition(prog, c, Options{Clock: func() time.Time { return time.Unix(0, 0) }})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range familyEvents(t, 3000) {
			if prepare {
				prog.Prepare(r)
			}
			p.Push(r)
		}
		p.Advance(1 << 62)
		var ids []string
		for _, a := range c.alerts {
			ids = append(ids, a.Rule+" "+a.ID)
		}
		return ids, p.Stats().ByRule
	}
	for _, prepare := range []bool{false, true} {
		gotIDs, gotStats := run(together, prepare)
		var wantIDs []string
		wantStats := map[RuleID]RuleStats{}
		for _, cr := range rs.Rules {
			alone := *rs
			alone.Rules = []*rules.CompiledRule{cr}
			prog, err := NewProgram([]*rules.Compiled{&alone})
			if err != nil {
				t.Fatal(err)
			}
			// Each condition on its own, as before families.
			prog.families = nil
			for i := range prog.familyOf {
				prog.familyOf[i] = -1
			}
			ids, stats := run(prog, prepare)
			wantIDs = append(wantIDs, ids...)
			for id, st := range stats {
				wantStats[id] = st
			}
		}
		slices.Sort(gotIDs)
		slices.Sort(wantIDs)
		if len(wantIDs) == 0 || !slices.Equal(gotIDs, wantIDs) {
			t.Errorf("prepare %v: %d alerts together, %d rule by rule; they differ (or none)", prepare, len(gotIDs), len(wantIDs))
		}
		var celErrors uint64
		for id, want := range wantStats {
			got := gotStats[id]
			if got.Alerts != want.Alerts || got.CELErrors != want.CELErrors || got.Timeouts != want.Timeouts || got.PeakRuns != want.PeakRuns {
				t.Errorf("prepare %v: %s counters together %+v, alone %+v", prepare, id, got, want)
			}
			celErrors += got.CELErrors
		}
		if celErrors == 0 {
			t.Errorf("prepare %v: no CEL errors counted: the string amounts must reach the conditions one by one", prepare)
		}
	}
}
