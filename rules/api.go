package rules

// This file holds the exported surface the rest of Shrike builds on.

import (
	"context"
	"fmt"
)

// CompileOptions configure Compile. Zero values are documented defaults.
type CompileOptions struct {
	// CostLimit bounds the CEL cost of one evaluation of one expression.
	// Default 100000.
	CostLimit uint64
	// MaxSourceBytes rejects larger ruleset sources. Default 1 MiB.
	MaxSourceBytes int
	// MaxRules rejects a ruleset of more rules, disabled ones included,
	// before any is compiled: compiling costs about a millisecond and
	// tens of kilobytes per rule, so a source within MaxSourceBytes could
	// otherwise hold 20,000 rules and cost seconds and hundreds of MB to
	// load. Default DefaultMaxRules.
	MaxRules int
	// Lists holds the items of the managed lists the ruleset declares;
	// compiled rulesets read them from it at run time, so that Set on it
	// changes what they see without recompiling. Nil: a store of the
	// ruleset's own, every managed list empty (Compiled.ManagedItems
	// reaches it).
	Lists *ManagedLists
}

// Compiled is a ruleset whose expressions all type-checked and compiled.
type Compiled struct {
	*Ruleset
	// Source is the YAML it was parsed from.
	Source []byte
	// Key and Time are the stream's key and time expressions; nil when the
	// ruleset uses the record's own key or timestamp.
	Key  *Expr
	Time *Expr
	// Rules holds the enabled rules in source order.
	Rules []*CompiledRule
	// Warnings are problems that do not stop the ruleset from loading
	// (each with Warning set), sorted by position.
	Warnings ErrorList
	// Shadow marks the candidate version running beside the live ruleset of
	// the same name (docs/operations.md#shadow-versions): the engine keeps
	// its partial matches apart and sends its alerts to the shadow alerts
	// topic. It is set by whoever deploys the ruleset, not by the source.
	Shadow bool
	// ManagedItems holds the items of the managed lists the ruleset
	// declares (CompileOptions.Lists).
	ManagedItems *ManagedLists
}

// CompiledRule is one enabled rule with its compiled expressions.
type CompiledRule struct {
	*Rule
	// Version is a short hash of the rule's definition: it stays the same
	// while the rule is unchanged, so alert ids stay stable.
	Version string
	When    *Expr // single-event rules
	Steps   []*CompiledStep
	// Aggregate is an aggregate rule's compiled body.
	Aggregate *CompiledAggregate
	Summary   *Expr // nil: the default summary
	// SuppressBy are the compiled alert.suppress.by expressions.
	SuppressBy []*Expr
}

// CompiledAggregate is an aggregate rule's body with its expressions
// compiled.
type CompiledAggregate struct {
	*Aggregate
	Where *Expr // nil: every event counts
	// Args holds each measure's compiled argument, in Measures' order; nil
	// for count().
	Args   []*Expr
	Having *Expr
}

// MeasureVars supplies an aggregate rule's measures to the expressions
// that read them (having, the summary, suppress.by). Measure returns
// measure i's value (in Aggregate.Measures' order): an int for count and
// count_distinct, a float64 for the others; ok is false when it has none
// (min, max and avg over no value), and the evaluation then fails. The CEL
// values types.Int and types.Double are taken as they are: handing them
// out spares boxing a float64 on each read. Expressions find it by a type
// assertion on the Vars they are given.
type MeasureVars interface {
	Vars
	Measure(i int) (v any, ok bool)
}

// CompiledStep is one step of a sequence rule.
type CompiledStep struct {
	*Step
	Where *Expr // nil: true
	Until *Expr // nil: no until
	// Steps holds a group's compiled steps (Step.Group).
	Steps []*CompiledStep
}

// EventSteps lists the compiled steps of the rule that take events, in
// pattern order, the steps of groups in place of the groups (see
// rules.EventSteps).
func (r *CompiledRule) EventSteps() []*CompiledStep {
	return flattenGroups(r.Steps, func(s *CompiledStep) ([]*CompiledStep, bool) { return s.Steps, s.Group })
}

// Expr is one compiled CEL expression. It is safe for concurrent use;
// the Events it evaluates are not (see Event).
type Expr struct {
	Source string
	Pos    Pos
	// Steps names the step variables the expression reads, sorted. Empty,
	// with Measures empty, means the value depends on the event alone, so
	// callers may evaluate it once per event and share the result.
	Steps []string
	// Measures names the measure variables the expression reads (having
	// and an aggregate rule's summary), sorted: like Steps, non-empty means
	// the value depends on more than the event.
	Measures []string
	// Conjuncts holds the operands of a top-level && chain, each compiled
	// on its own and ordered cheapest first (event-only before step-reading);
	// nil when the expression is not a conjunction. Evaluating them in order
	// and stopping at the first false gives the expression's value.
	Conjuncts []*Expr

	exprRuntime
}

// Native reports whether the expression is evaluated without the CEL
// interpreter (a field, a negated field or a field compared with a
// literal): cheap enough to evaluate speculatively.
func (e *Expr) Native() bool { return e.fast != nil }

// Vars supplies step variables to an evaluation.
type Vars interface {
	// StepEvents returns the events the partial match has assigned to step so
	// far; ok is false when it has none.
	StepEvents(step string) (evs []*Event, ok bool)
}

// Compile type-checks and compiles every expression of rs. It validates
// rs first, so a Ruleset built in code gets the same checks as a parsed
// one. On failure the error is an ErrorList holding every problem.
func Compile(rs *Ruleset, opts CompileOptions) (*Compiled, error) {
	if e := checkRuleCount(len(rs.Rules), opts.MaxRules, rs.Pos); e != nil {
		return nil, ErrorList{e}
	}
	fillDefaults(rs)
	list := validate(rs)
	c, more := compileRuleset(context.Background(), rs, opts)
	if err := append(list, more...).err(); err != nil {
		return nil, err
	}
	return c, nil
}

// Load parses, validates and compiles a ruleset source, reporting the
// problems of all three phases together.
func Load(filename string, src []byte, opts CompileOptions) (*Compiled, error) {
	return LoadContext(context.Background(), filename, src, opts)
}

// LoadContext is Load that gives up between rules once ctx ends, for
// callers serving a client that may leave (the API's ValidateRuleset and
// TestRuleset); the error then wraps ctx's.
func LoadContext(ctx context.Context, filename string, src []byte, opts CompileOptions) (*Compiled, error) {
	rs, list := parse(filename, src, opts)
	if rs == nil {
		return nil, list.err()
	}
	list = append(list, validate(rs)...)
	c, more := compileRuleset(ctx, rs, opts)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load %s: %w", filename, err)
	}
	if err := append(list, more...).err(); err != nil {
		return nil, err
	}
	c.Source = src
	return c, nil
}
