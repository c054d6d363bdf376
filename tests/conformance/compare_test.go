package conformance

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-cmp/cmp"
)

// End-of-input alerts in NFA-level cases.
//
// NFA-level Flink tests (cases without `harness`) call advanceTime(ts) and
// process(event) per record and stop after the last one: they never advance
// time past it. `shrike run` ends every replay with watermark +inf, which
// closes every window still open. Two kinds of alert can arise only there,
// so the Flink test could not observe them and cases.json does not list
// them:
//
//   - timeout alerts (the rule has on_timeout, i.e. the case lists
//     expected_timeouts) of partial matches whose window was still open
//     after the last record: Flink times them out at that same +inf advance
//     in an operator (README rule 10 and rule 15's "then time out everything
//     left at end of input");
//   - absence matches of a pattern ending in notFollowedBy with a window,
//     whose window was still open after the last record (README rule 9).
//
// Such an alert is accepted, and logged, only when all of these hold: the
// case is NFA-level; the alert is a timeout of an on_timeout rule, or a
// match of a pattern ending in a negated step; its window really was open
// after the last record (deadline > the largest event time, where deadline
// is first.ts + within, or for a per-step window the previous taken event's
// ts + within while the partial match waits for the windowed step; a
// partial match without a window never closes and is never accepted); and
// Shrike emitted it after every expected alert, i.e. at the end-of-input
// advance. Anything else that is not expected is a mismatch. Expected
// alerts are never excused: a missing one always fails.

// expectation is one expected alert.
type expectation struct {
	Match   flinkMatch
	Timeout bool
	// Rank is the position, in Shrike's matching order, of the event at
	// which Flink emits it; len(events) is the end of input and -1 unknown.
	Rank int
	// At describes the emission point for messages.
	At string
}

// comparison is the outcome of compare.
type comparison struct {
	// Problems are the mismatches; the case passes when there are none.
	Problems []string
	// Tolerated describes the end-of-input alerts accepted by the rule
	// above.
	Tolerated []string
}

// compare checks Shrike's alerts (in emission order) against the case.
func compare(c *flinkCase, g *generated, alerts []shrikeAlert) comparison {
	var res comparison
	wantMatches := expectations(c, g, c.ExpectedMatches, c.ExpectedMatchEmittedAt, false)
	var wantTimeouts []expectation
	if c.ExpectedTimeouts != nil {
		wantTimeouts = expectations(c, g, *c.ExpectedTimeouts, c.ExpectedTimeoutEmittedAt, true)
	}

	// Pair every alert with the first unpaired expectation of the same kind
	// and content. Expectations are in Flink's emission order, so equal
	// matches pair up in order.
	paired := make([]*expectation, len(alerts))
	used := map[*expectation]bool{}
	lastPaired := -1
	for i, a := range alerts {
		want := wantMatches
		if a.Timeout {
			want = wantTimeouts
		}
		for j := range want {
			e := &want[j]
			if !used[e] && e.Match.String() == a.Match.String() {
				used[e], paired[i], lastPaired = true, e, i
				break
			}
		}
	}

	var gotMatches, gotTimeouts []string
	for i, a := range alerts {
		if paired[i] == nil && i > lastPaired && endOfInputAlert(c, g, a) {
			res.Tolerated = append(res.Tolerated, fmt.Sprintf("%s %s", kind(a.Timeout), a.Match))
			continue
		}
		if a.Timeout {
			gotTimeouts = append(gotTimeouts, a.Match.String())
		} else {
			gotMatches = append(gotMatches, a.Match.String())
		}
	}

	if diff := multisetDiff(wantMatches, gotMatches); diff != "" {
		res.Problems = append(res.Problems, "matches differ (-want +got):\n"+diff)
	}
	switch {
	case c.ExpectedTimeouts != nil:
		if diff := multisetDiff(wantTimeouts, gotTimeouts); diff != "" {
			res.Problems = append(res.Problems, "timed-out partial matches differ (-want +got):\n"+diff)
		}
	case len(gotTimeouts) > 0:
		res.Problems = append(res.Problems, fmt.Sprintf(
			"timeout alerts although the rule does not set alert.on_timeout: %q", gotTimeouts))
	}

	if c.MatchOrderSignificant {
		var want []string
		for _, e := range wantMatches {
			want = append(want, e.Match.String())
		}
		if diff := cmp.Diff(want, gotMatches); diff != "" {
			res.Problems = append(res.Problems, "match order differs; Flink asserts it (-want +got):\n"+diff)
		}
	}

	if p := emissionOrder(alerts, paired); p != "" {
		res.Problems = append(res.Problems, p)
	}
	return res
}

func kind(timeout bool) string {
	if timeout {
		return "timeout"
	}
	return "match"
}

// expectations pairs the expected matches with their emission points.
func expectations(c *flinkCase, g *generated, ms []flinkMatch, at []*int, timeout bool) []expectation {
	out := make([]expectation, len(ms))
	for i, m := range ms {
		e := expectation{Match: m, Timeout: timeout, Rank: -1, At: "unknown"}
		switch {
		case i >= len(at):
			// Emission point not given.
		case at[i] == nil:
			e.Rank, e.At = len(g.Times), "end of input"
		case *at[i] >= 1 && *at[i] <= len(g.Times):
			e.Rank = g.Rank[*at[i]-1]
			e.At = fmt.Sprintf("event %d (time %d)", *at[i], g.Times[*at[i]-1])
		}
		out[i] = e
	}
	return out
}

// multisetDiff compares expected and actual alerts as multisets: both sorted,
// so the diff shows exactly the missing (-) and unexpected (+) ones.
func multisetDiff(want []expectation, got []string) string {
	w := make([]string, 0, len(want))
	for _, e := range want {
		w = append(w, e.Match.String())
	}
	g := slices.Clone(got)
	if g == nil {
		g = []string{}
	}
	slices.Sort(w)
	slices.Sort(g)
	return cmp.Diff(w, g)
}

// emissionOrder checks that Shrike emits the expected alerts in an order
// consistent with Flink's emission points: alerts come out in stream order,
// so an alert Flink emits at a later event may not come before one it emits
// at an earlier event. Within one emission point the order is not normative
// (README rule 14) and not checked.
func emissionOrder(alerts []shrikeAlert, paired []*expectation) string {
	maxRank, bad := -1, false
	for _, e := range paired {
		if e == nil || e.Rank < 0 {
			continue
		}
		if e.Rank < maxRank {
			bad = true
		}
		maxRank = max(maxRank, e.Rank)
	}
	if !bad {
		return ""
	}
	var sb strings.Builder
	sb.WriteString("emission order differs from Flink's; Shrike's order, with Flink's emission point:\n")
	for i, a := range alerts {
		at := "not expected"
		if paired[i] != nil {
			at = paired[i].At
		}
		fmt.Fprintf(&sb, "\t%s %s\t(Flink: %s)\n", kind(a.Timeout), a.Match, at)
	}
	return sb.String()
}

// endOfInputAlert reports whether an unexpected alert is one that only the
// end-of-input advance can produce in an NFA-level case (see the comment at
// the top of this file).
func endOfInputAlert(c *flinkCase, g *generated, a shrikeAlert) bool {
	if c.Harness != harnessNFA || c.WithinMS == nil {
		return false
	}
	switch {
	case a.Timeout && c.ExpectedTimeouts != nil:
	case !a.Timeout && c.endsWithNot():
	default:
		return false
	}
	ids := a.Match.ids()
	if len(ids) == 0 {
		return false
	}
	var first, last int64
	for i, id := range ids {
		if id < 1 || id > len(g.Times) {
			return false
		}
		t := g.Times[id-1]
		if i == 0 || t < first {
			first = t
		}
		if i == 0 || t > last {
			last = t
		}
	}
	deadline := first + *c.WithinMS
	if c.perStepWindow() {
		if !waitsFor(c, a.Match, c.stepIndex(c.WithinFor)) {
			return false // no window applies: it never closes
		}
		deadline = last + *c.WithinMS
	}
	return deadline > slices.Max(g.Times)
}

// waitsFor reports whether a partial match waits for step k: it took
// nothing at or after k, and every step between its last taken step and k
// may be passed over.
func waitsFor(c *flinkCase, m flinkMatch, k int) bool {
	lastTaken := -1
	for _, s := range m {
		i := c.stepIndex(s.Step)
		if i >= k || i < 0 {
			return false
		}
		lastTaken = max(lastTaken, i)
	}
	if lastTaken < 0 {
		return false
	}
	for _, s := range c.eventSteps()[lastTaken+1 : k] {
		if !s.Optional && s.Min != 0 && !s.Negated {
			return false
		}
	}
	return true
}
