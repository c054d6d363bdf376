package matcher

import (
	"math/bits"
	"slices"

	"github.com/shrike-cep/shrike/nfa"
	"github.com/shrike-cep/shrike/rules"
)

// Rules of one template differ only in constants: "a transfer above 1,000,
// then one to a high-risk country" for one segment, "above 1,010, then …"
// for the next. Run separately, each opens a partial match of its own on
// every transfer that passes its threshold, and every rule is checked for
// a start on every event, so the cost grows with the number of rules.
//
// A rule group is such rules, next to each other in plan order, whose
// automata are the same state for state and edge for edge, with the same
// windows and skip strategy, and whose conditions differ at most in which
// event-only condition a leaf is (the comparison with 1,000 in one rule,
// with 1,010 in the next). The group keeps one list of partial matches per
// key for all its members: each run carries the set of members it is a
// partial match of (run.mask, bit i for member i), and stepping a run
// evaluates a condition once for the members the run belongs to, yielding
// the members for which it holds. A take edge's new run belongs to the
// members whose condition held, the ignore edge's run to the others, as
// each member's own automaton would have it: member i's partial matches
// are, in order, the runs whose mask holds bit i. That order, and every
// result, is the one of running the members apart:
//   - decisionGraph, finalAfterProceed and step visit states and edges in
//     the same order for a member's runs whatever the other members do, so
//     filtering the group's runs by a member gives that member's runs;
//   - matches are released, and the skip strategy prunes, member by member
//     (clearing the member's bit, never another's), and alerts are emitted
//     member by member in plan order, each member's in the order it would
//     have emitted them;
//   - a condition that fails to evaluate is counted for the first member
//     (in plan order) whose evaluation reached it, the one that would have
//     counted it;
//   - open partial matches are counted per member, and the peaks noted
//     after each member's part as if it had stepped alone.
//
// A member's partial matches past the per-key cap are dropped oldest first,
// as for a rule of its own; that sorts the member's runs, so its remaining
// ones move, in that order, to copies of their own at the end of the list.
// The warning is logged once per key and group, naming the first member
// over the cap.
// A key holding its members' states apart (restored from a snapshot, which
// stores each rule's runs apart, or carried across SetProgram, which splits
// group states to map rules one by one) gets one group state at its next
// record: member i's runs in order, each its own with bit i; the runs
// created from then on are shared. A Partition with a Tracer does not
// group: the trace follows each rule's own automaton.

// maxGroup is the most rules a group holds: a run's mask is one word.
const maxGroup = 64

// ruleGroup is the rules that share partial matches.
type ruleGroup struct {
	index   int         // in Program.groups
	members []*planRule // in plan order, consecutive
	// conds[s][e] is the condition of edge e of state s (by ID) of the
	// members' automata.
	conds [][]*groupCond
	// startTakes are the conditions of the take edges the start state
	// reaches through proceed edges that always hold; nil when one of those
	// is conditional (planRule.startTakes).
	startTakes []*groupCond
	// sharedOnly[s] is whether state s and the states its proceed edges
	// reach read only conditions all members share: the prepared values
	// then decide a run in it for every member at once (leavesAsIs).
	sharedOnly []bool
	// varying[v][i] is member i's cache slot of the condition leaf that
	// differs between members, numbered v.
	varying [][]int
}

// groupCond is a condition of the group's members: the same tree for all,
// whose leaves are one condition for all (slot) or one per member (vary).
type groupCond struct {
	op   nfa.Op
	x, y *groupCond
	slot int // the leaf's cache slot when all members share it
	vary int // the leaf's index in ruleGroup.varying, -1 when shared
}

// all is the mask of every member.
func (g *ruleGroup) all() uint64 {
	return uint64(1)<<len(g.members) - 1
}

// planGroups groups consecutive rules that differ only in which event-only
// conditions their leaves are.
func (p *Program) planGroups() {
	p.leafOf = make([]*rules.Expr, p.slots)
	var walk func(c *nfa.Cond)
	walk = func(c *nfa.Cond) {
		switch {
		case c == nil:
		case c.Op == nfa.OpLeaf:
			if c.Slot >= 0 && p.leafOf[c.Slot] == nil {
				p.leafOf[c.Slot] = c.Leaf
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
	for i := 0; i < len(p.rules); {
		first := p.rules[i]
		j := i + 1
		if groupable(first) {
			for j < len(p.rules) && j-i < maxGroup && sameShape(first, p.rules[j]) {
				j++
			}
		}
		if j-i >= 2 {
			g := newGroup(p.rules[i:j])
			g.index = len(p.groups)
			p.groups = append(p.groups, g)
		}
		i = j
	}
}

// groupable reports whether pr may share its partial matches: a pattern
// rule whose conditions read the event alone (a condition that reads the
// partial match has a value per run and rule).
func groupable(pr *planRule) bool {
	// A rule with suppression keeps its own state: the entries are the
	// rule's, and its alerts decide them in its own order.
	if pr.auto == nil || pr.rule.Alert.Suppress != nil {
		return false
	}
	for _, s := range pr.auto.States {
		for _, e := range s.Edges {
			if !eventOnly(e.Cond) {
				return false
			}
		}
	}
	return true
}

func eventOnly(c *nfa.Cond) bool {
	switch c.Op {
	case nfa.OpTrue:
		return true
	case nfa.OpLeaf:
		return c.Slot >= 0
	case nfa.OpNot:
		return eventOnly(c.X)
	}
	return eventOnly(c.X) && eventOnly(c.Y)
}

// sameShape reports whether b's automaton is a's but for the slots of
// condition leaves, with the same windows and skip strategy.
func sameShape(a, b *planRule) bool {
	if !groupable(b) || a.auto.Window != b.auto.Window || !slices.Equal(a.auto.StepNames, b.auto.StepNames) ||
		a.rule.Skip.Kind != b.rule.Skip.Kind || a.rule.Skip.Step != b.rule.Skip.Step || a.skipStep != b.skipStep || len(a.auto.States) != len(b.auto.States) ||
		a.auto.Start.ID != b.auto.Start.ID || (a.startTakes == nil) != (b.startTakes == nil) {
		return false
	}
	for i, sa := range a.auto.States {
		sb := b.auto.States[i]
		if sa.ID != i || sb.ID != i || sa.Kind != sb.Kind || sa.Start != sb.Start || sa.Step != sb.Step ||
			sa.Name != sb.Name || sa.Window != sb.Window || len(sa.Edges) != len(sb.Edges) {
			return false
		}
		for k, ea := range sa.Edges {
			eb := sb.Edges[k]
			if ea.Action != eb.Action || ea.Target.ID != eb.Target.ID || !sameCondShape(ea.Cond, eb.Cond) {
				return false
			}
		}
	}
	return true
}

func sameCondShape(a, b *nfa.Cond) bool {
	if a.Op != b.Op {
		return false
	}
	switch a.Op {
	case nfa.OpNot:
		return sameCondShape(a.X, b.X)
	case nfa.OpAnd:
		return sameCondShape(a.X, b.X) && sameCondShape(a.Y, b.Y)
	}
	return true
}

// newGroup makes members, of one shape, a group.
func newGroup(members []*planRule) *ruleGroup {
	g := &ruleGroup{members: members}
	a := members[0].auto
	g.conds = make([][]*groupCond, len(a.States))
	for s, st := range a.States {
		g.conds[s] = make([]*groupCond, len(st.Edges))
		for k := range st.Edges {
			cs := make([]*nfa.Cond, len(members))
			for i, m := range members {
				cs[i] = m.auto.States[s].Edges[k].Cond
			}
			g.conds[s][k] = g.cond(cs)
		}
	}
	g.sharedOnly = make([]bool, len(a.States))
	for s := range a.States {
		g.sharedOnly[s] = g.readsShared(a.States[s])
	}
	if members[0].startTakes != nil {
		g.startTakes = g.takesFrom(a.Start)
	}
	for i, m := range members {
		m.group, m.member = g, i
	}
	return g
}

// cond builds the group condition of the members' conditions cs, one per
// member, of one shape.
func (g *ruleGroup) cond(cs []*nfa.Cond) *groupCond {
	c := cs[0]
	gc := &groupCond{op: c.Op, slot: -1, vary: -1}
	sub := func(f func(*nfa.Cond) *nfa.Cond) []*nfa.Cond {
		out := make([]*nfa.Cond, len(cs))
		for i, c := range cs {
			out[i] = f(c)
		}
		return out
	}
	switch c.Op {
	case nfa.OpNot:
		gc.x = g.cond(sub(func(c *nfa.Cond) *nfa.Cond { return c.X }))
	case nfa.OpAnd:
		gc.x = g.cond(sub(func(c *nfa.Cond) *nfa.Cond { return c.X }))
		gc.y = g.cond(sub(func(c *nfa.Cond) *nfa.Cond { return c.Y }))
	case nfa.OpLeaf:
		slots := make([]int, len(cs))
		same := true
		for i, c := range cs {
			slots[i] = c.Slot
			same = same && c.Slot == cs[0].Slot
		}
		if same {
			gc.slot = c.Slot
		} else {
			gc.vary = len(g.varying)
			g.varying = append(g.varying, slots)
		}
	}
	return gc
}

// readsShared reports whether s and the states its proceed edges reach
// read only shared leaves.
func (g *ruleGroup) readsShared(s *nfa.State) bool {
	seen := map[*nfa.State]bool{}
	stack := []*nfa.State{s}
	for len(stack) > 0 {
		st := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[st] {
			continue
		}
		seen[st] = true
		for k, e := range st.Edges {
			if g.conds[st.ID][k].varies() {
				return false
			}
			if e.Action == nfa.Proceed {
				stack = append(stack, e.Target)
			}
		}
	}
	return true
}

func (gc *groupCond) varies() bool {
	switch gc.op {
	case nfa.OpLeaf:
		return gc.vary >= 0
	case nfa.OpNot:
		return gc.x.varies()
	case nfa.OpAnd:
		return gc.x.varies() || gc.y.varies()
	}
	return false
}

// takesFrom is startTakes for the group's conditions.
func (g *ruleGroup) takesFrom(start *nfa.State) []*groupCond {
	var takes []*groupCond
	seen := map[*nfa.State]bool{}
	stack := []*nfa.State{start}
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[s] {
			continue
		}
		seen[s] = true
		for k, e := range s.Edges {
			switch e.Action {
			case nfa.Take:
				takes = append(takes, g.conds[s.ID][k])
			case nfa.Proceed:
				stack = append(stack, e.Target)
			}
		}
	}
	return takes
}

// groupEdge is an edge that holds for the members in mask.
type groupEdge struct {
	e    *nfa.Edge
	mask uint64
}

// groupFrame is a state reached for the members in mask.
type groupFrame struct {
	s    *nfa.State
	mask uint64
}

// groupEmit is a match (or timed-out run) of member to emit.
type groupEmit struct {
	member  int
	m       *run
	timeout bool
}

// slotReach is a condition that failed to evaluate for the group, and the
// members whose evaluation reached it.
type slotReach struct {
	slot  int
	reach uint64
}

// processGroup matches r against the group's members for the key.
func (p *Partition) processGroup(g *ruleGroup, ks *keyState, r *Record, hash uint64) *keyState {
	var rk *ruleKey
	if ks != nil {
		rk = p.groupState(ks, g)
	}
	if rk == nil {
		start := g.all()
		if g.startTakes != nil {
			if start = p.groupStartMask(g, r); start == 0 {
				p.finishGroup(g, nil, r.Key, false)
				return ks
			}
		}
		p.scratch = ruleKey{rule: g.members[0], grouped: true}
		p.groupStep(g, &p.scratch, r, start)
		if !p.scratch.empty() {
			if ks == nil {
				ks = newKeyState(r.Key, hash)
				p.keys.put(ks)
			}
			p.changed = true
			rk = p.scratch.moved()
			ks.add(rk)
		}
		p.scratch = ruleKey{}
		p.finishGroup(g, rk, r.Key, false)
		return ks
	}
	// The members that have state for the key step from the start state
	// too (as their own step would), the others only when they start.
	var live uint64
	for _, x := range rk.runs {
		live |= x.mask
	}
	for _, x := range rk.heldRuns() {
		live |= x.mask
	}
	start := g.all()
	if g.startTakes != nil {
		start = p.groupStartMask(g, r)
	}
	if !rk.empty() {
		p.groupAdvanceTime(g, rk, r.Time)
	}
	if start == 0 && p.groupQuiet(g, rk, r) {
		p.quietSteps++
	} else {
		p.groupStep(g, rk, r, start|live)
	}
	p.finishGroup(g, rk, r.Key, false)
	return ks
}

// groupStartMask returns the members one of whose start take conditions
// holds for r.
func (p *Partition) groupStartMask(g *ruleGroup, r *Record) uint64 {
	var m uint64
	all := g.all()
	for _, c := range g.startTakes {
		m |= p.condMask(g, c, all&^m, r)
		if m == all {
			break
		}
	}
	return m
}

// groupQuiet is leavesAsIs for a group on which no member starts a match:
// the prepared conditions decide that every run stays as it is, once per
// state, or once per state and member for a state whose conditions differ
// between members.
func (p *Partition) groupQuiet(g *ruleGroup, rk *ruleKey, r *Record) bool {
	pr := g.members[0]
	if r.pre.prog != pr.program || len(rk.heldRuns()) > 0 || len(rk.runs) > p.opts.MaxRunsPerKey || g.startTakes == nil {
		return false
	}
	var decided [4]*nfa.State
	n := 0
	for _, run := range rk.runs {
		st := run.state
		if slices.Contains(decided[:n], st) {
			continue
		}
		if g.sharedOnly[st.ID] {
			if !decidesQuiet(st, false, &r.pre) {
				return false
			}
		} else {
			var members uint64
			for _, x := range rk.runs {
				if x.state == st {
					members |= x.mask
				}
			}
			for ; members != 0; members &= members - 1 {
				m := g.members[bits.TrailingZeros64(members)]
				if !decidesQuiet(m.auto.States[st.ID], false, &r.pre) {
					return false
				}
			}
		}
		if n < len(decided) {
			decided[n] = st
			n++
		}
	}
	return true
}

// condMask returns the members of in for which c holds, evaluating c for
// each as Partition.cond would (the same leaves, in the same order).
func (p *Partition) condMask(g *ruleGroup, c *groupCond, in uint64, r *Record) uint64 {
	if in == 0 {
		return 0
	}
	switch c.op {
	case nfa.OpTrue:
		return in
	case nfa.OpNot:
		return in &^ p.condMask(g, c.x, in, r)
	case nfa.OpAnd:
		x := p.condMask(g, c.x, in, r)
		if x == 0 {
			return 0
		}
		return p.condMask(g, c.y, x, r)
	}
	if c.vary < 0 {
		if p.groupSlot(g, c.slot, in, r) {
			return in
		}
		return 0
	}
	// A varying leaf is read per member; its value for the members asked
	// is kept for the record, so that the runs stepped after the first
	// (and the start check before the step) find it.
	memo := p.varyMemo(g, c.vary)
	if memo.gen == p.gen && in&^memo.in == 0 {
		return memo.out & in
	}
	slots := g.varying[c.vary]
	errs := len(p.groupErrs)
	var out uint64
	for m := in; m != 0; m &= m - 1 {
		i := bits.TrailingZeros64(m)
		if p.groupSlot(g, slots[i], 1<<i, r) {
			out |= 1 << i
		}
	}
	if len(p.groupErrs) == errs {
		// Without failures a later reach adds nothing to count.
		*memo = varyValue{gen: p.gen, in: in, out: out}
	}
	return out
}

// varyValue is a varying leaf's value for the members in, for the record
// of generation gen.
type varyValue struct {
	gen     uint32
	in, out uint64
}

// varyMemo returns the Partition's memo of varying leaf v of g.
func (p *Partition) varyMemo(g *ruleGroup, v int) *varyValue {
	if len(p.groupVary) <= g.index {
		p.groupVary = append(p.groupVary, make([][]varyValue, g.index+1-len(p.groupVary))...)
	}
	if p.groupVary[g.index] == nil {
		p.groupVary[g.index] = make([]varyValue, len(g.varying))
	}
	return &p.groupVary[g.index][v]
}

// groupSlot is the value of the event-only condition in slot for r, as
// Partition.cond finds it: prepared, cached, decided with its family, or
// evaluated. A failure is cached as false and noted with the members whose
// evaluation reached it, to count it for the first of them.
func (p *Partition) groupSlot(g *ruleGroup, slot int, reach uint64, r *Record) bool {
	pr := g.members[0]
	if bit := uint64(1) << slot; slot < 64 && r.pre.prog == pr.program && r.pre.known&bit != 0 {
		return r.pre.val&bit != 0
	}
	if p.cacheGen[slot] == p.gen {
		if len(p.groupErrs) > 0 {
			for i := range p.groupErrs {
				if p.groupErrs[i].slot == slot {
					p.groupErrs[i].reach |= reach
				}
			}
		}
		return p.cacheVal[slot]
	}
	if fi := pr.program.familyOf[slot]; fi >= 0 && p.evalFamily(pr, fi, r) {
		return p.cacheVal[slot]
	}
	p.vars = runVars{pr: pr, buf: p.vars.buf[:0]}
	v, err := pr.program.leafOf[slot].EvalBool(r.Event, &p.vars)
	if err != nil {
		v = false
		p.groupErrs = append(p.groupErrs, slotReach{slot: slot, reach: reach})
	}
	p.cacheGen[slot], p.cacheVal[slot] = p.gen, v
	return v
}

// groupStep is step for a group: it feeds r to the group's runs for the
// key, and to the implicit run in the start state of the members in start.
func (p *Partition) groupStep(g *ruleGroup, rk *ruleKey, r *Record, start uint64) {
	before := len(rk.runs)
	next := p.nextBuf[:0]
	potential := p.groupPotential[:0]
	p.groupStart = run{state: g.members[0].auto.Start, mask: start}
	first := -1
	if start == 0 {
		first = 0
	}
	for i := first; i < len(rk.runs); i++ {
		cur := &p.groupStart
		if i >= 0 {
			cur = rk.runs[i]
		}
		produced := p.groupNextRuns(g, cur, r)
		var stop uint64
		retain := len(next)
		for _, nr := range produced {
			switch nr.state.Kind {
			case nfa.Final:
				potential = append(potential, nr)
			case nfa.Stop:
				stop |= nr.mask
			default:
				next = append(next, nr)
			}
		}
		kept := next[:retain]
		carried := false
		for _, nr := range next[retain:] {
			if nr.mask&stop != 0 {
				// A forbidden event ends the branch, for the members it was
				// forbidden for, and everything it spawned from this event.
				m := nr.mask &^ stop
				if m == 0 {
					continue
				}
				if nr == cur {
					c := *cur
					nr = &c
				}
				nr.mask = m
			}
			if nr == cur {
				carried = true
			} else {
				p.countBits(nr.mask, 1)
			}
			kept = append(kept, nr)
		}
		clear(next[len(kept):])
		next = kept
		if i >= 0 && !carried {
			p.countBits(cur.mask, -1)
		}
	}
	if len(next) < before {
		clear(rk.runs[len(next):before])
	}
	if len(next) != before || !slices.Equal(next, rk.runs) {
		rk.nextOK, p.changed = false, true
	}
	rk.setRuns(next)
	clear(next)
	p.nextBuf = next[:0]

	if sk := g.members[0].rule.Skip.Kind; sk == "" || sk == "none" {
		slices.SortStableFunc(potential, compareRuns)
		for _, m := range potential {
			p.emitEach(m, m.mask, false)
		}
	} else {
		p.groupRelease(g, rk, potential)
	}
	clear(potential)
	p.groupPotential = potential[:0]
}

// emitEach buffers the emission of m for each member in mask.
func (p *Partition) emitEach(m *run, mask uint64, timeout bool) {
	for ; mask != 0; mask &= mask - 1 {
		p.groupEmits = append(p.groupEmits, groupEmit{member: bits.TrailingZeros64(mask), m: m, timeout: timeout})
	}
}

// countBits counts delta open partial matches for each member in mask.
func (p *Partition) countBits(mask uint64, delta int) {
	p.groupTouched |= mask
	for ; mask != 0; mask &= mask - 1 {
		p.groupDelta[bits.TrailingZeros64(mask)] += delta
	}
}

// groupNextRuns is nextRuns for a group's run.
func (p *Partition) groupNextRuns(g *ruleGroup, cur *run, r *Record) []*run {
	edges := p.groupDecision(g, cur, r)
	out := p.produced[:0]
	isStart := cur.state.Start
	shared := false
	for _, ge := range edges {
		e := ge.e
		switch e.Action {
		case nfa.Ignore:
			if isStart {
				continue
			}
			if e.Target == cur.state && ge.mask == cur.mask && !shared {
				out = append(out, cur) // runs are immutable: share it
				shared = true
				continue
			}
			out = append(out, &run{state: e.Target, last: cur.last, startTime: cur.startTime, startSeq: cur.startSeq, prevTime: cur.prevTime, mask: ge.mask})
		case nfa.Take:
			n := &node{ev: p.retain(r), step: e.Source.Step, prev: cur.last}
			st, ss := cur.startTime, cur.startSeq
			if isStart {
				st, ss = r.Time, r.Seq
			}
			out = append(out, &run{state: e.Target, last: n, startTime: st, startSeq: ss, prevTime: r.Time, mask: ge.mask})
			out = p.groupFinals(g, out, e.Target, ge.mask, n, st, ss, r)
		}
	}
	p.produced = out
	return out
}

// groupDecision is decisionGraph for a group's run: the take and ignore
// edges that hold for r, each with the members it holds for.
func (p *Partition) groupDecision(g *ruleGroup, cur *run, r *Record) []groupEdge {
	edges := p.groupEdges[:0]
	stack := append(p.groupStack[:0], groupFrame{cur.state, cur.mask})
	for len(stack) > 0 {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for k, e := range f.s.Edges {
			m := p.condMask(g, g.conds[f.s.ID][k], f.mask, r)
			if m == 0 {
				continue
			}
			if e.Action == nfa.Proceed {
				stack = append(stack, groupFrame{e.Target, m})
			} else {
				edges = append(edges, groupEdge{e, m})
			}
		}
	}
	p.groupEdges, p.groupStack = edges, stack
	return edges
}

// groupFinals is finalAfterProceed for a group: it appends to out, for the
// members of mask whose run in state can reach a Final state by proceed
// edges alone, a run in the Final state each reaches first.
func (p *Partition) groupFinals(g *ruleGroup, out []*run, state *nfa.State, mask uint64, n *node, st int64, ss uint64, r *Record) []*run {
	stack := append(p.groupFinalStack[:0], groupFrame{state, mask})
	left := mask
	for len(stack) > 0 && left != 0 {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for k, e := range f.s.Edges {
			if e.Action != nfa.Proceed {
				continue
			}
			m := f.mask & left
			if m == 0 {
				break
			}
			if m = p.condMask(g, g.conds[f.s.ID][k], m, r); m == 0 {
				continue
			}
			if e.Target.Kind == nfa.Final {
				out = append(out, &run{state: e.Target, last: n, startTime: st, startSeq: ss, prevTime: r.Time, mask: m})
				left &^= m
				continue
			}
			stack = append(stack, groupFrame{e.Target, m})
		}
	}
	p.groupFinalStack = stack[:0]
	return out
}

// groupRelease is release for a group, member by member: each member's
// completed matches are held until none of its open partial matches
// precedes them, and its skip strategy prunes its own runs only.
func (p *Partition) groupRelease(g *ruleGroup, rk *ruleKey, potential []*run) {
	if len(potential) > 0 {
		rk.setHeld(append(rk.heldRuns(), potential...))
		p.changed = true
		slices.SortStableFunc(rk.heldRuns(), compareRuns)
	}
	if len(rk.heldRuns()) == 0 {
		return
	}
	var held uint64
	for _, m := range rk.heldRuns() {
		held |= m.mask
	}
	prunedAny := false
	for ; held != 0; held &= held - 1 {
		i := bits.TrailingZeros64(held)
		bit := uint64(1) << i
		pr := g.members[i]
		for {
			var m *run
			for _, h := range rk.heldRuns() {
				if h.mask&bit != 0 {
					m = h
					break
				}
			}
			if m == nil {
				break
			}
			var earliest *run
			for _, x := range rk.runs {
				if x.mask&bit != 0 && (earliest == nil || before(x, earliest)) {
					earliest = x
				}
			}
			if earliest != nil && before(earliest, m) {
				break
			}
			m.mask &^= bit
			p.changed = true
			if pr.rule.Skip.Kind != "" && pr.rule.Skip.Kind != "none" {
				if id, ok := pruningID(pr, m); ok {
					kind := string(pr.rule.Skip.Kind)
					for _, x := range rk.runs {
						if x.mask&bit != 0 && pruned(x, id, kind) {
							x.mask &^= bit
							p.countBits(bit, -1)
							prunedAny = true
						}
					}
					rk.nextOK, p.changed = false, true
					for _, h := range rk.heldRuns() {
						if h.mask&bit != 0 && pruned(h, id, kind) {
							h.mask &^= bit
						}
					}
				}
			}
			p.emitEach(m, bit, false)
		}
	}
	rk.setHeld(dropEmpty(rk.heldRuns()))
	if len(rk.heldRuns()) == 0 {
		rk.setHeld(nil)
	}
	if prunedAny {
		rk.runs = dropEmpty(rk.runs)
	}
}

// dropEmpty removes the runs no member holds any more.
func dropEmpty(runs []*run) []*run {
	kept := runs[:0]
	for _, r := range runs {
		if r.mask != 0 {
			kept = append(kept, r)
		}
	}
	clear(runs[len(kept):])
	return kept
}

// groupAdvanceTime is advanceTime for a group.
func (p *Partition) groupAdvanceTime(g *ruleGroup, rk *ruleKey, t int64) {
	pr := g.members[0]
	if len(rk.heldRuns()) == 0 && t < rk.deadline(pr) {
		return
	}
	w := int64(pr.auto.Window)
	kept := rk.runs[:0]
	var potential, timedOut []*run
	for _, r := range rk.runs {
		sw := int64(r.state.Window)
		if (sw > 0 && t >= r.prevTime+sw) || (w > 0 && t >= r.startTime+w) {
			p.countBits(r.mask, -1)
			if r.state.Kind == nfa.Pending {
				potential = append(potential, r)
				continue
			}
			timedOut = append(timedOut, r)
			continue
		}
		kept = append(kept, r)
	}
	if len(kept) == len(rk.runs) && len(rk.heldRuns()) == 0 {
		return
	}
	clear(rk.runs[len(kept):])
	rk.runs = kept
	rk.nextOK, p.changed = false, true
	p.groupRelease(g, rk, potential)
	for _, r := range timedOut {
		for m := r.mask; m != 0; m &= m - 1 {
			i := bits.TrailingZeros64(m)
			p.stats.Timeouts++
			p.perRule[g.members[i].index].Timeouts++
			if g.members[i].rule.Alert.OnTimeout {
				p.emitEach(r, 1<<i, true)
			}
		}
	}
}

// finishGroup ends a group's part of a record (rk's state for the key,
// nil when it has none) or, with timers set, of a timer: it counts the
// members' open partial matches, caps each member's at MaxRunsPerKey after
// a record and notes their peaks, in plan order as each member's own step
// would, counts the failed conditions, and emits the members' alerts in
// plan order.
func (p *Partition) finishGroup(g *ruleGroup, rk *ruleKey, key string, timers bool) {
	var over []int
	if !timers && rk != nil && len(rk.runs) > p.opts.MaxRunsPerKey {
		over = p.membersOverCap(rk)
	}
	touched := p.groupTouched
	for i, n := range over {
		if n > 0 {
			touched |= 1 << i
		}
	}
	for ; touched != 0; touched &= touched - 1 {
		i := bits.TrailingZeros64(touched)
		pr := g.members[i]
		d := p.groupDelta[i]
		p.groupDelta[i] = 0
		if d != 0 {
			p.countLive(pr, d)
		}
		if over != nil && over[i] > 0 {
			p.capMember(rk, i, over[i], key)
		}
		if d > 0 {
			p.notePeak(pr)
		}
	}
	p.groupTouched = 0
	for _, e := range p.groupErrs {
		if reach := e.reach; reach != 0 {
			p.perRule[g.members[bits.TrailingZeros64(reach)].index].CELErrors++
		}
	}
	p.groupErrs = p.groupErrs[:0]
	if len(p.groupEmits) > 0 {
		slices.SortStableFunc(p.groupEmits, func(a, b groupEmit) int { return a.member - b.member })
		for i := range p.groupEmits {
			e := p.groupEmits[i]
			p.emitMatch(g.members[e.member], e.m, key, e.timeout)
		}
		clear(p.groupEmits)
		p.groupEmits = p.groupEmits[:0]
	}
}

// membersOverCap returns, by member, how many partial matches each holds
// past the per-key cap; nil when none does.
func (p *Partition) membersOverCap(rk *ruleKey) []int {
	var count [maxGroup]int
	var over []int
	for _, r := range rk.runs {
		for m := r.mask; m != 0; m &= m - 1 {
			count[bits.TrailingZeros64(m)]++
		}
	}
	for i, n := range count[:len(rk.rule.group.members)] {
		if n > p.opts.MaxRunsPerKey {
			if over == nil {
				over = make([]int, len(rk.rule.group.members))
			}
			over[i] = n - p.opts.MaxRunsPerKey
		}
	}
	return over
}

// capMember drops member i's n oldest partial matches, as enforceCap does
// for a rule's own: that sorts the member's runs by their first event, so
// its remaining runs move, in that order, to copies of their own at the
// end of the group's list (the other members' order is theirs).
func (p *Partition) capMember(rk *ruleKey, i, n int, key string) {
	pr := rk.rule.group.members[i]
	bit := uint64(1) << i
	var mine []*run
	for _, r := range rk.runs {
		if r.mask&bit != 0 {
			mine = append(mine, r)
			r.mask &^= bit
		}
	}
	slices.SortStableFunc(mine, compareRuns)
	rk.runs = dropEmpty(rk.runs)
	for _, r := range mine[n:] {
		c := *r
		c.mask = bit
		rk.runs = append(rk.runs, &c)
	}
	rk.nextOK, p.changed = false, true
	p.countLive(pr, -n)
	p.stats.Dropped += uint64(n)
	p.perRule[pr.index].Dropped += uint64(n)
	if !rk.capLogged {
		rk.capLogged = true
		p.opts.Logger.Warn("partial matches over the per-key cap, dropping the oldest",
			"ruleset", pr.ruleset.Name, "rule", pr.rule.ID, "key", key, "cap", p.opts.MaxRunsPerKey)
	}
}

// groupState returns g's state for the key, nil when it has none. States
// of its members' own (a key restored from a snapshot, or carried across
// SetProgram) become one group state first: member i's runs, in order,
// each its own with bit i, which filtering by member gives back as they
// were. New runs are then shared.
func (p *Partition) groupState(ks *keyState, g *ruleGroup) *ruleKey {
	first, last := -1, -1
	for i, k := range ks.rules {
		if k.rule.group != g {
			continue
		}
		if k.grouped {
			return k
		}
		if first < 0 {
			first = i
		}
		last = i
	}
	if first < 0 {
		return nil
	}
	rk := &ruleKey{rule: g.members[0], grouped: true}
	states := g.members[0].auto.States
	for _, m := range ks.rules[first : last+1] {
		bit := uint64(1) << m.rule.member
		for _, r := range m.runs {
			c := *r
			c.state, c.mask = states[r.state.ID], bit
			rk.runs = append(rk.runs, &c)
		}
		for _, r := range m.heldRuns() {
			c := *r
			c.state, c.mask = states[r.state.ID], bit
			rk.setHeld(append(rk.heldRuns(), &c))
		}
		rk.capLogged = rk.capLogged || m.capLogged
	}
	ks.rules = slices.Replace(ks.rules, first, last+1, rk)
	return rk
}

// memberView returns member i's runs and held matches of a group's state,
// in order, as that member's own state would hold them (sharing the run
// values, which the caller must not change).
func memberView(rk *ruleKey, i int) *ruleKey {
	pr := rk.rule.group.members[i]
	v := &ruleKey{rule: pr}
	bit := uint64(1) << i
	for _, r := range rk.runs {
		if r.mask&bit != 0 {
			v.runs = append(v.runs, r)
		}
	}
	for _, r := range rk.heldRuns() {
		if r.mask&bit != 0 {
			v.setHeld(append(v.heldRuns(), r))
		}
	}
	return v
}

// splitGroup replaces the group's state rk in ks by one state per member
// holding some of it.
func (p *Partition) splitGroup(ks *keyState, rk *ruleKey) {
	g := rk.rule.group
	var members []*ruleKey
	for i, pr := range g.members {
		v := memberView(rk, i)
		if v.empty() {
			continue
		}
		// Copies in the member's automaton: SetProgram rewrites a rule's
		// run states in place.
		for _, list := range [][]*run{v.runs, v.heldRuns()} {
			for k, r := range list {
				c := *r
				c.state = pr.auto.States[r.state.ID]
				c.mask = 0
				list[k] = &c
			}
		}
		v.capLogged = rk.capLogged
		members = append(members, v)
	}
	at := slices.Index(ks.rules, rk)
	ks.rules = slices.Replace(ks.rules, at, at+1, members...)
	for _, m := range members {
		ks.mask |= ruleBit(m.rule)
	}
}

// splitGroups splits every group state of ks.
func (p *Partition) splitGroups(ks *keyState) {
	for i := 0; i < len(ks.rules); i++ {
		if rk := ks.rules[i]; rk.grouped {
			p.splitGroup(ks, rk)
		}
	}
}

// ruleViews returns the states of ks rule by rule: a group's state as one
// view per member holding some of it.
func (ks *keyState) ruleViews() []*ruleKey {
	grouped := false
	for _, rk := range ks.rules {
		grouped = grouped || rk.grouped
	}
	if !grouped {
		return ks.rules
	}
	var out []*ruleKey
	for _, rk := range ks.rules {
		if !rk.grouped {
			out = append(out, rk)
			continue
		}
		for i := range rk.rule.group.members {
			if v := memberView(rk, i); !v.empty() {
				out = append(out, v)
			}
		}
	}
	return out
}

// dropLive uncounts the open partial matches of rk.
func (p *Partition) dropLive(rk *ruleKey) {
	if !rk.grouped {
		p.addLive(rk.rule, -len(rk.runs))
		return
	}
	for _, r := range rk.runs {
		for m := r.mask; m != 0; m &= m - 1 {
			p.countLive(rk.rule.group.members[bits.TrailingZeros64(m)], -1)
		}
	}
}
