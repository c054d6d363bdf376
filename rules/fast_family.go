package rules

import (
	"errors"
	"fmt"
)

// Comparisons of one field with different double literals ("event.amount
// > 1000.0", "event.amount > 1010.0", …: one rule template per segment)
// are decided together: the field is found and parsed once per event, then
// compared with each literal, instead of once per expression.

// DoubleComparisonGroup reports whether e compares a field with a double
// literal on the fast path, and the group of the expressions a
// DoubleComparisons can decide together with it: the same field, decoded
// the same way.
func (e *Expr) DoubleComparisonGroup() (group string, ok bool) {
	f := e.fast
	if f == nil || !f.hasDblLit {
		return "", false
	}
	switch f.op {
	case fastEq, fastNe, fastLt, fastLe, fastGt, fastGe:
	default:
		return "", false
	}
	return fmt.Sprintf("%s\x00%d\x00%t", f.field, f.kind, f.schema), true
}

// DoubleComparisons decides expressions of one DoubleComparisonGroup
// together. It is safe for concurrent use.
type DoubleComparisons struct {
	field string
	kind  kind
	hint  fieldHint
	ops   []fastOp
	lits  []float64
}

// NewDoubleComparisons groups exprs, which must all be of one
// DoubleComparisonGroup.
func NewDoubleComparisons(exprs []*Expr) (*DoubleComparisons, error) {
	if len(exprs) == 0 {
		return nil, errors.New("double comparisons: no expressions")
	}
	group, ok := exprs[0].DoubleComparisonGroup()
	if !ok {
		return nil, fmt.Errorf("double comparisons: %s does not compare a field with a double", exprs[0].Source)
	}
	f := exprs[0].fast
	d := &DoubleComparisons{field: f.field, kind: f.kind}
	for _, e := range exprs {
		if g, ok := e.DoubleComparisonGroup(); !ok || g != group {
			return nil, fmt.Errorf("double comparisons: %s is not of the group of %s", e.Source, exprs[0].Source)
		}
		d.ops = append(d.ops, e.fast.op)
		d.lits = append(d.lits, e.fast.dblLit)
	}
	return d, nil
}

// Len is the number of expressions.
func (d *DoubleComparisons) Len() int { return len(d.ops) }

// Eval sets out[i] (len(out) ≥ Len) to the value of expression i for ev
// and returns true when the field holds a number that the expressions'
// fast path compares as a double: each expression would evaluate to the
// same, without error. Otherwise it decides nothing and returns false: the
// expressions must be evaluated one by one, which reports their errors.
func (d *DoubleComparisons) Eval(ev *Event, out []bool) bool {
	if ev == nil {
		return false
	}
	fl := ev.findHinted(d.field, &d.hint)
	if fl == nil {
		return false
	}
	x, ok := doubleValue(d.kind, ev.raw[fl.v0:fl.v1])
	if !ok {
		return false
	}
	for i, op := range d.ops {
		out[i] = compareDouble(op, x, d.lits[i])
	}
	return true
}
