package rules

import (
	"strconv"
	"strings"
)

// reserved names cannot be step names: the environment's own variables and
// CEL's keywords and reserved words.
var reserved = map[string]bool{
	"event": true, "lists": true,
	"true": true, "false": true, "null": true, "in": true,
	"as": true, "break": true, "const": true, "continue": true, "else": true,
	"for": true, "function": true, "if": true, "import": true, "let": true,
	"loop": true, "package": true, "namespace": true, "return": true,
	"var": true, "void": true, "while": true,
}

// validate checks what a ruleset's structure gets wrong, beyond what the
// YAML parser sees: ids, step names, step options and their combinations
// (Flink's MalformedPatternException cases). CEL is checked by Compile.
func validate(rs *Ruleset) ErrorList {
	var e errs
	ids := map[string]*Rule{}
	for _, r := range rs.Rules {
		e.rule = r.ID
		switch prev := ids[r.ID]; {
		case r.ID == "":
			e.add(r.Pos, "rule without id")
		case prev != nil:
			e.add(r.Pos, "duplicate rule id %q (first defined at %s)", r.ID, prev.Pos)
		default:
			ids[r.ID] = r
		}
		validateRule(&e, r)
	}
	for _, f := range rs.Schema {
		if _, ok := schemaTypes[f.Type]; !ok && rs.src == nil {
			e.rule = ""
			e.add(f.Pos, "unknown schema type %q for field %q", f.Type, f.Name)
		}
	}
	return e.list
}

func validateRule(e *errs, r *Rule) {
	switch r.Severity {
	case SeverityInfo, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical:
	case "":
		// A rule built in code without severity gets the default.
	default:
		e.add(r.Pos, "unknown severity %q", r.Severity)
	}
	hasPattern := r.Pattern != nil
	switch {
	case r.When != "" && hasPattern:
		e.add(orPos(r.patternPos, r.Pos), "a rule has either when or pattern, not both")
	case r.When == "" && !hasPattern:
		if r.WhenPos.Line == 0 { // an empty when was already reported
			e.add(r.Pos, "a rule needs when (one event) or pattern (a sequence)")
		}
	}
	if r.When != "" && !hasPattern {
		if r.Within != 0 {
			e.add(orPos(r.withinPos, r.Pos), "within applies to pattern rules only")
		}
		if r.Skip.Kind != "" && r.Skip.Kind != SkipNone || r.Skip.Pos.Line != 0 {
			e.add(orPos(r.Skip.Pos, r.Pos), "skip applies to pattern rules only")
		}
		if r.Alert.OnTimeout {
			e.add(orPos(r.onTimeoutPos, r.Pos), "on_timeout applies to pattern rules only: a when rule never waits")
		}
	}
	if r.Within < 0 {
		e.add(orPos(r.withinPos, r.Pos), "within must be positive")
	}
	if !hasPattern {
		return
	}
	if len(r.Pattern) == 0 {
		e.add(orPos(r.patternPos, r.Pos), "pattern has no steps")
		return
	}
	validateSteps(e, r)
	switch r.Skip.Kind {
	case "", SkipNone, SkipToNext, SkipPastLastEvent:
	case SkipToFirst, SkipToLast:
		var target *Step
		for _, s := range r.Pattern {
			if s.Name == r.Skip.Step {
				target = s
			}
		}
		switch {
		case r.Skip.Step == "":
			e.add(orPos(r.Skip.Pos, r.Pos), "skip %s needs a step name", r.Skip.Kind)
		case target == nil:
			e.add(orPos(r.Skip.Pos, r.Pos), "skip %s: no step %q in the pattern (steps: %s)", r.Skip.Kind, r.Skip.Step, stepNames(r))
		case target.Not:
			e.add(orPos(r.Skip.Pos, r.Pos), "skip %s: step %q is a not step and never holds an event", r.Skip.Kind, r.Skip.Step)
		}
	default:
		e.add(orPos(r.Skip.Pos, r.Pos), "unknown skip strategy %q", r.Skip.Kind)
	}
	if r.Alert.OnTimeout && r.Within == 0 && !anyStepWithin(r) {
		e.add(orPos(r.onTimeoutPos, r.Pos), "on_timeout needs a within: without one a partial match never times out")
	}
}

func anyStepWithin(r *Rule) bool {
	for _, s := range r.Pattern {
		if s.Within > 0 {
			return true
		}
	}
	return false
}

func stepNames(r *Rule) string {
	names := make([]string, 0, len(r.Pattern))
	for _, s := range r.Pattern {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

func orPos(p, fallback Pos) Pos {
	if p.Line != 0 {
		return p
	}
	return fallback
}

// optPos is where a step option was written, or the step itself for a
// step built in code.
func optPos(s *Step, opt string) Pos {
	if p, ok := s.set[opt]; ok {
		return p
	}
	return s.Pos
}

func validateSteps(e *errs, r *Rule) {
	names := map[string]*Step{}
	for i, s := range r.Pattern {
		namePos := orPos(s.namePos, s.Pos)
		switch {
		case s.Name == "":
			e.add(s.Pos, "step %d has no name", i+1)
		case !identRE.MatchString(s.Name):
			e.add(namePos, "step name %q is not a CEL identifier (letters, digits and _, not starting with a digit)", s.Name)
		case reserved[s.Name]:
			e.add(namePos, "step name %q is reserved", s.Name)
		case names[s.Name] != nil:
			e.add(namePos, "duplicate step name %q (first at %s)", s.Name, names[s.Name].Pos)
		default:
			names[s.Name] = s
		}
		switch s.Contiguity {
		case "", Strict, Relaxed, Any:
		default:
			e.add(optPos(s, "contiguity"), "unknown contiguity %q", s.Contiguity)
		}
		switch s.Loop {
		case "", Strict, Relaxed, Any:
		default:
			e.add(optPos(s, "loop"), "unknown loop %q", s.Loop)
		}
		if i == 0 {
			if _, ok := s.set["contiguity"]; ok {
				e.add(optPos(s, "contiguity"), "contiguity on the first step has no meaning: it relates a step to the previous one")
			}
		}
		switch {
		case s.Max == 0:
			e.add(optPos(s, "times"), "step %q takes no event (max 0)", s.Name)
		case s.Min < 1 && !(s.Min == 0 && s.Optional):
			e.add(optPos(s, "times"), "step %q has a minimum count below 1", s.Name)
		case s.Max > 0 && s.Min > s.Max:
			e.add(optPos(s, "times"), "step %q has a minimum count above its maximum", s.Name)
		}
		if s.Within < 0 {
			e.add(optPos(s, "within"), "within must be positive")
		}
		if s.Within > 0 && r.Within > 0 && s.Within > r.Within {
			e.add(optPos(s, "within"), "step within %s is longer than the rule's within %s", s.Within, r.Within)
		}
		if s.Within > 0 && i == 0 && !s.Looping() {
			e.add(optPos(s, "within"), "within on the first step has no meaning: it bounds the time from the previous step (use the rule's within)")
		}
		if s.Not {
			validateNot(e, r, i)
			continue
		}
		if !s.Looping() {
			for _, opt := range []string{"greedy", "loop", "until"} {
				if stepHas(s, opt) {
					e.add(optPos(s, opt), "%s applies to looping steps only (times N.., N..M or N with N > 1); step %q takes one event", opt, s.Name)
				}
			}
		}
	}
	// A pattern whose steps are all optional is valid, as in Flink: a match
	// is only completed by taking an event, so the empty match never occurs.
}

// stepHas reports whether an option is set, in the source or in code.
func stepHas(s *Step, opt string) bool {
	if _, ok := s.set[opt]; ok {
		return true
	}
	switch opt {
	case "greedy":
		return s.Greedy
	case "until":
		return s.Until != ""
	case "loop":
		return s.set == nil && s.Loop != "" && s.Loop != Relaxed
	case "times":
		return s.Min != 1 || s.Max != 1
	case "optional":
		return s.Optional
	}
	return false
}

func validateNot(e *errs, r *Rule, i int) {
	s := r.Pattern[i]
	pos := s.Pos
	if i == 0 {
		e.add(pos, "a pattern cannot start with a not step: absence is measured after an event")
	}
	if s.Contiguity == Any {
		e.add(optPos(s, "contiguity"), "a not step takes contiguity strict (not next) or relaxed (not followed by), not any")
	}
	for _, opt := range []string{"times", "optional", "greedy", "loop", "until"} {
		if stepHas(s, opt) {
			e.add(optPos(s, opt), "a not step cannot have %s", opt)
		}
	}
	if i > 0 {
		prev := r.Pattern[i-1]
		switch {
		case prev.Not && notStrict(prev) == notStrict(s):
			// The same event (strict) or the same stretch of events
			// (relaxed) must fail both conditions.
			e.add(pos, "two not steps in a row with the same contiguity: merge their conditions with || into one step")
		case prev.Not && notStrict(s):
			// notFollowedBy(x).notNext(y): Flink's compiler keeps the
			// notNext and silently drops the notFollowedBy before it.
			e.add(pos, "a strict not step cannot follow a relaxed one (%q): write the strict one first; it forbids the event right after %s, the relaxed one every event up to the next step", prev.Name, lastPositive(r, i))
		case prev.Not:
			// notNext(x).notFollowedBy(y) is supported: the event right
			// after the previous step must not match x, and no event
			// before the next step may match y.
		case prev.Optional:
			e.add(pos, "a not step cannot follow an optional step")
		}
	}
	if i == len(r.Pattern)-1 && !notStrict(s) && r.Within == 0 && s.Within == 0 {
		e.add(pos, "a pattern ending in a relaxed not step needs a within (the rule's, or the not step's own): absence is only known when the window closes")
	}
}

// notStrict reports whether a not step is Flink's notNext (strict) rather
// than notFollowedBy (relaxed, the default).
func notStrict(s *Step) bool { return s.Contiguity == Strict }

// lastPositive names the last step before index i that is not a not step.
func lastPositive(r *Rule, i int) string {
	for j := i - 1; j >= 0; j-- {
		if !r.Pattern[j].Not {
			return strconv.Quote(r.Pattern[j].Name)
		}
	}
	return "the previous step"
}
