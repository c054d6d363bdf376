package rules

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"cel.dev/cel-go/common/types"
	"github.com/google/go-cmp/cmp"
)

func mustEvent(t testing.TB, s string) *Event {
	t.Helper()
	ev, err := ParseEvent([]byte(s))
	if err != nil {
		t.Fatalf("ParseEvent(%s): %v", s, err)
	}
	return ev
}

func mustLoad(t testing.TB, src string) *Compiled {
	t.Helper()
	c, err := Load("t.yaml", []byte(src), CompileOptions{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

// whenExpr compiles one when condition, with an optional schema block.
func whenExpr(t testing.TB, schema, when string) *Expr {
	t.Helper()
	src := "ruleset: t\n" + schema + "lists:\n  hr: [KP, IR]\n  nums: [1, 2, 3]\nrules:\n  - id: r\n    when: " + yamlQuote(when) + "\n"
	return mustLoad(t, src).Rules[0].When
}

func yamlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

const typedSchema = "schema:\n  type: string\n  amount: double\n  n: int\n  ok: bool\n  ts: timestamp\n  tags: list\n  meta: map\n"

func TestEvalConditions(t *testing.T) {
	ev := `{"type": "login", "amount": 5, "n": 3, "ok": false, "ts": "2026-11-20T10:00:00Z", "tags": ["a", "b"], "meta": {"x": 1}, "country": "KP", "nul": null}`
	tests := []struct {
		name    string
		schema  bool
		when    string
		want    bool
		wantErr string // substring
	}{
		{name: "dyn field", when: `event.type == "login" && !event.ok`, want: true},
		{name: "typed field", schema: true, when: `event.type == "login" && !event.ok`, want: true},
		{name: "typed double from int", schema: true, when: `event.amount + 0.5 == 5.5`, want: true},
		{name: "dyn int compares with double", when: `event.amount > 4.5`, want: true},
		{name: "typed timestamp", schema: true, when: `event.ts < timestamp("2027-01-01T00:00:00Z")`, want: true},
		{name: "typed list", schema: true, when: `"b" in event.tags`, want: true},
		{name: "typed map", schema: true, when: `event.meta.x == 1`, want: true},
		{name: "dyn index", when: `event["type"] == "login"`, want: true},
		{name: "dyn in", when: `"type" in event && !("nope" in event)`, want: true},
		{name: "dyn has", when: `has(event.type) && !has(event.nope)`, want: true},
		{name: "typed has", schema: true, when: `has(event.amount) && !has(event.n) == false`, want: true},
		{name: "lists", when: `event.country in lists.hr && 2 in lists.nums`, want: true},
		{name: "dyn missing field", when: `event.nope == 1`, wantErr: "no such key: nope"},
		{name: "typed field absent", schema: true, when: `event.n == 3 && event.ok == false`, want: true},
		{name: "dyn null field", when: `event.nul == null`, want: true},
		{name: "optional field", when: `event.?nope.orValue("d") == "d"`, want: true},
		{name: "strings ext", when: `event.type.upperAscii() == "LOGIN"`, want: true},
		{name: "regex", when: `event.type.matches("^log")`, want: true},
		{name: "regex ext", when: `regex.extract(event.type, "l(o)g") == optional.of("o")`, want: true},
		{name: "math ext", when: `math.greatest(1, 2, 3) == 3`, want: true},
		{name: "sets ext", when: `sets.contains(["a", "b"], ["a"])`, want: true},
		{name: "lists ext", when: `[3, 1, 2].sort() == [1, 2, 3]`, want: true},
		{name: "network ext", when: `cidr("10.0.0.0/8").containsIP(ip("10.1.2.3"))`, want: true},
		{name: "two-var comprehension", when: `{"a": 1}.all(k, v, v == 1)`, want: true},
		{name: "cross-type numeric", when: `1 < 1.5 && 2u > 1`, want: true},
		{name: "our functions", when: `sum([1, 2]) == 3 && avg([1, 3]) == 2.0 && distance_km(0, 0, 0, 1) > 111.0`, want: true},
		{name: "runtime error", when: `int(event.type) == 1`, wantErr: "eval int(event.type) == 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			schema := ""
			if tt.schema {
				schema = typedSchema
			}
			x := whenExpr(t, schema, tt.when)
			got, err := x.EvalBool(mustEvent(t, ev), nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("EvalBool error %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("EvalBool = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSchemaTypeErrors(t *testing.T) {
	ev := mustEvent(t, `{"amount": "lots", "n": null}`)
	tests := []struct {
		when    string
		wantErr string
	}{
		{`event.amount > 1.0`, "field amount: a JSON string is not a double"},
		{`event.n == 1`, "field n is null"},
		{`event.ok`, "no such key: ok"},
	}
	for _, tt := range tests {
		t.Run(tt.when, func(t *testing.T) {
			_, err := whenExpr(t, typedSchema, tt.when).EvalBool(ev, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("EvalBool error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	if has, err := whenExpr(t, typedSchema, `has(event.n)`).EvalBool(ev, nil); err != nil || has {
		t.Errorf("has(null field) = %v, %v; want false", has, err)
	}
}

func TestSchemaCompileErrors(t *testing.T) {
	tests := []struct {
		when string
		want string
	}{
		{`event.amont > 1.0`, `5:11: r: undefined field 'amont'`},
		{`event.amount == "x"`, `5:11: r: found no matching overload for '_==_' applied to '(double, string)'`},
		{`event.type + 1 == "a"`, `5:11: r: found no matching overload for '_+_' applied to '(string, int)'`},
		{`lists.nope.size() > 0`, `5:11: r: undefined field 'nope'`},
		{`event.ok`, `5:11: r: undefined field 'ok'`},
	}
	for _, tt := range tests {
		t.Run(tt.when, func(t *testing.T) {
			src := "ruleset: t\nschema: {type: string, amount: double}\nrules:\n  - id: r\n    when: " + tt.when + "\n"
			_, err := Load("t.yaml", []byte(src), CompileOptions{})
			got := errLines(t, err)
			if len(got) != 1 {
				t.Fatalf("got errors %q, want one", got)
			}
			// Compare up to the column: CEL reports selections at the dot.
			gotPos, _, _ := strings.Cut(got[0], ": ")
			wantPos, _, _ := strings.Cut(tt.want, ": ")
			gotMsg := got[0][strings.LastIndex(got[0], "r: ")+3:]
			wantMsg := tt.want[strings.LastIndex(tt.want, "r: ")+3:]
			if gotPos[:2] != wantPos[:2] || gotMsg != wantMsg {
				t.Errorf("got %q, want %q", got[0], tt.want)
			}
		})
	}
}

func TestVarsBinding(t *testing.T) {
	src := ruleset(`  - id: r
    within: 1h
    pattern:
      - step: first
        where: event.type == "a"
      - step: run
        where: size(run) == 0 || run[size(run) - 1].n < event.n
        times: 1..
        until: size(run) > 5
      - step: last
        where: event.n > first.n && size(run) >= 1
      - step: gone
        not: true
        contiguity: strict
    alert:
      summary: '"first " + first.type + ", " + string(size(run)) + " in the run, last " + string(last.n)'
`)
	c := mustLoad(t, src)
	r := c.Rules[0]
	a := mustEvent(t, `{"type": "a", "n": 1}`)
	b2 := mustEvent(t, `{"type": "b", "n": 2}`)
	b3 := mustEvent(t, `{"type": "b", "n": 3}`)

	steps := map[string][]string{}
	for _, s := range r.Steps {
		if s.Where != nil {
			steps[s.Name] = s.Where.Steps
		}
	}
	wantSteps := map[string][]string{"first": nil, "run": {"run"}, "last": {"first", "run"}}
	if diff := cmp.Diff(wantSteps, steps); diff != "" {
		t.Errorf("Expr.Steps (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"first", "last", "run"}, r.Summary.Steps); diff != "" {
		t.Errorf("summary Steps (-want +got):\n%s", diff)
	}

	tests := []struct {
		name    string
		x       *Expr
		ev      *Event
		vars    Vars
		want    bool
		wantErr bool
	}{
		{"own looping step, nothing accepted yet", r.Steps[1].Where, b2, stepVars{}, true, false},
		{"own looping step, nil vars", r.Steps[1].Where, b2, nil, true, false},
		{"own looping step, increasing", r.Steps[1].Where, b3, stepVars{"run": {b2}}, true, false},
		{"own looping step, not increasing", r.Steps[1].Where, b2, stepVars{"run": {b3}}, false, false},
		{"until over own list", r.Steps[1].Until, b2, stepVars{"run": {b2, b2, b2, b2, b2, b2}}, true, false},
		{"earlier steps bound", r.Steps[2].Where, b3, stepVars{"first": {a}, "run": {b2}}, true, false},
		{"earlier singleton unbound", r.Steps[2].Where, b3, stepVars{"run": {b2}}, false, true},
		{"earlier looping step unbound", r.Steps[2].Where, b3, stepVars{"first": {a}}, false, true},
		{"earlier singleton bound to empty", r.Steps[2].Where, b3, stepVars{"first": {}, "run": {b2}}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.x.EvalBool(tt.ev, tt.vars)
			if (err != nil) != tt.wantErr {
				t.Fatalf("EvalBool error %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("EvalBool = %v, want %v", got, tt.want)
			}
		})
	}
	s, err := r.Summary.EvalString(b3, stepVars{"first": {a}, "run": {b2, b3}, "last": {b3}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "first a, 2 in the run, last 3"; s != want {
		t.Errorf("summary = %q, want %q", s, want)
	}
	// A step without where is a nil Expr, which is true.
	if ok, err := r.Steps[3].Where.EvalBool(a, nil); !ok || err != nil {
		t.Errorf("nil Expr EvalBool = %v, %v; want true, nil", ok, err)
	}
}

func TestLoopingStepListValue(t *testing.T) {
	src := ruleset(`  - id: r
    pattern:
      - step: xs
        times: 2..
      - step: y
        where: >
          xs[0] == xs[0] && xs[0] != xs[1] && xs.map(e, e.v).sum() == 3 &&
          xs.exists(e, e.v == 2) && xs + [event] == xs + [event] && size(xs + [event]) == 3 &&
          type(xs) == list && xs.filter(e, e.v > 1).size() == 1 &&
          sum(xs.map(e, e.w)) == 0.0
`)
	x := mustLoad(t, src).Rules[0].Steps[1].Where
	e1, e2 := mustEvent(t, `{"v": 1}`), mustEvent(t, `{"v": 2}`)
	ok, err := x.EvalBool(mustEvent(t, `{"v": 3}`), stepVars{"xs": {e1, e2}})
	if err == nil || ok {
		// xs.map(e, e.w) fails: no field w. Without it the rest holds.
		t.Fatalf("EvalBool = %v, %v; want the error for the missing field w", ok, err)
	}
	x2 := mustLoad(t, strings.Replace(src, " &&\n          sum(xs.map(e, e.w)) == 0.0", "", 1)).Rules[0].Steps[1].Where
	if ok, err := x2.EvalBool(mustEvent(t, `{"v": 3}`), stepVars{"xs": {e1, e2}}); !ok || err != nil {
		t.Errorf("EvalBool = %v, %v; want true", ok, err)
	}
}

func TestEvalKeyAndTime(t *testing.T) {
	ev := mustEvent(t, `{"s": "acct-1", "i": 42, "u": 7, "d": 1.5, "b": true, "ms": 1795168800123, "fms": 1795168800123.5, "rfc": "2026-11-20T10:00:00.123Z", "n": null, "obj": {}}`)
	want := time.Date(2026, 11, 20, 10, 0, 0, 123e6, time.UTC).UnixNano()
	keys := []struct {
		expr, want string
		wantErr    bool
	}{
		{"event.s", "acct-1", false},
		{"event.i", "42", false},
		{"uint(event.u)", "7", false},
		{"event.d", "1.5", false},
		{"event.b", "true", false},
		{"event.n", "", true},
		{"event.obj", "", true},
		{"event.missing", "", true},
	}
	for _, tt := range keys {
		t.Run("key "+tt.expr, func(t *testing.T) {
			c := mustLoad(t, "ruleset: t\nstream:\n  key: "+tt.expr+"\nrules: []\n")
			got, err := c.Key.EvalKey(ev)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("EvalKey = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	times := []struct {
		expr    string
		want    int64
		wantErr bool
	}{
		{"event.ms", want, false},
		{"uint(event.ms)", want, false},
		{"event.fms", want + 500e3, false},
		{"event.rfc", want, false},
		{"timestamp(event.rfc)", want, false},
		{"event.s", 0, true},
		{"event.b", 0, true},
		{"event.ms * 1000000", 0, true},
	}
	for _, tt := range times {
		t.Run("time "+tt.expr, func(t *testing.T) {
			c := mustLoad(t, "ruleset: t\nstream:\n  time: "+tt.expr+"\nrules: []\n")
			got, err := c.Time.EvalTime(ev)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("EvalTime = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	c := mustLoad(t, "ruleset: t\nrules: []\n")
	if c.Key != nil || c.Time != nil {
		t.Errorf("without stream key/time: Key %v, Time %v; want nil", c.Key, c.Time)
	}
	_, err := Load("t.yaml", []byte("ruleset: t\nstream:\n  time: event.a.b.c.exists(x, true)\nrules: []\n"), CompileOptions{})
	if err == nil || !strings.Contains(err.Error(), "stream time must be a timestamp, int, uint, double or string, not bool") {
		t.Errorf("bool time: error %v", err)
	}
}

func TestCompiledRules(t *testing.T) {
	src := ruleset(`  - id: a
    when: 'true'
  - id: off
    enabled: false
    when: 'true'
  - id: b
    pattern:
      - step: x
`)
	c := mustLoad(t, src)
	var ids []string
	for _, r := range c.Rules {
		ids = append(ids, r.ID)
	}
	if diff := cmp.Diff([]string{"a", "b"}, ids); diff != "" {
		t.Errorf("Rules (-want +got):\n%s", diff)
	}
	if len(c.Ruleset.Rules) != 3 {
		t.Errorf("Ruleset.Rules has %d rules, want 3", len(c.Ruleset.Rules))
	}
	if string(c.Source) != src {
		t.Error("Source is not the loaded YAML")
	}
	// A disabled rule is still type-checked.
	_, err := Load("t.yaml", []byte(ruleset("  - id: off\n    enabled: false\n    when: event.x +\n")), CompileOptions{})
	if err == nil {
		t.Error("a disabled rule with a syntax error loaded")
	}
}

func TestRuleVersion(t *testing.T) {
	base := `ruleset: t
description: first
lists:
  hr: [KP]
  other: [a]
rules:
  - id: a
    description: one
    when: event.country in lists.hr
  - id: b
    within: 5m
    pattern:
      - step: x
        where: event.t == "x"
      - step: y
`
	versions := func(src string) map[string]string {
		out := map[string]string{}
		for _, r := range mustLoad(t, src).Rules {
			out[r.ID] = r.Version
		}
		return out
	}
	v0 := versions(base)
	for id, v := range v0 {
		if len(v) != 8 || strings.Trim(v, "0123456789abcdef") != "" {
			t.Errorf("rule %s version %q is not 8 hex digits", id, v)
		}
	}
	if v0["a"] == v0["b"] {
		t.Error("different rules share a version")
	}
	tests := []struct {
		name        string
		from, to    string
		changeA     bool
		changeB     bool
		replaceOnce bool
	}{
		{"formatting and comments", "    when: event.country in lists.hr", "    # a comment\n    when: \"event.country in lists.hr\"", false, false, true},
		{"descriptions", "description: one", "description: two", false, false, true},
		{"unused list", "other: [a]", "other: [b]", false, false, true},
		{"used list", "hr: [KP]", "hr: [KP, IR]", true, false, true},
		{"condition", `event.t == "x"`, `event.t == "z"`, false, true, true},
		{"window", "within: 5m", "within: 6m", false, true, true},
		{"severity", "  - id: a\n", "  - id: a\n    severity: high\n", true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(base, tt.from) {
				t.Fatalf("base has no %q", tt.from)
			}
			v1 := versions(strings.Replace(base, tt.from, tt.to, 1))
			if got := v1["a"] != v0["a"]; got != tt.changeA {
				t.Errorf("rule a version changed = %v, want %v", got, tt.changeA)
			}
			if got := v1["b"] != v0["b"]; got != tt.changeB {
				t.Errorf("rule b version changed = %v, want %v", got, tt.changeB)
			}
		})
	}
}

func TestCostLimit(t *testing.T) {
	src := ruleset(`  - id: r
    pattern:
      - step: xs
        times: 1..
      - step: y
        where: xs.all(a, xs.all(b, xs.all(c, a.v + b.v + c.v >= 0)))
      - step: z
        where: event.v == 1
`)
	c, err := Load("t.yaml", []byte(src), CompileOptions{CostLimit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	y, z := c.Rules[0].Steps[1].Where, c.Rules[0].Steps[2].Where
	if !y.costTracked || z.costTracked {
		t.Errorf("cost tracked: unbounded loop %v, simple predicate %v; want true, false", y.costTracked, z.costTracked)
	}
	ev := mustEvent(t, `{"v": 1}`)
	small := make([]*Event, 3)
	big := make([]*Event, 100)
	for i := range big {
		big[i] = ev
	}
	copy(small, big)
	if ok, err := y.EvalBool(ev, stepVars{"xs": small}); !ok || err != nil {
		t.Errorf("3 events: EvalBool = %v, %v; want true", ok, err)
	}
	_, err = y.EvalBool(ev, stepVars{"xs": big})
	if err == nil || !strings.Contains(err.Error(), "cost limit exceeded") {
		t.Errorf("100 events: error %v, want cost limit exceeded", err)
	}

	// A list known at load time to be too expensive is rejected there.
	var items []string
	for i := 0; i < 200; i++ {
		items = append(items, fmt.Sprint(i))
	}
	src2 := "ruleset: t\nlists:\n  l: [" + strings.Join(items, ", ") + "]\nrules:\n  - id: r\n    when: lists.l.map(a, lists.l.map(b, a + b)).size() > 0\n"
	_, err = Load("t.yaml", []byte(src2), CompileOptions{CostLimit: 10000})
	if err == nil || !strings.Contains(err.Error(), "over the cost limit of 10000") {
		t.Errorf("expensive when: error %v", err)
	}
}

func TestCompileBuiltInCode(t *testing.T) {
	rs := &Ruleset{
		Name: "code",
		Rules: []*Rule{{
			ID:      "r",
			Enabled: true,
			Within:  time.Minute,
			Pattern: []*Step{
				{Name: "a", Where: `event.k == "a"`, WherePos: Pos{File: "gen.yaml", Line: 10, Col: 5}},
				{Name: "b", Where: "event.k == a.k &&\n  event.nope(", WherePos: Pos{File: "gen.yaml", Line: 20, Col: 5}, Min: 2, Max: -1},
			},
		}},
	}
	_, err := Compile(rs, CompileOptions{})
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 1 {
		t.Fatalf("Compile error %v, want one error", err)
	}
	if got, want := list[0].Pos, (Pos{File: "gen.yaml", Line: 21, Col: 14}); got != want {
		t.Errorf("error at %v, want %v (%v)", got, want, err)
	}
	if !strings.Contains(list[0].Snippet, "event.nope(") {
		t.Errorf("snippet %q does not show the expression line", list[0].Snippet)
	}

	rs.Rules[0].Pattern[1].Where = "event.k == a.k"
	c, err := Compile(rs, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := rs.Rules[0].Pattern[0]
	if a.Min != 1 || a.Max != 1 || a.Contiguity != Relaxed || a.Loop != Relaxed || rs.Rules[0].Severity != SeverityMedium || rs.Rules[0].Skip.Kind != SkipNone {
		t.Errorf("defaults not filled in: %+v", a)
	}
	ok, err := c.Rules[0].Steps[1].Where.EvalBool(mustEvent(t, `{"k": "a"}`), stepVars{"a": {mustEvent(t, `{"k": "a"}`)}})
	if !ok || err != nil {
		t.Errorf("EvalBool = %v, %v", ok, err)
	}
}

func TestExprConcurrentUse(t *testing.T) {
	x := whenExpr(t, "", `event.n % 2 == 0`)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				ev := mustEvent(t, fmt.Sprintf(`{"n": %d}`, i))
				ok, err := x.EvalBool(ev, nil)
				if err != nil || ok != (i%2 == 0) {
					errs <- fmt.Errorf("n=%d: %v, %w", i, ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestLibrary(t *testing.T) {
	tests := []struct {
		expr    string
		want    any
		wantErr string
	}{
		{"sum([1, 2, 3])", int64(6), ""},
		{"[1, 2, 3].sum()", int64(6), ""},
		{"sum([1.5, 2.5])", 4.0, ""},
		{"sum([1, 2.5])", 3.5, ""},
		{"sum([1u, 2u])", uint64(3), ""},
		{"sum([1, 2u])", 3.0, ""},
		{"sum([])", 0.0, ""},
		{"[1].filter(x, x > 1).sum()", int64(0), ""},
		{"[1.0].filter(x, x > 1.0).sum()", 0.0, ""},
		{"sum([9223372036854775807, 1])", nil, "sum: int overflow"},
		{"avg([1, 2])", 1.5, ""},
		{"[2.0, 4.0].avg()", 3.0, ""},
		{"avg([1, 2.0, 3u])", 2.0, ""},
		{"[1].filter(x, x > 1).avg()", nil, "avg: empty list"},
		{"distance_km(0, 0, 0, 0)", 0.0, ""},
		{"math.round(distance_km(48.8566, 2.3522, 51.5074, -0.1278))", 344.0, ""},
		{"math.round(distance_km(52.52, 13.405, 40.7128, -74.006))", 6385.0, ""},
		{"distance_km(0, 0.0, 0, 180) > 20000.0", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			cc, err := compileExprForTest(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			v, err := cc.Eval(mustEvent(t, `{}`), nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, v.Value()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// Type errors at load.
	for _, expr := range []string{`sum(["a"]) == 1`, `distance_km("a", 0, 0, 0) > 1.0`, `avg(1) > 1.0`} {
		if _, err := compileExprForTest(expr); err == nil {
			t.Errorf("%s compiled, want a type error", expr)
		}
	}
	if got := haversine(10, 20, 10, 20); got != 0 {
		t.Errorf("haversine of one point = %v", got)
	}
	if got := haversine(90, 0, -90, 0); math.Abs(got-math.Pi*earthRadiusKm) > 1e-6 {
		t.Errorf("pole to pole = %v, want %v", got, math.Pi*earthRadiusKm)
	}
}

// compileExprForTest compiles an expression of any type over event.
func compileExprForTest(expr string) (*Expr, error) {
	c := newCompiler(&Ruleset{Name: "t"}, CompileOptions{})
	if c.env == nil {
		return nil, c.list
	}
	x := c.expr(c.env, exprSpec{src: expr, what: "expression", scope: exprScope{at: noSteps}})
	if len(c.list) > 0 {
		return nil, c.list
	}
	return x, nil
}

func TestEventAsCELValue(t *testing.T) {
	src := ruleset(`  - id: r
    pattern:
      - step: xs
        times: 2..
      - step: y
        where: >
          size(event) == 2 && event.exists(k, k == "v") && event.all(k, k in ["v", "w"]) &&
          event["v"] == 3 && type(event) == map && event != xs[0] && xs[0] == xs[0] &&
          xs[0] in xs && !(event in xs) && xs == xs && xs != [] && xs.exists(e, e.v == 2) &&
          xs.all(e, e.v < 3) && xs.size() == 2 && type(xs) == list && [xs[0]] + xs != xs
`)
	x := mustLoad(t, src).Rules[0].Steps[1].Where
	xs := []*Event{mustEvent(t, `{"v": 1}`), mustEvent(t, `{"v": 2}`)}
	if ok, err := x.EvalBool(mustEvent(t, `{"v": 3, "w": 0}`), stepVars{"xs": xs}); !ok || err != nil {
		t.Errorf("EvalBool = %v, %v; want true", ok, err)
	}
	ev := xs[0]
	if got, err := ev.ConvertToNative(reflect.TypeOf(map[string]any{})); err != nil || !cmp.Equal(got, map[string]any{"v": int64(1)}) {
		t.Errorf("ConvertToNative(map) = %v, %v", got, err)
	}
	if got, err := ev.ConvertToNative(reflect.TypeOf([]byte{})); err != nil || string(got.([]byte)) != `{"v": 1}` {
		t.Errorf("ConvertToNative([]byte) = %v, %v", got, err)
	}
	if got, err := eventList(xs).ConvertToNative(reflect.TypeOf([]*Event{})); err != nil || len(got.([]*Event)) != 2 {
		t.Errorf("eventList ConvertToNative = %v, %v", got, err)
	}
	if ev.String() != `{"v": 1}` {
		t.Errorf("String() = %q", ev.String())
	}
	if got := eventList(xs).Get(types.Int(5)); !types.IsError(got) {
		t.Errorf("Get(5) = %v, want an error", got)
	}
}

func TestTimeoutSummaryWarning(t *testing.T) {
	const rule = `ruleset: t
rules:
  - id: r
    within: 1m
    pattern:
      - step: a
        where: event.type == "a"
      - step: b
        where: event.type == "b"
      - step: c
        where: event.type == "c"
    alert:
      summary: 'a.user + " then " + b.user + " then " + c.user'
      on_timeout: true
`
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"later steps", rule, []string{
			`t.yaml:13:16: warning: rule "r": the summary reads steps "b", "c", which a timeout alert may lack (its partial match timed out before reaching it): such an alert gets the default summary`,
		}},
		{"one later step", strings.Replace(rule, `" then " + c.user`, `"!"`, 1), []string{
			`t.yaml:13:16: warning: rule "r": the summary reads step "b", which a timeout alert may lack (its partial match timed out before reaching it): such an alert gets the default summary`,
		}},
		{"first step only", strings.Replace(rule, `a.user + " then " + b.user + " then " + c.user`, `"by " + a.user`, 1), nil},
		{"optional first step", strings.Replace(strings.Replace(rule, `a.user + " then " + b.user + " then " + c.user`, `"by " + a.user`, 1),
			"where: event.type == \"a\"\n", "where: event.type == \"a\"\n        optional: true\n", 1), []string{
			`t.yaml:14:16: warning: rule "r": the summary reads step "a", which a timeout alert may lack (its partial match timed out before reaching it): such an alert gets the default summary`,
		}},
		{"no on_timeout", strings.Replace(rule, "      on_timeout: true\n", "", 1), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load("t.yaml", []byte(tt.src), CompileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range c.Warnings {
				got = append(got, w.Error())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}
