package matcher

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// groupRule is a pattern with a looping group (Flink's GroupPattern): a c,
// then one or more rounds of an a followed by a b, then a d.
const groupRule = `
ruleset: test
rules:
  - id: rounds
    pattern:
      - step: c
        where: event.type == "c"
      - group: round
        times: 1..
        steps:
          - step: a
            where: event.type == "a"
          - step: b
            where: event.type == "b"
      - step: d
        where: event.type == "d"
`

var groupEvents = []ev{
	{1, "", 1, "c"},
	{2, "", 2, "a"},
	{3, "", 3, "b"},
	{4, "", 4, "a"},
	{5, "", 5, "x"},
	{6, "", 6, "b"},
	{7, "", 7, "d"},
}

// TestPatternGroupMatches checks the alerts of a looping group: the steps
// inside it keep their names, each with its events of every round.
func TestPatternGroupMatches(t *testing.T) {
	p, out := newPartition(t, groupRule, Options{})
	push(t, p, groupEvents)
	p.Advance(math.MaxInt64)
	want := []string{
		"rounds k c=[1] a=[2,4] b=[3,6] d=[7]",
		"rounds k c=[1] a=[2] b=[3] d=[7]",
	}
	if diff := cmp.Diff(want, out.matches()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
}

// TestPatternGroupSnapshot stores, evicts and restores the key after every
// event: partial matches waiting inside a group, and in the state that
// leads from the end of a round back to its start, resume where they were.
func TestPatternGroupSnapshot(t *testing.T) {
	ref, refOut := newPartition(t, groupRule, Options{})
	push(t, ref, groupEvents)
	ref.Advance(math.MaxInt64)

	p, out := newPartition(t, groupRule, Options{})
	for _, e := range groupEvents {
		push(t, p, []ev{e})
		p.Advance(e.t*ms + 1)
		b, ok := p.AppendKeyState(nil, "k")
		if !ok {
			t.Fatalf("after event %d: the key has no state", e.id)
		}
		p.Evict("k")
		if err := p.RestoreKey("k", b); err != nil {
			t.Fatalf("after event %d: %v", e.id, err)
		}
	}
	p.Advance(math.MaxInt64)
	if diff := cmp.Diff(refOut.matches(), out.matches()); diff != "" {
		t.Errorf("alerts with evictions (-uninterrupted +evicted):\n%s", diff)
	}
}
