package rules

import (
	"strconv"
	"strings"
)

// reserved names cannot be step or measure names: the environment's own
// variables and CEL's keywords and reserved words.
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
	hasAggregate := r.Aggregate != nil
	switch {
	case r.When != "" && hasPattern && hasAggregate:
		e.add(orPos(r.Aggregate.Pos, r.Pos), "a rule has exactly one of when, pattern and aggregate, not all three")
	case r.When != "" && hasPattern:
		e.add(orPos(r.patternPos, r.Pos), "a rule has exactly one of when, pattern and aggregate, not both when and pattern")
	case r.When != "" && hasAggregate:
		e.add(orPos(r.Aggregate.Pos, r.Pos), "a rule has exactly one of when, pattern and aggregate, not both when and aggregate")
	case hasPattern && hasAggregate:
		e.add(orPos(r.Aggregate.Pos, r.Pos), "a rule has exactly one of when, pattern and aggregate, not both pattern and aggregate")
	case r.When == "" && !hasPattern && !hasAggregate:
		if r.WhenPos.Line == 0 { // an empty when was already reported
			e.add(r.Pos, "a rule needs when (one event), pattern (a sequence) or aggregate (measures over a window)")
		}
	}
	if hasAggregate && r.When == "" && !hasPattern {
		validateAggregate(e, r)
	}
	if r.When != "" && !hasPattern && !hasAggregate {
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
		target := FindStep(r.Pattern, r.Skip.Step)
		switch {
		case r.Skip.Step == "":
			e.add(orPos(r.Skip.Pos, r.Pos), "skip %s needs a step name", r.Skip.Kind)
		case target == nil:
			e.add(orPos(r.Skip.Pos, r.Pos), "skip %s: no step %q in the pattern (steps: %s)", r.Skip.Kind, r.Skip.Step, stepNames(r))
		case target.Not:
			e.add(orPos(r.Skip.Pos, r.Pos), "skip %s: step %q is a not step and never holds an event", r.Skip.Kind, r.Skip.Step)
		case target.Group:
			e.add(orPos(r.Skip.Pos, r.Pos), "skip %s: %q is a group: name one of its steps", r.Skip.Kind, r.Skip.Step)
		}
	default:
		e.add(orPos(r.Skip.Pos, r.Pos), "unknown skip strategy %q", r.Skip.Kind)
	}
	if r.Alert.OnTimeout && r.Within == 0 && !anyStepWithin(r) {
		e.add(orPos(r.onTimeoutPos, r.Pos), "on_timeout needs a within: without one a partial match never times out")
	}
}

func anyStepWithin(r *Rule) bool {
	for _, s := range EventSteps(r.Pattern) {
		if s.Within > 0 {
			return true
		}
	}
	return false
}

func stepNames(r *Rule) string {
	events := EventSteps(r.Pattern)
	names := make([]string, 0, len(events))
	for _, s := range events {
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
	v := &stepValidator{e: e, r: r, names: map[string]*Step{}}
	v.seq(r.Pattern, nil, true, false)
	if hasGroup(r.Pattern) && expandedSize(r.Pattern) > maxExpandedSteps {
		e.add(orPos(r.patternPos, r.Pos), "the pattern expands to more than %d step states (a group's times multiply the steps inside it)", maxExpandedSteps)
	}
	// A pattern whose steps are all optional is valid, as in Flink: a match
	// is only completed by taking an event, so the empty match never occurs.
}

func hasGroup(steps []*Step) bool {
	for _, s := range steps {
		if s.Group {
			return true
		}
	}
	return false
}

// maxExpandedSteps bounds the states a pattern with groups compiles to: a
// group's times copy its steps, so nested groups multiply. (A step's own
// times is bounded when it is parsed.)
const maxExpandedSteps = 1 << 20

// expandedSize counts the step copies a pattern compiles to, saturating
// above maxExpandedSteps.
func expandedSize(steps []*Step) int {
	total := 0
	for _, s := range steps {
		copies := s.Min + 1
		if s.Max > s.Min {
			copies = s.Max + 1
		}
		inner := 1
		if s.Group {
			inner = expandedSize(s.Steps)
		}
		if inner > maxExpandedSteps/max(copies, 1) {
			return maxExpandedSteps + 1
		}
		total += copies * inner
		if total > maxExpandedSteps {
			return maxExpandedSteps + 1
		}
	}
	return total
}

// stepValidator checks the steps of a rule, groups included; step and
// group names are unique across the whole pattern.
type stepValidator struct {
	e     *errs
	r     *Rule
	names map[string]*Step
}

// seq checks one sequence of steps: the rule's pattern (group nil) or a
// group's steps. first says whether the sequence starts the pattern,
// repeats whether a group around it loops.
func (v *stepValidator) seq(steps []*Step, group *Step, first, repeats bool) {
	e, r := v.e, v.r
	for i, s := range steps {
		namePos := orPos(s.namePos, s.Pos)
		what := "step"
		if s.Group {
			what = "group"
		}
		switch {
		case s.Name == "" && group != nil:
			e.add(s.Pos, "step %d of group %q has no name", i+1, group.Name)
		case s.Name == "":
			e.add(s.Pos, "step %d has no name", i+1)
		case !identRE.MatchString(s.Name):
			e.add(namePos, "%s name %q is not a CEL identifier (letters, digits and _, not starting with a digit)", what, s.Name)
		case reserved[s.Name]:
			e.add(namePos, "%s name %q is reserved", what, s.Name)
		case v.names[s.Name] != nil:
			e.add(namePos, "duplicate step name %q (first at %s)", s.Name, v.names[s.Name].Pos)
		default:
			v.names[s.Name] = s
		}
		if _, ok := s.set["step"]; ok && s.Group {
			e.add(optPos(s, "step"), "a pattern element has either step or group, not both")
		}
		if _, ok := s.set["steps"]; ok && !s.Group {
			e.add(optPos(s, "steps"), "steps belong to a group: write group: NAME with steps, or drop steps")
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
				if group != nil {
					e.add(optPos(s, "contiguity"), "contiguity on the first step of group %q has no meaning: the group's contiguity relates it to what comes before, and the group's loop to its previous round", group.Name)
				} else {
					e.add(optPos(s, "contiguity"), "contiguity on the first step has no meaning: it relates a step to the previous one")
				}
			}
		}
		switch {
		case s.Max == 0:
			e.add(optPos(s, "times"), "%s %q takes no event (max 0)", what, s.Name)
		case s.Min < 1 && !(s.Min == 0 && s.Optional):
			e.add(optPos(s, "times"), "%s %q has a minimum count below 1", what, s.Name)
		case s.Max > 0 && s.Min > s.Max:
			e.add(optPos(s, "times"), "%s %q has a minimum count above its maximum", what, s.Name)
		}
		if s.Group {
			v.group(s, first && i == 0, repeats)
			continue
		}
		if s.Within < 0 {
			e.add(optPos(s, "within"), "within must be positive")
		}
		if s.Within > 0 && r.Within > 0 && s.Within > r.Within {
			e.add(optPos(s, "within"), "step within %s is longer than the rule's within %s", s.Within, r.Within)
		}
		if s.Within > 0 && first && i == 0 && !s.Looping() && !repeats {
			e.add(optPos(s, "within"), "within on the first step has no meaning: it bounds the time from the previous step (use the rule's within)")
		}
		if s.Not {
			v.not(steps, i, group)
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
}

// group checks a group's own options (Flink's GroupPattern rejects where,
// greedy and negation) and then its steps.
func (v *stepValidator) group(g *Step, first, repeats bool) {
	e := v.e
	if len(g.Steps) == 0 {
		e.add(orPos(g.namePos, g.Pos), "group %q has no steps: list them under steps", g.Name)
	}
	if _, ok := g.set["where"]; ok || g.Where != "" {
		e.add(optPos(g, "where"), "group %q takes no where: a group's steps carry the conditions", g.Name)
	}
	if g.Not {
		e.add(optPos(g, "not"), "group %q cannot be a not step: negate a single step instead", g.Name)
	}
	if stepHas(g, "greedy") {
		e.add(optPos(g, "greedy"), "greedy does not apply to a group (Flink rejects it on a group pattern): make a looping step inside it greedy instead")
	}
	if _, ok := g.set["within"]; ok || g.Within != 0 {
		e.add(optPos(g, "within"), "within does not apply to a group: put it on the rule or on the group's steps")
	}
	if !g.Looping() {
		for _, opt := range []string{"loop", "until"} {
			if stepHas(g, opt) {
				e.add(optPos(g, opt), "%s applies to looping groups only (times N.., N..M or N with N > 1); group %q runs once", opt, g.Name)
			}
		}
	}
	if len(g.Steps) == 0 {
		return
	}
	if g.Max < 0 && allSkippable(g.Steps) {
		e.add(orPos(g.namePos, g.Pos), "every step of looping group %q is optional: a round could take no event and the group would repeat without end; make one step mandatory", g.Name)
	}
	if last := g.Steps[len(g.Steps)-1]; len(g.Steps) > 1 && last.Not && !notStrict(last) {
		e.add(last.Pos, "group %q cannot end with a relaxed not step: absence is checked up to the next step, which lies outside the group; write the not step after the group", g.Name)
	}
	v.seq(g.Steps, g, first, repeats || g.Looping())
}

// allSkippable reports whether every step of a sequence may take no event.
func allSkippable(steps []*Step) bool {
	for _, s := range steps {
		if s.Optional || s.Not {
			continue
		}
		if s.Group && allSkippable(s.Steps) {
			continue
		}
		return false
	}
	return true
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

// not checks the not step at index i of a sequence (the rule's pattern,
// or group's steps).
func (v *stepValidator) not(steps []*Step, i int, group *Step) {
	e, r := v.e, v.r
	s := steps[i]
	pos := s.Pos
	if i == 0 {
		if group != nil {
			e.add(pos, "group %q cannot start with a not step: absence is measured after an event", group.Name)
		} else {
			e.add(pos, "a pattern cannot start with a not step: absence is measured after an event")
		}
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
		prev := steps[i-1]
		switch {
		case prev.Not && notStrict(prev) == notStrict(s):
			// The same event (strict) or the same stretch of events
			// (relaxed) must fail both conditions.
			e.add(pos, "two not steps in a row with the same contiguity: merge their conditions with || into one step")
		case prev.Not && notStrict(s):
			// notFollowedBy(x).notNext(y): Flink's compiler keeps the
			// notNext and silently drops the notFollowedBy before it.
			e.add(pos, "a strict not step cannot follow a relaxed one (%q): write the strict one first; it forbids the event right after %s, the relaxed one every event up to the next step", prev.Name, lastPositive(steps, i))
		case prev.Not:
			// notNext(x).notFollowedBy(y) is supported: the event right
			// after the previous step must not match x, and no event
			// before the next step may match y.
		case prev.Optional && prev.Group:
			e.add(pos, "a not step cannot follow an optional group")
		case prev.Optional:
			e.add(pos, "a not step cannot follow an optional step")
		}
	}
	if group == nil && i == len(steps)-1 && !notStrict(s) && r.Within == 0 && s.Within == 0 {
		e.add(pos, "a pattern ending in a relaxed not step needs a within (the rule's, or the not step's own): absence is only known when the window closes")
	}
}

// notStrict reports whether a not step is Flink's notNext (strict) rather
// than notFollowedBy (relaxed, the default).
func notStrict(s *Step) bool { return s.Contiguity == Strict }

// lastPositive names the last step before index i that is not a not step.
func lastPositive(steps []*Step, i int) string {
	for j := i - 1; j >= 0; j-- {
		if !steps[j].Not {
			return strconv.Quote(steps[j].Name)
		}
	}
	return "the previous step"
}
