package matcher

import (
	"slices"
	"strings"
	"time"

	"github.com/shrike-cep/shrike/nfa"
	"github.com/shrike-cep/shrike/rules"
)

// A Tracer follows one key through the matcher, for `shrike explain`: every
// record of the key as it is matched, each condition evaluated for it, what
// became of each partial match and why, and the alerts. Every other key
// runs as usual and is not traced.
//
// Tracing costs nothing while off: a Partition without a Tracer checks one
// nil pointer per record and per step. For the traced key the matcher takes
// no shortcut (the conditions Prepare evaluated are evaluated again, and
// rules the record cannot change are stepped anyway), so that every
// condition and partial match shows; the shortcuts decide what stepping
// would, so the results are the same.
//
// One Tracer may serve several Partitions driven from one goroutine (the
// lanes of a replay): run numbers are then unique across them. It is not
// safe for concurrent use.
type Tracer struct {
	key  string
	emit func(*TraceEvent)
	ids  map[*run]int
	next int
	// leaves maps each rule's condition leaves to the step they guard.
	leaves map[*planRule]map[*rules.Expr]leafStep
	// seen lists the conditions reported for the record being matched, so
	// that a leaf evaluated for the take and the ignore edge of a run
	// shows once.
	seen []seenCond
	// suppressors are the ids of the alerts that started suppression
	// entries, by rule and suppress.by value; emittingBy is the value of
	// the alert being emitted (emitting), for alert to note.
	suppressors map[suppressorKey]string
	emittingBy  *suppressorKey
}

type leafStep struct {
	step string
	role CondRole
}

type seenCond struct {
	rule *planRule
	leaf *rules.Expr
	run  int
}

// NewTracer returns a Tracer of key that hands each TraceEvent to emit, on
// the goroutine that drives the Partition. emit must not keep the event's
// Record or Alert past the call unless the caller keeps the records alive
// (a replay does).
func NewTracer(key string, emit func(*TraceEvent)) *Tracer {
	return &Tracer{key: key, emit: emit, ids: map[*run]int{}, leaves: map[*planRule]map[*rules.Expr]leafStep{}}
}

// Key is the traced key.
func (t *Tracer) Key() string { return t.key }

// TraceKind says what a TraceEvent reports.
type TraceKind uint8

// Trace event kinds.
const (
	// TraceRecord: a record of the key is matched (it passed the
	// watermark), before the rules see it.
	TraceRecord TraceKind = iota + 1
	// TraceLate: a record of the key arrived behind the watermark and is
	// not matched.
	TraceLate
	// TraceCondition: a condition of a rule was evaluated for the record.
	TraceCondition
	// TraceRun: something happened to a partial match (Action).
	TraceRun
	// TraceAlert: an alert was emitted.
	TraceAlert
	// TraceAggregate: an aggregate rule counted the record and evaluated
	// its having over the window (Measures, Count, Held, Err, Cond).
	TraceAggregate

	// TraceSuppressed: the rule's alert.suppress dropped an alert (Until,
	// SuppressedBy).
	TraceSuppressed
)

// CondRole says which part of a rule a condition is.
type CondRole uint8

// Condition roles.
const (
	RoleWhere CondRole = iota // a step's `where` (a negated step's too)
	RoleUntil                 // a looping step's `until`
	RoleWhen                  // a single-event rule's `when`
)

func (r CondRole) String() string {
	return [...]string{"where", "until", "when"}[r]
}

// RunAction is what happened to a partial match.
type RunAction uint8

// Run actions.
const (
	// RunStarted: the record started a partial match.
	RunStarted RunAction = iota + 1
	// RunTook: the partial match took the record and waits for more.
	RunTook
	// RunIgnored: the partial match skipped the record (relaxed
	// contiguity) and waits on.
	RunIgnored
	// RunCompleted: the partial match is a match. Its alert follows, or,
	// under a skip strategy, once no earlier partial match is open.
	RunCompleted
	// RunEnded: the partial match ended without an alert of its own, or
	// with a timeout alert (Reason).
	RunEnded
)

func (a RunAction) String() string {
	return [...]string{"", "started", "took", "ignored", "completed", "ended"}[a]
}

// EndReason says why a partial match ended.
type EndReason uint8

// Why partial matches end.
const (
	// EndWindowExpired: the rule's or a step's `within` passed before the
	// match completed, and the rule has no timeout alerts.
	EndWindowExpired EndReason = iota + 1
	// EndTimedOut: the window passed and the rule reports timed-out
	// partial matches (`alert: {on_timeout: true}`): a timeout alert.
	EndTimedOut
	// EndContiguityBroken: the record did not fit the step the match
	// waited at, and the step lets no record pass in between (strict
	// contiguity).
	EndContiguityBroken
	// EndNegation: the record matched a `not` step.
	EndNegation
	// EndSkipPruned: an earlier match pruned it (the rule's skip strategy).
	EndSkipPruned
	// EndCapDropped: the key held more partial matches of the rule than the
	// per-key cap; the oldest were dropped.
	EndCapDropped
)

func (r EndReason) String() string {
	return [...]string{"", "window_expired", "timed_out", "contiguity_broken", "negation", "skip_pruned", "cap_dropped"}[r]
}

// TraceEvent is one thing the Tracer saw. Fields not listed for a Kind are
// zero.
type TraceEvent struct {
	Kind TraceKind
	// Rule is the rule concerned (TraceCondition, TraceRun, TraceAlert).
	Rule RuleID
	// Steps are the rule's step names in pattern order; empty for a
	// single-event rule.
	Steps []string
	// Record is the record being matched: for TraceRecord and TraceLate
	// the record reported, for the others the one that caused it, nil
	// when a window closed because the watermark passed it.
	Record *Record
	// Watermark is the Partition's watermark (Unix ns) at the time.
	Watermark int64

	// Step, Cond, Role, Held and Err describe a TraceCondition: the step
	// whose condition (the CEL source of one conjunct) was evaluated, and
	// its value or error (an error counts as false).
	Step string
	Cond string
	Role CondRole
	Held bool
	Err  error

	// Run numbers the partial match (from 1, per Tracer); for a
	// TraceCondition, the match the condition was evaluated for, 0 for a
	// match the record would start. From is the match a branch split off
	// (a record both taken and skipped), 0 otherwise.
	Run, From int
	// Action says what happened to it (TraceRun).
	Action RunAction
	// Next is the step the match waits at after the record; empty once
	// complete. For RunEnded, the step it waited at.
	Next string
	// Taken are the match's records in match order, with their steps.
	Taken []TakenRecord
	// Reason, for RunEnded.
	Reason EndReason
	// Window is the `within` that expired (EndWindowExpired,
	// EndTimedOut); StepWindow says it is a step's, not the rule's. Since
	// is when it started counting (the match's first record, or for a
	// step's window the last taken one), Deadline when it closed and At
	// the time the matcher noticed (the record's time, or the watermark).
	Window          time.Duration
	StepWindow      bool
	Since, Deadline int64
	At              int64
	// Negated names the `not` step that matched (EndNegation).
	Negated string

	// Alert is the alert emitted (TraceAlert; EndTimedOut with a timeout
	// alert).
	Alert *Alert

	// Measures are an aggregate rule's measures after counting the record,
	// Count the events in its window, WindowStart and WindowEnd the
	// window (TraceAggregate); Fired says the record made having true.
	Measures               []Measure
	Count                  int
	WindowStart, WindowEnd int64
	Fired                  bool

	// Until is when the suppression that dropped the alert ends
	// (TraceSuppressed, Unix ns), and SuppressedBy the id of the earlier
	// alert that started it, when this Tracer saw it (empty when it came
	// before tracing began, e.g. in a restored key state).
	Until        int64
	SuppressedBy string
}

// TakenRecord is one record a partial match holds.
type TakenRecord struct {
	Step string
	Pos  Position
	Time int64
}

// runID numbers a run, assigning the next number to one not seen yet (a
// run restored from a snapshot, or created by a branch).
func (t *Tracer) runID(r *run) int {
	if id, ok := t.ids[r]; ok {
		return id
	}
	t.next++
	t.ids[r] = t.next
	return t.next
}

func (t *Tracer) base(kind TraceKind, p *Partition, pr *planRule, r *Record) *TraceEvent {
	ev := &TraceEvent{Kind: kind, Record: r, Watermark: p.wm}
	if pr != nil {
		ev.Rule = RuleID{Ruleset: pr.ruleset.Name, Rule: pr.rule.ID}
		if pr.draining {
			ev.Rule.Version = pr.rule.Version
		}
		if pr.auto != nil {
			ev.Steps = pr.auto.StepNames
		}
	}
	return ev
}

// record reports a record of the key about to be matched.
func (t *Tracer) record(p *Partition, r *Record) {
	t.seen = t.seen[:0]
	t.emit(t.base(TraceRecord, p, nil, r))
}

// late reports a record of the key behind the watermark.
func (t *Tracer) late(p *Partition, r *Record) {
	t.emit(t.base(TraceLate, p, nil, r))
}

// condition reports one evaluated condition leaf, once per record, rule,
// partial match and leaf. It reports whether it was new.
func (t *Tracer) condition(p *Partition, pr *planRule, e *rules.Expr, cur *run, r *Record, held bool, err error) bool {
	id := 0
	if cur != nil && cur != pr.startRun {
		id = t.runID(cur)
	}
	s := seenCond{pr, e, id}
	if slices.Contains(t.seen, s) {
		return false
	}
	t.seen = append(t.seen, s)
	ls := t.leafStep(pr, e)
	ev := t.base(TraceCondition, p, pr, r)
	ev.Step, ev.Role, ev.Cond, ev.Held, ev.Err, ev.Run = ls.step, ls.role, e.Source, held, err, id
	t.emit(ev)
	return true
}

// leafStep finds the step a condition leaf guards.
func (t *Tracer) leafStep(pr *planRule, e *rules.Expr) leafStep {
	m := t.leaves[pr]
	if m == nil {
		m = map[*rules.Expr]leafStep{}
		var add func(x *rules.Expr, ls leafStep)
		add = func(x *rules.Expr, ls leafStep) {
			if x == nil {
				return
			}
			m[x] = ls
			for _, c := range x.Conjuncts {
				add(c, ls)
			}
		}
		add(pr.rule.When, leafStep{role: RoleWhen})
		if pr.rule.Aggregate != nil {
			add(pr.rule.Aggregate.Where, leafStep{role: RoleWhere})
		}
		var addSteps func(steps []*rules.CompiledStep)
		addSteps = func(steps []*rules.CompiledStep) {
			for _, s := range steps {
				add(s.Where, leafStep{step: s.Name, role: RoleWhere})
				add(s.Until, leafStep{step: s.Name, role: RoleUntil})
				addSteps(s.Steps)
			}
		}
		addSteps(pr.rule.Steps)
		t.leaves[pr] = m
	}
	return m[e]
}

// taken lists the records a run holds, in match order.
func (p *Partition) taken(pr *planRule, r *run) []TakenRecord {
	var out []TakenRecord
	for n := r.last; n != nil; n = n.prev {
		tr := TakenRecord{Pos: p.position(n.ev), Time: n.ev.time}
		if pr.auto != nil && n.step >= 0 && n.step < len(pr.auto.StepNames) {
			tr.Step = pr.auto.StepNames[n.step]
		}
		out = append(out, tr)
	}
	slices.Reverse(out)
	return out
}

// waitsAt names the step a run in state s waits at: empty once complete.
func waitsAt(s *nfa.State) string {
	if s == nil || s.Kind == nfa.Final {
		return ""
	}
	return s.Name
}

// step reports what stepping cur on r produced (Partition.step): the runs
// it started, took the record into, or kept waiting, and cur's end when
// the record broke it.
func (t *Tracer) step(p *Partition, pr *planRule, cur *run, produced []*run, r *Record) {
	fromStart := cur == pr.startRun
	curID := 0
	if !fromStart {
		curID = t.runID(cur)
	}
	negated := ""
	for _, nr := range produced {
		if nr.state.Kind == nfa.Stop {
			negated = nr.state.Name
		}
	}
	if !fromStart {
		switch {
		case negated != "":
			ev := t.base(TraceRun, p, pr, r)
			ev.Run, ev.Action, ev.Reason, ev.Negated = curID, RunEnded, EndNegation, negated
			ev.Next, ev.Taken = waitsAt(cur.state), p.taken(pr, cur)
			t.emit(ev)
		case len(produced) == 0:
			ev := t.base(TraceRun, p, pr, r)
			ev.Run, ev.Action, ev.Reason = curID, RunEnded, EndContiguityBroken
			ev.Next, ev.Taken = waitsAt(cur.state), p.taken(pr, cur)
			t.emit(ev)
		}
	}
	claimed := fromStart // a run from the start state is always new
	for _, nr := range produced {
		kind := nr.state.Kind
		if kind == nfa.Stop || (negated != "" && kind != nfa.Final) {
			continue // the forbidden record discards the branch
		}
		took := nr.last != nil && nr.last != cur.last
		ev := t.base(TraceRun, p, pr, r)
		switch {
		case !claimed:
			claimed = true
			t.ids[nr] = curID
			ev.Run = curID
		default:
			ev.Run = t.runID(nr)
			if !fromStart {
				ev.From = curID
			}
		}
		switch {
		case kind == nfa.Final:
			ev.Action = RunCompleted
		case fromStart:
			ev.Action = RunStarted
		case took:
			ev.Action = RunTook
		default:
			ev.Action = RunIgnored
		}
		if took && nr.last.step >= 0 && nr.last.step < len(pr.auto.StepNames) {
			ev.Step = pr.auto.StepNames[nr.last.step]
		}
		ev.Next, ev.Taken = waitsAt(nr.state), p.taken(pr, nr)
		t.emit(ev)
	}
}

// ended reports runs that end without a record of their own doing:
// pruned by a skip strategy or dropped by the cap.
func (t *Tracer) ended(p *Partition, pr *planRule, runs []*run, reason EndReason, r *Record) {
	for _, rn := range runs {
		ev := t.base(TraceRun, p, pr, r)
		ev.Run, ev.Action, ev.Reason = t.runID(rn), RunEnded, reason
		ev.Next, ev.Taken = waitsAt(rn.state), p.taken(pr, rn)
		t.emit(ev)
	}
}

// expired reports a run whose window closed at time at: completed (an
// absence match waiting in a Pending state), or ended with or without a
// timeout alert.
func (t *Tracer) expired(p *Partition, pr *planRule, rn *run, at int64, r *Record) {
	ev := t.base(TraceRun, p, pr, r)
	if r == nil {
		// Closed by the watermark, not by a record: report the watermark
		// rather than the last instant before it.
		at = p.wm
	}
	ev.Run, ev.At = t.runID(rn), at
	ev.Next, ev.Taken = waitsAt(rn.state), p.taken(pr, rn)
	w, sw := int64(pr.auto.Window), int64(rn.state.Window)
	switch {
	case sw > 0 && at >= rn.prevTime+sw && (w <= 0 || rn.prevTime+sw <= rn.startTime+w):
		ev.Window, ev.StepWindow, ev.Since, ev.Deadline = rn.state.Window, true, rn.prevTime, rn.prevTime+sw
	default:
		ev.Window, ev.Since, ev.Deadline = pr.auto.Window, rn.startTime, rn.startTime+w
	}
	switch {
	case rn.state.Kind == nfa.Pending:
		ev.Action = RunCompleted
	case pr.rule.Alert.OnTimeout:
		ev.Action, ev.Reason = RunEnded, EndTimedOut
	default:
		ev.Action, ev.Reason = RunEnded, EndWindowExpired
	}
	t.emit(ev)
}

// aggregate reports an aggregate rule's having, evaluated after counting
// r with the measures p.aggVars holds.
func (t *Tracer) aggregate(p *Partition, pr *planRule, r *Record, s *aggState, held, fired bool, err error) {
	ev := t.base(TraceAggregate, p, pr, r)
	a := pr.agg
	for i, m := range p.aggVars.vals {
		ev.Measures = append(ev.Measures, Measure{Name: a.names[i], Value: m.v, Int: m.isInt, None: !m.ok})
	}
	ev.Count = s.len()
	if a.tumbling {
		ev.WindowStart, ev.WindowEnd = s.start, s.start+a.window
	} else {
		ev.WindowStart, ev.WindowEnd = r.Time-a.window, r.Time
	}
	ev.Cond, ev.Held, ev.Fired, ev.Err = pr.rule.Aggregate.Having.Source, held, fired, err
	t.emit(ev)
}

// alert reports an alert; m is the run it came from, nil for a
// single-event rule.
func (t *Tracer) alert(p *Partition, pr *planRule, m *run, a *Alert, r *Record) {
	ev := t.base(TraceAlert, p, pr, r)
	if m != nil {
		ev.Run = t.runID(m)
		ev.Taken = p.taken(pr, m)
	}
	ev.Alert = a
	if k := t.emittingBy; k != nil && k.rule == pr {
		if t.suppressors == nil {
			t.suppressors = map[suppressorKey]string{}
		}
		t.suppressors[*k] = strings.Clone(a.ID)
	}
	t.emittingBy = nil
	t.emit(ev)
}
