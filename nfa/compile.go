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
// quantifiers, optionality, greed, until conditions and negations.
func Compile(rule *rules.CompiledRule) (*Automaton, error) {
	if len(rule.Steps) == 0 {
		return nil, fmt.Errorf("nfa: rule %q: %w", rule.ID, errNoPattern)
	}
	c := &compiler{
		steps:     rule.Steps,
		stops:     map[string]*State{},
		originals: map[*State]*State{},
		window:    rule.Within,
		following: -1,
	}
	final := c.newState(-1, FinalName, Final)
	sink := final
	for c.cur = len(c.steps) - 1; c.cur > 0; c.cur-- {
		step := c.steps[c.cur]
		switch {
		case c.isNotFollow(c.cur):
			// notFollowedBy between steps becomes stop edges on the states
			// around it; only at the end of a windowed pattern does it need a
			// state of its own, where runs wait for the window to close.
			if sink.Kind == Final && (step.Within > 0 || c.window > 0) {
				pending := c.newState(c.cur, step.Name, Pending)
				not := c.take(c.cur)
				pending.addEdge(Proceed, c.stop(not, c.cur), not)
				pending.addEdge(Ignore, pending, Not(not))
				sink = pending
			}
		case c.isNotNext(c.cur):
			notNext := c.newState(c.cur, step.Name, Normal)
			not := c.take(c.cur)
			if sink.Kind == Final {
				// An ignore edge, not a proceed: the match must wait for the
				// next event to prove it is not the forbidden one.
				notNext.addEdge(Ignore, sink, Not(not))
			} else {
				notNext.addEdge(Proceed, sink, Not(not))
			}
			notNext.addEdge(Proceed, c.stop(not, c.cur), not)
			sink = notNext
		default:
			sink = c.convert(sink)
		}
		c.following = c.cur
	}
	start := c.convert(sink)
	start.Start = true

	a := &Automaton{Rule: rule, States: c.states, Start: start, Window: rule.Within}
	for _, s := range rule.Steps {
		a.StepNames = append(a.StepNames, s.Name)
	}
	return a, nil
}

var errNoPattern = errors.New("rule has no pattern")

type notCond struct {
	cond *Cond
	step int
}

type compiler struct {
	steps  []*rules.CompiledStep
	states []*State
	// stops holds one Stop state per negated step: every state that must die
	// on the forbidden event points at the same one.
	stops map[string]*State
	// originals maps a state to its copy taken before greedy conditions were
	// ANDed into its edges (used by greedy steps with until).
	originals map[*State]*State
	window    time.Duration
	cur       int // the step being converted
	following int // the step after cur, -1 at the end
}

func (c *compiler) newState(step int, name string, kind Kind) *State {
	s := &State{ID: len(c.states), Step: step, Name: name, Kind: kind}
	if step >= 0 && kind != Stop {
		s.Window = c.steps[step].Within
	}
	c.states = append(c.states, s)
	return s
}

func (s *State) addEdge(action Action, target *State, cond *Cond) {
	s.Edges = append(s.Edges, &Edge{Action: action, Source: s, Target: target, Cond: cond})
}

func (c *compiler) isNotFollow(i int) bool {
	return c.steps[i].Not && c.steps[i].Contiguity != rules.Strict
}

func (c *compiler) isNotNext(i int) bool {
	return c.steps[i].Not && c.steps[i].Contiguity == rules.Strict
}

func (c *compiler) take(i int) *Cond { return Leaf(c.steps[i].Where) }

func (c *compiler) until(i int) *Cond {
	if c.steps[i].Until == nil {
		return nil
	}
	return Leaf(c.steps[i].Until)
}

// ignoreFor returns the ignore condition for a contiguity: strict has none,
// relaxed skips events that do not match, any skips every event.
func (c *compiler) ignoreFor(i int, contiguity rules.Contiguity) *Cond {
	switch contiguity {
	case rules.Strict:
		return nil
	case rules.Any:
		return True()
	default:
		return Not(c.take(i))
	}
}

// outerIgnore is the ignore condition before a step's first event. The first
// step has none: the start state never keeps ignored runs.
func (c *compiler) outerIgnore(i int) *Cond {
	if i == 0 {
		return nil
	}
	return c.ignoreFor(i, c.steps[i].Contiguity)
}

func (c *compiler) innerIgnore(i int) *Cond {
	return c.ignoreFor(i, c.steps[i].Loop)
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

func (c *compiler) stop(cond *Cond, step int) *State {
	name := c.steps[step].Name
	if s, ok := c.stops[name]; ok {
		return s
	}
	s := c.newState(step, name, Stop)
	s.addEdge(Take, s, cond)
	c.stops[name] = s
	return s
}

// notConditions lists the notFollowedBy steps that still constrain the
// current step: those before it, reached across optional steps.
func (c *compiler) notConditions() []notCond {
	var nots []notCond
	for p := c.cur; p > 0 && (c.steps[p-1].Optional || c.isNotFollow(p-1)); {
		p--
		if c.isNotFollow(p) {
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
	if c.following >= 0 && c.isNotFollow(c.following) {
		not := c.take(c.following)
		s.addEdge(Proceed, c.stop(not, c.following), not)
	}
}

// copyWithoutTransitiveNots returns a copy of sink without the stop edges of
// the negations before the current optional step: once the optional step has
// taken an event, those negations no longer apply.
func (c *compiler) copyWithoutTransitiveNots(sink *State) *State {
	nots := c.notConditions()
	if len(nots) == 0 || !c.steps[c.cur].Optional {
		return sink
	}
	cp := c.newState(sink.Step, sink.Name, sink.Kind)
	cp.Window = sink.Window
	for _, e := range sink.Edges {
		if e.Action == Proceed {
			target := e.Target
			remove := false
			if target.Kind == Stop {
				for _, n := range nots {
					if target.Name == c.steps[n.step].Name {
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
	cp := c.newState(s.Step, s.Name, s.Kind)
	cp.Window = s.Window
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
	step := c.steps[c.cur]
	var last *State
	switch {
	case step.Max < 0: // N.. : N takes, then a loop
		looping := c.looping(c.copyWithoutTransitiveNots(sink))
		last = c.times(looping, sink, step.Min, step.Min)
	case step.Min != 1 || step.Max != 1:
		last = c.times(sink, sink, step.Min, step.Max)
	default:
		last = c.singleton(sink, sink, c.take(c.cur), c.outerIgnore(c.cur), step.Optional)
	}
	c.addStopStates(last)
	return last
}

func (c *compiler) times(sink, proceed *State, from, to int) *State {
	step := c.steps[c.cur]
	last := sink
	until := c.until(c.cur)
	innerIgnore := extendWithUntil(c.innerIgnore(c.cur), until, false)
	take := extendWithUntil(c.take(c.cur), until, true)
	if step.Greedy && from != to {
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
	return c.singleton(last, proceed, take, c.outerIgnore(c.cur), step.Optional)
}

func (c *compiler) singleton(sink, proceed *State, take, ignore *Cond, optional bool) *State {
	step := c.steps[c.cur]
	s := c.newState(c.cur, step.Name, Normal)
	target := c.copyWithoutTransitiveNots(sink)
	s.addEdge(Take, target, take)
	if optional {
		until := c.until(c.cur)
		switch {
		case step.Greedy && until != nil:
			original := c.originals[proceed]
			if original == nil {
				original = proceed
			}
			s.addEdge(Proceed, original, And(True(), until))
			s.addEdge(Proceed, proceed, And(True(), Not(until)))
		default:
			s.addEdge(Proceed, proceed, True())
		}
	}
	if ignore != nil {
		ignoreState := s
		if optional {
			// A separate state without the proceed edge, so that a run that
			// ignored events does not branch into the next step again.
			ignoreState = c.newState(c.cur, step.Name, Normal)
			ignoreState.addEdge(Take, target, take)
			ignoreState.addEdge(Ignore, ignoreState, ignore)
			c.addStopStates(ignoreState)
		}
		s.addEdge(Ignore, ignoreState, ignore)
	}
	return s
}

func (c *compiler) looping(sink *State) *State {
	step := c.steps[c.cur]
	until := c.until(c.cur)
	ignore := extendWithUntil(c.innerIgnore(c.cur), until, false)
	take := extendWithUntil(c.take(c.cur), until, true)
	s := c.newState(c.cur, step.Name, Normal)
	if step.Greedy {
		if until != nil {
			cp := c.copyState(sink)
			s.addEdge(Proceed, cp, And(True(), until))
			c.originals[sink] = cp
			s.addEdge(Proceed, sink, And(True(), Not(until)))
		} else {
			s.addEdge(Proceed, sink, True())
		}
		updateWithGreedyCondition(sink, c.take(c.cur))
	} else {
		s.addEdge(Proceed, sink, True())
	}
	s.addEdge(Take, s, take)
	c.addStopStateToLooping(s)
	if ignore != nil {
		ignoreState := c.newState(c.cur, step.Name, Normal)
		ignoreState.addEdge(Take, s, take)
		ignoreState.addEdge(Ignore, ignoreState, ignore)
		s.addEdge(Ignore, ignoreState, ignore)
		c.addStopStateToLooping(ignoreState)
	}
	return s
}
