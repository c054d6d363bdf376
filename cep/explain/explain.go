// Package explain answers why a rule did or did not fire for one key: it
// replays recorded events through the matcher of `shrike run` (cep.Replay)
// with a matcher.Tracer on the key, and turns what the tracer saw into a
// trace (the key's records in the order the matcher sees them, the
// conditions evaluated, what became of each partial match and why, the
// alerts) and a verdict per rule: fired, with the alert ids, or not, with
// the furthest any partial match got and why it ended. `shrike explain`
// and the API's ExplainRuleset both use it; docs/explain.md documents the
// entries.
package explain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// DefaultMaxEntries bounds a trace when Options.MaxEntries is zero: a key
// with a great many events or partial matches still gets its verdicts.
const DefaultMaxEntries = 100_000

// MaxEventBytes is how much of a record's JSON an "event" entry carries;
// a longer event is cut and marked.
const MaxEventBytes = 4096

// Options configure Run.
type Options struct {
	// Rulesets to run; their rules are traced unless Rule narrows it.
	Rulesets []*rules.Compiled
	// Inputs are the recorded events, as for cep.Replay.
	Inputs []cep.Input
	// Key is the key to trace. Required.
	Key string
	// Rule narrows the trace to one rule: its id, or "ruleset/id" when
	// several rulesets have a rule of that id.
	Rule string
	// MaxEntries bounds the trace entries before the verdicts. Default
	// DefaultMaxEntries; negative means no bound.
	MaxEntries int
	// MaxRunsPerKey, MaxLineBytes, MaxClockSkew and Clock are cep.Replay's.
	MaxRunsPerKey int
	MaxLineBytes  int
	MaxClockSkew  time.Duration
	Clock         func() time.Time
}

// Result is a trace.
type Result struct {
	Key string
	// Entries are the trace in the order the matcher produced it, then one
	// verdict per traced rule.
	Entries []Entry
	// Truncated says that entries were left out past MaxEntries (the
	// verdicts still count everything).
	Truncated bool
	// Omitted counts the entries left out.
	Omitted int
	// Summary is the replay's.
	Summary cep.Summary
}

// Verdicts returns the verdict entries.
func (r *Result) Verdicts() []Entry {
	var out []Entry
	for _, e := range r.Entries {
		if e.Type == TypeVerdict {
			out = append(out, e)
		}
	}
	return out
}

// Errors of Run for bad Options: the caller's mistake.
var (
	ErrNoKey = errors.New("explain: no key to trace")
	// ErrRule wraps a Rule that names no rule, or one of several rulesets.
	ErrRule = errors.New("explain: bad rule")
)

// Run replays opts.Inputs through opts.Rulesets and traces opts.Key.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.Key == "" {
		return nil, ErrNoKey
	}
	traced, err := selectRules(opts.Rulesets, opts.Rule)
	if err != nil {
		return nil, err
	}
	if opts.MaxEntries == 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	b := newBuilder(opts, traced)
	tracer := matcher.NewTracer(opts.Key, b.add)
	sum, err := cep.Replay(ctx, cep.ReplayOptions{
		Rulesets:             opts.Rulesets,
		Inputs:               opts.Inputs,
		MaxRunsPerKey:        opts.MaxRunsPerKey,
		MaxLineBytes:         opts.MaxLineBytes,
		MaxClockSkew:         opts.MaxClockSkew,
		Clock:                opts.Clock,
		MaxDeadLetterReports: -1,
		Tracer:               tracer,
	})
	if err != nil {
		return nil, err
	}
	res := b.result()
	res.Summary = sum
	return res, nil
}

// ruleRef names a traced rule.
type ruleRef struct {
	ruleset string
	rule    *rules.CompiledRule
}

// selectRules lists the rules to trace: all, or the one spec names.
func selectRules(rulesets []*rules.Compiled, spec string) ([]ruleRef, error) {
	var all, picked []ruleRef
	for _, rs := range rulesets {
		for _, cr := range rs.Rules {
			r := ruleRef{rs.Name, cr}
			all = append(all, r)
			if spec == "" || spec == cr.ID || spec == rs.Name+"/"+cr.ID {
				picked = append(picked, r)
			}
		}
	}
	switch {
	case spec == "":
		return all, nil
	case len(picked) == 0:
		var ids []string
		for _, r := range all {
			ids = append(ids, r.ruleset+"/"+r.rule.ID)
		}
		return nil, fmt.Errorf("%w: no enabled rule %q in the rulesets (rules: %s)", ErrRule, spec, strings.Join(ids, ", "))
	case len(picked) > 1:
		return nil, fmt.Errorf("%w: rule %q is in several rulesets: name it as ruleset/rule", ErrRule, spec)
	}
	return picked, nil
}

// Entry types.
const (
	TypeEvent     = "event"
	TypeLate      = "late"
	TypeCondition = "condition"
	TypeRun       = "run"
	TypeAlert     = "alert"
	// TypeSuppressed: the rule's alert.suppress dropped an alert.
	TypeSuppressed = "suppressed"
	// TypeAggregate: an aggregate rule counted the record and evaluated
	// its having.
	TypeAggregate = "aggregate"
	TypeVerdict   = "verdict"
)

// Entry is one line of the trace (`shrike explain --json`); docs/explain.md
// documents every field. Times are RFC 3339 in UTC.
type Entry struct {
	Type string `json:"type"`
	// The rule (condition, run, alert, verdict). Version is set only for
	// an earlier version of a rule still finishing its partial matches.
	Ruleset string `json:"ruleset,omitempty"`
	Rule    string `json:"rule,omitempty"`
	Version string `json:"version,omitempty"`
	// The record (event, late) or the record that caused the entry: its
	// event time and position; absent when the watermark closed a window.
	Time      string `json:"time,omitempty"`
	Position  string `json:"position,omitempty"`
	Watermark string `json:"watermark,omitempty"`
	// Event is the record's JSON (event, late), cut at MaxEventBytes.
	Event     string `json:"event,omitempty"`
	EventCut  bool   `json:"event_truncated,omitempty"`
	Step      string `json:"step,omitempty"`
	Role      string `json:"role,omitempty"`
	Condition string `json:"condition,omitempty"`
	Result    string `json:"result,omitempty"`
	Error     string `json:"error,omitempty"`
	Run       int    `json:"run,omitempty"`
	From      int    `json:"from,omitempty"`
	Action    string `json:"action,omitempty"`
	NextStep  string `json:"next_step,omitempty"`
	StepIndex int    `json:"step_index,omitempty"`
	Steps     int    `json:"steps,omitempty"`
	Events    []Held `json:"events,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Window    string `json:"window,omitempty"`
	WindowOf  string `json:"window_of,omitempty"`
	Since     string `json:"since,omitempty"`
	Deadline  string `json:"deadline,omitempty"`
	At        string `json:"at,omitempty"`
	// EndOfInput says the window closed at the end of the input, when
	// the watermark moved to +∞ (at is then absent).
	EndOfInput  bool   `json:"end_of_input,omitempty"`
	NegatedStep string `json:"negated_step,omitempty"`
	AlertID     string `json:"alert_id,omitempty"`
	Timeout     bool   `json:"timeout,omitempty"`
	// Until is when the suppression that dropped the alert ends, and
	// SuppressedBy the alert that started it, when the trace saw it
	// (suppressed).
	Until        string `json:"until,omitempty"`
	SuppressedBy string `json:"suppressed_by,omitempty"`
	// Measures are an aggregate rule's measures after counting the
	// record (aggregate; the last counted record's in a verdict), null for
	// a min, max or avg over no value; Counted the events in its window
	// (aggregate) or all it counted (verdict); WindowStart and WindowEnd
	// the window.
	Measures    map[string]*float64 `json:"measures,omitempty"`
	Counted     *int                `json:"counted,omitempty"`
	WindowStart string              `json:"window_start,omitempty"`
	WindowEnd   string              `json:"window_end,omitempty"`
	Verdict     string              `json:"verdict,omitempty"`
	Fired       *int                `json:"fired,omitempty"`
	// Suppressed counts the rule's alerts alert.suppress dropped
	// (verdict).
	Suppressed   int       `json:"suppressed,omitempty"`
	AlertIDs     []string  `json:"alert_ids,omitempty"`
	Furthest     *Furthest `json:"furthest,omitempty"`
	UnmetStep    string    `json:"unmet_step,omitempty"`
	RecordsOfKey *int      `json:"records,omitempty"`
}

// Held is a record a partial match holds.
type Held struct {
	Step     string `json:"step"`
	Position string `json:"position"`
	Time     string `json:"time"`
}

// Furthest is the partial match of a rule that did not fire which got
// furthest: the most steps, then the most records.
type Furthest struct {
	Run       int    `json:"run"`
	StepIndex int    `json:"step_index"`
	Steps     int    `json:"steps"`
	Step      string `json:"step"`
	NextStep  string `json:"next_step,omitempty"`
	Events    []Held `json:"events"`
	// Reason it ended ("open" when it was still waiting at the end of the
	// input: a rule without `within` never closes), with the window that
	// expired, if one did.
	Reason     string `json:"reason"`
	Window     string `json:"window,omitempty"`
	WindowOf   string `json:"window_of,omitempty"`
	Deadline   string `json:"deadline,omitempty"`
	At         string `json:"at,omitempty"`
	EndOfInput bool   `json:"end_of_input,omitempty"`
	// NegatedStep is the `not` step that matched (reason negation).
	NegatedStep string `json:"negated_step,omitempty"`
}

// Verdicts.
const (
	VerdictFired      = "fired"
	VerdictDidNotFire = "did_not_fire"
)

// ReasonOpen is the reason of a furthest match still waiting at the end of
// the input.
const ReasonOpen = "open"

// builder turns tracer events into entries, keeping per traced rule what
// the verdict needs.
type builder struct {
	opts    Options
	traced  map[string]*ruleState // by "ruleset/rule"
	order   []*ruleState
	entries []Entry
	omitted int
	records int
}

type ruleState struct {
	ref    ruleRef
	alerts []string
	// suppressed counts the alerts alert.suppress dropped.
	suppressed int
	// counted and lastMeasures are an aggregate rule's: the records it
	// counted, and the measures after the last.
	counted      int
	lastMeasures map[string]*float64
	runs         map[int]*runState
	// ids renumbers the matcher's run numbers, which count the runs of
	// every rule, from 1 per traced rule.
	ids map[int]int
}

// runNo is the rule's own number of the matcher's run n (0 stays 0).
func (st *ruleState) runNo(n int) int {
	if n == 0 {
		return 0
	}
	id, ok := st.ids[n]
	if !ok {
		id = len(st.ids) + 1
		st.ids[n] = id
	}
	return id
}

type runState struct {
	id        int
	stepIndex int
	steps     int
	step      string
	next      string
	events    []Held
	end       *Entry
}

func newBuilder(opts Options, traced []ruleRef) *builder {
	b := &builder{opts: opts, traced: map[string]*ruleState{}}
	for _, r := range traced {
		st := &ruleState{ref: r, runs: map[int]*runState{}, ids: map[int]int{}}
		b.traced[r.ruleset+"/"+r.rule.ID] = st
		b.order = append(b.order, st)
	}
	return b
}

func (b *builder) push(e Entry) {
	if b.opts.MaxEntries > 0 && len(b.entries) >= b.opts.MaxEntries {
		b.omitted++
		return
	}
	b.entries = append(b.entries, e)
}

func rfc3339(ns int64) string {
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

// Position formats a record's position as `shrike run` names lines:
// file:line offline, topic/partition:offset on Kafka.
func Position(p matcher.Position) string {
	return p.Source + ":" + strconv.FormatInt(p.Offset, 10)
}

func watermark(ns int64) string {
	if ns == minInt64 {
		return ""
	}
	return rfc3339(ns)
}

const minInt64 = -1 << 63

// endOfInput is the time at which a replay's last watermark (+∞) closes the
// windows still open: nothing is noticed later.
const endOfInput = 1<<63 - 2

func held(ts []matcher.TakenRecord) []Held {
	out := make([]Held, len(ts))
	for i, t := range ts {
		out[i] = Held{Step: t.Step, Position: Position(t.Pos), Time: rfc3339(t.Time)}
	}
	return out
}

// stepIndex is the 1-based index of the furthest step a match took a
// record at.
func stepIndex(steps []string, ts []matcher.TakenRecord) (int, string) {
	best, name := 0, ""
	for _, t := range ts {
		if i := slices.Index(steps, t.Step) + 1; i > best {
			best, name = i, t.Step
		}
	}
	return best, name
}

// add converts one tracer event; it runs inside the replay, so it copies
// what it keeps (records are reused once matched).
func (b *builder) add(ev *matcher.TraceEvent) {
	e := Entry{}
	if ev.Record != nil {
		e.Time = rfc3339(ev.Record.Time)
		e.Position = Position(ev.Record.Pos)
	}
	switch ev.Kind {
	case matcher.TraceRecord, matcher.TraceLate:
		e.Type = TypeEvent
		if ev.Kind == matcher.TraceLate {
			e.Type = TypeLate
		}
		e.Watermark = watermark(ev.Watermark)
		raw := ev.Record.Event.Raw()
		if len(raw) > MaxEventBytes {
			raw, e.EventCut = raw[:MaxEventBytes], true
		}
		e.Event = string(raw)
		if ev.Kind == matcher.TraceRecord {
			b.records++
		}
		b.push(e)
		return
	}
	st := b.traced[ev.Rule.Ruleset+"/"+ev.Rule.Rule]
	if st == nil {
		return // a rule not traced
	}
	e.Ruleset, e.Rule, e.Version = ev.Rule.Ruleset, ev.Rule.Rule, ev.Rule.Version
	switch ev.Kind {
	case matcher.TraceCondition:
		e.Type = TypeCondition
		e.Step, e.Role, e.Condition, e.Run = ev.Step, ev.Role.String(), ev.Cond, st.runNo(ev.Run)
		switch {
		case ev.Err != nil:
			e.Result, e.Error = "error", ev.Err.Error()
		case ev.Held:
			e.Result = "held"
		default:
			e.Result = "failed"
		}
	case matcher.TraceRun:
		e.Type = TypeRun
		e.Run, e.From, e.Action = st.runNo(ev.Run), st.runNo(ev.From), ev.Action.String()
		e.Step, e.NextStep = ev.Step, ev.Next
		e.Steps = len(ev.Steps)
		e.StepIndex, _ = stepIndex(ev.Steps, ev.Taken)
		e.Events = held(ev.Taken)
		if ev.Reason != 0 {
			e.Reason = ev.Reason.String()
		}
		if ev.Window > 0 {
			e.Window = rules.FormatDuration(ev.Window)
			e.WindowOf = "rule"
			if ev.StepWindow {
				e.WindowOf = "step"
			}
			e.Since, e.Deadline = rfc3339(ev.Since), rfc3339(ev.Deadline)
			if ev.At >= endOfInput {
				e.EndOfInput = true
			} else {
				e.At = rfc3339(ev.At)
			}
		}
		e.NegatedStep = ev.Negated
		b.noteRun(st, ev, e)
	case matcher.TraceAlert:
		e.Type = TypeAlert
		e.Run, e.AlertID, e.Timeout = st.runNo(ev.Run), ev.Alert.ID, ev.Alert.Timeout
		e.Events = held(ev.Taken)
		if ev.Alert.Timeout && len(ev.Steps) > 0 {
			e.Steps = len(ev.Steps)
		}
		st.alerts = append(st.alerts, ev.Alert.ID)
	case matcher.TraceAggregate:
		e.Type = TypeAggregate
		e.Role, e.Condition = "having", ev.Cond
		switch {
		case ev.Err != nil:
			e.Result, e.Error = "error", ev.Err.Error()
		case ev.Fired:
			e.Result = "fired"
		case ev.Held:
			e.Result = "held"
		default:
			e.Result = "failed"
		}
		e.Measures = measures(ev.Measures)
		n := ev.Count
		e.Counted = &n
		e.WindowStart, e.WindowEnd = rfc3339(ev.WindowStart), rfc3339(ev.WindowEnd)
		st.counted++
		st.lastMeasures = e.Measures
	case matcher.TraceSuppressed:
		e.Type = TypeSuppressed
		e.Run, e.Events = st.runNo(ev.Run), held(ev.Taken)
		e.Until, e.SuppressedBy = rfc3339(ev.Until), ev.SuppressedBy
		st.suppressed++
	}
	b.push(e)
}

// measures converts an aggregate's measures; nil stands for no value.
func measures(ms []matcher.Measure) map[string]*float64 {
	out := make(map[string]*float64, len(ms))
	for _, m := range ms {
		if m.None {
			out[m.Name] = nil
			continue
		}
		v := m.Value
		out[m.Name] = &v
	}
	return out
}

// noteRun keeps what the verdict needs of a run entry.
func (b *builder) noteRun(st *ruleState, ev *matcher.TraceEvent, e Entry) {
	rs := st.runs[e.Run]
	if rs == nil {
		rs = &runState{id: e.Run}
		st.runs[e.Run] = rs
	}
	rs.stepIndex, rs.step = stepIndex(ev.Steps, ev.Taken)
	rs.steps, rs.next, rs.events = len(ev.Steps), ev.Next, e.Events
	if ev.Action == matcher.RunEnded || ev.Action == matcher.RunCompleted {
		end := e
		rs.end = &end
	} else {
		rs.end = nil
	}
}

// result appends the verdicts.
func (b *builder) result() *Result {
	res := &Result{Key: b.opts.Key, Entries: b.entries, Omitted: b.omitted, Truncated: b.omitted > 0}
	for _, st := range b.order {
		res.Entries = append(res.Entries, st.verdict(b.opts.Key, b.records))
	}
	return res
}

func (st *ruleState) verdict(key string, records int) Entry {
	fired := len(st.alerts)
	v := Entry{
		Type: TypeVerdict, Ruleset: st.ref.ruleset, Rule: st.ref.rule.ID,
		Fired: &fired, AlertIDs: st.alerts, RecordsOfKey: &records, Suppressed: st.suppressed,
	}
	events := st.ref.rule.EventSteps()
	if len(events) > 0 {
		v.Steps = len(events)
	}
	if fired > 0 {
		v.Verdict = VerdictFired
		return v
	}
	v.Verdict = VerdictDidNotFire
	if st.ref.rule.Aggregate != nil {
		counted := st.counted
		v.Counted, v.Measures = &counted, st.lastMeasures
		return v
	}
	var best *runState
	for _, rs := range st.runs {
		if best == nil || rs.stepIndex > best.stepIndex ||
			(rs.stepIndex == best.stepIndex && len(rs.events) > len(best.events)) ||
			(rs.stepIndex == best.stepIndex && len(rs.events) == len(best.events) && rs.id < best.id) {
			best = rs
		}
	}
	switch {
	case best != nil:
		f := &Furthest{
			Run: best.id, StepIndex: best.stepIndex, Steps: best.steps, Step: best.step,
			NextStep: best.next, Events: best.events, Reason: ReasonOpen,
		}
		if best.end != nil {
			f.Reason = best.end.Reason
			f.Window, f.WindowOf, f.Deadline, f.At = best.end.Window, best.end.WindowOf, best.end.Deadline, best.end.At
			f.EndOfInput = best.end.EndOfInput
			f.NegatedStep = best.end.NegatedStep
			if best.end.Action == matcher.RunCompleted.String() {
				f.Reason = "completed"
			}
		}
		v.Furthest = f
		v.UnmetStep = best.next
	case len(events) > 0:
		v.UnmetStep = events[0].Name
	}
	return v
}
