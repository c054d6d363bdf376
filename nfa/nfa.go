package nfa

import (
	"fmt"
	"strings"
	"time"

	"github.com/shrike-cep/shrike/rules"
)

// Kind is the role of a state.
type Kind uint8

// State kinds. A run that reaches Final is a match; one that reaches Stop is
// discarded (a forbidden event arrived); one waiting in Pending becomes a
// match when its window closes (a pattern ending in notFollowedBy).
const (
	Normal Kind = iota
	Final
	Stop
	Pending
)

// Action is what an edge does with the current event.
type Action uint8

// Edge actions, as in Flink's NFA: Take consumes the event into the run,
// Ignore skips it and moves on, Proceed is an epsilon move evaluated against
// the same event.
const (
	Take Action = iota
	Ignore
	Proceed
)

// State is one automaton state. Several states belong to the same step
// (times expansion, the separate ignore state of optional and looping steps).
type State struct {
	ID int
	// Step is the index in Automaton.StepNames of the step the state
	// belongs to; -1 for Final and for the state of a looping group that
	// leads from the end of a round back to its first step.
	Step int
	// Name is the step's name (the key under which taken events are
	// stored), the group's for a group's own state.
	Name  string
	Kind  Kind
	Start bool
	// Window, when non-zero, bounds the time from the run's previous taken
	// event while the run waits in this state (a step's own `within`).
	Window time.Duration
	Edges  []*Edge
}

// Edge is a guarded transition.
type Edge struct {
	Action         Action
	Source, Target *State
	Cond           *Cond
}

// Op is a condition operator.
type Op uint8

// Condition operators.
const (
	OpTrue Op = iota
	OpLeaf
	OpNot
	OpAnd
)

// Cond is an edge guard: a small boolean tree over the rule's compiled CEL
// expressions. Leaves are shared, so a matcher can cache leaf values.
type Cond struct {
	Op   Op
	Leaf *rules.Expr // OpLeaf
	X, Y *Cond       // OpNot uses X; OpAnd uses X and Y
	// Slot is free for the matcher's planner: it numbers the leaves whose
	// value depends on the event alone, to cache them once per event.
	Slot int
}

var condTrue = &Cond{Op: OpTrue}

// True returns the always-true condition.
func True() *Cond { return condTrue }

// Leaf returns a condition on expression e; a nil e is true. A conjunction
// becomes an And chain of its conjuncts, cheapest first, so that a matcher
// caches the event-only ones per event and skips the rest when one is false.
func Leaf(e *rules.Expr) *Cond {
	if e == nil {
		return condTrue
	}
	if len(e.Conjuncts) > 1 {
		c := Leaf(e.Conjuncts[0])
		for _, x := range e.Conjuncts[1:] {
			c = And(c, Leaf(x))
		}
		return c
	}
	return &Cond{Op: OpLeaf, Leaf: e, Slot: -1}
}

// Not negates c.
func Not(c *Cond) *Cond { return &Cond{Op: OpNot, X: c} }

// And conjoins x and y.
func And(x, y *Cond) *Cond { return &Cond{Op: OpAnd, X: x, Y: y} }

// String renders the condition for debugging and tests.
func (c *Cond) String() string {
	switch c.Op {
	case OpTrue:
		return "true"
	case OpLeaf:
		return "{" + c.Leaf.Source + "}"
	case OpNot:
		return "!" + c.X.String()
	default:
		return "(" + c.X.String() + " && " + c.Y.String() + ")"
	}
}

// Automaton is a rule's compiled pattern.
type Automaton struct {
	Rule   *rules.CompiledRule
	States []*State
	Start  *State
	// Window bounds a match from its first event to its last (rule
	// `within`); 0 means unbounded.
	Window time.Duration
	// StepNames lists the names of the pattern's steps that take events
	// (rules.EventSteps), in pattern order: a group's steps in place of
	// the group.
	StepNames []string
}

// String renders the automaton, one state per line, for tests and debugging.
func (a *Automaton) String() string {
	var b strings.Builder
	for _, s := range a.States {
		fmt.Fprintf(&b, "%d %s%s", s.ID, s.Name, kindSuffix(s))
		if s.Window > 0 {
			fmt.Fprintf(&b, " window=%s", s.Window)
		}
		b.WriteByte('\n')
		for _, e := range s.Edges {
			fmt.Fprintf(&b, "  %s -> %d %s\n", [...]string{"take", "ignore", "proceed"}[e.Action], e.Target.ID, e.Cond)
		}
	}
	return b.String()
}

func kindSuffix(s *State) string {
	var suffix string
	switch s.Kind {
	case Final:
		suffix = " [final]"
	case Stop:
		suffix = " [stop]"
	case Pending:
		suffix = " [pending]"
	}
	if s.Start {
		suffix += " [start]"
	}
	return suffix
}
