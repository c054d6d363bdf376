package nfa

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/rules"
)

var update = flag.Bool("update", false, "rewrite golden files")

// step builds a compiled step without CEL: the automaton only needs the
// expressions' identity and source.
func step(name, where string, opts ...func(*rules.Step)) *rules.CompiledStep {
	s := &rules.Step{Name: name, Where: where, Contiguity: rules.Relaxed, Loop: rules.Relaxed, Min: 1, Max: 1}
	for _, o := range opts {
		o(s)
	}
	cs := &rules.CompiledStep{Step: s, Where: &rules.Expr{Source: where}}
	if s.Until != "" {
		cs.Until = &rules.Expr{Source: s.Until}
	}
	return cs
}

func strict(s *rules.Step)   { s.Contiguity = rules.Strict }
func anyc(s *rules.Step)     { s.Contiguity = rules.Any }
func optional(s *rules.Step) { s.Optional = true }
func greedy(s *rules.Step)   { s.Greedy = true }
func not(s *rules.Step)      { s.Not = true }
func times(lo, hi int) func(*rules.Step) {
	return func(s *rules.Step) { s.Min, s.Max = lo, hi }
}
func until(c string) func(*rules.Step) { return func(s *rules.Step) { s.Until = c } }
func within(d time.Duration) func(*rules.Step) {
	return func(s *rules.Step) { s.Within = d }
}

// group builds a compiled group of steps; options apply to the group.
func group(name string, opts []func(*rules.Step), steps ...*rules.CompiledStep) *rules.CompiledStep {
	g := &rules.Step{Name: name, Group: true, Contiguity: rules.Relaxed, Loop: rules.Relaxed, Min: 1, Max: 1}
	for _, o := range opts {
		o(g)
	}
	cs := &rules.CompiledStep{Step: g, Steps: steps}
	for _, s := range steps {
		g.Steps = append(g.Steps, s.Step)
	}
	if g.Until != "" {
		cs.Until = &rules.Expr{Source: g.Until}
	}
	return cs
}

func opts(o ...func(*rules.Step)) []func(*rules.Step) { return o }

func loopStrict(s *rules.Step) { s.Loop = rules.Strict }
func loopAny(s *rules.Step)    { s.Loop = rules.Any }

func rule(within time.Duration, steps ...*rules.CompiledStep) *rules.CompiledRule {
	return &rules.CompiledRule{Rule: &rules.Rule{ID: "r", Within: within}, Steps: steps}
}

func TestCompileGolden(t *testing.T) {
	tests := []struct {
		name string
		rule *rules.CompiledRule
	}{
		{"relaxed", rule(0, step("a", "A"), step("b", "B"))},
		{"strict", rule(0, step("a", "A"), step("b", "B", strict))},
		{"any", rule(0, step("a", "A"), step("b", "B", anyc))},
		{"optional_middle", rule(0, step("a", "A"), step("b", "B", optional), step("c", "C"))},
		{"one_or_more", rule(0, step("a", "A"), step("b", "B", times(1, -1)), step("c", "C"))},
		{"times_2_3_strict_loop", rule(0, step("a", "A"), step("b", "B", times(2, 3), func(s *rules.Step) { s.Loop = rules.Strict }))},
		{"greedy_loop", rule(0, step("a", "A", times(1, -1), greedy), step("b", "B"))},
		{"until_loop", rule(0, step("a", "A"), step("b", "B", times(1, -1), until("U")), step("c", "C"))},
		{"not_next_middle", rule(0, step("a", "A"), step("n", "N", not, strict), step("b", "B"))},
		{"not_next_end", rule(0, step("a", "A"), step("n", "N", not, strict))},
		{"not_followed_middle", rule(0, step("a", "A"), step("n", "N", not), step("b", "B"))},
		{"not_followed_end_window", rule(10*time.Millisecond, step("a", "A"), step("n", "N", not))},
		{"not_then_optional", rule(0, step("a", "A"), step("n", "N", not), step("c", "C", optional, anyc), step("d", "D", anyc))},
		{"step_window", rule(0, step("a", "A"), step("b", "B", within(5*time.Millisecond)))},
		// Groups (GroupITCase's patterns).
		{"group_times", rule(0, step("c", "C"), group("g", opts(times(2, 2)), step("a", "A"), step("b", "B")), step("d", "D"))},
		{"group_optional", rule(0, step("c", "C"), group("g", opts(optional), step("a", "A"), step("b", "B")), step("d", "D"))},
		{"group_one_or_more", rule(0, step("c", "C"), group("g", opts(times(1, -1)), step("a", "A"), step("b", "B")), step("d", "D"))},
		{"group_zero_or_more_strict", rule(0, step("c", "C"), group("g", opts(strict, times(1, -1), optional, loopStrict), step("a", "A"), step("b", "B")), step("d", "D"))},
		{"group_any_times_combinations", rule(0, step("c", "C"), group("g", opts(anyc, times(2, 2), loopAny), step("a", "A"), step("b", "B")), step("d", "D"))},
		{"group_begin", rule(0, group("g", opts(times(1, 2)), step("a", "A"), step("b", "B")), step("d", "D"))},
		{"group_until", rule(0, step("c", "C"), group("g", opts(times(1, -1), until("U")), step("a", "A"), step("b", "B")), step("d", "D"))},
		{"group_nest", rule(0, step("d", "D"), group("g", opts(optional), step("a", "A"), group("h", opts(times(1, -1), optional), step("b", "B"), step("c", "C"))), step("e", "E"))},
		{"group_not_after", rule(0, step("c", "C"), group("g", opts(anyc), step("a", "A"), step("b", "B")), step("n", "N", not), step("e", "E"))},
		// A group first in a group is strict before its first round, as
		// Flink's begin(Pattern) is, whatever the outer group's contiguity.
		{"group_nested_first", rule(0, step("a", "A"), group("g", opts(times(1, -1)), group("h", opts(times(2, 2)), step("b", "B"), step("c", "C")), step("d", "D")))},
		{"group_starts_optional", rule(0, step("a", "A"), group("g", opts(strict), step("b", "B", optional), step("c", "C", strict)), step("d", "D", strict))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Compile(tc.rule)
			if err != nil {
				t.Fatal(err)
			}
			got := a.String()
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("automaton (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompileInvariants(t *testing.T) {
	a, err := Compile(rule(0, step("a", "A"), step("b", "B", times(3, 3)), step("c", "C")))
	if err != nil {
		t.Fatal(err)
	}
	if !a.Start.Start || a.Start.Name != "a" {
		t.Errorf("start state = %s, want step a marked start", a.Start.Name)
	}
	// times: 3 expands to three states of step b, each taking one event.
	var bTakes int
	for _, s := range a.States {
		for _, e := range s.Edges {
			if s.Name == "b" && e.Action == Take && e.Target != s {
				bTakes++
			}
		}
	}
	if bTakes != 3 {
		t.Errorf("step b has %d forward take edges, want 3", bTakes)
	}
	if _, err := Compile(rule(0)); err == nil || !strings.Contains(err.Error(), "no pattern") {
		t.Errorf("Compile(empty) error = %v, want no pattern", err)
	}
}
