package matcher

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPartitionMatching(t *testing.T) {
	tests := []struct {
		name   string
		yaml   string
		ooo    time.Duration
		events []ev
		want   []string
		late   int
	}{
		{
			name:   "window is first to last, right border exclusive",
			yaml:   abRule,
			events: []ev{{1, "", 0, "a"}, {2, "", 9, "b"}, {3, "", 20, "a"}, {4, "", 30, "b"}},
			want:   []string{"ab k a=[1] b=[2]"},
		},
		{
			name:   "out of order arrival within the bound is matched in event time",
			yaml:   abRule,
			ooo:    5 * time.Millisecond,
			events: []ev{{1, "", 3, "b"}, {2, "", 1, "a"}},
			want:   []string{"ab k a=[2] b=[1]"},
		},
		{
			name:   "events behind the watermark are late",
			yaml:   abRule,
			ooo:    2 * time.Millisecond,
			events: []ev{{1, "", 10, "a"}, {2, "", 5, "a"}, {3, "", 12, "b"}},
			want:   []string{"ab k a=[1] b=[3]"},
			late:   1,
		},
		{
			name:   "ties in event time keep arrival order",
			yaml:   abRule,
			events: []ev{{1, "", 5, "b"}, {2, "", 5, "a"}, {3, "", 5, "b"}},
			want:   []string{"ab k a=[2] b=[3]"},
		},
		{
			name:   "keys are matched apart",
			yaml:   abRule,
			events: []ev{{1, "x", 0, "a"}, {2, "y", 1, "b"}, {3, "y", 2, "a"}, {4, "x", 3, "b"}},
			want:   []string{"ab x a=[1] b=[4]"},
		},
		{
			name: "absence fires when the window closes",
			yaml: `
ruleset: test
rules:
  - id: reset-without-2fa
    within: 10ms
    pattern:
      - step: reset
        where: event.type == "reset"
      - step: verify
        not: true
        where: event.type == "verify"
`,
			events: []ev{{1, "x", 0, "reset"}, {2, "y", 1, "reset"}, {3, "y", 5, "verify"}, {4, "z", 100, "noise"}},
			want:   []string{"reset-without-2fa x reset=[1]"},
		},
		{
			name: "timed-out partial matches are alerts with on_timeout",
			yaml: `
ruleset: test
rules:
  - id: ab
    within: 10ms
    alert: {on_timeout: true}
    pattern:
      - step: a
        where: event.type == "a"
      - step: b
        where: event.type == "b"
`,
			events: []ev{{1, "", 0, "a"}, {2, "", 50, "b"}},
			want:   []string{"ab k a=[1] timeout"},
		},
		{
			name: "single-event rule",
			yaml: `
ruleset: test
rules:
  - id: big
    when: event.type == "big"
`,
			events: []ev{{1, "", 0, "small"}, {2, "", 1, "big"}},
			want:   []string{"big k event=[2]"},
		},
		{
			name: "skip past last event",
			yaml: `
ruleset: test
rules:
  - id: aab
    skip: past_last_event
    pattern:
      - step: a
        where: event.type == "a"
        times: 1..
      - step: b
        where: event.type == "b"
`,
			events: []ev{{1, "", 0, "a"}, {2, "", 1, "a"}, {3, "", 2, "b"}, {4, "", 3, "b"}},
			want:   []string{"aab k a=[1,2] b=[3]"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, c := newPartition(t, tc.yaml, Options{MaxOutOfOrderness: tc.ooo})
			push(t, p, tc.events)
			p.Advance(math.MaxInt64)
			if diff := cmp.Diff(tc.want, c.matches()); diff != "" {
				t.Errorf("alerts (-want +got):\n%s", diff)
			}
			if len(c.late) != tc.late {
				t.Errorf("late = %d, want %d", len(c.late), tc.late)
			}
			if st := p.Stats(); st.LiveRuns != 0 && tc.yaml == abRule {
				t.Errorf("live runs after end of input = %d, want 0", st.LiveRuns)
			}
		})
	}
}

// TestPartitionAcceptedFlinkForms runs pattern forms Flink accepts that
// need care: patterns whose steps are all optional (never an empty match),
// notNext followed by notFollowedBy (not the same as one step with ||), and
// a pattern ending in notFollowedBy whose only window is the step's own.
func TestPartitionAcceptedFlinkForms(t *testing.T) {
	const allOptional = `
ruleset: test
rules:
  - id: o
    pattern:
      - step: a
        where: event.type == "a"
        optional: true
      - step: b
        where: event.type == "b"
        optional: true
`
	const notNextThenNotFollowed = `
ruleset: test
rules:
  - id: n
    pattern:
      - step: a
        where: event.type == "a"
      - step: x
        where: event.type == "x"
        not: true
        contiguity: strict
      - step: y
        where: event.type == "y"
        not: true
      - step: c
        where: event.type == "c"
`
	const notAtEndStepWithin = `
ruleset: test
rules:
  - id: e
    pattern:
      - step: a
        where: event.type == "a"
      - step: x
        where: event.type == "x"
        not: true
        contiguity: strict
      - step: y
        where: event.type == "y"
        not: true
        within: 5ms
`
	tests := []struct {
		name   string
		yaml   string
		events []ev
		want   []string
	}{
		{
			"all optional", allOptional,
			[]ev{{1, "", 0, "z"}, {2, "", 1, "a"}, {3, "", 2, "b"}},
			[]string{"o k a=[2]", "o k a=[2] b=[3]", "o k b=[3]"},
		},
		{
			"not next, then not followed by: match", notNextThenNotFollowed,
			[]ev{{1, "", 0, "a"}, {2, "", 1, "z"}, {3, "", 2, "x"}, {4, "", 3, "c"}},
			[]string{"n k a=[1] c=[4]"},
		},
		{
			"not next, then not followed by: forbidden next event", notNextThenNotFollowed,
			[]ev{{1, "", 0, "a"}, {2, "", 1, "x"}, {3, "", 2, "c"}},
			nil,
		},
		{
			"not next, then not followed by: forbidden event later", notNextThenNotFollowed,
			[]ev{{1, "", 0, "a"}, {2, "", 1, "z"}, {3, "", 2, "y"}, {4, "", 3, "c"}},
			nil,
		},
		{
			"not next, then not followed by: forbidden event right after", notNextThenNotFollowed,
			[]ev{{1, "", 0, "a"}, {2, "", 1, "y"}, {3, "", 2, "c"}},
			nil,
		},
		{
			"step within at the end: window closes", notAtEndStepWithin,
			[]ev{{1, "", 0, "a"}, {2, "", 1, "z"}, {3, "", 5, "y"}},
			[]string{"e k a=[1]"},
		},
		{
			"step within at the end: forbidden event in the window", notAtEndStepWithin,
			[]ev{{1, "", 0, "a"}, {2, "", 1, "z"}, {3, "", 4, "y"}},
			nil,
		},
		{
			"step within at the end: forbidden next event", notAtEndStepWithin,
			[]ev{{1, "", 0, "a"}, {2, "", 1, "x"}},
			nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, c := newPartition(t, tc.yaml, Options{})
			push(t, p, tc.events)
			p.Advance(math.MaxInt64)
			if diff := cmp.Diff(tc.want, c.matches()); diff != "" {
				t.Errorf("alerts (-want +got):\n%s", diff)
			}
		})
	}
}

// abAnyRule starts a partial match at every "a" and keeps it open until a
// "b": with no window, each "a" adds one run, which the per-key cap tests need.
const abAnyRule = `
ruleset: test
rules:
  - id: ab
    pattern:
      - step: a
        where: event.type == "a"
      - step: b
        contiguity: any
        where: event.type == "b"
`

func TestPartitionCapDropsOldest(t *testing.T) {
	p, c := newPartition(t, abAnyRule, Options{MaxRunsPerKey: 2})
	push(t, p, []ev{{1, "", 0, "a"}, {2, "", 1, "a"}, {3, "", 2, "a"}, {4, "", 3, "b"}, {5, "", 4, "z"}})
	p.Advance(math.MaxInt64)
	want := []string{"ab k a=[2] b=[4]", "ab k a=[3] b=[4]"}
	if diff := cmp.Diff(want, c.matches()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	if st := p.Stats(); st.Dropped != 1 || st.ByRule[RuleID{Ruleset: "test", Rule: "ab"}].Dropped != 1 {
		t.Errorf("dropped = %d (rule %d), want 1", st.Dropped, st.ByRule[RuleID{Ruleset: "test", Rule: "ab"}].Dropped)
	}
}

// TestPartitionPeakRunsWithinCap checks that the peak of open partial
// matches counts what the cap let the key hold, not the run a step creates
// and the cap drops at once.
func TestPartitionPeakRunsWithinCap(t *testing.T) {
	p, _ := newPartition(t, abAnyRule, Options{MaxRunsPerKey: 2})
	push(t, p, []ev{{1, "", 0, "a"}, {2, "", 1, "a"}, {3, "", 2, "a"}, {4, "", 3, "a"}})
	p.Advance(math.MaxInt64) // no window: the runs stay open
	st := p.Stats()
	if st.Dropped != 2 {
		t.Fatalf("dropped = %d, want 2 (the test needs the cap reached)", st.Dropped)
	}
	if st.PeakRuns != 2 || st.ByRule[RuleID{Ruleset: "test", Rule: "ab"}].PeakRuns != 2 {
		t.Errorf("peak runs = %d (rule %d), want 2: the cap is 2", st.PeakRuns, st.ByRule[RuleID{Ruleset: "test", Rule: "ab"}].PeakRuns)
	}
}

func TestAlertIDsAreDeterministic(t *testing.T) {
	run := func() []*Alert {
		p, c := newPartition(t, abRule, Options{})
		push(t, p, []ev{{1, "", 0, "a"}, {2, "", 1, "b"}, {3, "", 2, "a"}, {4, "", 3, "b"}})
		p.Advance(math.MaxInt64)
		return c.alerts
	}
	first, second := run(), run()
	if len(first) != 2 || len(second) != 2 {
		t.Fatalf("got %d and %d alerts, want 2 each", len(first), len(second))
	}
	for i := range first {
		if first[i].ID != second[i].ID {
			t.Errorf("alert %d: id %s on first replay, %s on second", i, first[i].ID, second[i].ID)
		}
	}
	if first[0].ID == first[1].ID {
		t.Errorf("different matches share id %s", first[0].ID)
	}
}

func TestAlertJSON(t *testing.T) {
	p, c := newPartition(t, abRule, Options{})
	push(t, p, []ev{{1, "", 0, "a"}, {2, "", 1, "b"}})
	p.Advance(math.MaxInt64)
	if len(c.alerts) != 1 {
		t.Fatalf("got %d alerts, want 1", len(c.alerts))
	}
	got := string(c.alerts[0].AppendJSON(nil))
	want := `"events":{"a":[{"id":1,"type":"a"}],"b":[{"id":2,"type":"b"}]}}`
	if !strings.HasSuffix(got, want) || !strings.Contains(got, `"start":"1970-01-01T00:00:00Z","end":"1970-01-01T00:00:00.001Z"`) {
		t.Errorf("alert JSON = %s", got)
	}
}

// TestTimeoutSummaryReadingLaterStep pins what the ruleset warning about
// such summaries says: on a timeout alert that lacks a step the summary
// reads, the summary fails and the alert gets the default text.
func TestTimeoutSummaryReadingLaterStep(t *testing.T) {
	p, c := newPartition(t, `
ruleset: test
rules:
  - id: ab
    within: 10ms
    pattern:
      - step: a
        where: event.type == "a"
      - step: b
        where: event.type == "b"
    alert:
      summary: 'a.type + b.type'
      on_timeout: true
`, Options{})
	push(t, p, []ev{{1, "", 0, "a"}, {2, "", 1, "b"}, {3, "", 20, "a"}})
	p.Advance(math.MaxInt64)
	var got []string
	for _, a := range c.alerts {
		got = append(got, describe(a)+": "+a.Summary)
	}
	want := []string{"ab k a=[1] b=[2]: ab", "ab k a=[3] timeout: rule ab matched key k"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
}
