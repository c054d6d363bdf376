package rules

import (
	"fmt"
	"strings"
	"testing"
)

// familyRules compiles one single-event rule per condition, with or
// without a schema typing amount, and returns their when expressions.
func familyRules(t *testing.T, schema bool, conds ...string) []*Expr {
	t.Helper()
	var src strings.Builder
	src.WriteString("ruleset: fam\nstream: {topic: t}\n")
	if schema {
		src.WriteString("schema:\n  amount: double\n")
	}
	src.WriteString("rules:\n")
	for i, c := range conds {
		fmt.Fprintf(&src, "  - id: r%d\n    when: %s\n", i, c)
	}
	rs, err := Load("fam.yaml", []byte(src.String()), CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*Expr
	for _, r := range rs.Rules {
		out = append(out, r.When)
	}
	return out
}

// TestDoubleComparisons: deciding comparisons of one field with several
// double literals together gives each expression's own value, or decides
// nothing where an expression would go past its fast path (an error, a
// null, a string, an integral number without a schema).
func TestDoubleComparisons(t *testing.T) {
	conds := []string{"event.amount > 1000.0", "event.amount >= 1010.0", "event.amount < 1005.5", "event.amount == 1010.0", "event.amount != 2.0", "1000.0 < event.amount", "event.amount <= -0.0"}
	events := []string{
		`{"amount": 1010.0}`, `{"amount": 999.99}`, `{"amount": 1e3}`, `{"amount": 1005.5}`, `{"amount": -0.0}`, `{"amount": 2.0}`,
		`{"amount": 1010}`, `{"amount": "1010.0"}`, `{"amount": null}`, `{"other": 1.0}`, `{"amount": true}`, `{"amount": 12345678901234567890.5}`,
	}
	for _, schema := range []bool{false, true} {
		exprs := familyRules(t, schema, conds...)
		groups := map[string]bool{}
		for _, e := range exprs {
			g, ok := e.DoubleComparisonGroup()
			if !ok {
				t.Fatalf("schema %v: %s has no double comparison group", schema, e.Source)
			}
			groups[g] = true
		}
		if len(groups) != 1 {
			t.Fatalf("schema %v: %d groups, want 1", schema, len(groups))
		}
		d, err := NewDoubleComparisons(exprs)
		if err != nil {
			t.Fatal(err)
		}
		decided := 0
		for _, raw := range events {
			ev, err := ParseEvent([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			out := make([]bool, d.Len())
			if !d.Eval(ev, out) {
				continue
			}
			decided++
			for i, e := range exprs {
				want, err := e.EvalBool(ev, nil)
				if err != nil {
					t.Errorf("schema %v, %s: decided together, but %s alone fails: %v", schema, raw, e.Source, err)
					continue
				}
				if out[i] != want {
					t.Errorf("schema %v, %s: %s together = %v, alone = %v", schema, raw, e.Source, out[i], want)
				}
			}
		}
		if decided < 6 {
			t.Errorf("schema %v: %d events decided together, want at least the 6 with a fractional amount", schema, decided)
		}
	}
	other := familyRules(t, false, "event.amount > 1.0", "event.fee > 1.0", `event.type == "x"`)
	if _, err := NewDoubleComparisons(other[:2]); err == nil {
		t.Error("two fields in one group: no error")
	}
	if _, ok := other[2].DoubleComparisonGroup(); ok {
		t.Error("a string equality has a double comparison group")
	}
}
