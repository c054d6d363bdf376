package matcher

import (
	"slices"

	"github.com/shrike-cep/shrike/nfa"
	"github.com/shrike-cep/shrike/rules"
)

// A slot family is the event-only conditions of a Program that compare one
// field with different double literals: "event.amount > 1000.0" in one
// rule, "event.amount > 1010.0" in the next. rules.DoubleComparisons
// decides them together, reading and parsing the field once per event
// rather than once per condition; for an event it cannot decide (the field
// missing, not a number, an integral number without a schema) each
// condition is evaluated on its own, as without a family, so that errors
// are counted for their rules as before.

// slotFamily is one family: the conditions' cache slots, in the order of
// cmp's expressions.
type slotFamily struct {
	cmp   *rules.DoubleComparisons
	slots []int
}

// maxPreparedFamily bounds the families Prepare decides on its stack; a
// larger one is decided by the Partition only.
const maxPreparedFamily = 256

// planFamilies groups the Program's event-only double comparisons by field:
// each group of two or more is a family.
func (p *Program) planFamilies() error {
	p.familyOf = make([]int32, p.slots)
	for i := range p.familyOf {
		p.familyOf[i] = -1
	}
	leafOf := make([]*rules.Expr, p.slots)
	var walk func(c *nfa.Cond)
	walk = func(c *nfa.Cond) {
		switch {
		case c == nil:
		case c.Op == nfa.OpLeaf:
			if c.Slot >= 0 && leafOf[c.Slot] == nil {
				leafOf[c.Slot] = c.Leaf
			}
		default:
			walk(c.X)
			walk(c.Y)
		}
	}
	for _, pr := range p.rules {
		walk(pr.when)
		if pr.auto != nil {
			for _, s := range pr.auto.States {
				for _, e := range s.Edges {
					walk(e.Cond)
				}
			}
		}
	}
	groups := map[string][]int{}
	var order []string
	for slot, e := range leafOf {
		if e == nil {
			continue
		}
		g, ok := e.DoubleComparisonGroup()
		if !ok {
			continue
		}
		if groups[g] == nil {
			order = append(order, g)
		}
		groups[g] = append(groups[g], slot)
	}
	for _, g := range order {
		slots := groups[g]
		if len(slots) < 2 {
			continue
		}
		exprs := make([]*rules.Expr, len(slots))
		for i, s := range slots {
			exprs[i] = leafOf[s]
		}
		cmp, err := rules.NewDoubleComparisons(exprs)
		if err != nil {
			return err
		}
		for _, s := range slots {
			p.familyOf[s] = int32(len(p.families))
		}
		p.families = append(p.families, slotFamily{cmp: cmp, slots: slices.Clone(slots)})
	}
	return nil
}

// prepareFamily decides family fi for r in Prepare: the members' values
// below slot 64 go into r.pre. It reports whether the family was decided.
func (p *Program) prepareFamily(r *Record, fi int32) bool {
	f := &p.families[fi]
	var vals [maxPreparedFamily]bool
	if len(f.slots) > len(vals) || !f.cmp.Eval(r.Event, vals[:]) {
		return false
	}
	for i, s := range f.slots {
		if s >= 64 {
			continue
		}
		bit := uint64(1) << s
		r.pre.known |= bit
		if vals[i] {
			r.pre.val |= bit
		}
	}
	return true
}

// evalFamily decides family fi of pr's Program for r into the Partition's
// condition cache. It reports whether the family was decided.
func (p *Partition) evalFamily(pr *planRule, fi int32, r *Record) bool {
	f := &pr.program.families[fi]
	if cap(p.familyVals) < len(f.slots) {
		p.familyVals = make([]bool, len(f.slots))
	}
	vals := p.familyVals[:len(f.slots)]
	if !f.cmp.Eval(r.Event, vals) {
		return false
	}
	for i, s := range f.slots {
		k := pr.slotBase + s
		p.cacheGen[k], p.cacheVal[k] = p.gen, vals[i]
	}
	return true
}
