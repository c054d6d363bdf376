package matcher

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// versions lists "rule version …" of the alerts, to tell versions apart.
func versions(c *collector) []string {
	var out []string
	for _, a := range c.alerts {
		out = append(out, describe(a)+" v="+a.RuleVersion)
	}
	return out
}

func TestSetProgram(t *testing.T) {
	v1 := abRule
	v2 := strings.Replace(abRule, `event.type == "b"`, `event.type == "c"`, 1)
	other := `
ruleset: test
rules:
  - id: other
    when: event.type == "z"
`
	p1, p2 := program(t, v1), program(t, v2)
	ver := func(p *Program) string { return p.rules[0].rule.Version }
	if ver(p1) == ver(p2) {
		t.Fatal("changed rule kept its version")
	}

	t.Run("unchanged rule keeps its partial matches", func(t *testing.T) {
		p, c := newPartition(t, v1, Options{})
		// Records are matched once the watermark passes them: the second
		// one lets the first through before the reload.
		push(t, p, []ev{{1, "", 0, "a"}, {9, "", 1, "x"}})
		p.SetProgram(program(t, v1)) // compiled again: new automaton objects
		push(t, p, []ev{{2, "", 1, "b"}, {3, "", 2, "x"}})
		p.Advance(math.MaxInt64)
		if diff := cmp.Diff([]string{"ab k a=[1] b=[2] v=" + ver(p1)}, versions(c)); diff != "" {
			t.Errorf("alerts (-want +got):\n%s", diff)
		}
	})

	t.Run("changed rule drains the old version", func(t *testing.T) {
		p, c := newPartition(t, v1, Options{})
		push(t, p, []ev{{1, "", 0, "a"}, {9, "", 1, "x"}})
		p.SetProgram(p2)
		push(t, p, []ev{{2, "", 1, "a"}, {3, "", 2, "b"}, {4, "", 3, "c"}, {5, "", 20, "x"}})
		p.Advance(math.MaxInt64)
		want := []string{
			"ab k a=[1] b=[3] v=" + ver(p1), // the old run finishes under v1
			"ab k a=[2] b=[4] v=" + ver(p2), // new runs start under v2 only (its step b takes type c)
		}
		got := versions(c)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("alerts (-want +got):\n%s", diff)
		}
		if st := p.Stats(); st.LiveRuns != 0 {
			t.Errorf("live runs after end = %d", st.LiveRuns)
		}
	})

	t.Run("removed rule drops its partial matches", func(t *testing.T) {
		p, c := newPartition(t, v1, Options{})
		push(t, p, []ev{{1, "k1", 0, "a"}, {2, "k2", 1, "a"}, {9, "k3", 2, "x"}})
		if st := p.Stats(); st.LiveRuns != 2 {
			t.Fatalf("live runs = %d, want 2", st.LiveRuns)
		}
		p.SetProgram(program(t, other))
		push(t, p, []ev{{3, "k1", 5, "b"}, {4, "k1", 6, "z"}, {5, "k1", 7, "q"}})
		p.Advance(math.MaxInt64)
		if diff := cmp.Diff([]string{"other k1 event=[4]"}, c.matches()); diff != "" {
			t.Errorf("alerts (-want +got):\n%s", diff)
		}
		if st := p.Stats(); st.LiveRuns != 0 || st.Keys != 0 {
			t.Errorf("after removal: %d live runs, %d keys", st.LiveRuns, st.Keys)
		}
	})
}
