package rules

import "cel.dev/cel-go/common/types/ref"

// This file fixes the exported surface the rest of Shrike builds on. The
// bodies are placeholders until the rules package lands in full.

// CompileOptions configure Compile. Zero values are documented defaults.
type CompileOptions struct {
	// CostLimit bounds the CEL cost of one evaluation of one expression.
	// Default 100000.
	CostLimit uint64
	// MaxSourceBytes rejects larger ruleset sources. Default 1 MiB.
	MaxSourceBytes int
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
}

// CompiledRule is one enabled rule with its compiled expressions.
type CompiledRule struct {
	*Rule
	// Version is a short hash of the rule's definition: it stays the same
	// while the rule is unchanged, so alert ids stay stable.
	Version string
	When    *Expr // single-event rules
	Steps   []*CompiledStep
	Summary *Expr // nil: the default summary
}

// CompiledStep is one step of a sequence rule.
type CompiledStep struct {
	*Step
	Where *Expr // nil: true
	Until *Expr // nil: no until
}

// Expr is one compiled CEL expression.
type Expr struct {
	Source string
	Pos    Pos
	// Steps names the step variables the expression reads, sorted. Empty
	// means the value depends on the event alone, so callers may evaluate it
	// once per event and share the result.
	Steps []string
}

// Vars supplies step variables to an evaluation.
type Vars interface {
	// StepEvents returns the events the partial match has assigned to step so
	// far; ok is false when it has none.
	StepEvents(step string) (evs []*Event, ok bool)
}

// Event is one decoded event: its original JSON bytes plus the fields
// decoded on demand. It is the CEL value bound to `event`.
type Event struct {
	raw []byte
}

// ParseEvent checks that raw is one JSON object and returns it as an Event.
// The Event keeps raw; the caller must not modify it afterwards.
func ParseEvent(raw []byte) (*Event, error) { return &Event{raw: raw}, nil }

// Raw returns the event's original bytes.
func (e *Event) Raw() []byte { return e.raw }

// Parse parses and validates a ruleset document.
func Parse(filename string, src []byte) (*Ruleset, error) { panic("rules: not implemented") }

// Compile type-checks and compiles every expression of rs.
func Compile(rs *Ruleset, opts CompileOptions) (*Compiled, error) { panic("rules: not implemented") }

// Load parses, validates and compiles a ruleset source.
func Load(filename string, src []byte, opts CompileOptions) (*Compiled, error) {
	panic("rules: not implemented")
}

// Eval evaluates the expression for ev with the given step variables.
func (e *Expr) Eval(ev *Event, vars Vars) (ref.Val, error) { panic("rules: not implemented") }

// EvalBool evaluates a condition.
func (e *Expr) EvalBool(ev *Event, vars Vars) (bool, error) { panic("rules: not implemented") }

// EvalString evaluates a string expression (an alert summary).
func (e *Expr) EvalString(ev *Event, vars Vars) (string, error) { panic("rules: not implemented") }

// EvalKey evaluates a key expression; scalars are formatted as strings.
func (e *Expr) EvalKey(ev *Event) (string, error) { panic("rules: not implemented") }

// EvalTime evaluates a time expression to Unix nanoseconds.
func (e *Expr) EvalTime(ev *Event) (int64, error) { panic("rules: not implemented") }
