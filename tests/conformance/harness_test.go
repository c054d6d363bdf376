package conformance

// Tests of the harness itself: the converter and the comparator decide what
// "conformant" means, so they are checked apart from Shrike.

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

func ptr[T any](v T) *T { return &v }

func TestCasesLoadAndConvert(t *testing.T) {
	cases, err := builtinCases()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.ID, func(t *testing.T) {
			g, err := convert(c)
			if err != nil {
				t.Fatalf("convert: %v", err)
			}
			lines := strings.Split(strings.TrimSuffix(string(g.Events), "\n"), "\n")
			if len(lines) != len(c.Events) {
				t.Fatalf("got %d event lines, want %d", len(lines), len(c.Events))
			}
			for i, line := range lines {
				var ev map[string]any
				if err := json.Unmarshal([]byte(line), &ev); err != nil {
					t.Fatalf("event line %d: %v", i+1, err)
				}
				if ev["id"] != float64(i+1) {
					t.Errorf("event line %d has id %v", i+1, ev["id"])
				}
			}
			// Every step name Shrike sees maps back to a distinct Flink step.
			if len(g.ToFlink) != len(c.eventSteps()) {
				t.Errorf("step name map %v does not cover the %d steps", g.ToFlink, len(c.eventSteps()))
			}
		})
	}
}

func TestConvertStep(t *testing.T) {
	until := "event.price > 3.0"
	tests := []struct {
		name  string
		index int
		step  flinkStep
		want  yamlStep
	}{
		{
			name: "first step has no contiguity",
			step: flinkStep{Name: "a", Where: "true", Contiguity: "strict", Min: 1, Max: ptr(1), LoopContiguity: "relaxed"},
			want: yamlStep{Step: "a", Where: "true"},
		},
		{
			name: "plain strict step", index: 1,
			step: flinkStep{Name: "b", Where: "x", Contiguity: "strict", Min: 1, Max: ptr(1), LoopContiguity: "strict"},
			want: yamlStep{Step: "b", Where: "x", Contiguity: "strict"},
		},
		{
			name: "oneOrMore greedy with until", index: 1,
			step: flinkStep{Name: "b", Where: "x", Contiguity: "any", Min: 1, Greedy: true, LoopContiguity: "strict", Until: &until},
			want: yamlStep{Step: "b", Where: "x", Contiguity: "any", Times: "1..", Greedy: true, Loop: "strict", Until: until},
		},
		{
			name: "times exactly", index: 1,
			step: flinkStep{Name: "b", Contiguity: "relaxed", Min: 3, Max: ptr(3), LoopContiguity: "any"},
			want: yamlStep{Step: "b", Contiguity: "relaxed", Times: 3, Loop: "any"},
		},
		{
			name: "times range optional", index: 1,
			step: flinkStep{Name: "b", Contiguity: "relaxed", Min: 2, Max: ptr(4), Optional: true, LoopContiguity: "relaxed"},
			want: yamlStep{Step: "b", Contiguity: "relaxed", Times: "2..4", Optional: true, Loop: "relaxed"},
		},
		{
			name: "times from zero is optional from one", index: 1,
			step: flinkStep{Name: "b", Contiguity: "relaxed", Min: 0, Max: ptr(2), LoopContiguity: "relaxed"},
			want: yamlStep{Step: "b", Contiguity: "relaxed", Times: "1..2", Optional: true, Loop: "relaxed"},
		},
		{
			name: "timesOrMore", index: 2,
			step: flinkStep{Name: "b", Contiguity: "strict", Min: 2, LoopContiguity: "strict"},
			want: yamlStep{Step: "b", Contiguity: "strict", Times: "2..", Loop: "strict"},
		},
		{
			name: "negated", index: 1,
			step: flinkStep{Name: "b", Where: "x", Contiguity: "relaxed", Negated: true, Min: 1, Max: ptr(1), LoopContiguity: "relaxed"},
			want: yamlStep{Step: "b", Where: "x", Contiguity: "relaxed", Not: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := convertStep(tt.index, tt.step, tt.step.Name)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("convertStep (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStepNamesAndSkip(t *testing.T) {
	c := &flinkCase{Steps: []flinkStep{
		{Name: "a"}, {Name: "b*"}, {Name: "not c"}, {Name: "in"}, {Name: "d"},
	}}
	names, err := stepNames(c)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "a", "b*": "step1", "not c": "step2", "in": "step3", "d": "d"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("stepNames (-want +got):\n%s", diff)
	}

	skips := []struct {
		in   string
		want any
	}{
		{"no_skip", "none"},
		{"skip_to_next", "to_next"},
		{"skip_past_last_event", "past_last_event"},
		{"skip_to_first:b*", map[string]string{"to_first": "step1"}},
		{"skip_to_last:a", map[string]string{"to_last": "a"}},
	}
	for _, s := range skips {
		t.Run(s.in, func(t *testing.T) {
			got, err := convertSkip(s.in, names)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(s.want, got); diff != "" {
				t.Errorf("convertSkip (-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"skip_to_first:nope", "skip_somewhere", "skip_to_middle:a"} {
		if _, err := convertSkip(bad, names); err == nil {
			t.Errorf("convertSkip(%q) succeeded, want an error", bad)
		}
	}

	clash := &flinkCase{Steps: []flinkStep{{Name: "step1"}, {Name: "b*"}}}
	if _, err := stepNames(clash); err == nil {
		t.Error("stepNames renamed onto an existing step name, want an error")
	}
}

func TestEventTimes(t *testing.T) {
	events := func(ts ...*int64) []flinkEvent {
		out := make([]flinkEvent, len(ts))
		for i, v := range ts {
			out[i] = flinkEvent{ID: i + 1, TS: v}
		}
		return out
	}
	tests := []struct {
		name      string
		c         flinkCase
		wantTimes []int64
		wantRank  []int
		wantErr   bool
	}{
		{
			name:      "processing time uses the feed position",
			c:         flinkCase{Harness: harnessProcessingTime, Events: events(ptr[int64](9), nil, nil)},
			wantTimes: []int64{1, 2, 3}, wantRank: []int{0, 1, 2},
		},
		{
			name:      "records without timestamp use the feed position",
			c:         flinkCase{Events: events(nil, nil)},
			wantTimes: []int64{1, 2}, wantRank: []int{0, 1},
		},
		{
			name:    "some records without timestamp",
			c:       flinkCase{Events: events(ptr[int64](1), nil)},
			wantErr: true,
		},
		{
			name:      "NFA-level monotonic keeps ts and ties",
			c:         flinkCase{Events: events(ptr[int64](0), ptr[int64](3), ptr[int64](3))},
			wantTimes: []int64{0, 3, 3}, wantRank: []int{0, 1, 2},
		},
		{
			name:      "NFA-level non-monotonic without window uses the feed position",
			c:         flinkCase{Events: events(ptr[int64](1), ptr[int64](2), ptr[int64](1))},
			wantTimes: []int64{1, 2, 3}, wantRank: []int{0, 1, 2},
		},
		{
			name:    "NFA-level non-monotonic with a window",
			c:       flinkCase{WithinMS: ptr[int64](3), Events: events(ptr[int64](2), ptr[int64](1))},
			wantErr: true,
		},
		{
			name:      "event-time operator sorts by ts, ties by arrival",
			c:         flinkCase{Harness: harnessEventTime, Events: events(ptr[int64](1), ptr[int64](5), ptr[int64](4), ptr[int64](4))},
			wantTimes: []int64{1, 5, 4, 4}, wantRank: []int{0, 3, 1, 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			times, _, err := eventTimes(&tt.c)
			if (err != nil) != tt.wantErr {
				t.Fatalf("eventTimes error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.wantTimes, times); diff != "" {
				t.Errorf("times (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRank, ranks(times)); diff != "" {
				t.Errorf("ranks (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConvertRuleset(t *testing.T) {
	c := &flinkCase{
		ID: "X.testY", Source: "src", Skip: "skip_to_last:b*",
		WithinMS: ptr[int64](10), Within: withinPreviousAndCurrent, WithinFor: "d",
		Harness:          harnessEventTime,
		Watermarks:       "after each event: ts - 5; end of input: +inf",
		ExpectedTimeouts: &[]flinkMatch{},
		Steps: []flinkStep{
			{Name: "a", Where: `event.name == "a"`, Contiguity: "relaxed", Min: 1, Max: ptr(1), LoopContiguity: "relaxed"},
			{Name: "b*", Where: `event.name == "b"`, Contiguity: "strict", Min: 1, LoopContiguity: "any"},
			{Name: "d", Where: `event.price > 1.0`, Contiguity: "any", Min: 1, Max: ptr(1), LoopContiguity: "relaxed"},
		},
		Events: []flinkEvent{{
			ID: 1, FlinkID: json.RawMessage(`7`), Type: json.RawMessage(`"Event"`),
			Name: json.RawMessage(`"a"`), Price: json.RawMessage(`1.0`), Volume: json.RawMessage(`2`),
			TS: ptr[int64](3),
		}},
	}
	g, err := convert(c)
	if err != nil {
		t.Fatal(err)
	}
	wantYAML := `ruleset: flink-conformance
description: src
stream:
  topic: flink
  time: event.ts
  max_out_of_orderness: 4ms
rules:
  - id: flink
    description: X.testY
    pattern:
      - step: a
        where: event.name == "a"
      - step: step1
        where: event.name == "b"
        contiguity: strict
        times: 1..
        loop: any
      - step: d
        where: event.price > 1.0
        contiguity: any
        within: 10ms
    skip:
      to_last: step1
    alert:
      on_timeout: true
`
	if diff := cmp.Diff(wantYAML, string(g.Ruleset)); diff != "" {
		t.Errorf("ruleset (-want +got):\n%s", diff)
	}
	// Java doubles keep or get a decimal point: CEL must see doubles.
	wantEvents := `{"id":1,"flink_id":7,"type":"Event","name":"a","price":1.0,"volume":2.0,"ts":3}` + "\n"
	if diff := cmp.Diff(wantEvents, string(g.Events)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestDecodeAlert(t *testing.T) {
	g := &generated{ToFlink: map[string]string{"a": "a", "step1": "b*"}}
	record := func(raw string) *matcher.Record {
		ev, err := rules.ParseEvent([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		return &matcher.Record{Event: ev}
	}
	a := &matcher.Alert{
		Ruleset: rulesetName, Rule: ruleID, Timeout: true,
		Start: time.UnixMilli(1), End: time.UnixMilli(3),
		Steps: []matcher.StepRecords{
			{Step: "step1", Records: []*matcher.Record{record(`{"id":3,"name":"b"}`), record(`{"id":2,"name":"b"}`)}},
			{Step: "a", Records: []*matcher.Record{record(`{"id":1}`)}},
		},
	}
	got, err := decodeAlert(a.AppendJSON(nil), g)
	if err != nil {
		t.Fatal(err)
	}
	// Step and event order are kept as Shrike wrote them, so a wrong order
	// shows in the comparison.
	want := flinkMatch{{Step: "b*", IDs: []int{3, 2}}, {Step: "a", IDs: []int{1}}}
	if diff := cmp.Diff(want, got.Match); diff != "" {
		t.Errorf("match (-want +got):\n%s", diff)
	}
	if !got.Timeout {
		t.Error("timeout flag lost")
	}

	a.Steps[0].Step = "unknown"
	if _, err := decodeAlert(a.AppendJSON(nil), g); err == nil {
		t.Error("decodeAlert accepted an unknown step")
	}
}

func TestCompare(t *testing.T) {
	m := func(s string) flinkMatch {
		// "a:1 b:2,3" → flinkMatch
		var out flinkMatch
		for _, part := range strings.Fields(s) {
			step, ids, _ := strings.Cut(part, ":")
			var st stepIDs
			st.Step = step
			for _, id := range strings.Split(ids, ",") {
				var n int
				if err := json.Unmarshal([]byte(id), &n); err != nil {
					t.Fatal(err)
				}
				st.IDs = append(st.IDs, n)
			}
			out = append(out, st)
		}
		return out
	}
	match := func(s string) shrikeAlert { return shrikeAlert{Match: m(s)} }
	timeout := func(s string) shrikeAlert { return shrikeAlert{Match: m(s), Timeout: true} }
	steps := []flinkStep{{Name: "a", Max: ptr(1), Min: 1}, {Name: "b", Max: ptr(1), Min: 1}}
	base := func() *flinkCase {
		return &flinkCase{
			Steps:                  steps,
			Events:                 make([]flinkEvent, 6),
			ExpectedMatches:        []flinkMatch{m("a:1 b:2"), m("a:1 b:4"), m("a:3 b:4")},
			ExpectedMatchEmittedAt: []*int{ptr(2), ptr(4), ptr(4)},
		}
	}
	gen := &generated{Times: []int64{1, 2, 3, 4, 5, 6}, Rank: []int{0, 1, 2, 3, 4, 5}}
	tests := []struct {
		name          string
		edit          func(c *flinkCase)
		alerts        []shrikeAlert
		wantProblems  []string // a substring of each problem, in order
		wantTolerated int
	}{
		{
			name:   "same matches, simultaneous ones in another order",
			alerts: []shrikeAlert{match("a:1 b:2"), match("a:3 b:4"), match("a:1 b:4")},
		},
		{
			name:         "missing match",
			alerts:       []shrikeAlert{match("a:1 b:2"), match("a:1 b:4")},
			wantProblems: []string{"matches differ"},
		},
		{
			name:         "unexpected match",
			alerts:       []shrikeAlert{match("a:1 b:2"), match("a:1 b:4"), match("a:3 b:4"), match("a:3 b:6")},
			wantProblems: []string{"matches differ"},
		},
		{
			name:         "same events, other step assignment",
			alerts:       []shrikeAlert{match("a:1 b:2"), match("a:1 b:4"), match("b:3 a:4")},
			wantProblems: []string{"matches differ"},
		},
		{
			name:         "emitted before an earlier emission point",
			alerts:       []shrikeAlert{match("a:1 b:4"), match("a:1 b:2"), match("a:3 b:4")},
			wantProblems: []string{"emission order differs"},
		},
		{
			name:         "asserted order",
			edit:         func(c *flinkCase) { c.MatchOrderSignificant = true },
			alerts:       []shrikeAlert{match("a:1 b:2"), match("a:3 b:4"), match("a:1 b:4")},
			wantProblems: []string{"match order differs"},
		},
		{
			name:         "timeouts without on_timeout",
			alerts:       []shrikeAlert{match("a:1 b:2"), match("a:1 b:4"), match("a:3 b:4"), timeout("a:5")},
			wantProblems: []string{"timeout alerts although"},
		},
		{
			name: "end-of-input timeout the NFA test could not see",
			edit: func(c *flinkCase) {
				c.WithinMS = ptr[int64](3)
				c.ExpectedTimeouts = &[]flinkMatch{}
			},
			alerts:        []shrikeAlert{match("a:1 b:2"), match("a:1 b:4"), match("a:3 b:4"), timeout("a:5")},
			wantTolerated: 1,
		},
		{
			name: "timeout whose window closed before the last event",
			edit: func(c *flinkCase) {
				c.WithinMS = ptr[int64](3)
				c.ExpectedTimeouts = &[]flinkMatch{}
			},
			alerts:       []shrikeAlert{match("a:1 b:2"), match("a:1 b:4"), match("a:3 b:4"), timeout("a:3")},
			wantProblems: []string{"timed-out partial matches differ"},
		},
		{
			name: "end-of-input timeout in an operator test is compared",
			edit: func(c *flinkCase) {
				c.Harness = harnessEventTime
				c.WithinMS = ptr[int64](3)
				c.ExpectedTimeouts = &[]flinkMatch{}
			},
			alerts:       []shrikeAlert{match("a:1 b:2"), match("a:1 b:4"), match("a:3 b:4"), timeout("a:5")},
			wantProblems: []string{"timed-out partial matches differ"},
		},
		{
			name: "end-of-input alert before an expected one",
			edit: func(c *flinkCase) {
				c.WithinMS = ptr[int64](3)
				c.ExpectedTimeouts = &[]flinkMatch{}
			},
			alerts:       []shrikeAlert{match("a:1 b:2"), match("a:1 b:4"), timeout("a:5"), match("a:3 b:4")},
			wantProblems: []string{"timed-out partial matches differ"},
		},
		{
			name: "per-step window: a partial match waiting for an earlier step never times out",
			edit: func(c *flinkCase) {
				c.Steps = []flinkStep{{Name: "a", Max: ptr(1), Min: 1}, {Name: "m", Max: ptr(1), Min: 1}, {Name: "b", Max: ptr(1), Min: 1}}
				c.ExpectedMatches = nil
				c.ExpectedMatchEmittedAt = nil
				c.WithinMS, c.Within, c.WithinFor = ptr[int64](3), withinPreviousAndCurrent, "b"
				c.ExpectedTimeouts = &[]flinkMatch{}
			},
			alerts:       []shrikeAlert{timeout("a:6")},
			wantProblems: []string{"timed-out partial matches differ"},
		},
		{
			name: "per-step window: waiting for the windowed step",
			edit: func(c *flinkCase) {
				c.Steps = []flinkStep{{Name: "a", Max: ptr(1), Min: 1}, {Name: "m", Max: ptr(1), Min: 1}, {Name: "b", Max: ptr(1), Min: 1}}
				c.ExpectedMatches = nil
				c.ExpectedMatchEmittedAt = nil
				c.WithinMS, c.Within, c.WithinFor = ptr[int64](3), withinPreviousAndCurrent, "b"
				c.ExpectedTimeouts = &[]flinkMatch{}
			},
			alerts:        []shrikeAlert{timeout("a:1 m:5")},
			wantTolerated: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			if tt.edit != nil {
				tt.edit(c)
			}
			res := compare(c, gen, tt.alerts)
			if len(res.Problems) != len(tt.wantProblems) {
				t.Fatalf("got %d problems, want %d:\n%s", len(res.Problems), len(tt.wantProblems), strings.Join(res.Problems, "\n"))
			}
			for i, p := range res.Problems {
				if !strings.Contains(p, tt.wantProblems[i]) {
					t.Errorf("problem %d = %q, want it to mention %q", i, p, tt.wantProblems[i])
				}
			}
			if len(res.Tolerated) != tt.wantTolerated {
				t.Errorf("tolerated %q, want %d", res.Tolerated, tt.wantTolerated)
			}
		})
	}
}

func TestOutOfOrderness(t *testing.T) {
	tests := []struct {
		watermarks string
		want       string
		wantErr    bool
	}{
		{watermarks: "after each event: ts - 5; end of input: +inf", want: "4ms"},
		{watermarks: "ts-1", want: "0ms"},
		{watermarks: "ts - 0", wantErr: true},
		{watermarks: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.watermarks, func(t *testing.T) {
			got, err := outOfOrderness(&flinkCase{Watermarks: tt.watermarks})
			if (err != nil) != tt.wantErr {
				t.Fatalf("outOfOrderness error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("outOfOrderness = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestConvertGroups checks that a group of a case becomes a group of the
// ruleset, converted as the pattern's steps are, and that its steps are the
// names a match uses.
func TestConvertGroups(t *testing.T) {
	one := ptr(1)
	c := &flinkCase{
		ID: "g", Skip: "no_skip",
		Steps: []flinkStep{
			{Name: "start", Where: `event.name == "c"`, Contiguity: "relaxed", Min: 1, Max: one},
			{Group: "group1", Contiguity: "any", Min: 0, Max: ptr(2), LoopContiguity: "strict", Steps: []flinkStep{
				{Name: "a", Where: `event.name == "a"`, Contiguity: "relaxed", Min: 1, Max: one},
				{Name: "b", Where: `event.name == "b"`, Contiguity: "strict", Min: 1, Max: one},
			}},
			{Name: "end", Where: `event.name == "d"`, Contiguity: "relaxed", Min: 1, Max: one},
		},
	}
	var names []string
	for _, s := range c.eventSteps() {
		names = append(names, s.Name)
	}
	if diff := cmp.Diff([]string{"start", "a", "b", "end"}, names); diff != "" {
		t.Errorf("eventSteps (-want +got):\n%s", diff)
	}
	g, err := convert(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `      - group: group1
        contiguity: any
        times: 1..2
        optional: true
        loop: strict
        steps:
          - step: a
            where: event.name == "a"
          - step: b
            where: event.name == "b"
            contiguity: strict
`
	if !strings.Contains(string(g.Ruleset), want) {
		t.Errorf("ruleset lacks the group\n%s\ngot:\n%s", want, g.Ruleset)
	}
	if len(g.ToFlink) != 4 {
		t.Errorf("step name map %v, want the 4 steps that take events", g.ToFlink)
	}

	clash := &flinkCase{Steps: []flinkStep{{Name: "x"}, {Group: "x", Steps: []flinkStep{{Name: "y"}}}}}
	if _, err := stepNames(clash); err == nil {
		t.Error("stepNames accepted a group named like a step, want an error")
	}
}
