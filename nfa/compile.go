package nfa

import (
	"errors"
	"fmt"
	"time"

	"github.com/shrike-cep/shrike/rules"
)

// FinalName is the name of the Final state.
const FinalName = "$end"

// Compile builds the automaton of a sequence rule. The construction follows
// Flink CEP's NFA compiler state for state, so that matches equal Flink's:
// the pattern is walked from its last step to its first, each step becoming
// one or more states whose take/ignore/proceed edges encode contiguity,
// quantifiers, optionality, greed, until conditions and negations. A group
// (Flink's GroupPattern) is compiled the same way, from its last step to
// its first, into the states between what follows it and what precedes it;
// its quantifier copies those states as a single step's quantifier copies
// one state, and a looping group gets one state of its own that leads from
// the end of a round back to its first step.
func Compile(rule *rules.CompiledRule) (*Automaton, error) {
	if len(rule.Steps) == 0 {
		return nil, fmt.Errorf("nfa: rule %q: %w", rule.ID, errNoPattern)
	}
	c := &compiler{
		stops:       map[string]*State{},
		originals:   map[*State]*State{},
		firstOfLoop: map[*element]bool{},
		window:      rule.Within,
	}
	a := &Automaton{Rule: rule, Window: rule.Within}
	top := elements(rule.Steps, &a.StepNames)
	final := c.newState(nil, Final)
	start := c.sequence(top, final)
	start.Start = true
	a.States, a.Start = c.states, start
	return a, nil
}

var errNoPattern = errors.New("rule has no pattern")

// element is one step or group of a sequence (the rule's pattern or a
// group's steps), linked to the one before it as Flink links its patterns.
type element struct {
	*rules.CompiledStep
	// index is the step's position among the event steps
	// (Automaton.StepNames); -1 for a group.
	index int
	prev  *element
	steps []*element // a group's
}

// elements links a sequence of compiled steps, numbering its event steps
// in pattern order onto names.
func elements(steps []*rules.CompiledStep, names *[]string) []*element {
	out := make([]*element, len(steps))
	for i, s := range steps {
		e := &element{CompiledStep: s, index: -1}
		if i > 0 {
			e.prev = out[i-1]
		}
		if s.Group {
			e.steps = elements(s.Steps, names)
		} else {
			e.index = len(*names)
			*names = append(*names, s.Name)
		}
		out[i] = e
	}
	return out
}

type notCond struct {
	cond *Cond
	step *element
}

type compiler struct {
	states []*State
	// stops holds one Stop state per negated step: every state that must die
	// on the forbidden event points at the same one.
	stops map[string]*State
	// originals maps a state to its copy taken before greedy conditions were
	// ANDed into its edges (used by greedy steps with until).
	originals map[*State]*State
	window    time.Duration
	cur       *element // the step or group being converted
	following *element // the element converted before cur (the one after it), nil at the end
	// group is the innermost group whose steps are being converted, nil
	// outside groups.
	group *element
	// firstOfLoop records, for a group under conversion with a quantifier,
	// whether the copy being built is the group's first round (false while
	// building later rounds and the loop); a group without an entry is.
	firstOfLoop map[*element]bool
}

// newState adds a state of element e (nil: the Final state).
func (c *compiler) newState(e *element, kind Kind) *State {
	s := &State{ID: len(c.states), Step: -1, Name: FinalName, Kind: kind}
	if e != nil {
		s.Step, s.Name = e.index, e.Name
		if !e.Group && kind != Stop {
			s.Window = e.Within
		}
	}
	c.states = append(c.states, s)
	return s
}

// newStateLike adds a state with the step, name, kind and window of s.
func (c *compiler) newStateLike(s *State) *State {
	cp := &State{ID: len(c.states), Step: s.Step, Name: s.Name, Kind: s.Kind, Window: s.Window}
	c.states = append(c.states, cp)
	return cp
}

func (s *State) addEdge(action Action, target *State, cond *Cond) {
	s.Edges = append(s.Edges, &Edge{Action: action, Source: s, Target: target, Cond: cond})
}

// sequence converts a sequence from its last element to its first, in
// front of sink, and returns the state of its first element (Flink's
// createMiddleStates followed by convertPattern).
func (c *compiler) sequence(seq []*element, sink *State) *State {
	for i := len(seq) - 1; i > 0; i-- {
		c.cur = seq[i]
		switch e := c.cur; {
		case isNotFollow(e):
			// notFollowedBy between steps becomes stop edges on the states
			// around it; only at the end of a windowed pattern does it need a
			// state of its own, where runs wait for the window to close.
			if sink.Kind == Final && (e.Within > 0 || c.window > 0) {
				pending := c.newState(e, Pending)
				not := c.take(e)
				pending.addEdge(Proceed, c.stop(not, e), not)
				pending.addEdge(Ignore, pending, Not(not))
				sink = pending
			}
		case isNotNext(e):
			notNext := c.newState(e, Normal)
			not := c.take(e)
			if sink.Kind == Final {
				// An ignore edge, not a proceed: the match must wait for the
				// next event to prove it is not the forbidden one.
				notNext.addEdge(Ignore, sink, Not(not))
			} else {
				notNext.addEdge(Proceed, sink, Not(not))
			}
			notNext.addEdge(Proceed, c.stop(not, e), not)
			sink = notNext
		default:
			sink = c.convert(sink)
		}
		c.following = c.cur
	}
	c.cur = seq[0]
	return c.convert(sink)
}

func isNotFollow(e *element) bool { return e.Not && e.Contiguity != rules.Strict }

func isNotNext(e *element) bool { return e.Not && e.Contiguity == rules.Strict }

// groupUntil is the until condition of the group being converted, which
// guards every edge inside it; nil without one.
func (c *compiler) groupUntil() *Cond {
	if c.group == nil || c.group.Until == nil {
		return nil
	}
	return Leaf(c.group.Until)
}

// take is the condition to take an event into element e (Flink's
// getTakeCondition): its where, and not the until of the group around it.
func (c *compiler) take(e *element) *Cond {
	return extendWithUntil(Leaf(e.Where), c.groupUntil(), true)
}

// trueCond is the condition of a proceed edge: true, but inside a group
// with an until not on an event that ends the group's loop.
func (c *compiler) trueCond() *Cond {
	return extendWithUntil(True(), c.groupUntil(), true)
}

func (c *compiler) until(e *element) *Cond {
	if e.Until == nil {
		return nil
	}
	return Leaf(e.Until)
}

// ignoreFor returns the ignore condition for a contiguity: strict has none,
// relaxed skips events that do not match, any skips every event; inside a
// group with an until, no event that ends the group's loop is skipped.
func (c *compiler) ignoreFor(e *element, contiguity rules.Contiguity) *Cond {
	var ignore *Cond
	switch contiguity {
	case rules.Strict:
	case rules.Any:
		ignore = True()
	default:
		ignore = Not(Leaf(e.Where))
	}
	return extendWithUntil(ignore, c.groupUntil(), false)
}

// headOfGroup reports whether e is the first element of the group being
// converted: its contiguity is the group's.
func (c *compiler) headOfGroup(e *element) bool { return c.group != nil && e.prev == nil }

func (c *compiler) isFirstOfLoop(g *element) bool {
	first, ok := c.firstOfLoop[g]
	return !ok || first
}

func (c *compiler) setFirstOfLoop(first bool) {
	if c.cur.Group {
		c.firstOfLoop[c.cur] = first
	}
}

// consuming is the contiguity of e to what precedes it: the first element
// of a sequence has none (Flink's begin is strict), a later one its own.
func consuming(e *element) rules.Contiguity {
	if e.prev == nil {
		return rules.Strict
	}
	return e.Contiguity
}

// outerIgnore is the ignore condition before an element's first event
// (Flink's getIgnoreCondition). The first step of the pattern has none:
// the start state never keeps ignored runs. The first step of a group
// takes the group's contiguity in the group's first round and its loop
// contiguity in later ones.
func (c *compiler) outerIgnore(e *element) *Cond {
	contiguity := consuming(e)
	if c.headOfGroup(e) {
		if c.isFirstOfLoop(c.group) {
			contiguity = consuming(c.group)
		} else {
			contiguity = c.group.Loop
		}
	}
	return c.ignoreFor(e, contiguity)
}

// innerIgnore is the ignore condition between the events of a looping
// element (Flink's getInnerIgnoreCondition); the first step of a group
// takes the group's loop contiguity.
func (c *compiler) innerIgnore(e *element) *Cond {
	contiguity := e.Loop
	if c.headOfGroup(e) {
		contiguity = c.group.Loop
	}
	return c.ignoreFor(e, contiguity)
}

func extendWithUntil(cond, until *Cond, isTake bool) *Cond {
	switch {
	case until != nil && cond != nil:
		return And(Not(until), cond)
	case until != nil && isTake:
		return Not(until)
	default:
		return cond
	}
}

func (c *compiler) stop(cond *Cond, e *element) *State {
	if s, ok := c.stops[e.Name]; ok {
		return s
	}
	s := c.newState(e, Stop)
	s.addEdge(Take, s, cond)
	c.stops[e.Name] = s
	return s
}

// notConditions lists the notFollowedBy steps that still constrain the
// current element: those before it in its sequence, reached across
// optional elements.
func (c *compiler) notConditions() []notCond {
	var nots []notCond
	for p := c.cur; p.prev != nil && (p.prev.Optional || isNotFollow(p.prev)); {
		p = p.prev
		if isNotFollow(p) {
			nots = append(nots, notCond{cond: c.take(p), step: p})
		}
	}
	return nots
}

func (c *compiler) addStopStates(s *State) {
	for _, n := range c.notConditions() {
		s.addEdge(Proceed, c.stop(n.cond, n.step), n.cond)
	}
}

// addStopStateToLooping makes a notFollowedBy right after a looping step
// active between the loop's own elements.
func (c *compiler) addStopStateToLooping(s *State) {
	if c.following != nil && isNotFollow(c.following) {
		not := c.take(c.following)
		s.addEdge(Proceed, c.stop(not, c.following), not)
	}
}

// copyWithoutTransitiveNots returns a copy of sink without the stop edges of
// the negations before the current optional step: once the optional step has
// taken an event, those negations no longer apply.
func (c *compiler) copyWithoutTransitiveNots(sink *State) *State {
	nots := c.notConditions()
	if len(nots) == 0 || !c.cur.Optional {
		return sink
	}
	cp := c.newStateLike(sink)
	for _, e := range sink.Edges {
		if e.Action == Proceed {
			target := e.Target
			remove := false
			if target.Kind == Stop {
				for _, n := range nots {
					if target.Name == n.step.Name {
						remove = true
					}
				}
			} else {
				target = c.copyWithoutTransitiveNots(target)
			}
			if !remove {
				cp.addEdge(Proceed, target, e.Cond)
			}
			continue
		}
		target := e.Target
		if target == sink {
			target = cp
		}
		cp.addEdge(e.Action, target, e.Cond)
	}
	return cp
}

func (c *compiler) copyState(s *State) *State {
	cp := c.newStateLike(s)
	for _, e := range s.Edges {
		target := e.Target
		if target == s {
			target = cp
		}
		cp.addEdge(e.Action, target, e.Cond)
	}
	return cp
}

// updateWithGreedyCondition forbids the state after a greedy loop from acting
// on any event the loop would take.
func updateWithGreedyCondition(s *State, take *Cond) {
	for _, e := range s.Edges {
		e.Cond = And(e.Cond, Not(take))
	}
}

func (c *compiler) convert(sink *State) *State {
	e := c.cur
	var last *State
	switch {
	case e.Max < 0: // N.. : N takes, then a loop
		// Once the loop has started, the negations before an optional
		// element no longer apply.
		c.setFirstOfLoop(false)
		looping := c.looping(c.copyWithoutTransitiveNots(sink))
		c.setFirstOfLoop(true)
		last = c.times(looping, sink, e.Min, e.Min)
	case e.Min != 1 || e.Max != 1:
		last = c.times(sink, sink, e.Min, e.Max)
	default:
		last = c.singleton(sink, sink, c.take(e), c.outerIgnore(e), e.Optional)
	}
	c.addStopStates(last)
	return last
}

func (c *compiler) times(sink, proceed *State, from, to int) *State {
	e := c.cur
	c.setFirstOfLoop(false)
	last := sink
	until := c.until(e)
	innerIgnore := extendWithUntil(c.innerIgnore(e), until, false)
	take := extendWithUntil(c.take(e), until, true)
	if e.Greedy && from != to {
		if until != nil {
			c.originals[sink] = c.copyState(sink)
		}
		updateWithGreedyCondition(sink, take)
	}
	for i := from; i < to; i++ {
		last = c.singleton(last, proceed, take, innerIgnore, true)
		c.addStopStateToLooping(last)
	}
	for i := 0; i < from-1; i++ {
		last = c.singleton(last, nil, take, innerIgnore, false)
		c.addStopStateToLooping(last)
	}
	// The intermediate copies are built; now the first one.
	c.setFirstOfLoop(true)
	return c.singleton(last, proceed, take, c.outerIgnore(e), e.Optional)
}

func (c *compiler) singleton(sink, proceed *State, take, ignore *Cond, optional bool) *State {
	e := c.cur
	if e.Group {
		return c.groupStates(sink, proceed, optional)
	}
	s := c.newState(e, Normal)
	// Once the event is taken, the negations before an optional step no
	// longer apply; if none is taken, they still do.
	target := c.copyWithoutTransitiveNots(sink)
	s.addEdge(Take, target, take)
	proceedCond := c.trueCond()
	if optional {
		until := c.until(e)
		switch {
		case e.Greedy && until != nil:
			original := c.originals[proceed]
			if original == nil {
				original = proceed
			}
			s.addEdge(Proceed, original, And(proceedCond, until))
			s.addEdge(Proceed, proceed, And(proceedCond, Not(until)))
		default:
			s.addEdge(Proceed, proceed, proceedCond)
		}
	}
	if ignore != nil {
		ignoreState := s
		if optional || c.isHeadOfOptionalGroup(e) {
			// A separate state without the proceed edge, so that a run that
			// ignored events does not branch into the next step again.
			ignoreState = c.newState(e, Normal)
			ignoreState.addEdge(Take, target, take)
			ignoreState.addEdge(Ignore, ignoreState, ignore)
			c.addStopStates(ignoreState)
		}
		s.addEdge(Ignore, ignoreState, ignore)
	}
	return s
}

// isHeadOfOptionalGroup reports whether e is the first step of an optional
// group in the group's first round: a run that skipped events there has
// chosen the group over its absence and must not branch again.
func (c *compiler) isHeadOfOptionalGroup(e *element) bool {
	return c.headOfGroup(e) && c.isFirstOfLoop(c.group) && c.group.Optional
}

// enterGroup makes the current element, a group, the group being converted
// and returns what leaveGroup restores.
func (c *compiler) enterGroup() (cur, following, group *element) {
	cur, following, group = c.cur, c.following, c.group
	c.group = c.cur
	return cur, following, group
}

func (c *compiler) leaveGroup(cur, following, group *element) {
	c.cur, c.following, c.group = cur, following, group
}

// groupStates converts one round of the current group in front of sink
// (Flink's createGroupPatternState); an optional round may proceed past
// the group to proceed.
func (c *compiler) groupStates(sink, proceed *State, optional bool) *State {
	proceedCond := c.trueCond()
	saved, following, group := c.enterGroup()
	first := c.sequence(saved.steps, sink)
	if optional {
		first.addEdge(Proceed, proceed, proceedCond)
	}
	c.leaveGroup(saved, following, group)
	return first
}

// loopingGroup converts the loop of a looping group (Flink's
// createLoopingGroupPatternState): one round whose end leads, through a
// state of the group's own, back to its first step, and whose first step
// may proceed to sink.
func (c *compiler) loopingGroup(sink *State) *State {
	proceedCond := c.trueCond()
	saved, following, group := c.enterGroup()
	again := c.newState(saved, Normal)
	first := c.sequence(saved.steps, again)
	first.addEdge(Proceed, sink, proceedCond)
	again.addEdge(Proceed, first, proceedCond)
	c.leaveGroup(saved, following, group)
	return first
}

func (c *compiler) looping(sink *State) *State {
	e := c.cur
	if e.Group {
		return c.loopingGroup(sink)
	}
	until := c.until(e)
	ignore := extendWithUntil(c.innerIgnore(e), until, false)
	take := extendWithUntil(c.take(e), until, true)
	proceedCond := c.trueCond()
	s := c.newState(e, Normal)
	if e.Greedy {
		if until != nil {
			cp := c.copyState(sink)
			s.addEdge(Proceed, cp, And(proceedCond, until))
			c.originals[sink] = cp
			s.addEdge(Proceed, sink, And(proceedCond, Not(until)))
		} else {
			s.addEdge(Proceed, sink, proceedCond)
		}
		updateWithGreedyCondition(sink, c.take(e))
	} else {
		s.addEdge(Proceed, sink, proceedCond)
	}
	s.addEdge(Take, s, take)
	c.addStopStateToLooping(s)
	if ignore != nil {
		ignoreState := c.newState(e, Normal)
		ignoreState.addEdge(Take, s, take)
		ignoreState.addEdge(Ignore, ignoreState, ignore)
		s.addEdge(Ignore, ignoreState, ignore)
		c.addStopStateToLooping(ignoreState)
	}
	return s
}
