package matcher

import (
	"slices"

	"github.com/shrike-cep/shrike/nfa"
	"github.com/shrike-cep/shrike/rules"
)

// node is one taken event in the shared buffer. Runs that share a prefix
// share its nodes, so an event is stored once however many partial matches
// hold it; a node lives as long as some run points at it.
type node struct {
	ev   *keptEvent
	step int
	prev *node
}

// run is one partial match (Flink's ComputationState). Runs are immutable:
// stepping creates new runs, so several may share one.
type run struct {
	state *nfa.State
	last  *node
	// startTime and startSeq identify the first event; they order runs as
	// Flink orders its computation states.
	startTime int64
	startSeq  uint64
	prevTime  int64 // time of the last taken event
	// mask is, in a rule group's state, the members the run is a partial
	// match of (bit i for member i); 0 in a rule's own state.
	mask uint64
}

// before orders runs by their first event (time, then arrival).
func before(a, b *run) bool {
	if a.startTime != b.startTime {
		return a.startTime < b.startTime
	}
	return a.startSeq < b.startSeq
}

func compareRuns(a, b *run) int {
	switch {
	case before(a, b):
		return -1
	case before(b, a):
		return 1
	}
	return 0
}

// ruleKey is one rule's state for one key.
type ruleKey struct {
	// rule is the rule, or a group's first member when grouped.
	rule *planRule
	runs []*run
	// x holds what few keys have (held matches, an aggregate's window,
	// suppressed alerts), so that the common ruleKey stays small.
	x *ruleExtra
	// runBuf holds runs while the key has one partial match of the rule,
	// as most have: the ruleKey's allocation has room for it.
	runBuf [1]*run
	// next caches deadline(); nextOK is false when runs changed since.
	next   int64
	nextOK bool
	// The flags come last, beside nextOK, so that the struct fits in 64
	// bytes.
	capLogged bool // for the rule, or for any member of a group
	// grouped is set when the state is rule.group's, shared by its members
	// (see group.go).
	grouped bool
}

// setRuns makes the runs those of next, in runs' array or, while there is
// none, in runBuf when one is enough.
func (rk *ruleKey) setRuns(next []*run) {
	if rk.runs == nil {
		rk.runs = rk.runBuf[:0]
	}
	rk.runs = append(rk.runs[:0], next...)
}

// moved returns a new ruleKey holding what the scratch rk holds, its runs
// in the new one's runBuf if they were in rk's. rk must then be reset
// before its next use.
func (rk *ruleKey) moved() *ruleKey {
	n := new(ruleKey)
	*n = *rk
	if len(rk.runs) > 0 && &rk.runs[:1][0] == &rk.runBuf[0] {
		n.runs = append(n.runBuf[:0], rk.runs...)
	}
	return n
}

func (rk *ruleKey) empty() bool { return len(rk.runs) == 0 && rk.x.empty() }

// deadline is the earliest time at which one of the runs times out.
func (rk *ruleKey) deadline(pr *planRule) int64 {
	if rk.nextOK {
		return rk.next
	}
	d := rk.x.suppressDeadline()
	if pr.agg != nil && rk.x != nil && rk.x.agg != nil {
		d = min(d, rk.x.agg.deadline(pr.agg))
	}
	if pr.auto != nil {
		w := int64(pr.auto.Window)
		for _, r := range rk.runs {
			if w > 0 && r.startTime+w < d {
				d = r.startTime + w
			}
			if sw := int64(r.state.Window); sw > 0 && r.prevTime+sw < d {
				d = r.prevTime + sw
			}
		}
	}
	rk.next, rk.nextOK = d, true
	return d
}

// step feeds one record to one rule's runs for the record's key (Flink's
// NFA.doProcess).
func (p *Partition) step(pr *planRule, rk *ruleKey, r *Record) {
	before := len(rk.runs)
	next := p.nextBuf[:0]
	potential := p.completed[:0]
	defer func() {
		clear(potential)
		p.completed = potential[:0]
	}()
	first := -1
	if pr.draining {
		first = 0 // an old version only finishes what it started
	}
	for i := first; i < len(rk.runs); i++ {
		cur := pr.startRun
		if i >= 0 {
			cur = rk.runs[i]
		}
		produced := p.nextRuns(pr, cur, r)
		if p.tr != nil {
			p.tr.step(p, pr, cur, produced, r)
		}
		discard := false
		retain := len(next)
		for _, nr := range produced {
			switch nr.state.Kind {
			case nfa.Final:
				potential = append(potential, nr)
			case nfa.Stop:
				discard = true
			default:
				next = append(next, nr)
			}
		}
		if discard {
			// A forbidden event ends this branch and everything it spawned
			// from the same event.
			clear(next[retain:])
			next = next[:retain]
		}
	}
	// Copy back into the key's own slice (reusing its array): the scratch
	// buffer serves every key.
	if len(next) < before {
		clear(rk.runs[len(next):before])
	}
	if len(next) != before || !slices.Equal(next, rk.runs) {
		rk.nextOK, p.changed = false, true
	}
	rk.setRuns(next)
	clear(next)
	p.nextBuf = next[:0]
	p.countLive(pr, len(rk.runs)-before)

	if pr.rule.Skip.Kind == "" || pr.rule.Skip.Kind == "none" {
		slices.SortStableFunc(potential, compareRuns)
		for _, m := range potential {
			p.emitRun(pr, rk, m, r.Key, false)
		}
	} else {
		p.release(pr, rk, potential, r.Key)
	}
	p.enforceCap(pr, rk, r.Key)
	p.notePeak(pr)
}

// nextRuns computes the runs that cur becomes on record r (Flink's
// NFA.computeNextStates). The result is valid until the next call.
func (p *Partition) nextRuns(pr *planRule, cur *run, r *Record) []*run {
	p.runMemo = p.runMemo[:0]
	edges := p.decisionGraph(pr, cur, r)
	out := p.produced[:0]
	isStart := cur.state.Start
	for _, e := range edges {
		switch e.Action {
		case nfa.Ignore:
			if isStart {
				continue // the start state is implicit and always stays
			}
			if e.Target == cur.state {
				out = append(out, cur) // runs are immutable: share it
				continue
			}
			out = append(out, p.newRun(run{state: e.Target, last: cur.last, startTime: cur.startTime, startSeq: cur.startSeq, prevTime: cur.prevTime}))
		case nfa.Take:
			n := p.newNode(node{ev: p.retain(r), step: e.Source.Step, prev: cur.last})
			st, ss := cur.startTime, cur.startSeq
			if isStart {
				st, ss = r.Time, r.Seq
			}
			out = append(out, p.newRun(run{state: e.Target, last: n, startTime: st, startSeq: ss, prevTime: r.Time}))
			if f := p.finalAfterProceed(pr, cur, e.Target, r); f != nil {
				out = append(out, p.newRun(run{state: f, last: n, startTime: st, startSeq: ss, prevTime: r.Time}))
			}
		}
	}
	p.produced = out
	return out
}

// decisionGraph follows proceed edges from the run's state and collects the
// take and ignore edges whose conditions hold for r.
func (p *Partition) decisionGraph(pr *planRule, cur *run, r *Record) []*nfa.Edge {
	edges := p.edgeBuf[:0]
	stack := append(p.stateStack[:0], cur.state)
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, e := range s.Edges {
			if !p.cond(e.Cond, pr, cur, r) {
				continue
			}
			if e.Action == nfa.Proceed {
				stack = append(stack, e.Target)
			} else {
				edges = append(edges, e)
			}
		}
	}
	p.edgeBuf, p.stateStack = edges, stack
	return edges
}

// finalAfterProceed reports the Final state when state can reach it by
// proceed edges alone: a match that ends in an optional or looping step is
// emitted as soon as it could end.
func (p *Partition) finalAfterProceed(pr *planRule, cur *run, state *nfa.State, r *Record) *nfa.State {
	stack := append(p.finalStack[:0], state)
	defer func() { p.finalStack = stack[:0] }()
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, e := range s.Edges {
			if e.Action != nfa.Proceed || !p.cond(e.Cond, pr, cur, r) {
				continue
			}
			if e.Target.Kind == nfa.Final {
				return e.Target
			}
			stack = append(stack, e.Target)
		}
	}
	return nil
}

// cond evaluates an edge condition for record r in the context of run cur.
// Event-only leaves are cached per record; a CEL error counts and is false.
func (p *Partition) cond(c *nfa.Cond, pr *planRule, cur *run, r *Record) bool {
	switch c.Op {
	case nfa.OpTrue:
		return true
	case nfa.OpNot:
		return !p.cond(c.X, pr, cur, r)
	case nfa.OpAnd:
		return p.cond(c.X, pr, cur, r) && p.cond(c.Y, pr, cur, r)
	}
	if p.tr != nil {
		return p.tracedLeaf(c.Leaf, pr, cur, r)
	}
	if c.Slot >= 0 {
		if bit := uint64(1) << c.Slot; c.Slot < 64 && r.pre.prog == pr.program && r.pre.known&bit != 0 {
			return r.pre.val&bit != 0
		}
		slot := pr.slotBase + c.Slot
		if p.cacheGen[slot] == p.gen {
			return p.cacheVal[slot]
		}
		if fi := pr.program.familyOf[c.Slot]; fi >= 0 && p.evalFamily(pr, fi, r) {
			return p.cacheVal[slot]
		}
		v := p.evalLeaf(c.Leaf, pr, nil, r)
		p.cacheGen[slot], p.cacheVal[slot] = p.gen, v
		return v
	}
	// A condition that reads the partial match has one value per run and
	// event; a take edge and its ignore edge both need it, so remember it
	// for the run being stepped.
	for _, m := range p.runMemo {
		if m.expr == c.Leaf {
			return m.val
		}
	}
	v := p.evalLeaf(c.Leaf, pr, cur, r)
	p.runMemo = append(p.runMemo, leafValue{c.Leaf, v})
	return v
}

// leafValue is a remembered condition value.
type leafValue struct {
	expr *rules.Expr
	val  bool
}

func (p *Partition) evalLeaf(e *rules.Expr, pr *planRule, cur *run, r *Record) bool {
	p.views.reset()
	p.vars = runVars{pr: pr, buf: p.vars.buf[:0], views: &p.views}
	if cur != nil {
		p.vars.last = cur.last
	}
	ok, err := e.EvalBool(r.Event, &p.vars)
	if err != nil {
		p.perRule[pr.index].CELErrors++
		return false
	}
	return ok
}

// tracedLeaf evaluates a condition leaf for the traced key, without the
// caches (the trace shows every condition, with its error) and reports it.
// A CEL error counts once per record, rule, partial match and leaf.
func (p *Partition) tracedLeaf(e *rules.Expr, pr *planRule, cur *run, r *Record) bool {
	p.views.reset()
	p.vars = runVars{pr: pr, buf: p.vars.buf[:0], views: &p.views}
	if cur != nil {
		p.vars.last = cur.last
	}
	ok, err := e.EvalBool(r.Event, &p.vars)
	if err != nil {
		ok = false
	}
	if p.tr.condition(p, pr, e, cur, r, ok, err) && err != nil {
		p.perRule[pr.index].CELErrors++
	}
	return ok
}

// runVars binds step names to the events a partial match assigned to them.
// The lists it hands out live in buf, which is reused from one evaluation
// to the next: CEL holds them only while it evaluates.
type runVars struct {
	pr    *planRule
	last  *node
	buf   []*rules.Event
	views *eventViews
}

// StepEvents implements rules.Vars.
func (v *runVars) StepEvents(step string) ([]*rules.Event, bool) {
	idx := slices.Index(v.pr.auto.StepNames, step)
	if idx < 0 {
		return nil, false
	}
	start := len(v.buf)
	for n := v.last; n != nil; n = n.prev {
		if n.step == idx {
			v.buf = append(v.buf, v.views.view(n.ev))
		}
	}
	evs := v.buf[start:len(v.buf):len(v.buf)]
	if len(evs) == 0 {
		return nil, false
	}
	slices.Reverse(evs)
	return evs, true
}

// StepEvent returns one event of step without building the step's list
// (rules evaluates comparisons with step events natively through it): the
// i-th in match order, or the last one when i < 0.
func (v *runVars) StepEvent(step string, i int) (*rules.Event, bool) {
	idx := slices.Index(v.pr.auto.StepNames, step)
	if idx < 0 {
		return nil, false
	}
	// The chain runs from the newest node back.
	count := 0
	for n := v.last; n != nil; n = n.prev {
		if n.step == idx {
			if i < 0 {
				return v.views.view(n.ev), true
			}
			count++
		}
	}
	if i < 0 || i >= count {
		return nil, false
	}
	from := count - 1 - i
	for n := v.last; n != nil; n = n.prev {
		if n.step == idx {
			if from == 0 {
				return v.views.view(n.ev), true
			}
			from--
		}
	}
	return nil, false
}

// advanceTime times out the runs whose windows closed at time t (Flink's
// NFA.advanceTime): absence matches waiting in a Pending state complete,
// others are dropped or, with on_timeout, reported.
func (p *Partition) advanceTime(pr *planRule, rk *ruleKey, t int64, key string) {
	if len(rk.heldRuns()) == 0 && t < rk.deadline(pr) {
		return // no window closes yet: the common case, without a scan
	}
	if rk.x != nil && len(rk.x.sup) > 0 {
		// After the alerts below, which the entries may suppress.
		defer p.expireSuppression(rk, t)
	}
	w := int64(pr.auto.Window)
	kept := rk.runs[:0]
	potential, timedOut := p.expiredDone[:0], p.expiredOpen[:0]
	defer func() {
		clear(potential)
		clear(timedOut)
		p.expiredDone, p.expiredOpen = potential[:0], timedOut[:0]
	}()
	for _, r := range rk.runs {
		sw := int64(r.state.Window)
		if (sw > 0 && t >= r.prevTime+sw) || (w > 0 && t >= r.startTime+w) {
			if p.tr != nil {
				p.tr.expired(p, pr, r, t, p.trRec)
			}
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
	p.addLive(pr, len(kept)-len(rk.runs))
	rk.runs = kept
	rk.nextOK, p.changed = false, true
	p.release(pr, rk, potential, key)
	for _, r := range timedOut {
		p.stats.Timeouts++
		p.perRule[pr.index].Timeouts++
		if pr.rule.Alert.OnTimeout {
			p.emitRun(pr, rk, r, key, true)
		}
	}
}

// release adds completed matches to the held ones and emits, in order of
// their first event, those that no open partial match precedes, pruning
// partial and held matches by the skip strategy after each. potential is
// the caller's scratch space, which release sorts.
func (p *Partition) release(pr *planRule, rk *ruleKey, potential []*run, key string) {
	held := rk.heldRuns()
	// Without held matches, the completed ones are sorted where they are,
	// and copied only if some must wait: an absence match, which completes
	// when its window closes, is mostly emitted at once.
	inScratch := len(held) == 0 && len(potential) > 0
	if len(potential) > 0 {
		if inScratch {
			held = potential
		} else {
			held = append(held, potential...)
		}
		p.changed = true
		slices.SortStableFunc(held, compareRuns)
	}
	for len(held) > 0 {
		m := held[0]
		if earliest := earliestRun(rk.runs); earliest != nil && before(earliest, m) {
			break
		}
		held = held[1:]
		p.changed = true
		if pr.rule.Skip.Kind != "" && pr.rule.Skip.Kind != "none" {
			if id, ok := pruningID(pr, m); ok {
				if p.tr != nil {
					rk.setHeld(held)
					p.tracePruned(pr, rk, id)
				}
				n := len(rk.runs)
				rk.runs = pruneRuns(rk.runs, id, string(pr.rule.Skip.Kind))
				rk.nextOK, p.changed = false, true
				p.addLive(pr, len(rk.runs)-n)
				held = pruneRuns(held, id, string(pr.rule.Skip.Kind))
			}
		}
		p.emitRun(pr, rk, m, key, false)
	}
	switch {
	case len(held) == 0:
		rk.setHeld(nil)
	case inScratch:
		rk.setHeld(slices.Clone(held))
	default:
		rk.setHeld(held)
	}
}

func earliestRun(runs []*run) *run {
	var e *run
	for _, r := range runs {
		if e == nil || before(r, e) {
			e = r
		}
	}
	return e
}

// eventID orders events as Flink's EventId does: time, then arrival.
type eventID struct {
	time int64
	seq  uint64
}

func (a eventID) less(b eventID) bool {
	if a.time != b.time {
		return a.time < b.time
	}
	return a.seq < b.seq
}

// pruningID is the event a skip strategy prunes up to, from match m.
func pruningID(pr *planRule, m *run) (eventID, bool) {
	var id eventID
	found := false
	var stepFirst, stepLast *node
	for n := m.last; n != nil; n = n.prev {
		e := n.ev.id()
		switch pr.rule.Skip.Kind {
		case "to_next":
			if !found || e.less(id) {
				id, found = e, true
			}
		case "past_last_event":
			if !found || id.less(e) {
				id, found = e, true
			}
		default:
			if n.step == pr.skipStep {
				if stepLast == nil {
					stepLast = n
				}
				stepFirst = n
			}
		}
	}
	switch pr.rule.Skip.Kind {
	case "to_first":
		if stepFirst != nil {
			return stepFirst.ev.id(), true
		}
	case "to_last":
		if stepLast != nil {
			return stepLast.ev.id(), true
		}
	}
	return id, found
}

// pruneRuns drops the runs a skip strategy excludes: those starting at or
// before the pruning event (to_next, past_last_event), or strictly before it
// (to_first, to_last).
func pruneRuns(runs []*run, id eventID, kind string) []*run {
	kept := runs[:0]
	for _, r := range runs {
		if !pruned(r, id, kind) {
			kept = append(kept, r)
		}
	}
	clear(runs[len(kept):])
	return kept
}

// pruned reports whether the skip strategy kind prunes run r at the
// pruning event id.
func pruned(r *run, id eventID, kind string) bool {
	inclusive := kind == "to_next" || kind == "past_last_event"
	start := eventID{r.startTime, r.startSeq}
	return start.less(id) || (inclusive && start == id)
}

// tracePruned reports the partial and held matches a skip strategy is
// about to prune.
func (p *Partition) tracePruned(pr *planRule, rk *ruleKey, id eventID) {
	var gone []*run
	for _, rs := range [][]*run{rk.runs, rk.heldRuns()} {
		for _, r := range rs {
			if pruned(r, id, string(pr.rule.Skip.Kind)) {
				gone = append(gone, r)
			}
		}
	}
	p.tr.ended(p, pr, gone, EndSkipPruned, p.trRec)
}

// enforceCap drops the oldest partial matches past MaxRunsPerKey.
func (p *Partition) enforceCap(pr *planRule, rk *ruleKey, key string) {
	over := len(rk.runs) - p.opts.MaxRunsPerKey
	if over <= 0 {
		return
	}
	slices.SortStableFunc(rk.runs, compareRuns)
	if p.tr != nil {
		p.tr.ended(p, pr, rk.runs[:over], EndCapDropped, p.trRec)
	}
	clear(rk.runs[:over])
	rk.runs = rk.runs[over:]
	rk.nextOK, p.changed = false, true
	p.addLive(pr, -over)
	p.stats.Dropped += uint64(over)
	p.perRule[pr.index].Dropped += uint64(over)
	if !rk.capLogged {
		rk.capLogged = true
		p.opts.Logger.Warn("partial matches over the per-key cap, dropping the oldest",
			"ruleset", pr.ruleset.Name, "rule", pr.rule.ID, "key", key, "cap", p.opts.MaxRunsPerKey)
	}
}
