package rules

import (
	"errors"
	"strings"
	"testing"
	"time"

	"cel.dev/cel-go/common/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// aggSchema types the fields the aggregate tests read.
const aggSchema = "schema:\n  type: string\n  card_id: string\n  amount: double\n  n: int\n  name: string\n  tags: list\n"

// aggRuleset wraps rule YAML into a document with aggSchema.
func aggRuleset(rules string) string { return "ruleset: t\n" + aggSchema + "rules:\n" + rules }

const cardSpree = `ruleset: t
lists:
  blocked: [c9]
rules:
  - id: card-spree
    severity: high
    aggregate:
      where: event.type == "card_auth" && !(event.card_id in lists.blocked)
      window: 10m
      tumbling: true
      measures:
        cards: count_distinct(event.card_id)
        spent: "sum( event.amount )"
        n: count()
        biggest: |-
          max(event.amount)
      having: cards >= 5 && spent > 100
    alert:
      summary: '"%d cards, %.2f spent".format([cards, spent])'
`

func TestParseAggregate(t *testing.T) {
	c := mustLoad(t, cardSpree)
	r := c.Rules[0]
	a := r.Aggregate
	if a == nil || r.Rule.Aggregate == nil {
		t.Fatal("no aggregate")
	}
	want := &Aggregate{
		Where:     `event.type == "card_auth" && !(event.card_id in lists.blocked)`,
		WherePos:  Pos{File: "t.yaml", Line: 8, Col: 14},
		Window:    10 * time.Minute,
		WindowPos: Pos{File: "t.yaml", Line: 9, Col: 15},
		Tumbling:  true,
		Measures: []*Measure{
			{Name: "cards", Func: CountDistinct, Arg: "event.card_id", ArgPos: Pos{File: "t.yaml", Line: 12, Col: 31}, Pos: Pos{File: "t.yaml", Line: 12, Col: 16}},
			{Name: "spent", Func: Sum, Arg: "event.amount", ArgPos: Pos{File: "t.yaml", Line: 13, Col: 22}, Pos: Pos{File: "t.yaml", Line: 13, Col: 16}},
			{Name: "n", Func: Count, ArgPos: Pos{File: "t.yaml", Line: 14, Col: 12}, Pos: Pos{File: "t.yaml", Line: 14, Col: 12}},
			{Name: "biggest", Func: Max, Arg: "event.amount", ArgPos: Pos{File: "t.yaml", Line: 16, Col: 15}, Pos: Pos{File: "t.yaml", Line: 15, Col: 18}},
		},
		Having:    "cards >= 5 && spent > 100",
		HavingPos: Pos{File: "t.yaml", Line: 17, Col: 15},
		Pos:       Pos{File: "t.yaml", Line: 8, Col: 7},
	}
	if diff := cmp.Diff(want, a.Aggregate, cmpopts.IgnoreUnexported(Aggregate{}, Measure{})); diff != "" {
		t.Errorf("aggregate (-want +got):\n%s", diff)
	}
	if a.Where == nil || a.Having == nil || len(a.Args) != 4 {
		t.Fatalf("compiled aggregate %+v", a)
	}
	if a.Args[2] != nil {
		t.Errorf("count() has an argument expression %q", a.Args[2].Source)
	}
	for _, i := range []int{0, 1, 3} {
		if a.Args[i] == nil || a.Args[i].Source != a.Measures[i].Arg {
			t.Errorf("measure %d: argument %+v", i, a.Args[i])
		}
	}
	if got, want := a.Having.Measures, []string{"cards", "spent"}; !cmp.Equal(got, want) {
		t.Errorf("having reads measures %v, want %v", got, want)
	}
	if got, want := r.Summary.Measures, []string{"cards", "spent"}; !cmp.Equal(got, want) {
		t.Errorf("summary reads measures %v, want %v", got, want)
	}
	if len(a.Where.Measures) != 0 || len(a.Where.Steps) != 0 {
		t.Errorf("where reads %v %v", a.Where.Measures, a.Where.Steps)
	}
	if got := r.Summary.Pos; got != (Pos{File: "t.yaml", Line: 19, Col: 16}) {
		t.Errorf("summary at %v", got)
	}
}

// measures is a MeasureVars over fixed values; a missing index has no
// value.
type measures map[int]any

func (m measures) StepEvents(string) ([]*Event, bool) { return nil, false }

func (m measures) Measure(i int) (any, bool) {
	v, ok := m[i]
	return v, ok
}

func TestEvalAggregate(t *testing.T) {
	c := mustLoad(t, cardSpree)
	r := c.Rules[0]
	a := r.Aggregate
	auth := mustEvent(t, `{"type": "card_auth", "card_id": "c1", "amount": 12.5}`)

	if ok, err := a.Where.EvalBool(auth, nil); !ok || err != nil {
		t.Errorf("where on a card_auth = %v, %v", ok, err)
	}
	if ok, err := a.Where.EvalBool(mustEvent(t, `{"type": "card_auth", "card_id": "c9"}`), nil); ok || err != nil {
		t.Errorf("where on a blocked card = %v, %v", ok, err)
	}
	v, err := a.Args[1].Eval(auth, nil)
	if err != nil || v != types.Double(12.5) {
		t.Errorf("sum argument = %v, %v", v, err)
	}

	for _, tt := range []struct {
		name    string
		vars    Vars
		want    bool
		wantErr bool
	}{
		{name: "both over", vars: measures{0: 5, 1: 100.5, 2: 7}, want: true},
		{name: "cards under", vars: measures{0: 4, 1: 1000.0, 2: 7}, want: false},
		{name: "spent at the bound", vars: measures{0: 9, 1: 100.0, 2: 7}, want: false},
		{name: "int64 and a CEL value", vars: measures{0: int64(6), 1: types.Double(101)}, want: true},
		{name: "unbound measure", vars: measures{0: 5}, wantErr: true},
		{name: "no MeasureVars", vars: stepVars{}, wantErr: true},
		{name: "nil vars", vars: nil, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.Having.EvalBool(auth, tt.vars)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("having = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}

	s, err := r.Summary.EvalString(auth, measures{0: 5, 1: 100.5})
	if err != nil || s != "5 cards, 100.50 spent" {
		t.Errorf("summary = %q, %v", s, err)
	}
}

// TestAggregateMeasureTypes checks the CEL type each measure has in having:
// an int for count and count_distinct, a double for the others.
func TestAggregateMeasureTypes(t *testing.T) {
	for _, tt := range []struct {
		fn, arg, having string
		value           any
	}{
		{"count", "", "type(m) == int", 3},
		{"count_distinct", "event.name", "type(m) == int", 3},
		{"sum", "event.n", "type(m) == double", 3.0},
		{"avg", "event.amount", "type(m) == double", 3.0},
		{"min", "event.amount", "type(m) == double", 3.0},
		{"max", "event.amount", "type(m) == double", 3.0},
	} {
		t.Run(tt.fn, func(t *testing.T) {
			src := aggRuleset("  - id: r\n    aggregate:\n      window: 1m\n      measures:\n        m: " + tt.fn + "(" + tt.arg + ")\n      having: " + yamlQuote(tt.having) + "\n")
			c := mustLoad(t, src)
			ok, err := c.Rules[0].Aggregate.Having.EvalBool(mustEvent(t, `{}`), measures{0: tt.value})
			if !ok || err != nil {
				t.Errorf("%s = %v, %v", tt.having, ok, err)
			}
		})
	}
	// The static type shows in a type error: a double measure is no string.
	src := aggRuleset("  - id: r\n    aggregate:\n      window: 1m\n      measures:\n        m: sum(event.n)\n      having: m == 'x'\n")
	_, err := Load("t.yaml", []byte(src), CompileOptions{})
	if err == nil || !strings.Contains(err.Error(), "_==_") || !strings.Contains(err.Error(), "(double, string)") {
		t.Errorf("having m == 'x' over a double measure: %v", err)
	}
}

func TestAggregateArgTypes(t *testing.T) {
	for _, tt := range []struct {
		measure string
		wantErr string
	}{
		{"sum(event.n)", ""},
		{"sum(event.amount)", ""},
		{"sum(uint(event.n))", ""},
		{"sum(event.tags[0])", ""}, // dyn
		{"avg(event.name)", "the argument of avg in measure \"m\" must be an int, uint or double, not string"},
		{"min(event.type == 'x')", "the argument of min in measure \"m\" must be an int, uint or double, not bool"},
		{"count_distinct(event.name)", ""},
		{"count_distinct(event.n)", ""},
		{"count_distinct(b'x')", ""},
		{"count_distinct(timestamp('2026-01-01T00:00:00Z'))", ""},
		{"count_distinct(event.tags[0])", ""},
		{"count_distinct(event.tags)", "the argument of count_distinct in measure \"m\" must be a string, int, uint, double, bool, bytes or timestamp, not list(dyn)"},
	} {
		t.Run(tt.measure, func(t *testing.T) {
			src := aggRuleset("  - id: r\n    aggregate:\n      window: 1m\n      measures:\n        m: " + yamlQuote(tt.measure) + "\n      having: m > 0\n")
			_, err := Load("t.yaml", []byte(src), CompileOptions{})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Load: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Load error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestAggregateErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "unknown function",
			src:  aggRuleset("  - id: a\n    aggregate:\n      window: 1m\n      measures:\n        m: median(event.amount)\n      having: m > 1\n"),
			want: []string{`14:12: a: measure "m": unknown function "median" (want count(), count_distinct(x), sum(x), avg(x), min(x) or max(x))`},
		},
		{
			name: "not a call",
			src: aggRuleset("  - id: a\n    aggregate:\n      window: 1m\n      measures:\n        m: event.amount\n" +
				"        k: sum(event.amount) + 1\n        l: 5\n        o: sum(event.amount\n      having: m > 1\n"),
			want: []string{
				`14:12: a: measure "m" must be a call of a measure function, count(), count_distinct(x), sum(x), avg(x), min(x) or max(x), not "event.amount"`,
				`15:12: a: measure "k" must be a call of a measure function, count(), count_distinct(x), sum(x), avg(x), min(x) or max(x), not "sum(event.amount) + 1"`,
				`16:12: a: measure "l" must be a call of a measure function, count(), count_distinct(x), sum(x), avg(x), min(x) or max(x), not "5"`,
				`17:12: a: measure "o" must be a call of a measure function, count(), count_distinct(x), sum(x), avg(x), min(x) or max(x), not "sum(event.amount"`,
			},
		},
		{
			name: "arguments",
			src: aggRuleset("  - id: a\n    aggregate:\n      window: 1m\n      measures:\n        c: count(event.card_id)\n" +
				"        s: sum()\n        t: 'max(event.amount, event.n)'\n        u: min(event.name == ')', event.n)\n      having: c > 1\n"),
			want: []string{
				`14:18: a: measure "c": count takes no argument: it counts the events that pass where (count_distinct(x) counts distinct values)`,
				`15:12: a: measure "s": sum takes one argument, the value to read from each event: sum(event.FIELD)`,
				`16:17: a: measure "t": max takes one argument, not 2`,
				`17:16: a: measure "u": min takes one argument, not 2`,
			},
		},
		{
			name: "sum of a string",
			src:  aggRuleset("  - id: a\n    aggregate:\n      window: 1m\n      measures:\n        total: \"sum(event.name)\"\n      having: total > 1\n"),
			want: []string{`14:21: a: the argument of sum in measure "total" must be an int, uint or double, not string`},
		},
		{
			name: "CEL errors inside arguments",
			src: aggRuleset("  - id: a\n    aggregate:\n      window: 1m\n      measures:\n        x: avg(event.amont)\n" +
				"        y: >-\n          max(\n            event.amount +)\n      having: x > 1\n"),
			want: []string{
				`14:21: a: undefined field 'amont'`,
				`17:27: a: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}`,
			},
		},
		{
			name: "having with an unknown measure",
			src:  aggRuleset("  - id: a\n    aggregate:\n      window: 1m\n      measures:\n        cards: count()\n        spent: sum(event.amount)\n      having: cards > 1 && spend > 10.0\n"),
			want: []string{`16:28: a: undeclared reference to 'spend' (the measures are cards, spent)`},
		},
		{
			name: "measure outside having",
			src:  aggRuleset("  - id: a\n    aggregate:\n      where: cards > 1\n      window: 1m\n      measures:\n        cards: count()\n        s: sum(cards)\n      having: cards > 1\n"),
			want: []string{
				`12:14: a: measure "cards" is not visible in where: where and the measures' arguments see event and lists; having and the summary see the measures`,
				`16:16: a: measure "cards" is not visible in the argument of sum in measure "s": where and the measures' arguments see event and lists; having and the summary see the measures`,
			},
		},
		{
			name: "having must be bool",
			src:  aggRuleset("  - id: a\n    aggregate:\n      window: 1m\n      measures:\n        n: count()\n      having: n + 1\n"),
			want: []string{`15:15: a: having must be a bool expression, not int`},
		},
		{
			name: "missing window, having and measures",
			src:  aggRuleset("  - id: a\n    aggregate:\n      where: 'true'\n"),
			want: []string{
				`12:7: a: aggregate needs a window: the span of event time its measures cover, such as 10m`,
				`12:7: a: aggregate needs having: the condition over its measures that fires the rule, such as count >= 5`,
				`12:7: a: aggregate needs measures: a mapping of NAME: FUNC(ARG) with FUNC one of count(), count_distinct(x), sum(x), avg(x), min(x) or max(x)`,
			},
		},
		{
			name: "bad window and empty having",
			src:  aggRuleset("  - id: a\n    aggregate:\n      window: 0s\n      measures: {n: count()}\n      having: ''\n  - id: b\n    aggregate:\n      window: soon\n      tumbling: maybe\n      measures: [count()]\n      having: n > 1\n"),
			want: []string{
				`12:15: a: window must be positive, not 0s`,
				`14:15: a: having is empty`,
				`17:15: b: window: invalid duration "soon" (use Go syntax such as 90s, 10m, 1h30m or 2d)`,
				`18:17: b: tumbling must be true or false, not a string`,
				`19:17: b: measures must be a mapping of NAME: FUNC(ARG), not a list`,
				`20:15: b: undeclared reference to 'n'`,
			},
		},
		{
			name: "not a mapping",
			src:  aggRuleset("  - id: a\n    aggregate: [window]\n"),
			want: []string{`11:16: a: aggregate must be a mapping, not a list`},
		},
		{
			name: "unknown field",
			src:  aggRuleset("  - id: a\n    aggregate:\n      window: 1m\n      windw: 2m\n      measures: {n: count()}\n      having: n > 1\n"),
			want: []string{`13:7: a: unknown field "windw" in aggregate`},
		},
		{
			name: "aggregate with when or pattern",
			src: aggRuleset("  - id: a\n    when: 'true'\n    aggregate:\n      window: 1m\n      measures: {n: count()}\n      having: n > 1\n" +
				"  - id: b\n    pattern:\n      - step: x\n    aggregate:\n      window: 1m\n      measures: {n: count()}\n      having: n > 1\n"),
			want: []string{
				`13:7: a: a rule has exactly one of when, pattern and aggregate, not both when and aggregate`,
				`20:7: b: a rule has exactly one of when, pattern and aggregate, not both pattern and aggregate`,
			},
		},
		{
			name: "pattern options on an aggregate rule",
			src:  aggRuleset("  - id: a\n    within: 5m\n    skip: to_next\n    aggregate:\n      window: 1m\n      measures: {n: count()}\n      having: n > 1\n    alert:\n      on_timeout: true\n"),
			want: []string{
				`11:13: a: within applies to pattern rules only: an aggregate rule's span of time is its window`,
				`12:11: a: skip applies to pattern rules only: an aggregate rule has no partial matches to discard`,
				`18:19: a: on_timeout applies to pattern rules only: an aggregate rule has no partial matches to time out`,
			},
		},
		{
			name: "measure names",
			src: aggRuleset("  - id: a\n    aggregate:\n      window: 1m\n      measures:\n        n: count()\n        event: count()\n" +
				"        in: count()\n        1x: count()\n        n: sum(event.amount)\n        lists: count()\n      having: n > 1\n"),
			want: []string{
				`15:9: a: measure name "event" is reserved`,
				`16:9: a: measure name "in" is reserved`,
				`17:9: a: measure name "1x" is not a CEL identifier (letters, digits and _, not starting with a digit)`,
				`18:9: a: duplicate measure name "n" (first at t.yaml:14:9)`,
				`19:9: a: measure name "lists" is reserved`,
			},
		},
		{
			name: "summary of an aggregate rule",
			src:  aggRuleset("  - id: a\n    aggregate:\n      window: 1m\n      measures: {n: count()}\n      having: n > 1\n    alert:\n      summary: string(n) + event.type + string(m)\n"),
			want: []string{`16:48: a: undeclared reference to 'm' (the measures are n)`},
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

func TestAggregateMeasureLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("  - id: a\n    aggregate:\n      window: 1m\n      having: m0 > 1\n      measures:\n")
	for i := range MaxMeasures + 1 {
		b.WriteString("        m" + strings.Repeat("x", i) + ": count()\n")
	}
	_, err := Load("t.yaml", []byte(aggRuleset(b.String())), CompileOptions{})
	if err == nil || !strings.Contains(err.Error(), "aggregate has 65 measures, over the limit of 64") {
		t.Errorf("Load: %v", err)
	}
}

func TestAggregateVersion(t *testing.T) {
	v0 := mustLoad(t, cardSpree).Rules[0].Version
	for _, change := range [][2]string{
		{"window: 10m", "window: 11m"},
		{"tumbling: true", "tumbling: false"},
		{"count_distinct(event.card_id)", "count_distinct(event.amount)"},
		{"cards: count_distinct", "cardz: count_distinct"},
		{"max(event.amount)", "min(event.amount)"},
		{"having: cards >= 5", "having: cards >= 6"},
		{`where: event.type == "card_auth"`, `where: event.type == "card_authz"`},
		{"blocked: [c9]", "blocked: [c8]"},
	} {
		src := cardSpree
		if change[0] == "cards: count_distinct" {
			src = strings.ReplaceAll(src, "cards", "cardz")
		} else {
			if !strings.Contains(src, change[0]) {
				t.Fatalf("no %q in the rules", change[0])
			}
			src = strings.Replace(src, change[0], change[1], 1)
		}
		if v := mustLoad(t, src).Rules[0].Version; v == v0 {
			t.Errorf("%q -> %q kept version %s", change[0], change[1], v)
		}
	}
	// Formatting does not count.
	src := strings.Replace(cardSpree, "window: 10m", "window: '10m'   # ten minutes", 1)
	if v := mustLoad(t, src).Rules[0].Version; v != v0 {
		t.Errorf("reformatted rule has version %s, want %s", v, v0)
	}
}

// TestAggregateBuiltInCode compiles an aggregate rule built in code: errors
// in a measure's argument are placed relative to its ArgPos.
func TestAggregateBuiltInCode(t *testing.T) {
	rs := &Ruleset{
		Name: "code",
		Rules: []*Rule{{
			ID:      "r",
			Enabled: true,
			Aggregate: &Aggregate{
				Window: time.Minute,
				Measures: []*Measure{
					{Name: "n", Func: Count},
					{Name: "s", Func: Sum, Arg: "event.amount + ", ArgPos: Pos{File: "gen.yaml", Line: 10, Col: 20}},
				},
				Having: "n > 2 && s > 1.0",
			},
		}},
	}
	_, err := Compile(rs, CompileOptions{})
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 1 || list[0].Pos != (Pos{File: "gen.yaml", Line: 10, Col: 35}) {
		t.Fatalf("Compile error %v, want one at gen.yaml:10:35", err)
	}
	rs.Rules[0].Aggregate.Measures[1].Arg = "event.amount"
	c, err := Compile(rs, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ok, err := c.Rules[0].Aggregate.Having.EvalBool(mustEvent(t, `{}`), measures{0: 3, 1: 1.5})
	if !ok || err != nil {
		t.Errorf("having = %v, %v", ok, err)
	}
	for _, tt := range []struct {
		name   string
		mutate func(r *Rule)
		want   string
	}{
		{"no window", func(r *Rule) { r.Aggregate.Window = 0 }, "aggregate needs a window"},
		{"negative window", func(r *Rule) { r.Aggregate.Window = -time.Second }, "window must be positive"},
		{"unknown function", func(r *Rule) { r.Aggregate.Measures[0].Func = "median" }, `unknown function "median"`},
		{"sum without argument", func(r *Rule) { r.Aggregate.Measures[1].Arg = "" }, "sum takes one argument"},
		{"duplicate name", func(r *Rule) { r.Aggregate.Measures[1].Name = "n" }, `duplicate measure name "n"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := *rs.Rules[0]
			a := *r.Aggregate
			a.Measures = []*Measure{ptr(*a.Measures[0]), ptr(*a.Measures[1])}
			r.Aggregate = &a
			tt.mutate(&r)
			_, err := Compile(&Ruleset{Name: "code", Rules: []*Rule{&r}}, CompileOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Compile error %v, want %q", err, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestSplitMeasureCall(t *testing.T) {
	for _, tt := range []struct {
		in   string
		fn   string
		arg  string
		args int
		ok   bool
	}{
		{"count()", "count", "", 0, true},
		{"  count ( )  ", "count", "", 0, true},
		{"sum(event.a)", "sum", "event.a", 1, true},
		{"sum( f(event.a, 2) )", "sum", "f(event.a, 2)", 1, true},
		{`count_distinct(event.a + ")")`, "count_distinct", `event.a + ")"`, 1, true},
		{`count_distinct(event.a + "\")")`, "count_distinct", `event.a + "\")"`, 1, true},
		{`count_distinct(r'\' + ',')`, "count_distinct", `r'\' + ','`, 1, true},
		{`max('''a)'b''', 1)`, "max", `'''a)'b''', 1`, 2, true},
		{"sum(a, [b, c])", "sum", "a, [b, c]", 2, true},
		{"sum(a) + 1", "", "", 0, false},
		{"sum(a]", "", "", 0, false},
		{"sum(a", "", "", 0, false},
		{"sum('a)", "", "", 0, false},
		{"(a)", "", "", 0, false},
		{"1sum(a)", "", "", 0, false},
		{"sum", "", "", 0, false},
	} {
		c, ok := splitMeasureCall(tt.in)
		if ok != tt.ok {
			t.Errorf("%q: ok = %v", tt.in, ok)
			continue
		}
		if !ok {
			continue
		}
		if c.fn != tt.fn || tt.in[c.argStart:c.argEnd] != tt.arg || c.args != tt.args {
			t.Errorf("%q: %q(%q) with %d arguments, want %q(%q) with %d", tt.in, c.fn, tt.in[c.argStart:c.argEnd], c.args, tt.fn, tt.arg, tt.args)
		}
	}
}

// TestHavingAllocations checks that measures reach having without
// allocating beyond boxing a double: a MeasureVars that hands out CEL
// values (types.Int, types.Double) makes the evaluation allocation-free.
func TestHavingAllocations(t *testing.T) {
	c := mustLoad(t, cardSpree)
	having := c.Rules[0].Aggregate.Having
	ev := mustEvent(t, `{"type": "card_auth", "card_id": "c1", "amount": 12.5}`)
	for _, tt := range []struct {
		name string
		vars measures
		max  float64
	}{
		{"CEL values", measures{0: types.Int(5), 1: types.Double(100.5)}, 0},
		{"int and float64", measures{0: 5, 1: 100.5}, 1}, // the double is boxed anew
	} {
		t.Run(tt.name, func(t *testing.T) {
			if ok, err := having.EvalBool(ev, tt.vars); !ok || err != nil {
				t.Fatalf("having = %v, %v", ok, err)
			}
			if n := testing.AllocsPerRun(100, func() { _, _ = having.EvalBool(ev, tt.vars) }); n > tt.max {
				t.Errorf("having allocates %v times per evaluation, want at most %v", n, tt.max)
			}
		})
	}
}
