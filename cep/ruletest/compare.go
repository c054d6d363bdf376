package ruletest

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/shrike-cep/shrike/matcher"
)

// compare pairs expected and actual alerts and fills in tr's verdict. An
// expectation may match several alerts and an alert several expectations;
// a maximum bipartite matching (augmenting paths, trying alerts in the
// order they came) pairs as many as possible, so that a loose expectation
// written first cannot take the one alert a stricter one needs.
func compare(tr *TestResult, t *Test, actual []*Alert) {
	var acts []*Alert
	for _, a := range actual {
		if compared(t, a) {
			acts = append(acts, a)
		}
	}
	tr.Alerts = len(acts)
	adj := make([][]int, len(t.Expect))
	for i, e := range t.Expect {
		for j, a := range acts {
			if len(diffs(e, a)) == 0 {
				adj[i] = append(adj[i], j)
			}
		}
	}
	owner := make([]int, len(acts)) // expectation matched to each alert, -1 none
	for j := range owner {
		owner[j] = -1
	}
	var augment func(i int, seen []bool) bool
	augment = func(i int, seen []bool) bool {
		for _, j := range adj[i] {
			if seen[j] {
				continue
			}
			seen[j] = true
			if owner[j] < 0 || augment(owner[j], seen) {
				owner[j] = i
				return true
			}
		}
		return false
	}
	matched := make([]bool, len(t.Expect))
	for i := range t.Expect {
		matched[i] = augment(i, make([]bool, len(acts)))
	}
	// A missing alert with an unmatched alert of the same rule and key is
	// most likely that alert, with something wrong: show what.
	claimed := make([]bool, len(acts))
	for i, e := range t.Expect {
		if matched[i] {
			continue
		}
		m := &Miss{Expected: e}
		for j, a := range acts {
			if owner[j] < 0 && !claimed[j] && sameRuleAndKey(e, a) {
				claimed[j] = true
				m.Closest, m.Diffs = a, diffs(e, a)
				break
			}
		}
		tr.Missing = append(tr.Missing, m)
	}
	for j, a := range acts {
		if owner[j] < 0 && !claimed[j] {
			tr.Unexpected = append(tr.Unexpected, a)
		}
	}
}

// compared reports whether a's rule is compared in test t.
func compared(t *Test, a *Alert) bool {
	if len(t.Only) == 0 {
		return true
	}
	for _, r := range t.Only {
		if r.Rule == a.Rule && r.Ruleset == a.Ruleset {
			return true
		}
	}
	return false
}

func sameRuleAndKey(e *Expected, a *Alert) bool {
	return e.Ruleset == a.Ruleset && e.Rule == a.Rule && (e.Key == nil || *e.Key == a.Key)
}

// diffs lists how alert a differs from expectation e; none means a match.
func diffs(e *Expected, a *Alert) []string {
	var out []string
	if e.Ruleset != a.Ruleset || e.Rule != a.Rule {
		out = append(out, fmt.Sprintf("rule: want %s, got %s/%s", e.RuleRef.String(), a.Ruleset, a.Rule))
	}
	if e.Key != nil && *e.Key != a.Key {
		out = append(out, fmt.Sprintf("key: want %q, got %q", *e.Key, a.Key))
	}
	if e.Severity != "" && e.Severity != a.Severity {
		out = append(out, fmt.Sprintf("severity: want %s, got %s", e.Severity, a.Severity))
	}
	out = append(out, labelDiffs(e.Labels, a.Labels)...)
	if e.Timeout != nil && *e.Timeout != a.Timeout {
		out = append(out, fmt.Sprintf("timeout: want %t, got %t", *e.Timeout, a.Timeout))
	}
	if e.Summary != nil && *e.Summary != a.Summary {
		out = append(out, fmt.Sprintf("summary: want %q, got %q", *e.Summary, a.Summary))
	}
	out = append(out, measureDiffs(e.Measures, a.Measures)...)
	for _, st := range e.Steps {
		out = append(out, stepDiffs(st, a.step(st.Step))...)
	}
	return out
}

// measureDiffs lists the expected measures the alert lacks or holds with
// another value. Values compare within a relative 1e-9, so that a test
// may write the sum of amounts as it reads.
func measureDiffs(want []ExpectedMeasure, got []matcher.Measure) []string {
	var out []string
	for _, w := range want {
		i := slices.IndexFunc(got, func(m matcher.Measure) bool { return m.Name == w.Name })
		if i < 0 {
			out = append(out, fmt.Sprintf("measure %s: want %s, got none", w.Name, expectedMeasureText(w)))
			continue
		}
		g := got[i]
		switch {
		case w.None && g.None:
		case w.None || g.None || math.Abs(g.Value-w.Value) > 1e-9*math.Max(1, math.Abs(w.Value)):
			out = append(out, fmt.Sprintf("measure %s: want %s, got %s", w.Name, expectedMeasureText(w), measureText(g)))
		}
	}
	return out
}

func expectedMeasureText(m ExpectedMeasure) string {
	if m.None {
		return "null"
	}
	return strconv.FormatFloat(m.Value, 'g', -1, 64)
}

func measureText(m matcher.Measure) string {
	if m.None {
		return "null"
	}
	return strconv.FormatFloat(m.Value, 'g', -1, 64)
}

func (a *Alert) step(name string) []*AlertEvent {
	for _, s := range a.Steps {
		if s.Step == name {
			return s.Events
		}
	}
	return nil
}

func stepDiffs(st *ExpectedStep, got []*AlertEvent) []string {
	if len(got) != len(st.Events) {
		return []string{fmt.Sprintf("%s: want %s, got %s", st.Step,
			plural(len(st.Events), "event"), eventCount(got))}
	}
	var out []string
	for k, m := range st.Events {
		ev := got[k]
		if m.Line != 0 && m.Line != ev.Line {
			out = append(out, fmt.Sprintf("%s[%d]: want event #%d, got #%d", st.Step, k, m.Line, ev.Line))
		}
		if m.fields == nil {
			continue
		}
		for _, d := range fieldDiffs(m.fields, ev.value()) {
			out = append(out, fmt.Sprintf("%s[%d] (#%d): %s", st.Step, k, ev.Line, d))
		}
	}
	return out
}

func eventCount(evs []*AlertEvent) string {
	if len(evs) == 0 {
		return "none"
	}
	return plural(len(evs), "event") + " " + eventNumbers(evs)
}

// eventNumbers formats events as their numbers in the test: [#1 #2].
func eventNumbers(evs []*AlertEvent) string {
	parts := make([]string, len(evs))
	for i, ev := range evs {
		parts[i] = fmt.Sprintf("#%d", ev.Line)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
