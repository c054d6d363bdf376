package rules

import (
	"fmt"
	"time"
)

// Pos is a position in a ruleset source file. Line and Col are 1-based; a
// zero Pos means "unknown".
type Pos struct {
	File string
	Line int
	Col  int
}

// String formats the position as file:line:col, the form every ruleset error
// starts with.
func (p Pos) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.File == "":
		return fmt.Sprintf("%d:%d", p.Line, p.Col)
	default:
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
	}
}

// Ruleset is one parsed ruleset document (docs/language.md). It is plain data:
// Parse fills it in, Compile type-checks its expressions.
type Ruleset struct {
	Name        string
	Description string
	Stream      Stream
	// Schema lists the typed event fields in source order. Empty means event
	// fields are dyn and unknown fields are not errors.
	Schema []SchemaField
	// Lists holds reference data readable from CEL as lists.NAME: the
	// items given in the ruleset (a typed list's as strings). A managed
	// list has no entry here.
	Lists map[string][]any
	// ListDecls holds the lists declared in the mapping form (typed or
	// managed), by name (lists.go).
	ListDecls map[string]*ListDecl
	Rules     []*Rule

	Pos Pos // position of the document

	// src and exprNodes let Compile map CEL error positions back into the
	// YAML source; both are empty for rulesets built in code.
	src       []byte
	exprNodes map[Pos]exprNode
}

// Stream says where a ruleset's events come from and how they are keyed and
// timed.
type Stream struct {
	Topic string
	// Key is a CEL expression over event giving the partition key. Empty means
	// the record key (Kafka key; a recorded file without keys is one key).
	Key    string
	KeyPos Pos
	// Time is a CEL expression giving event time: a timestamp, an int of epoch
	// milliseconds or an RFC 3339 string. Empty means the record timestamp
	// (Kafka timestamp; for files the line number as milliseconds).
	Time    string
	TimePos Pos
	// MaxOutOfOrderness bounds how late an event may arrive: the watermark is
	// the max event time seen minus this.
	MaxOutOfOrderness time.Duration
	// IdleTimeout is how long a partition may be quiet before its watermark
	// follows the wall clock (serve only).
	IdleTimeout time.Duration
	// MaxClockSkew bounds how far ahead of the wall clock an event's time
	// may be under serve: an event further ahead is dead-lettered and never
	// moves the watermark, so that one future timestamp cannot make the
	// rest of its partition late. Zero: not set, the engine's default
	// applies; NoMaxClockSkew (`max_clock_skew: 0s`): no bound.
	MaxClockSkew time.Duration
}

// NoMaxClockSkew is Stream.MaxClockSkew of a ruleset that turns the bound
// off (`max_clock_skew: 0s`): zero means the field is not set.
const NoMaxClockSkew time.Duration = -1

// SchemaField is one typed event field.
type SchemaField struct {
	Name string
	// Type is one of string, int, uint, double, bool, timestamp, duration,
	// bytes, list, map, dyn.
	Type string
	Pos  Pos
}

// Severity of a rule's alerts.
type Severity string

// Severities, in increasing order.
const (
	SeverityInfo     Severity = "info"
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// Rule is a single-event rule (When set), a sequence rule (Pattern set) or
// an aggregate rule (Aggregate set).
type Rule struct {
	ID          string
	Description string
	Severity    Severity
	Enabled     bool // default true
	// When is the condition of a single-event rule.
	When    string
	WhenPos Pos
	Pattern []*Step
	// Aggregate is the body of an aggregate rule.
	Aggregate *Aggregate
	// Within bounds a match from its first event to its last (0 = unbounded).
	Within time.Duration
	Skip   Skip
	Alert  Alert

	Pos Pos // position of the rule's mapping

	// Positions of fields that validation may complain about.
	patternPos, withinPos, onTimeoutPos Pos
}

// Contiguity says which events may lie between two taken events.
type Contiguity string

// Contiguities, named as in docs/language.md (Flink names in comments).
const (
	Strict  Contiguity = "strict"  // next / consecutive()
	Relaxed Contiguity = "relaxed" // followedBy, the default
	Any     Contiguity = "any"     // followedByAny / allowCombinations()
)

// Step is one element of a sequence pattern: a step that takes events, or
// a group (Group set) whose Steps form a sub-pattern that the group's
// quantifier repeats as a whole (Flink's GroupPattern).
type Step struct {
	Name string
	// Group marks a group step (`group: NAME`); Steps holds its steps, in
	// order. A group has no Where and takes no event itself.
	Group    bool
	Steps    []*Step
	Where    string // CEL bool; empty means true
	WherePos Pos
	// Contiguity to the previous step (ignored on the first step).
	Contiguity Contiguity
	// Min and Max count how many events the step takes (a group: how
	// many rounds of its steps). Max < 0 means unbounded. A plain step is
	// Min=1, Max=1.
	Min, Max int
	Optional bool
	Greedy   bool
	// Loop is the contiguity between the elements of a looping step (a
	// group: between a round's last event and the next round's first).
	Loop     Contiguity
	Until    string // CEL stop condition of a looping step or group
	UntilPos Pos
	Not      bool
	// Within bounds the time from the previous taken event to this step's
	// event(s) (Flink's WithinType.PREVIOUS_AND_CURRENT). 0 = none.
	Within time.Duration

	Pos Pos // position of the step's mapping

	namePos Pos
	// set holds the positions of the options written in the source, so that
	// "greedy on a non-looping step" points at the word greedy.
	set map[string]Pos
}

// Looping reports whether the step (or group) repeats: it can take more
// than one event, or the group's steps more than one round.
func (s *Step) Looping() bool { return s.Max != 1 }

// EventSteps lists the steps of a pattern that take events, in pattern
// order, the steps of groups in place of the groups: the steps an alert's
// events map and CEL variables name.
func EventSteps(pattern []*Step) []*Step {
	return flattenGroups(pattern, func(s *Step) ([]*Step, bool) { return s.Steps, s.Group })
}

// flattenGroups lists steps with every group replaced by its own steps,
// flattened in turn; group says whether a step is a group, and its steps.
func flattenGroups[S any](steps []S, group func(S) ([]S, bool)) []S {
	var out []S
	for _, s := range steps {
		if inner, ok := group(s); ok {
			out = append(out, flattenGroups(inner, group)...)
			continue
		}
		out = append(out, s)
	}
	return out
}

// FindStep returns the step or group called name anywhere in a pattern,
// groups included, or nil.
func FindStep(pattern []*Step, name string) *Step {
	for _, s := range pattern {
		if s.Name == name {
			return s
		}
		if s.Group {
			if f := FindStep(s.Steps, name); f != nil {
				return f
			}
		}
	}
	return nil
}

// SkipKind is an after-match skip strategy.
type SkipKind string

// Skip strategies (Flink's AfterMatchSkipStrategy).
const (
	SkipNone          SkipKind = "none"
	SkipToNext        SkipKind = "to_next"
	SkipPastLastEvent SkipKind = "past_last_event"
	SkipToFirst       SkipKind = "to_first"
	SkipToLast        SkipKind = "to_last"
)

// Skip is a rule's after-match skip strategy; Step names the target of
// to_first and to_last.
type Skip struct {
	Kind SkipKind
	Step string
	Pos  Pos
}

// Alert says how a rule's matches become alerts.
type Alert struct {
	Summary    string // CEL string expression; empty: a default summary
	SummaryPos Pos
	Labels     map[string]string
	// OnTimeout emits timed-out partial matches as alerts with timeout=true.
	OnTimeout bool
	// Suppress, when set, drops a rule's alerts that repeat an earlier one
	// within a time (`alert.suppress`).
	Suppress *Suppress
}

// Suppress is a rule's alert suppression: after an alert, the rule's
// alerts for the same key with the same By values are dropped until For
// has passed in event time.
type Suppress struct {
	For    time.Duration
	ForPos Pos
	// By are CEL expressions over the alert's events (the summary's
	// variables); empty: the key alone.
	By    []string
	ByPos []Pos
	Pos   Pos
}

// Aggregate is the body of an aggregate rule: per key, the events that
// pass Where within a window of event time, summarized by Measures; the
// rule fires on the event that makes Having true.
type Aggregate struct {
	Where    string // CEL bool over event; empty: every event counts
	WherePos Pos
	// Window is the window's length. A sliding window ends at each counted
	// event; a tumbling one (Tumbling) is one of the fixed windows aligned
	// to the Unix epoch.
	Window    time.Duration
	WindowPos Pos
	Tumbling  bool
	// Measures in source order; their names are CEL variables of Having,
	// the summary and suppress.by.
	Measures  []*Measure
	Having    string // CEL bool over the measures and event
	HavingPos Pos
	Pos       Pos

	// measuresPos is where measures was written, when it was.
	measuresPos Pos
	// malformed marks an aggregate that was not a mapping, and was
	// reported: its missing fields are not reported again.
	malformed bool
}

// MeasureFunc is the function of a measure.
type MeasureFunc string

// Measure functions. Count and CountDistinct give an int, the others a
// double.
const (
	Count         MeasureFunc = "count"
	CountDistinct MeasureFunc = "count_distinct"
	Sum           MeasureFunc = "sum"
	Avg           MeasureFunc = "avg"
	Min           MeasureFunc = "min"
	Max           MeasureFunc = "max"
)

// Measure is one named measure of an aggregate rule, `NAME: FUNC(ARG)`.
type Measure struct {
	Name string
	Func MeasureFunc
	// Arg is the CEL expression over event the function reads; empty for
	// count().
	Arg    string
	ArgPos Pos
	Pos    Pos // position of the measure's value

	namePos Pos
	// malformed marks a value the parser could not read as FUNC(ARG), and
	// reported: its variable is still declared (as dyn) so that having's
	// references to it add no errors.
	malformed bool
}
