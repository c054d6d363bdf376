package draw

import (
	"errors"
	"fmt"
	"strings"

	"github.com/shrike-cep/shrike/nfa"
	"github.com/shrike-cep/shrike/rules"
)

// ErrNoAutomaton wraps Rule's error for an id that names no pattern rule of
// the ruleset: no rule, a disabled one, a `when` or an `aggregate` rule.
var ErrNoAutomaton = errors.New("no automaton to draw")

// ErrTooLarge wraps Describe's error for an automaton over MaxStates
// states or MaxConditionBytes of conditions.
var ErrTooLarge = errors.New("automaton too large to draw")

// Rule compiles the automaton of rs's pattern rule id, as the matcher does,
// and returns its graph and its picture. A `when` rule has no automaton:
// the matcher evaluates its condition on each event, with no state to
// draw; an aggregate rule keeps measures, not runs.
func Rule(rs *rules.Compiled, id string) (*Graph, []byte, error) {
	for _, r := range rs.Rules {
		if r.ID != id {
			continue
		}
		switch {
		case r.Aggregate != nil:
			return nil, nil, fmt.Errorf("%w: rule %q of ruleset %q is an aggregate rule, which keeps measures over a window rather than runs through states (pattern rules: %s)", ErrNoAutomaton, id, rs.Name, patternRules(rs))
		case len(r.Steps) == 0:
			return nil, nil, fmt.Errorf("%w: rule %q of ruleset %q is a when rule, whose condition is evaluated on each event alone (pattern rules: %s)", ErrNoAutomaton, id, rs.Name, patternRules(rs))
		}
		a, err := nfa.Compile(r)
		if err != nil {
			return nil, nil, err
		}
		g, err := Describe(a)
		if err != nil {
			return nil, nil, err
		}
		return g, SVG(g), nil
	}
	if rs.Ruleset != nil {
		for _, r := range rs.Ruleset.Rules {
			if r.ID == id && !r.Enabled {
				return nil, nil, fmt.Errorf("%w: rule %q of ruleset %q is disabled, and not compiled (pattern rules: %s)", ErrNoAutomaton, id, rs.Name, patternRules(rs))
			}
		}
	}
	return nil, nil, fmt.Errorf("%w: no rule %q in ruleset %q (pattern rules: %s)", ErrNoAutomaton, id, rs.Name, patternRules(rs))
}

// patternRules lists the ids of rs's enabled pattern rules, the first 20.
func patternRules(rs *rules.Compiled) string {
	const shown = 20
	var ids []string
	n := 0
	for _, r := range rs.Rules {
		if len(r.Steps) == 0 || r.Aggregate != nil {
			continue
		}
		if n++; n <= shown {
			ids = append(ids, fmt.Sprintf("%q", r.ID))
		}
	}
	switch {
	case n == 0:
		return "none"
	case n > shown:
		ids = append(ids, fmt.Sprintf("and %d more", n-shown))
	}
	return strings.Join(ids, ", ")
}
