package matcher

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/shrike-cep/shrike/rules"
)

// Alert suppression (`alert.suppress`, docs/semantics.md#alert-suppression):
// after an alert of a rule for a key, the rule's alerts for that key with
// the same suppress.by values are dropped until the suppression's `for`
// has passed in event time. The state is one entry per by value, in the
// rule's ruleExtra for the key: a key with suppression entries has state
// (a single-event rule's key too) and a deadline at the entries' expiry.
//
// An alert's time is the time of its newest event, or for a timeout alert
// the time its window closed. Alerts come out in event-time order but for
// the matches a skip strategy held back and timeouts, which may be older
// than an alert before them: an entry is therefore dropped only once no
// alert the rule may still emit for the key can be before its expiry
// (expireSuppression), so that when entries are dropped, which depends on
// how the watermark moved, never changes which alerts are suppressed.

// suppression is one suppress.by value's entry: the rule's alerts for the
// key with that value and a time before until are suppressed.
type suppression struct {
	by    uint64 // hash of the by values; 0 without by
	until int64
}

// suppressedAlert is what suppressAlert decided.
type suppressedAlert struct {
	suppressed bool
	started    bool // the alert starts (or renews) the entry of by
	by         uint64
	until      int64 // of the entry that suppressed the alert
}

// suppressAlert decides whether rule pr's alert at event time at, whose
// by values read ev (`event`) and vars (the variables of the rule's
// summary), is suppressed for the key whose state of pr is rk, and counts
// it if so. Otherwise it
// starts (or renews) the entry of its by values, so that the alerts after
// it are suppressed. A by expression that fails counts a CEL error, and
// the alert is then neither suppressed nor suppresses others.
func (p *Partition) suppressAlert(pr *planRule, rk *ruleKey, at int64, ev *rules.Event, vars rules.Vars) suppressedAlert {
	s := pr.rule.Alert.Suppress
	by, ok := p.suppressBy(pr, ev, vars)
	if !ok {
		return suppressedAlert{}
	}
	x := rk.extra()
	for i := range x.sup {
		e := &x.sup[i]
		if e.by != by {
			continue
		}
		if at < e.until {
			p.stats.Suppressed++
			p.perRule[pr.index].Suppressed++
			return suppressedAlert{suppressed: true, by: by, until: e.until}
		}
		e.until = addTime(at, s.For)
		x.supNext = min(x.supNext, e.until)
		rk.nextOK, p.changed = false, true
		return suppressedAlert{started: true, by: by}
	}
	if len(x.sup) == 0 {
		x.supNext = noDeadline
	}
	until := addTime(at, s.For)
	x.sup = append(x.sup, suppression{by: by, until: until})
	x.supNext = min(x.supNext, until)
	rk.nextOK, p.changed = false, true
	return suppressedAlert{started: true, by: by}
}

// suppressBy hashes the values of the rule's suppress.by expressions into
// one id (0 without by); ok is false when one fails.
func (p *Partition) suppressBy(pr *planRule, ev *rules.Event, vars rules.Vars) (uint64, bool) {
	exprs := pr.rule.SuppressBy
	if len(exprs) == 0 {
		return 0, true
	}
	buf := p.suppressBuf[:0]
	for _, x := range exprs {
		v, err := x.Eval(ev, vars)
		if err == nil {
			buf, err = rules.AppendSuppressValue(buf, v)
		}
		if err != nil {
			p.perRule[pr.index].CELErrors++
			p.suppressBuf = buf
			return 0, false
		}
	}
	p.suppressBuf = buf
	return xxhash.Sum64(buf), true
}

// addTime returns t+d, saturating at the largest time.
func addTime(t int64, d time.Duration) int64 {
	n := int64(d)
	if t > math.MaxInt64-n {
		return math.MaxInt64
	}
	return t + n
}

// extra returns the rule's extra state for the key, making it if it has
// none.
func (rk *ruleKey) extra() *ruleExtra {
	if rk.x == nil {
		rk.x = new(ruleExtra)
	}
	return rk.x
}

// suppressDeadline is when the next suppression entry expires, noDeadline
// for none.
func (x *ruleExtra) suppressDeadline() int64 {
	if x == nil || len(x.sup) == 0 {
		return noDeadline
	}
	return x.supNext
}

// expireSuppression drops the suppression entries of rk that expired by
// time t (the key's time: its record's, or the watermark's) and that no
// alert the rule may still emit for the key could fall under: every such
// alert is at or after t or after the first event of one of the rule's
// open partial and held matches. It schedules the next expiry after t.
func (p *Partition) expireSuppression(rk *ruleKey, t int64) {
	x := rk.x
	if x == nil || len(x.sup) == 0 {
		return
	}
	floor := t
	for _, r := range rk.runs {
		floor = min(floor, r.startTime)
	}
	for _, r := range x.held {
		floor = min(floor, r.startTime)
	}
	kept := x.sup[:0]
	next := int64(noDeadline)
	for _, e := range x.sup {
		if e.until <= floor {
			continue
		}
		kept = append(kept, e)
		if e.until > t {
			next = min(next, e.until)
		}
	}
	if len(kept) != len(x.sup) {
		p.changed = true
		clear(x.sup[len(kept):])
	}
	x.sup, x.supNext = kept, next
	if len(kept) == 0 {
		x.sup = nil
	}
	rk.nextOK = false
	if x.empty() {
		rk.x = nil
	}
}

// matchTime is the event time of the alert of match m for suppression: its
// newest event's, or for a timeout, when its window closed.
func matchTime(pr *planRule, m *run, timeout bool) int64 {
	if timeout {
		d := int64(noDeadline)
		if w := int64(pr.auto.Window); w > 0 {
			d = m.startTime + w
		}
		if sw := int64(m.state.Window); sw > 0 {
			d = min(d, m.prevTime+sw)
		}
		if d != noDeadline {
			return d
		}
	}
	if m.last != nil {
		return m.last.ev.time
	}
	return m.prevTime
}

// emitSingleSuppressed emits the alert of a single-event rule with
// suppression for record r unless it is suppressed. The rule's state for
// the key holds its suppression entries: made, and the key's state with
// it, on the key's first alert. It returns the key's state.
func (p *Partition) emitSingleSuppressed(pr *planRule, ks *keyState, r *Record, hash uint64) *keyState {
	rk := ks.find(pr)
	fresh := rk == nil
	if fresh {
		p.scratch = ruleKey{rule: pr}
		rk = &p.scratch
	}
	p.views.reset()
	p.vars = runVars{pr: pr, buf: p.vars.buf[:0], views: &p.views}
	d := p.suppressAlert(pr, rk, r.Time, r.Event, &p.vars)
	if d.suppressed {
		if p.tr != nil {
			p.tr.suppressed(p, pr, nil, d, p.trRec)
		}
		return ks
	}
	if p.tr != nil && d.started {
		p.tr.emitting(pr, d.by)
	}
	p.emitSingle(pr, r)
	if fresh && !p.scratch.empty() {
		if ks == nil {
			ks = newKeyState(r.Key, hash)
			p.keys.put(ks)
		}
		p.changed = true
		ks.add(p.scratch.moved())
		p.scratch = ruleKey{}
	}
	return ks
}

// emitMatchSuppressed emits the alert of match m of a rule with
// suppression unless it is suppressed; rk is the rule's state for the key.
func (p *Partition) emitMatchSuppressed(pr *planRule, rk *ruleKey, m *run, key string, timeout bool) {
	var ev *rules.Event
	p.views.reset()
	if m.last != nil && len(pr.rule.SuppressBy) > 0 {
		ev = p.views.view(m.last.ev)
	}
	// ev is in p.views: the evaluations add theirs after it.
	p.vars = runVars{pr: pr, last: m.last, buf: p.vars.buf[:0], views: &p.views}
	d := p.suppressAlert(pr, rk, matchTime(pr, m, timeout), ev, &p.vars)
	if d.suppressed {
		if p.tr != nil {
			p.tr.suppressed(p, pr, m, d, p.trRec)
		}
		return
	}
	if p.tr != nil && d.started {
		p.tr.emitting(pr, d.by)
	}
	p.emitMatch(pr, m, key, timeout)
}

// emitRun emits the alert of match m of rule pr, whose state for the key
// is rk, through the rule's suppression if it has one.
func (p *Partition) emitRun(pr *planRule, rk *ruleKey, m *run, key string, timeout bool) {
	if pr.rule.Alert.Suppress != nil {
		p.emitMatchSuppressed(pr, rk, m, key, timeout)
		return
	}
	p.emitMatch(pr, m, key, timeout)
}

// suppressorKey names a suppression entry in a Tracer.
type suppressorKey struct {
	rule *planRule
	by   uint64
}

// emitting tells the Tracer that the next alert, of rule pr, starts or
// renews the suppression entry of by.
func (t *Tracer) emitting(pr *planRule, by uint64) {
	t.emittingBy = &suppressorKey{rule: pr, by: by}
}

// suppressed reports an alert the rule's suppression dropped: of match m,
// nil for a single-event rule.
func (t *Tracer) suppressed(p *Partition, pr *planRule, m *run, d suppressedAlert, r *Record) {
	ev := t.base(TraceSuppressed, p, pr, r)
	if m != nil {
		ev.Run = t.runID(m)
		ev.Taken = p.taken(pr, m)
	}
	ev.Until = d.until
	ev.SuppressedBy = t.suppressors[suppressorKey{rule: pr, by: d.by}]
	t.emit(ev)
}

// suppressions returns the rule's suppression entries for the key.
func (rk *ruleKey) suppressions() []suppression {
	if rk.x == nil {
		return nil
	}
	return rk.x.sup
}

// setSuppressions makes sup the suppression entries, scheduling the
// earliest expiry, and drops the extra state once it is all empty.
func (rk *ruleKey) setSuppressions(sup []suppression) {
	if len(sup) == 0 {
		if rk.x != nil {
			rk.x.sup = nil
			if rk.x.empty() {
				rk.x = nil
			}
		}
		return
	}
	x := rk.extra()
	x.sup, x.supNext = sup, noDeadline
	for _, s := range sup {
		x.supNext = min(x.supNext, s.until)
	}
	rk.nextOK = false
}

// Kinds of a key state's extra sections (AppendKeyState).
const (
	sectionSuppression = 1
	sectionAggregate   = 2
)

// appendSection appends an extra section: its kind, its length and the
// bytes body appends.
func appendSection(dst []byte, kind uint64, body func([]byte) []byte) []byte {
	dst = binary.AppendUvarint(dst, kind)
	payload := body(nil)
	dst = binary.AppendUvarint(dst, uint64(len(payload)))
	return append(dst, payload...)
}

// appendSuppressions appends the suppression section's bytes.
func appendSuppressions(dst []byte, sup []suppression, unit int64) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(sup)))
	var prev int64
	for _, s := range sup {
		dst = binary.LittleEndian.AppendUint64(dst, s.by)
		dst = binary.AppendVarint(dst, (s.until-prev)/unit)
		prev = s.until
	}
	return dst
}

// readSections reads a rule's extra sections into rk.
func (d *snapDecoder) readSections(rk *ruleKey, unit int64) {
	n := d.count()
	for i := range n {
		d.at("extra section", i, n)
		kind := d.uvarint()
		size := d.count()
		if d.err != nil {
			return
		}
		left := len(d.b)
		switch kind {
		case sectionSuppression:
			rk.setSuppressions(d.suppressions(unit))
		case sectionAggregate:
			var a *aggPlan
			if rk.rule != nil {
				a = rk.rule.agg
			}
			if st := readAggState(d, a); a != nil && st != nil && !st.empty() {
				if rk.x == nil {
					rk.x = new(ruleExtra)
				}
				rk.x.agg = st
			}
		default:
			d.fail(fmt.Sprintf("unknown kind %d", kind))
			return
		}
		if d.err == nil && left-len(d.b) != size {
			d.fail(fmt.Sprintf("%d bytes long, %d read", size, left-len(d.b)))
		}
	}
}

// suppressions reads the suppression section.
func (d *snapDecoder) suppressions(unit int64) []suppression {
	n := d.count()
	if d.err != nil || n == 0 {
		return nil
	}
	sup := make([]suppression, n)
	var prev int64
	for i := range sup {
		sup[i].by = d.fixed64()
		sup[i].until = prev + d.varint()*unit
		prev = sup[i].until
	}
	if d.err != nil {
		return nil
	}
	return sup
}
