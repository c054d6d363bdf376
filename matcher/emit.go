package matcher

import (
	"unsafe"

	"github.com/shrike-cep/shrike/rules"
)

// An alert is built in an alertBuf: the Alert, its id's bytes, its steps,
// the records and the events made again from kept ones, and the summary's
// bytes, in a few allocations rather than one per record and string. When
// the Output is done with each alert once its Alert call returns
// (Options.ReuseAlerts), the partition builds every alert in the same
// alertBuf, and an alert costs no allocation: at the end of a replay, when
// every open window closes at once, hundreds of thousands of alerts
// would otherwise grow the heap by their size, with the page faults,
// zeroing and collection that come with it.
type alertBuf struct {
	a       Alert
	id      [alertIDLen]byte
	steps   []StepRecords
	ptrs    []*Record // the steps' Records, one after the other
	recs    []recordCopy
	summary []byte
	// measures and window are an aggregate alert's (emitAggregate).
	measures []Measure
	window   [2]int64
}

// newAlertBuf returns the alertBuf to build the next alert in: the
// partition's own when the Output does not keep alerts, a new one else.
func (p *Partition) newAlertBuf() *alertBuf {
	if !p.opts.ReuseAlerts || p.tracer != nil {
		return new(alertBuf)
	}
	if p.reused == nil {
		p.reused = new(alertBuf)
	}
	return p.reused
}

// reuseAlert readies the partition's alertBuf for the next alert, once the
// Output has returned from the last one; with Options.PoisonReusedAlerts
// it first overwrites what the alert pointed to, so that an Output that
// kept anything of it reads garbage.
func (p *Partition) reuseAlert(b *alertBuf) {
	if b != p.reused {
		return
	}
	if p.opts.PoisonReusedAlerts {
		for i := range b.id {
			b.id[i] = '#'
		}
		for i := range b.summary {
			b.summary[i] = '#'
		}
		for i := range b.recs {
			b.recs[i].ev.SetLazy(poisonedEvent, rules.Preloaded{}, nil)
			b.recs[i].rec = Record{Event: &b.recs[i].ev, Key: "#", Time: -1, Pos: Position{Source: "#", Offset: -1}}
		}
		for i := range b.steps {
			b.steps[i] = StepRecords{Step: "#"}
		}
		clear(b.ptrs)
		b.a = Alert{ID: "#", Ruleset: "#", Rule: "#", Key: "#", Summary: "#"}
		return
	}
	b.a = Alert{}
	clear(b.steps)
	clear(b.ptrs)
	b.steps, b.ptrs = b.steps[:0], b.ptrs[:0]
	// The records point into kept events, which the alert must not keep
	// alive once their partial matches ended.
	clear(b.recs)
	b.recs = b.recs[:0]
}

// poisonedEvent is the bytes of every record of a poisoned reused alert.
var poisonedEvent = []byte(`{"poisoned":"reused alert"}`)

// emitMatch turns a completed (or, with timeout, timed-out) run into an
// alert.
func (p *Partition) emitMatch(pr *planRule, m *run, key string, timeout bool) {
	b := p.newAlertBuf()
	// Count the records of each step, newest node first, to lay the steps
	// out in pattern order and each step's records in match order.
	names := pr.auto.StepNames
	var stack [8]int
	counts := stack[:0]
	if len(names) > len(stack) {
		counts = make([]int, 0, len(names))
	}
	counts = counts[:len(names)]
	clear(counts)
	total := 0
	for n := m.last; n != nil; n = n.prev {
		counts[n.step]++
		total++
	}
	b.ptrs = growLen(b.ptrs, total)
	b.recs = growLen(b.recs, total)
	steps := b.steps[:0]
	at := 0
	for i, c := range counts {
		if c == 0 {
			continue
		}
		at += c
		steps = append(steps, StepRecords{Step: names[i], Records: b.ptrs[at-c : at : at]})
		counts[i] = at // now the end of step i's records
	}
	b.steps = steps
	var lastEvent *rules.Event
	for n, j := m.last, 0; n != nil; n, j = n.prev, j+1 {
		rec := p.recordInto(&b.recs[j], n.ev, key)
		if n == m.last {
			lastEvent = rec.Event
		}
		counts[n.step]--
		b.ptrs[counts[n.step]] = rec
	}
	p.emit(b, pr, m, key, steps, m.last, lastEvent, timeout)
}

// emitSingle emits the alert of a single-event rule.
func (p *Partition) emitSingle(pr *planRule, r *Record) {
	b := p.newAlertBuf()
	b.ptrs = append(b.ptrs[:0], r)
	b.steps = append(b.steps[:0], StepRecords{Step: "event", Records: b.ptrs[:1:1]})
	p.emit(b, pr, nil, r.Key, b.steps, nil, r.Event, false)
}

// growLen returns s with length n, reusing its array when it is large
// enough.
func growLen[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}

// emit fills in the alert of a match (m, or nil for a single-event rule)
// in b and hands it to the Output. last is the match's newest node (nil for a
// single-event rule) and lastEvent its event, `event` in the summary.
func (p *Partition) emit(b *alertBuf, pr *planRule, m *run, key string, steps []StepRecords, last *node, lastEvent *rules.Event, timeout bool) {
	// An alert the Output may keep may point into the record being
	// processed (its key, a single-event rule's record): that record is
	// then not recycled.
	if b != p.reused {
		p.handedOut = true
	}
	b.a = Alert{
		Ruleset:     pr.ruleset.Name,
		Rule:        pr.rule.ID,
		RuleVersion: pr.rule.Version,
		Severity:    pr.rule.Severity,
		Key:         key,
		Labels:      pr.rule.Alert.Labels,
		DetectedAt:  p.opts.Clock(),
		Timeout:     timeout,
		Shadow:      pr.ruleset.Shadow,
		Steps:       steps,
	}
	a := &b.a
	if pr.agg != nil {
		a.Measures = b.measures
		a.WindowStart, a.WindowEnd = unixTime(b.window[0]), unixTime(b.window[1])
	}
	first := true
	var start, end int64
	for _, s := range steps {
		for _, r := range s.Records {
			if first || r.Time < start {
				start = r.Time
			}
			if first || r.Time > end {
				end = r.Time
			}
			first = false
		}
	}
	if !first {
		a.Start, a.End = unixTime(start), unixTime(end)
	}
	a.Summary = p.summary(b, pr, key, last, lastEvent)
	appendAlertID(b.id[:0], a.Ruleset, a.Rule, a.RuleVersion, key, timeout, a.Shadow, steps)
	a.ID = unsafe.String(&b.id[0], len(b.id))
	p.stats.Alerts++
	p.perRule[pr.index].Alerts++
	if p.tr != nil {
		p.tr.alert(p, pr, m, a, p.trRec)
	}
	p.out.Alert(a)
	p.reuseAlert(b)
}

// summary returns the alert's summary: the rule's summary expression, else
// its description, else a sentence naming rule and key. The last two are
// built in b's bytes.
func (p *Partition) summary(b *alertBuf, pr *planRule, key string, last *node, ev *rules.Event) string {
	if pr.rule.Summary != nil {
		p.views.reset()
		var vars rules.Vars = &runVars{pr: pr, last: last, views: &p.views}
		if pr.agg != nil {
			vars = &p.aggVars
		}
		s, err := pr.rule.Summary.EvalString(ev, vars)
		if err == nil {
			return s
		}
		p.perRule[pr.index].CELErrors++
	}
	var s []byte
	if pr.rule.Description != "" {
		s = growCap(b.summary, len(pr.rule.Description)+len(" (key )")+len(key))
		s = append(s, pr.rule.Description...)
		s = append(s, " (key "...)
		s = append(s, key...)
		s = append(s, ')')
	} else {
		s = growCap(b.summary, len("rule  matched key ")+len(pr.rule.ID)+len(key))
		s = append(s, "rule "...)
		s = append(s, pr.rule.ID...)
		s = append(s, " matched key "...)
		s = append(s, key...)
	}
	b.summary = s
	return unsafe.String(unsafe.SliceData(s), len(s))
}

// growCap returns s emptied, with room for n bytes.
func growCap(s []byte, n int) []byte {
	if cap(s) >= n {
		return s[:0]
	}
	return make([]byte, 0, n)
}
