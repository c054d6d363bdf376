package draw

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/shrike-cep/shrike/nfa"
	"github.com/shrike-cep/shrike/rules"
)

// MaxStates bounds the automata drawn: a few hundred boxes is already more
// than a reader follows, and it keeps a picture of a hostile rule (a group
// repeated thousands of times) to a bounded size.
const MaxStates = 400

// MaxConditionBytes bounds the condition text of all edges together, so
// that a rule with huge conditions on many copied states cannot make a
// response of many megabytes: the SVG holds each condition twice (an
// attribute and a tooltip) and the graph once, and with the rest of the
// picture of MaxStates states they stay under a gRPC client's default
// 4 MiB message limit.
const MaxConditionBytes = 512 << 10

// Graph is an automaton as the picture shows it.
type Graph struct {
	// Rule is the rule's id.
	Rule string `json:"rule"`
	// Window is the rule's within as the ruleset writes it ("10m"); empty
	// when the rule has none.
	Window string `json:"window"`
	// Start is the id of the state a run starts in.
	Start int `json:"start"`
	// States are the automaton's states in the order of their ids.
	States []State `json:"states"`
	// Edges are every state's edges, state by state, each state's in the
	// order the matcher tries them.
	Edges []Edge `json:"edges"`
}

// State is one automaton state.
type State struct {
	ID int `json:"id"`
	// Name is the step the state belongs to, a group's name for the state
	// that loops a group, FinalName ("$end") for the final state.
	Name string `json:"name"`
	// Kind is "normal", "final" (a run here is a match), "stop" (a run
	// here is discarded: a not step's forbidden event arrived) or
	// "pending" (a run here becomes a match when its window closes).
	Kind string `json:"kind"`
	// Start marks the state a run starts in.
	Start bool `json:"start"`
	// Group marks the state of a looping group that leads from the end of
	// a round back to its first step.
	Group bool `json:"group"`
	// Window is the step's own within ("5m"), bounding the time from the
	// run's previous event while it waits here; empty when none.
	Window string `json:"window"`
}

// Edge is one guarded transition.
type Edge struct {
	From int `json:"from"`
	To   int `json:"to"`
	// Action is "take" (the event joins the match), "ignore" (the event
	// is skipped) or "proceed" (a move without an event, tried on the
	// same event).
	Action string `json:"action"`
	// Condition is the guard as CEL text: the sources of the rule's
	// expressions combined with ! and &&, "true" when unconditional.
	Condition string `json:"condition"`
}

// Kind names, as Graph's states carry them.
const (
	KindNormal  = "normal"
	KindFinal   = "final"
	KindStop    = "stop"
	KindPending = "pending"
)

// Action names, as Graph's edges carry them.
const (
	ActionTake    = "take"
	ActionIgnore  = "ignore"
	ActionProceed = "proceed"
)

// Describe returns the graph of automaton a. It fails with ErrTooLarge for
// an automaton of more than MaxStates states or more than
// MaxConditionBytes of condition text, naming the rule.
func Describe(a *nfa.Automaton) (*Graph, error) {
	id := ruleID(a)
	if len(a.States) > MaxStates {
		return nil, fmt.Errorf("%w: rule %q: its automaton has %d states, over the limit of %d that a picture shows", ErrTooLarge, id, len(a.States), MaxStates)
	}
	g := &Graph{Rule: id, Start: -1, States: make([]State, 0, len(a.States))}
	if a.Window > 0 {
		g.Window = rules.FormatDuration(a.Window)
	}
	if a.Start != nil {
		g.Start = a.Start.ID
	}
	texts := map[*nfa.Cond]string{}
	total := 0
	for _, s := range a.States {
		st := State{ID: s.ID, Name: s.Name, Kind: kindName(s.Kind), Start: s.Start}
		st.Group = s.Step < 0 && s.Kind != nfa.Final
		if s.Window > 0 {
			st.Window = rules.FormatDuration(s.Window)
		}
		g.States = append(g.States, st)
		for _, e := range s.Edges {
			text, ok := texts[e.Cond]
			if !ok {
				text = Condition(e.Cond)
				texts[e.Cond] = text
			}
			total += len(text)
			if total > MaxConditionBytes {
				return nil, fmt.Errorf("%w: rule %q: its automaton's conditions are over %d bytes of text, the limit that a picture shows", ErrTooLarge, id, MaxConditionBytes)
			}
			g.Edges = append(g.Edges, Edge{From: s.ID, To: e.Target.ID, Action: actionName(e.Action), Condition: text})
		}
	}
	return g, nil
}

func ruleID(a *nfa.Automaton) string {
	if a.Rule == nil || a.Rule.Rule == nil {
		return ""
	}
	return a.Rule.ID
}

func kindName(k nfa.Kind) string {
	switch k {
	case nfa.Final:
		return KindFinal
	case nfa.Stop:
		return KindStop
	case nfa.Pending:
		return KindPending
	}
	return KindNormal
}

func actionName(a nfa.Action) string {
	switch a {
	case nfa.Ignore:
		return ActionIgnore
	case nfa.Proceed:
		return ActionProceed
	}
	return ActionTake
}

// Condition renders c as CEL text: a leaf is its expression's source, a
// negation !x (parenthesised unless x is a name or a field), a conjunction
// x && y (x alone when y is true), and the always-true condition "true".
// A leaf holding an operator
// that binds looser than && (|| or ?:) is parenthesised inside one.
func Condition(c *nfa.Cond) string {
	var b strings.Builder
	writeCond(&b, c, false)
	return b.String()
}

func writeCond(b *strings.Builder, c *nfa.Cond, inAnd bool) {
	switch c.Op {
	case nfa.OpTrue:
		b.WriteString("true")
	case nfa.OpLeaf:
		src := strings.TrimSpace(c.Leaf.Source)
		if inAnd && looserThanAnd(src) {
			b.WriteString("(" + src + ")")
		} else {
			b.WriteString(src)
		}
	case nfa.OpNot:
		b.WriteByte('!')
		if c.X.Op == nfa.OpLeaf && atomic(strings.TrimSpace(c.X.Leaf.Source)) || c.X.Op == nfa.OpTrue {
			writeCond(b, c.X, false)
			return
		}
		b.WriteByte('(')
		writeCond(b, c.X, false)
		b.WriteByte(')')
	case nfa.OpAnd:
		// true && x is x: the matcher's greedy and until conditions
		// conjoin a true now and then.
		switch {
		case c.X.Op == nfa.OpTrue:
			writeCond(b, c.Y, inAnd)
			return
		case c.Y.Op == nfa.OpTrue:
			writeCond(b, c.X, inAnd)
			return
		}
		writeCond(b, c.X, true)
		b.WriteString(" && ")
		writeCond(b, c.Y, true)
	}
}

// looserThanAnd reports whether src may hold an operator that binds looser
// than && at its top level. It errs towards yes (an || inside a string or
// parentheses): a needless pair of parentheses reads the same.
func looserThanAnd(src string) bool {
	if strings.HasPrefix(src, "(") && strings.HasSuffix(src, ")") && balanced(src[1:len(src)-1]) {
		return false
	}
	return strings.Contains(src, "||") || strings.Contains(src, "?")
}

// balanced reports whether the parentheses of s balance, so that "(a) || (b)"
// is not taken for one parenthesised expression.
func balanced(s string) bool {
	depth := 0
	for _, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return false
			}
		}
	}
	return depth == 0
}

// atomic reports whether a ! applies to src without parentheses: a name,
// a field or a parenthesised expression.
func atomic(src string) bool {
	return isName(src) || strings.HasPrefix(src, "(") && strings.HasSuffix(src, ")") && balanced(src[1:len(src)-1])
}

// isName reports whether src is an identifier or a field selection
// (event.success), which a ! applies to without parentheses.
func isName(src string) bool {
	if src == "" {
		return false
	}
	for i, r := range src {
		switch {
		case r == '_' || unicode.IsLetter(r):
		case i > 0 && (r == '.' || unicode.IsDigit(r)):
		default:
			return false
		}
	}
	return !strings.HasSuffix(src, ".")
}
