package matcher

import (
	"fmt"
	"slices"
	"sync"

	"github.com/shrike-cep/shrike/nfa"
	"github.com/shrike-cep/shrike/rules"
)

// Program is the matching plan for a set of rulesets that share one keyed
// stream (same key and time expressions): every enabled rule compiled to an
// automaton, and the conditions numbered so that each is evaluated at most
// once per event. A Program is immutable and may be shared by Partitions.
type Program struct {
	rules []*planRule
	// slots is the number of event-only conditions: the size of the
	// per-event condition cache.
	slots int
	// chains are what Prepare evaluates: the leading event-only, natively
	// evaluated conjuncts of each condition (event.type == "login" &&
	// event.success), deduplicated. Only slots below 64.
	chains [][]*nfa.Cond
	// switches decide the chains' leading string comparisons field by
	// field (planSwitches).
	switches []*fieldSwitch
	// numbers decodes in Prepare the distance_km operands that conditions
	// read from the event and, later, from it as a step event.
	numbers *rules.NumberLoader

	nameOnce sync.Once
	names    map[string]*planRule
}

// planRule is one rule in a Program.
type planRule struct {
	index   int
	ruleset *rules.Compiled
	rule    *rules.CompiledRule
	name    string // "ruleset/rule", for counters
	when    *nfa.Cond
	auto    *nfa.Automaton // nil for single-event rules
	// startRun is the implicit run waiting in the start state; it is never
	// stored, so one shared value serves every key.
	startRun *run
	// startTakes are the conditions of the take edges the start state
	// reaches (through proceed edges that always hold). When none holds for
	// an event, a key without partial matches of the rule has nothing to do
	// (the start state never keeps ignored runs): the common case, checked
	// without stepping the automaton. nil when the start state's proceed
	// edges are conditional, which disables the shortcut.
	startTakes []*nfa.Cond
	// skipStep is the pattern index of the to_first/to_last target, -1 else.
	skipStep int
	// draining marks an earlier version kept after SetProgram until its
	// partial matches end: it starts no new ones.
	draining bool
	// slotBase offsets the rule's condition cache slots: a draining rule's
	// conditions were numbered by its own Program.
	slotBase int
	// program is the Program that planned the rule.
	program *Program
	// stepIndex maps step names to pattern indexes (iterative conditions).
	stepIndex map[string]int
}

// NewProgram builds the plan for rulesets. Their rules must have compiled.
func NewProgram(rulesets []*rules.Compiled) (*Program, error) {
	p := &Program{}
	slotOf := map[slotKey]int{}
	var leaves []*rules.Expr
	for _, rs := range rulesets {
		for _, cr := range rs.Rules {
			pr := &planRule{
				program:  p,
				index:    len(p.rules),
				ruleset:  rs,
				rule:     cr,
				name:     rs.Name + "/" + cr.ID,
				skipStep: -1,
			}
			if cr.When != nil {
				pr.when = nfa.Leaf(cr.When)
				p.number(pr.when, rs, slotOf)
				p.addChain(pr.when)
				leaves = appendLeaves(leaves, pr.when)
			} else {
				a, err := nfa.Compile(cr)
				if err != nil {
					return nil, fmt.Errorf("plan ruleset %q: %w", rs.Name, err)
				}
				pr.auto = a
				pr.startRun = &run{state: a.Start}
				pr.startTakes = startTakes(a.Start)
				pr.stepIndex = make(map[string]int, len(a.StepNames))
				for i, n := range a.StepNames {
					pr.stepIndex[n] = i
				}
				if k := cr.Skip.Kind; k == rules.SkipToFirst || k == rules.SkipToLast {
					i, ok := pr.stepIndex[cr.Skip.Step]
					if !ok {
						return nil, fmt.Errorf("plan ruleset %q: rule %q: skip target %q is not a step", rs.Name, cr.ID, cr.Skip.Step)
					}
					pr.skipStep = i
				}
				for _, s := range a.States {
					for _, e := range s.Edges {
						p.number(e.Cond, rs, slotOf)
						p.addChain(e.Cond)
						leaves = appendLeaves(leaves, e.Cond)
					}
				}
			}
			p.rules = append(p.rules, pr)
		}
	}
	p.planSwitches()
	p.numbers = rules.NewNumberLoader(leaves)
	return p, nil
}

// appendLeaves appends the expressions of c's leaves.
func appendLeaves(leaves []*rules.Expr, c *nfa.Cond) []*rules.Expr {
	if c == nil {
		return leaves
	}
	if c.Op == nfa.OpLeaf {
		return append(leaves, c.Leaf)
	}
	return appendLeaves(appendLeaves(leaves, c.X), c.Y)
}

// Prepare evaluates the program's event-only conditions for r and keeps
// their values in r, where the Partition finds them instead of evaluating
// them. It is safe to call from another goroutine than the Partition's: a
// decoder calls it while the event it just parsed is still in its CPU
// cache, which takes that work, and the cache misses of reading the event,
// off the matching goroutine. Each condition's leading conjuncts are
// evaluated up to the first false one, as the Partition would; a conjunct
// that fails to evaluate is left to the Partition, which counts the error
// for its rule.
func (p *Program) Prepare(r *Record) {
	r.pre = prepared{prog: p, keyHash: hashKey(r.Key)}
	p.numbers.Load(r.Event)
	// The discriminators first: one field read decides all of a field's
	// comparisons with string literals (event.type == "login", …).
	for _, sw := range p.switches {
		if s, ok := sw.field.PlainString(r.Event); ok {
			r.pre.known |= sw.slots
			r.pre.val |= sw.cases[s]
		}
	}
	for _, chain := range p.chains {
		for _, c := range chain {
			bit := uint64(1) << c.Slot
			if r.pre.known&bit != 0 {
				if r.pre.val&bit == 0 {
					break
				}
				continue
			}
			v, err := c.Leaf.EvalBool(r.Event, nil)
			if err != nil {
				break
			}
			r.pre.known |= bit
			if !v {
				break
			}
			r.pre.val |= bit
		}
	}
}

// fieldSwitch decides every chain-leading comparison of one field with a
// string literal.
type fieldSwitch struct {
	field *rules.FieldReader
	slots uint64            // the comparisons' slots
	cases map[string]uint64 // literal → slots of the comparisons with it
}

// planSwitches groups the chains' first conjuncts that compare a field
// with a string literal by field.
func (p *Program) planSwitches() {
	byField := map[string]*fieldSwitch{}
	var fields []string
	for _, chain := range p.chains {
		c := chain[0]
		field, lit, ok := c.Leaf.StringEquality()
		if !ok {
			continue
		}
		sw := byField[field]
		if sw == nil {
			sw = &fieldSwitch{field: rules.NewFieldReader(field), cases: map[string]uint64{}}
			byField[field] = sw
			fields = append(fields, field)
		}
		bit := uint64(1) << c.Slot
		sw.slots |= bit
		sw.cases[lit] |= bit
	}
	for _, f := range fields {
		p.switches = append(p.switches, byField[f])
	}
}

// addChain records for Prepare the leading event-only native conjuncts of
// c (an And chain leans left: its first conjunct is innermost).
func (p *Program) addChain(c *nfa.Cond) {
	var chain []*nfa.Cond
	var walk func(c *nfa.Cond) bool
	walk = func(c *nfa.Cond) bool {
		switch c.Op {
		case nfa.OpAnd:
			return walk(c.X) && walk(c.Y)
		case nfa.OpLeaf:
			if c.Slot < 0 || c.Slot >= 64 || !c.Leaf.Native() {
				return false
			}
			chain = append(chain, c)
			return true
		}
		return false
	}
	if c.Op == nfa.OpNot {
		c = c.X
	}
	walk(c)
	if len(chain) == 0 {
		return
	}
	for _, o := range p.chains {
		if slices.EqualFunc(o, chain, func(a, b *nfa.Cond) bool { return a.Slot == b.Slot }) {
			return
		}
	}
	p.chains = append(p.chains, chain)
}

// slotKey identifies an event-only condition: the same source in the same
// ruleset means the same value (lists are per ruleset).
type slotKey struct {
	rs  *rules.Compiled
	src string
}

// number assigns cache slots to the event-only leaves of c.
func (p *Program) number(c *nfa.Cond, rs *rules.Compiled, slotOf map[slotKey]int) {
	switch c.Op {
	case nfa.OpLeaf:
		if len(c.Leaf.Steps) > 0 {
			c.Slot = -1
			return
		}
		k := slotKey{rs, c.Leaf.Source}
		slot, ok := slotOf[k]
		if !ok {
			slot = p.slots
			p.slots++
			slotOf[k] = slot
		}
		c.Slot = slot
	case nfa.OpNot:
		p.number(c.X, rs, slotOf)
	case nfa.OpAnd:
		p.number(c.X, rs, slotOf)
		p.number(c.Y, rs, slotOf)
	}
}

// Rules returns "ruleset/rule" names in plan order.
func (p *Program) Rules() []string {
	names := make([]string, len(p.rules))
	for i, r := range p.rules {
		names[i] = r.name
	}
	return names
}

// startTakes collects the take conditions reachable from start through
// unconditional proceed edges; nil if a proceed edge on the way has a
// condition.
func startTakes(start *nfa.State) []*nfa.Cond {
	var takes []*nfa.Cond
	seen := map[*nfa.State]bool{}
	stack := []*nfa.State{start}
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[s] {
			continue
		}
		seen[s] = true
		for _, e := range s.Edges {
			switch e.Action {
			case nfa.Take:
				takes = append(takes, e.Cond)
			case nfa.Proceed:
				if e.Cond.Op != nfa.OpTrue {
					return nil
				}
				stack = append(stack, e.Target)
			}
		}
	}
	return takes
}
