package rules

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// stepVars is a Vars backed by a map.
type stepVars map[string][]*Event

func (v stepVars) StepEvents(step string) ([]*Event, bool) {
	evs, ok := v[step]
	return evs, ok
}

// ruleset wraps rule YAML (indented as list items under rules:) into a
// document.
func ruleset(rules string) string { return "ruleset: t\nrules:\n" + rules }

// errLines renders an error list as "line:col: rule: message" lines, the
// form the table tests compare.
func errLines(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %v is not an ErrorList", err)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false")
	}
	var out []string
	for _, e := range list {
		line := e.Pos.String()
		line = strings.TrimPrefix(line, e.Pos.File+":")
		if e.Rule != "" {
			line += ": " + e.Rule
		}
		out = append(out, line+": "+e.Msg)
	}
	return out
}

// compileStepProbe compiles src as the where of the third step of a
// pattern whose first step is a and second the looping b.
func compileStepProbe(t *testing.T, src string, schema bool) *Expr {
	t.Helper()
	var doc strings.Builder
	doc.WriteString("ruleset: t\n")
	if schema {
		doc.WriteString("schema: {ip: string, n: double, ok: bool, lat: double, lon: double, ts: timestamp}\n")
	}
	fmt.Fprintf(&doc, `rules:
  - id: r
    pattern:
      - step: a
      - step: b
        times: 1..
      - step: c
        where: %q
`, src)
	c, err := Load("t.yaml", []byte(doc.String()), CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c.Rules[0].Steps[2].Where
}

// withoutFast returns a copy of x that always evaluates through CEL.
func withoutFast(x *Expr) *Expr {
	s := &Expr{Source: x.Source, Pos: x.Pos, Steps: x.Steps}
	s.prg, s.vars, s.lists, s.listNames, s.costTracked = x.prg, x.vars, x.lists, x.listNames, x.costTracked
	s.pool.New = func() any { return &activation{x: s, lists: s.lists.shared} }
	return s
}

// paymentsEvent is a typical ~200-byte event of the payments stream.
var paymentsEvent = []byte(`{"type":"login","account_id":"acct-004217","amount":1250.75,"currency":"EUR","country":"DE","ip":"203.0.113.77","device":"ios-7f3a","success":false,"ts":"2026-11-20T10:00:00.123Z"}`)
