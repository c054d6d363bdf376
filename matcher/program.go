package matcher

import (
	"fmt"
	"maps"
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
	// read from the event and, later, from it as a step event. Only events
	// that a rule reading them may take need them: those for which a take
	// condition of such a rule may hold, going by its chain (numberChains,
	// indexes into chains), or every event when one of those conditions
	// has no chain (numbersAlways). An event not loaded is read field by
	// field when needed, so the choice costs speed, never results.
	numbers       *rules.NumberLoader
	numberChains  []int
	numbersAlways bool
	// startChains[i] are the chains of the conditions on which rule i
	// starts (its when, or its start state's take conditions); nil when
	// one of them has no chain (or the rule is past 64), so that Prepare
	// cannot rule the rule out.
	startChains [][]int
	// chainSlots[i] are the cache slots of the conjuncts of chains[i], in
	// order: what Prepare reads to tell whether the chain was false.
	chainSlots [][]uint8
	// families decide together the event-only comparisons of one field
	// with different double literals (rules of one template with different
	// thresholds): the field is read once per event for all of them.
	// familyOf[slot] is the index of the slot's family, -1 for none.
	families []slotFamily
	familyOf []int32
	// leafOf[slot] is the condition in the cache slot.
	leafOf []*rules.Expr
	// groups are the rule groups (group.go).
	groups []*ruleGroup

	nameOnce sync.Once
	names    map[string]*planRule
	refs     map[uint64]*planRule
}

// planRule is one rule in a Program.
type planRule struct {
	index   int
	ruleset *rules.Compiled
	rule    *rules.CompiledRule
	name    string         // "ruleset/rule": the rule in key snapshots and across SetProgram
	when    *nfa.Cond      // a single-event rule's condition, an aggregate rule's where
	auto    *nfa.Automaton // nil for single-event and aggregate rules
	agg     *aggPlan       // an aggregate rule's plan
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
	// group is the rule group the rule belongs to, nil for none; member is
	// the rule's index in it.
	group  *ruleGroup
	member int
}

// id is the rule's name in Stats.
func (r *planRule) id() RuleID {
	id := RuleID{Ruleset: r.ruleset.Name, Rule: r.rule.ID}
	if r.draining {
		id.Version = r.rule.Version
	}
	return id
}

// NewProgram builds the plan for rulesets. Their rules must have compiled.
func NewProgram(rulesets []*rules.Compiled) (*Program, error) {
	p := &Program{}
	slotOf := map[slotKey]int{}
	var leaves []*rules.Expr
	numberChains := map[int]bool{}
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
			switch {
			case cr.Aggregate != nil:
				pr.agg = newAggPlan(cr.Aggregate)
				if cr.Aggregate.Where != nil {
					pr.when = nfa.Leaf(cr.Aggregate.Where)
					p.number(pr.when, rs, slotOf)
					p.addChain(pr.when)
					leaves = appendLeaves(leaves, pr.when)
					p.startChains = append(p.startChains, p.chainsOf([]*nfa.Cond{pr.when}))
				} else {
					p.startChains = append(p.startChains, nil)
				}
			case cr.When != nil:
				pr.when = nfa.Leaf(cr.When)
				p.number(pr.when, rs, slotOf)
				p.addChain(pr.when)
				leaves = appendLeaves(leaves, pr.when)
				p.startChains = append(p.startChains, p.chainsOf([]*nfa.Cond{pr.when}))
			default:
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
				var ruleLeaves []*rules.Expr
				var takes []*nfa.Cond
				for _, s := range a.States {
					for _, e := range s.Edges {
						p.number(e.Cond, rs, slotOf)
						p.addChain(e.Cond)
						ruleLeaves = appendLeaves(ruleLeaves, e.Cond)
						if e.Action == nfa.Take {
							takes = append(takes, e.Cond)
						}
					}
				}
				leaves = append(leaves, ruleLeaves...)
				p.startChains = append(p.startChains, p.chainsOf(pr.startTakes))
				if rules.NewNumberLoader(ruleLeaves) != nil {
					chains := p.chainsOf(takes)
					if chains == nil {
						p.numbersAlways = true
					}
					for _, c := range chains {
						numberChains[c] = true
					}
				}
			}
			p.rules = append(p.rules, pr)
		}
	}
	p.planSwitches()
	if err := p.planFamilies(); err != nil {
		return nil, err
	}
	p.planGroups()
	p.numbers = rules.NewNumberLoader(leaves)
	p.numberChains = slices.Sorted(maps.Keys(numberChains))
	return p, nil
}

// chainsOf returns the chains of conds, nil when one has none (or when
// conds is nil: a rule whose start Prepare cannot decide).
func (p *Program) chainsOf(conds []*nfa.Cond) []int {
	chains := make([]int, 0, len(conds))
	for _, c := range conds {
		i := -1
		if c.Op != nfa.OpNot { // a negation's chain is its operand's
			i = p.addChain(c)
		}
		if i < 0 {
			return nil
		}
		chains = append(chains, i)
	}
	if len(chains) == 0 {
		return nil
	}
	return chains
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
	// The discriminators first: one field read decides all of a field's
	// comparisons with string literals (event.type == "login", …).
	for _, sw := range p.switches {
		if s, ok := sw.field.PlainString(r.Event); ok {
			r.pre.known |= sw.slots
			r.pre.val |= sw.cases[s]
		}
	}
	for _, chain := range p.chains {
		p.evalChain(r, chain)
	}
	if p.numbers != nil && p.mayTakeNumbers(r) {
		p.numbers.Load(r.Event)
	}
	for i, chains := range p.startChains {
		if i >= 64 {
			break
		}
		if chains == nil || p.someChainMayHold(&r.pre, chains) {
			r.pre.mayStart |= 1 << i
		}
	}
}

// someChainMayHold reports whether some of chains (indexes into p.chains)
// was not evaluated to false: it held, or a conjunct failed to evaluate.
func (p *Program) someChainMayHold(pre *prepared, chains []int) bool {
	for _, c := range chains {
		if !pre.chainFalse(p.chainSlots[c]) {
			return true
		}
	}
	return false
}

// chainFalse reports whether a conjunct of a chain, given by the cache
// slots of its conjuncts in order, was evaluated to false.
func (pre *prepared) chainFalse(slots []uint8) bool {
	for _, slot := range slots {
		bit := uint64(1) << slot
		if pre.known&bit == 0 {
			return false
		}
		if pre.val&bit == 0 {
			return true
		}
	}
	return false
}

// evalChain evaluates the conjuncts of chain for r up to the first false
// one, or one that fails.
func (p *Program) evalChain(r *Record, chain []*nfa.Cond) {
	for _, c := range chain {
		bit := uint64(1) << c.Slot
		if r.pre.known&bit != 0 {
			if r.pre.val&bit == 0 {
				return
			}
			continue
		}
		if p.familyOf[c.Slot] >= 0 && p.prepareFamily(r, p.familyOf[c.Slot]) {
			if r.pre.val&bit == 0 {
				return
			}
			continue
		}
		v, err := c.Leaf.EvalBool(r.Event, nil)
		if err != nil {
			return
		}
		r.pre.known |= bit
		if !v {
			return
		}
		r.pre.val |= bit
	}
}

// mayTakeNumbers reports whether a rule that reads preloaded numbers may
// take r: some take condition of such a rule has a chain that holds, or
// one that failed to evaluate (the Partition will evaluate the condition
// again), or none.
func (p *Program) mayTakeNumbers(r *Record) bool {
	return p.numbersAlways || p.someChainMayHold(&r.pre, p.numberChains)
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
// c (an And chain leans left: its first conjunct is innermost) and returns
// the chain's index in p.chains, -1 when c has none.
func (p *Program) addChain(c *nfa.Cond) int {
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
		return -1
	}
	for i, o := range p.chains {
		if slices.EqualFunc(o, chain, func(a, b *nfa.Cond) bool { return a.Slot == b.Slot }) {
			return i
		}
	}
	p.chains = append(p.chains, chain)
	slots := make([]uint8, len(chain))
	for i, c := range chain {
		slots[i] = uint8(c.Slot) // < 64: see walk
	}
	p.chainSlots = append(p.chainSlots, slots)
	return len(p.chains) - 1
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
