package rules

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var ignoreUnexported = cmpopts.IgnoreUnexported(Ruleset{}, Rule{}, Step{})

func TestParsePayments(t *testing.T) {
	src, err := os.ReadFile("testdata/payments.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Parse("payments.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	p := func(line, col int) Pos { return Pos{File: "payments.yaml", Line: line, Col: col} }
	want := &Ruleset{
		Name:        "payments",
		Description: "Card fraud and account takeover",
		Stream: Stream{
			Topic: "payments", Key: "event.account_id", KeyPos: p(5, 8),
			Time: "event.ts", TimePos: p(6, 9),
			MaxOutOfOrderness: 5 * time.Second, IdleTimeout: 30 * time.Second,
		},
		Schema: []SchemaField{
			{"type", "string", p(10, 3)},
			{"account_id", "string", p(11, 3)},
			{"amount", "double", p(12, 3)},
			{"country", "string", p(13, 3)},
			{"ip", "string", p(14, 3)},
			{"success", "bool", p(15, 3)},
			{"ts", "timestamp", p(16, 3)},
		},
		Lists: map[string][]any{"high_risk_countries": {"KP", "IR", "SY"}},
		Rules: []*Rule{
			{
				ID: "big-foreign-transfer", Severity: SeverityHigh, Enabled: true,
				When:    `event.type == "transfer" && event.amount > 10000.0 && event.country in lists.high_risk_countries`,
				WhenPos: p(22, 11), Skip: Skip{Kind: SkipNone}, Pos: p(20, 5),
			},
			{
				ID: "account-takeover", Severity: SeverityCritical, Enabled: true, Within: 10 * time.Minute,
				Pattern: []*Step{
					{
						Name: "fails", Where: `event.type == "login" && !event.success`, WherePos: p(29, 16),
						Contiguity: Relaxed, Min: 3, Max: -1, Loop: Relaxed, Pos: p(28, 9),
					},
					{
						Name: "login", Where: `event.type == "login" && event.success && event.ip != fails[0].ip`, WherePos: p(32, 16),
						Contiguity: Relaxed, Min: 1, Max: 1, Loop: Relaxed, Pos: p(31, 9),
					},
					{
						Name: "drain", Where: `event.type == "transfer" && event.amount > 1000.0`, WherePos: p(35, 16),
						Contiguity: Relaxed, Min: 1, Max: 1, Loop: Relaxed, Pos: p(33, 9),
					},
				},
				Skip: Skip{Kind: SkipPastLastEvent, Pos: p(36, 11)},
				Alert: Alert{
					Summary:    `"account " + login.account_id + " drained after " + string(size(fails)) + " failed logins"`,
					SummaryPos: p(38, 16), Labels: map[string]string{"team": "fraud"},
				},
				Pos: p(24, 5),
			},
			{
				ID: "reset-without-2fa", Severity: SeverityMedium, Enabled: true, Within: 15 * time.Minute,
				Pattern: []*Step{
					{
						Name: "reset", Where: `event.type == "password_reset"`, WherePos: p(46, 16),
						Contiguity: Relaxed, Min: 1, Max: 1, Loop: Relaxed, Pos: p(45, 9),
					},
					{
						Name: "verify", Where: `event.type == "2fa_verified"`, WherePos: p(49, 16),
						Contiguity: Relaxed, Min: 1, Max: 1, Loop: Relaxed, Not: true, Pos: p(47, 9),
					},
				},
				Skip: Skip{Kind: SkipNone},
				Pos:  p(41, 5),
			},
		},
		Pos: p(1, 1),
	}
	if diff := cmp.Diff(want, rs, ignoreUnexported); diff != "" {
		t.Errorf("Parse mismatch (-want +got):\n%s", diff)
	}
}

func TestParseSteps(t *testing.T) {
	tests := []struct {
		name string
		step string // YAML of the second step, under "      - step: s\n"
		want Step
	}{
		{"plain", "", Step{Min: 1, Max: 1}},
		{"times N", "times: 3", Step{Min: 3, Max: 3}},
		{"times N..M", "times: 2..4", Step{Min: 2, Max: 4}},
		{"times N..", "times: 2..", Step{Min: 2, Max: -1}},
		{"times 1..", "times: 1..", Step{Min: 1, Max: -1}},
		{"times 0..M is optional", "times: 0..3", Step{Min: 1, Max: 3, Optional: true}},
		{"times 0.. is optional", "times: '0..'", Step{Min: 1, Max: -1, Optional: true}},
		{"times 0..1 is an optional plain step", "times: 0..1", Step{Min: 1, Max: 1, Optional: true}},
		{"optional", "optional: true", Step{Min: 1, Max: 1, Optional: true}},
		{"optional false", "optional: false", Step{Min: 1, Max: 1}},
		{"strict", "contiguity: strict", Step{Min: 1, Max: 1, Contiguity: Strict}},
		{"any", "contiguity: any", Step{Min: 1, Max: 1, Contiguity: Any}},
		{"loop options", "times: 1..\n        greedy: true\n        loop: any\n        until: event.stop", Step{Min: 1, Max: -1, Greedy: true, Loop: Any, Until: "event.stop"}},
		{"not strict", "not: true\n        contiguity: strict", Step{Min: 1, Max: 1, Not: true, Contiguity: Strict}},
		{"within", "within: 90s", Step{Min: 1, Max: 1, Within: 90 * time.Second}},
		{"within days", "within: 1d12h", Step{Min: 1, Max: 1, Within: 36 * time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra := ""
			if tt.step != "" {
				extra = "        " + tt.step + "\n"
			}
			src := ruleset("  - id: r\n    within: 2d\n    pattern:\n      - step: a\n      - step: s\n" + extra)
			rs, err := Parse("t.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			got := *rs.Rules[0].Pattern[1]
			want := tt.want
			want.Name = "s"
			if want.Contiguity == "" {
				want.Contiguity = Relaxed
			}
			if want.Loop == "" {
				want.Loop = Relaxed
			}
			opts := []cmp.Option{ignoreUnexported, cmpopts.IgnoreFields(Step{}, "Pos", "WherePos", "UntilPos")}
			if diff := cmp.Diff(want, got, opts...); diff != "" {
				t.Errorf("step mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseMaxClockSkew tells an unset max_clock_skew (the engine's
// default applies) from a written 0s (no bound).
func TestParseMaxClockSkew(t *testing.T) {
	for _, tt := range []struct {
		name, yaml string
		want       time.Duration
	}{
		{"unset", "", 0},
		{"set", "  max_clock_skew: 10m\n", 10 * time.Minute},
		{"days", "  max_clock_skew: 2d\n", 48 * time.Hour},
		{"off", "  max_clock_skew: 0s\n", NoMaxClockSkew},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Parse("t.yaml", []byte("ruleset: t\nstream:\n  topic: x\n"+tt.yaml+"rules: []\n"))
			if err != nil {
				t.Fatal(err)
			}
			if got := rs.Stream.MaxClockSkew; got != tt.want {
				t.Errorf("MaxClockSkew = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseSkipAndDefaults(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want Skip
	}{
		{"default", "", Skip{Kind: SkipNone}},
		{"none", "    skip: none\n", Skip{Kind: SkipNone}},
		{"to_next", "    skip: to_next\n", Skip{Kind: SkipToNext}},
		{"past_last_event", "    skip: past_last_event\n", Skip{Kind: SkipPastLastEvent}},
		{"to_first", "    skip: {to_first: b}\n", Skip{Kind: SkipToFirst, Step: "b"}},
		{"to_last block", "    skip:\n      to_last: a\n", Skip{Kind: SkipToLast, Step: "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := ruleset("  - id: r\n    pattern:\n      - step: a\n      - step: b\n" + tt.yaml)
			rs, err := Parse("t.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			r := rs.Rules[0]
			if diff := cmp.Diff(tt.want, r.Skip, cmpopts.IgnoreFields(Skip{}, "Pos")); diff != "" {
				t.Errorf("skip mismatch (-want +got):\n%s", diff)
			}
			if r.Severity != SeverityMedium || !r.Enabled {
				t.Errorf("defaults: severity %q enabled %v, want medium true", r.Severity, r.Enabled)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"10m", 10 * time.Minute, false},
		{"1.5s", 1500 * time.Millisecond, false},
		{"500ms", 500 * time.Millisecond, false},
		{"2d", 48 * time.Hour, false},
		{"1d12h", 36 * time.Hour, false},
		{"0.5d", 12 * time.Hour, false},
		{"-1d", -24 * time.Hour, false},
		{"1h1d", 0, true},
		{"d", 0, true},
		{"5x", 0, true},
		{"", 0, true},
		{"10", 0, true},
		{"1d-1h", 0, true},
		{"200000000d", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseDuration(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseDuration(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "yaml syntax",
			src:  "ruleset: t\nrules: [\n",
			want: []string{"2:1: invalid YAML: did not find expected node content"},
		},
		// yaml.v3 prints the line of the construct being parsed (here 2,
		// 2 and 5); the error is reported where the mistake is.
		{
			name: "yaml mis-indented key",
			src:  ruleset("  - id: a\n    when: 'true'\n   severity: high\n"),
			want: []string{"5:1: invalid YAML: did not find expected '-' indicator"},
		},
		{
			name: "yaml unterminated quote",
			src:  ruleset("  - id: a\n    when: \"event.x == 1\n    severity: high\n    description: \"x\"\n"),
			want: []string{"4:1: invalid YAML: did not find expected key (the quoted string that begins on this line ends on line 6: is a quote missing?)"},
		},
		{
			name: "yaml unclosed bracket",
			src:  ruleset("  - id: a\n    when: 'true'\n    alert:\n      labels: [a, b\n    severity: high\n"),
			want: []string{"6:1: invalid YAML: did not find expected ',' or ']'"},
		},
		{
			name: "not a mapping",
			src:  "- a\n- b\n",
			want: []string{"1:1: ruleset must be a mapping, not a list"},
		},
		{
			name: "empty",
			src:  "",
			want: []string{"1:1: empty ruleset document"},
		},
		{
			name: "two documents",
			src:  "ruleset: t\nrules: []\n---\nruleset: u\n",
			want: []string{"3:1: a ruleset file holds one YAML document"},
		},
		{
			name: "missing name and rules",
			src:  "description: x\n",
			want: []string{`1:1: missing field "ruleset" (the ruleset's name)`, `1:1: missing field "rules"`},
		},
		{
			name: "unknown and duplicate fields",
			src:  "ruleset: t\nbogus: 1\nruleset: u\nrules:\n  - id: a\n    when: 'true'\n    wehn: x\n",
			want: []string{
				`2:1: unknown field "bogus" in ruleset`,
				`3:1: duplicate field "ruleset" in ruleset`,
				`7:5: a: unknown field "wehn" in rule`,
			},
		},
		{
			name: "bad ruleset name",
			src:  "ruleset: 'a b'\nrules: []\n",
			want: []string{`1:10: ruleset name "a b" must start with a letter or digit and hold only letters, digits, '_', '.' and '-'`},
		},
		{
			name: "stream",
			src:  "ruleset: t\nstream:\n  tme: x\n  max_out_of_orderness: -5s\n  idle_timeout: 5x\n  key: ''\n  max_clock_skew: -1m\nrules: []\n",
			want: []string{
				`3:3: unknown field "tme" in stream`,
				`4:25: max_out_of_orderness must not be negative, not -5s`,
				`5:17: idle_timeout: invalid duration "5x" (use Go syntax such as 90s, 10m, 1h30m or 2d)`,
				`6:8: stream key is empty`,
				`7:19: max_clock_skew must not be negative, not -1m`,
			},
		},
		{
			name: "schema and lists",
			src:  "ruleset: t\nschema:\n  a: strng\n  b-c: int\n  a: int\nlists:\n  l: x\n  m: [1, [2]]\nrules: []\n",
			want: []string{
				`3:6: unknown schema type "strng" for field "a" (want one of bool, bytes, double, duration, dyn, int, list, map, string, timestamp, uint)`,
				`4:3: schema field "b-c" is not a CEL identifier`,
				`5:3: duplicate key "a" in schema`,
				`7:6: list "l" must be a list of items, or a mapping such as {managed: true, type: string}, not a string`,
				`8:10: list "m" items must be strings, numbers or booleans, not a list`,
			},
		},
		{
			name: "rule ids",
			src:  ruleset("  - id: a\n    when: 'true'\n  - id: a\n    when: 'true'\n  - when: 'true'\n  - id: 'x y'\n    when: 'true'\n"),
			want: []string{
				`5:5: a: duplicate rule id "a" (first defined at t.yaml:3:5)`,
				`7:5: rule without id`,
				`8:9: x y: rule id "x y" must start with a letter or digit and hold only letters, digits, '_', '.' and '-'`,
			},
		},
		{
			name: "when and pattern",
			src:  ruleset("  - id: both\n    when: 'true'\n    pattern:\n      - step: a\n  - id: neither\n  - id: empty\n    pattern: []\n  - id: emptywhen\n    when: ''\n"),
			want: []string{
				`6:7: both: a rule has exactly one of when, pattern and aggregate, not both when and pattern`,
				`7:5: neither: a rule needs when (one event), pattern (a sequence) or aggregate (measures over a window)`,
				`9:14: empty: pattern has no steps`,
				`11:11: emptywhen: when is empty`,
			},
		},
		{
			name: "when rule options",
			src:  ruleset("  - id: w\n    when: 'true'\n    within: 5m\n    skip: to_next\n    alert:\n      on_timeout: true\n"),
			want: []string{
				`5:13: w: within applies to pattern rules only`,
				`6:11: w: skip applies to pattern rules only`,
				`8:19: w: on_timeout applies to pattern rules only: a when rule never waits`,
			},
		},
		{
			name: "rule fields",
			src:  ruleset("  - id: f\n    severity: urgent\n    enabled: yes\n    within: 0s\n    pattern:\n      - step: a\n    alert:\n      labels: {a: 1, b: x}\n      on_timeout: 1\n"),
			want: []string{
				`4:15: f: unknown severity "urgent" (want info, low, medium, high or critical)`,
				`5:14: f: enabled must be true or false, not a string`,
				`6:13: f: within must be positive, not 0s`,
				`10:19: f: label "a" must be a string, not an integer (quote it)`,
				`11:19: f: on_timeout must be true or false, not an integer`,
			},
		},
		{
			name: "skip",
			src: ruleset("  - id: s1\n    pattern:\n      - step: a\n    skip: sideways\n" +
				"  - id: s2\n    pattern:\n      - step: a\n    skip: {to_first: zz}\n" +
				"  - id: s3\n    pattern:\n      - step: a\n    skip: to_last\n" +
				"  - id: s4\n    pattern:\n      - step: a\n    skip: {past: a}\n"),
			want: []string{
				`6:11: s1: unknown skip strategy "sideways" (want none, to_next, past_last_event, {to_first: STEP} or {to_last: STEP})`,
				`10:22: s2: skip to_first: no step "zz" in the pattern (steps: a)`,
				`14:11: s3: skip to_last needs a step: write skip: {to_last: STEP}`,
				`18:12: s4: unknown skip strategy "past" (a mapping takes to_first or to_last)`,
			},
		},
		{
			name: "step names",
			src:  ruleset("  - id: n\n    pattern:\n      - step: 1x\n      - step: event\n      - step: in\n      - step: a\n      - step: a\n      - where: 'true'\n"),
			want: []string{
				`5:15: n: step name "1x" is not a CEL identifier (letters, digits and _, not starting with a digit)`,
				`6:15: n: step name "event" is reserved`,
				`7:15: n: step name "in" is reserved`,
				`9:15: n: duplicate step name "a" (first at t.yaml:8:9)`,
				`10:9: n: step 6 has no name`,
			},
		},
		{
			name: "times",
			src:  ruleset("  - id: t\n    pattern:\n      - step: a\n        times: 3..2\n      - step: b\n        times: 0\n      - step: c\n        times: -1\n      - step: d\n        times: x\n"),
			want: []string{
				`6:16: t: times "3..2" has a minimum above its maximum`,
				`8:16: t: times "0" allows no event at all`,
				`10:16: t: times must be N, N..M or N.. with N and M non-negative integers, not "-1"`,
				`12:16: t: times must be N, N..M or N.. with N and M non-negative integers, not "x"`,
			},
		},
		{
			name: "looping options on a plain step",
			src:  ruleset("  - id: l\n    pattern:\n      - step: a\n        greedy: true\n        loop: strict\n        until: 'true'\n      - step: b\n        times: 2\n        greedy: true\n"),
			want: []string{
				`6:9: l: greedy applies to looping steps only (times N.., N..M or N with N > 1); step "a" takes one event`,
				`7:9: l: loop applies to looping steps only (times N.., N..M or N with N > 1); step "a" takes one event`,
				`8:9: l: until applies to looping steps only (times N.., N..M or N with N > 1); step "a" takes one event`,
			},
		},
		{
			name: "first step",
			src:  ruleset("  - id: f\n    within: 1m\n    pattern:\n      - step: a\n        contiguity: strict\n        within: 10s\n      - step: b\n        optional: true\n"),
			want: []string{
				`7:9: f: contiguity on the first step has no meaning: it relates a step to the previous one`,
				`8:9: f: within on the first step has no meaning: it bounds the time from the previous step (use the rule's within)`,
			},
		},
		{
			name: "step within",
			src:  ruleset("  - id: w\n    within: 1m\n    pattern:\n      - step: a\n      - step: b\n        within: 2m\n      - step: c\n        within: -1s\n"),
			want: []string{
				`8:9: w: step within 2m0s is longer than the rule's within 1m0s`,
				`10:17: w: step within must be positive, not -1s`,
			},
		},
		{
			// Flink accepts these (begin(a).oneOrMore().optional()) and never
			// emits the empty match.
			name: "all optional",
			src: ruleset("  - id: o\n    pattern:\n      - step: a\n        optional: true\n      - step: b\n        times: 0..2\n" +
				"  - id: one\n    pattern:\n      - step: a\n        times: 1..\n        optional: true\n"),
			want: nil,
		},
		{
			name: "not steps",
			src: ruleset("  - id: n1\n    pattern:\n      - step: a\n        not: true\n      - step: b\n" +
				"  - id: n2\n    pattern:\n      - step: a\n        optional: true\n      - step: b\n        not: true\n        contiguity: strict\n      - step: c\n" +
				"  - id: n3\n    within: 1m\n    pattern:\n      - step: a\n      - step: b\n        not: true\n      - step: c\n        not: true\n        contiguity: any\n" +
				"  - id: n4\n    pattern:\n      - step: a\n      - step: b\n        not: true\n        times: 2\n        greedy: true\n        until: 'true'\n      - step: c\n" +
				"  - id: n5\n    pattern:\n      - step: a\n      - step: b\n        not: true\n"),
			want: []string{
				`5:9: n1: a pattern cannot start with a not step: absence is measured after an event`,
				`12:9: n2: a not step cannot follow an optional step`,
				`22:9: n3: two not steps in a row with the same contiguity: merge their conditions with || into one step`,
				`24:9: n3: a not step takes contiguity strict (not next) or relaxed (not followed by), not any`,
				`30:9: n4: a not step cannot have times`,
				`31:9: n4: a not step cannot have greedy`,
				`32:9: n4: a not step cannot have until`,
				`37:9: n5: a pattern ending in a relaxed not step needs a within (the rule's, or the not step's own): absence is only known when the window closes`,
			},
		},
		{
			name: "not steps in a row",
			src: ruleset("  - id: strict-strict\n    pattern:\n      - step: a\n      - step: x\n        not: true\n        contiguity: strict\n      - step: y\n        not: true\n        contiguity: strict\n      - step: c\n" +
				"  - id: relaxed-strict\n    pattern:\n      - step: a\n      - step: x\n        not: true\n      - step: y\n        not: true\n        contiguity: strict\n      - step: c\n" +
				"  - id: strict-relaxed\n    pattern:\n      - step: a\n      - step: x\n        not: true\n        contiguity: strict\n      - step: y\n        not: true\n      - step: c\n" +
				"  - id: strict-relaxed-end\n    within: 1m\n    pattern:\n      - step: a\n      - step: x\n        not: true\n        contiguity: strict\n      - step: y\n        not: true\n"),
			want: []string{
				`9:9: strict-strict: two not steps in a row with the same contiguity: merge their conditions with || into one step`,
				`18:9: relaxed-strict: a strict not step cannot follow a relaxed one ("x"): write the strict one first; it forbids the event right after "a", the relaxed one every event up to the next step`,
			},
		},
		{
			name: "not at the end",
			src: ruleset("  - id: strict-end\n    pattern:\n      - step: a\n      - step: b\n        not: true\n        contiguity: strict\n" +
				"  - id: relaxed-end\n    within: 5m\n    pattern:\n      - step: a\n      - step: b\n        not: true\n" +
				"  - id: relaxed-end-step-within\n    pattern:\n      - step: a\n      - step: b\n        not: true\n        within: 5m\n"),
			want: nil,
		},
		{
			name: "on_timeout without window",
			src:  ruleset("  - id: t\n    pattern:\n      - step: a\n      - step: b\n    alert:\n      on_timeout: true\n"),
			want: []string{`8:19: t: on_timeout needs a within: without one a partial match never times out`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("t.yaml", []byte(tt.src), CompileOptions{})
			if diff := cmp.Diff(tt.want, errLines(t, err)); diff != "" {
				t.Errorf("errors mismatch (-want +got):\n%s\nfull error:\n%v", diff, err)
			}
		})
	}
}

func TestLoadSizeLimit(t *testing.T) {
	src := ruleset("  - id: a\n    when: 'true'\n")
	_, err := Load("t.yaml", []byte(src), CompileOptions{MaxSourceBytes: 10})
	want := []string{"t.yaml: ruleset is 45 bytes, over the limit of 10"}
	if diff := cmp.Diff(want, errLines(t, err)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestLoadRuleLimit checks that a source with more rules than the limit
// is refused with the count and the limit, before any rule is compiled:
// 20,000 small rules fit in 1 MiB and took seconds and hundreds of MB to
// compile.
func TestLoadRuleLimit(t *testing.T) {
	rulesOf := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "  - id: r%d\n    when: event.amount > %d.0\n", i, i)
		}
		return b.String()
	}
	tests := []struct {
		name  string
		rules int
		opts  CompileOptions
		want  []string
	}{
		{"at the limit", 3, CompileOptions{MaxRules: 3}, nil},
		{"over the limit", 4, CompileOptions{MaxRules: 3}, []string{"3:3: ruleset has 4 rules, over the limit of 3"}},
		{"at the default", DefaultMaxRules, CompileOptions{}, nil},
		{"20,000 rules", 20_000, CompileOptions{}, []string{fmt.Sprintf("3:3: ruleset has 20000 rules, over the limit of %d", DefaultMaxRules)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("t.yaml", []byte(ruleset(rulesOf(tt.rules))), tt.opts)
			if diff := cmp.Diff(tt.want, errLines(t, err)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	t.Run("a ruleset built in code", func(t *testing.T) {
		rs, err := Parse("t.yaml", []byte(ruleset(rulesOf(4))))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Compile(rs, CompileOptions{MaxRules: 3})
		want := []string{"1:1: ruleset has 4 rules, over the limit of 3"}
		if diff := cmp.Diff(want, errLines(t, err)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

// TestLoadContextCancelled checks that a load whose context has ended
// stops with the context's error rather than compile every rule.
func TestLoadContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := LoadContext(ctx, "t.yaml", []byte(ruleset("  - id: a\n    when: 'true'\n")), CompileOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestParseAliasesBounded(t *testing.T) {
	// A "billion laughs" document: each level refers to the previous one
	// nine times.
	var b strings.Builder
	b.WriteString("ruleset: t\nlists:\n  l0: &l0 [a, a, a, a, a, a, a, a, a]\n")
	prev := "l0"
	for i := 1; i < 9; i++ {
		name := "l" + string(rune('0'+i))
		b.WriteString("  " + name + ": &" + name + " [")
		for j := 0; j < 9; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*" + prev)
		}
		b.WriteString("]\n")
		prev = name
	}
	b.WriteString("rules: []\n")
	_, err := Parse("t.yaml", []byte(b.String()))
	if err == nil {
		t.Fatal("Parse accepted nested aliases used as list items")
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", time.Second: "1s", time.Minute: "1m", 90 * time.Second: "1m30s", time.Hour: "1h", 90 * time.Minute: "1h30m",
		250 * time.Millisecond: "250ms", 24 * time.Hour: "24h",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
