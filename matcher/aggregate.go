package matcher

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"github.com/cespare/xxhash/v2"

	"github.com/shrike-cep/shrike/rules"
)

// An aggregate rule (docs/semantics.md#aggregates) keeps, per key, the
// events that passed its where condition and are still in its window: each
// as its time and one 8-byte value per measure that reads the event (the
// float64 bits of a sum, avg, min or max operand; a hash of a
// count_distinct operand). The measures are computed from them when a
// counted event arrives, so that they are exact and nothing drifts as
// events leave the window. A key holds at most Options.MaxRunsPerKey
// events per rule, past which the oldest are summarized in panes
// (aggpanes.go) rather than dropped.

// aggPlan is the plan of an aggregate rule.
type aggPlan struct {
	window   int64
	tumbling bool
	funcs    []rules.MeasureFunc
	names    []string
	args     []*rules.Expr
	// col is the measure's column among an entry's values, -1 for count().
	col    []int
	cols   int
	having *rules.Expr
}

func newAggPlan(ca *rules.CompiledAggregate) *aggPlan {
	a := &aggPlan{window: int64(ca.Window), tumbling: ca.Tumbling, having: ca.Having}
	for i, m := range ca.Measures {
		a.funcs = append(a.funcs, m.Func)
		a.names = append(a.names, m.Name)
		var arg *rules.Expr
		if i < len(ca.Args) {
			arg = ca.Args[i]
		}
		a.args = append(a.args, arg)
		if m.Func == rules.Count || arg == nil {
			a.col = append(a.col, -1)
			continue
		}
		a.col = append(a.col, a.cols)
		a.cols++
	}
	return a
}

// aggState is one key's window of one aggregate rule. Entries before head
// have left the window; they are cut off once they are half the slice.
type aggState struct {
	times []int64
	vals  []uint64 // cols per entry
	head  int
	// panes summarize the events folded out of the entries, oldest first;
	// each is older than every entry.
	panes []aggPane
	// start is the start of a tumbling window the entries are in.
	start int64
	// held says whether having held at the last counted event; slid says
	// entries left the window since (so that held no longer describes it).
	held, slid bool
}

func (s *aggState) len() int { return len(s.times) - s.head }

// empty says whether the window holds no event, neither as an entry nor
// in a pane.
func (s *aggState) empty() bool { return s.len() == 0 && len(s.panes) == 0 }

// clear makes every event leave.
func (s *aggState) clear(cols int) {
	s.dropTo(len(s.times), cols)
	if len(s.panes) > 0 {
		s.panes = s.panes[:0]
		s.slid = true
	}
}

// aggKey is a key's state of an aggregate rule made in one allocation:
// most keys count an event or two per window, and hold them in the
// buffers here.
type aggKey struct {
	rk    ruleKey
	x     ruleExtra
	s     aggState
	times [2]int64
	vals  [4]uint64
}

func newAggKey(pr *planRule) *ruleKey {
	return new(aggKey).init(pr)
}

func (k *aggKey) init(pr *planRule) *ruleKey {
	k.rk.rule = pr
	k.s.times = k.times[:0]
	if pr.agg.cols <= 2 {
		k.s.vals = k.vals[:0]
	}
	k.x.agg = &k.s
	k.rk.x = &k.x
	return &k.rk
}

// aggKeyState is a key that an aggregate's counted event creates, with
// that aggregate's state, in one allocation: in a stream where an
// account counts an event or two per window, nearly every counted event
// makes one, and the aggregate's state is what the key is then read for.
type aggKeyState struct {
	ks keyState
	ak aggKey
}

// missingHash stands for a count_distinct operand that failed to evaluate:
// value hashes are never 0.
const missingHash = 0

// dropBefore makes every entry with a time at or before t leave.
func (s *aggState) dropBefore(t int64, cols int) {
	n := s.head
	for n < len(s.times) && s.times[n] <= t {
		n++
	}
	s.dropTo(n, cols)
}

// dropTo makes the entries before index n leave.
func (s *aggState) dropTo(n, cols int) {
	if n == s.head {
		return
	}
	s.head = n
	s.slid = true
	if s.head == len(s.times) {
		s.times, s.vals, s.head = s.times[:0], s.vals[:0], 0
		return
	}
	if s.head*2 >= len(s.times) {
		m := copy(s.times, s.times[s.head:])
		s.times = s.times[:m]
		s.vals = s.vals[:copy(s.vals, s.vals[s.head*cols:])]
		s.head = 0
	}
}

// deadline is when the state empties: the newest entry leaves a sliding
// window, a tumbling window ends.
func (s *aggState) deadline(a *aggPlan) int64 {
	if s.empty() {
		return noDeadline
	}
	if a.tumbling {
		return s.start + a.window
	}
	d := int64(math.MinInt64)
	if s.len() > 0 {
		d = s.times[len(s.times)-1] + a.window
	}
	if len(s.panes) > 0 {
		d = max(d, s.panes[len(s.panes)-1].start+a.paneLen()+a.window)
	}
	return d
}

// windowStart is the start of the tumbling window holding t.
func windowStart(t, w int64) int64 {
	s := t - t%w
	if t%w < 0 {
		s -= w
	}
	return s
}

// measureValue is a measure as computed for an evaluation.
type measureValue struct {
	v     float64
	isInt bool
	ok    bool
}

// aggVars gives an aggregate rule's expressions its measures
// (rules.MeasureVars).
type aggVars struct {
	vals []measureValue
}

// StepEvents implements rules.Vars: an aggregate rule has no steps.
func (v *aggVars) StepEvents(string) ([]*rules.Event, bool) { return nil, false }

// Measure implements rules.MeasureVars.
func (v *aggVars) Measure(i int) (any, bool) {
	if i < 0 || i >= len(v.vals) || !v.vals[i].ok {
		return nil, false
	}
	// CEL values as they are, so that handing them out allocates nothing.
	if v.vals[i].isInt {
		return types.Int(int64(v.vals[i].v)), true
	}
	return types.Double(v.vals[i].v), true
}

// processAggregate counts r for an aggregate rule when it passes the
// rule's where, and fires when that makes having true. It returns the
// key's state.
func (p *Partition) processAggregate(pr *planRule, ks *keyState, r *Record, hash uint64) *keyState {
	a := pr.agg
	if pr.when != nil && !p.cond(pr.when, pr, nil, r) {
		return ks
	}
	rk := ks.find(pr)
	switch {
	case ks == nil:
		both := new(aggKeyState)
		ks = &both.ks
		ks.init(r.Key, hash)
		p.keys.put(ks)
		rk = both.ak.init(pr)
		ks.add(rk)
	case rk == nil:
		rk = newAggKey(pr)
		ks.add(rk)
	}
	if rk.x == nil {
		rk.x = new(ruleExtra)
	}
	if rk.x.agg == nil {
		rk.x.agg = new(aggState)
	}
	s := rk.x.agg
	p.changed = true
	rk.nextOK = false
	// The window as it stands at r's time, before r counts.
	if a.tumbling {
		if start := windowStart(r.Time, a.window); s.empty() || start != s.start {
			s.clear(a.cols)
			s.start = start
		}
	} else {
		s.dropBefore(r.Time-a.window, a.cols)
		s.dropPanesBefore(r.Time-a.window, a)
	}
	before := false
	switch {
	case s.empty():
	case !s.slid:
		before = s.held
	default:
		before, _ = p.having(pr, r, s)
	}
	// Count r, making room first when the key is at its bound.
	// (A state restored under a larger bound folds down to this one.)
	for s.len() >= p.opts.MaxRunsPerKey {
		s.fold(a)
	}
	s.times = append(s.times, r.Time)
	for i, arg := range a.args {
		if a.col[i] < 0 {
			continue
		}
		s.vals = append(s.vals, p.measureOperand(pr, a.funcs[i], arg, r))
	}
	held, err := p.having(pr, r, s)
	s.held, s.slid = held, false
	fire := held && !before
	if p.tr != nil {
		p.tr.aggregate(p, pr, r, s, held, fire, err)
	}
	if fire {
		p.emitAggregateSuppressed(pr, rk, r, s)
	}
	return ks
}

// measureOperand evaluates one measure's operand for r as an entry value.
// One that fails to evaluate, or has a type the function cannot take,
// counts as a CEL error and is left out of the measure.
func (p *Partition) measureOperand(pr *planRule, f rules.MeasureFunc, arg *rules.Expr, r *Record) uint64 {
	// A field read (`event.card_id`, `event.amount`), the common operand,
	// is read from the event's bytes: boxing it into a CEL value would
	// allocate for every counted event.
	if f == rules.CountDistinct {
		if s, ok := arg.PlainString(r.Event); ok {
			return hashString(s)
		}
	} else if x, ok := arg.Number(r.Event); ok {
		return math.Float64bits(x)
	}
	v, err := arg.Eval(r.Event, nil)
	if err == nil {
		if f == rules.CountDistinct {
			if h, ok := hashValue(v); ok {
				return h
			}
		} else if x, ok := numberOf(v); ok {
			return math.Float64bits(x)
		}
	}
	p.perRule[pr.index].CELErrors++
	if f == rules.CountDistinct {
		return missingHash
	}
	return math.Float64bits(math.NaN())
}

// numberOf returns a numeric CEL value as a float64.
func numberOf(v ref.Val) (float64, bool) {
	switch x := v.(type) {
	case types.Int:
		return float64(x), true
	case types.Uint:
		return float64(x), true
	case types.Double:
		return float64(x), !math.IsNaN(float64(x))
	}
	return 0, false
}

// hashString is hashValue of a string.
func hashString(s string) uint64 {
	if h := xxhash.Sum64String(s) ^ 's'; h != missingHash {
		return h
	}
	return 1
}

// hashValue hashes a count_distinct operand: equal values (as CEL's ==
// compares them: 1, 1u and 1.0 alike) hash alike, and no value hashes
// to missingHash.
func hashValue(v ref.Val) (uint64, bool) {
	var buf [9]byte
	var h uint64
	switch x := v.(type) {
	case types.String:
		return hashString(string(x)), true
	case types.Bytes:
		h = xxhash.Sum64(x) ^ 'b'
	case types.Bool:
		h = 2
		if x {
			h = 3
		}
	case types.Int, types.Uint, types.Double:
		f, ok := numberOf(v)
		if !ok {
			return 0, false
		}
		buf[0] = 'n'
		if i := int64(f); float64(i) == f && f > -(1<<63) && f < (1<<63) {
			if u, isUint := x.(types.Uint); isUint && uint64(u) > math.MaxInt64 {
				buf[0] = 'u'
				binary.LittleEndian.PutUint64(buf[1:], uint64(u))
			} else {
				binary.LittleEndian.PutUint64(buf[1:], uint64(i))
			}
		} else {
			buf[0] = 'f'
			binary.LittleEndian.PutUint64(buf[1:], math.Float64bits(f))
		}
		h = xxhash.Sum64(buf[:])
	case types.Timestamp:
		buf[0] = 't'
		binary.LittleEndian.PutUint64(buf[1:], uint64(x.UnixNano()))
		h = xxhash.Sum64(buf[:])
	default:
		return 0, false
	}
	if h == missingHash {
		h = 1
	}
	return h, true
}

// measures computes the rule's measures over the entries in s into
// p.aggVars.
func (p *Partition) measures(a *aggPlan, s *aggState) {
	vals := p.aggVars.vals[:0]
	n := int64(s.len()) + s.paneCount()
	for i, f := range a.funcs {
		if f == rules.Count {
			vals = append(vals, measureValue{v: float64(n), isInt: true, ok: true})
			continue
		}
		col := a.col[i]
		if col < 0 {
			vals = append(vals, measureValue{})
			continue
		}
		if f == rules.CountDistinct {
			d, ok := p.countDistinctPanes(s, a.cols, col)
			if !ok {
				d = p.countDistinct(s, a.cols, col)
			}
			vals = append(vals, measureValue{v: float64(d), isInt: true, ok: true})
			continue
		}
		// The panes first, oldest first, then the entries: the order the
		// events came in.
		var c paneCol
		for i := range s.panes {
			if pc := &s.panes[i].cols[col]; pc.k > 0 {
				if c.k == 0 || pc.lo < c.lo {
					c.lo = pc.lo
				}
				if c.k == 0 || pc.hi > c.hi {
					c.hi = pc.hi
				}
				c.sum += pc.sum
				c.k += pc.k
			}
		}
		for j := s.head; j < len(s.times); j++ {
			if x := math.Float64frombits(s.vals[j*a.cols+col]); !math.IsNaN(x) {
				c.add(x)
			}
		}
		m := measureValue{ok: c.k > 0}
		switch f {
		case rules.Sum:
			m.v, m.ok = c.sum, true
		case rules.Avg:
			if c.k > 0 {
				m.v = c.sum / float64(c.k)
			}
		case rules.Min:
			m.v = c.lo
		case rules.Max:
			m.v = c.hi
		}
		vals = append(vals, m)
	}
	p.aggVars.vals = vals
}

// countDistinct counts the distinct values of one column, with the
// Partition's scratch.
func (p *Partition) countDistinct(s *aggState, cols, col int) int {
	hs := p.aggHashes[:0]
	for j := s.head; j < len(s.times); j++ {
		if h := s.vals[j*cols+col]; h != missingHash {
			hs = append(hs, h)
		}
	}
	slices.Sort(hs)
	p.aggHashes = hs
	return len(slices.Compact(hs))
}

// having evaluates the rule's having over the entries in s, with r as
// event. A CEL error counts, and having is then false.
func (p *Partition) having(pr *planRule, r *Record, s *aggState) (bool, error) {
	p.measures(pr.agg, s)
	ok, err := pr.agg.having.EvalBool(r.Event, &p.aggVars)
	if err != nil {
		p.perRule[pr.index].CELErrors++
		return false, err
	}
	return ok, nil
}

// emitAggregateSuppressed emits the alert of an aggregate rule that fired
// on r, through the rule's suppression if it has one.
func (p *Partition) emitAggregateSuppressed(pr *planRule, rk *ruleKey, r *Record, s *aggState) {
	if pr.rule.Alert.Suppress == nil {
		p.emitAggregate(pr, r, s)
		return
	}
	d := p.suppressAlert(pr, rk, r.Time, r.Event, &p.aggVars)
	if d.suppressed {
		if p.tr != nil {
			p.tr.suppressed(p, pr, nil, d, p.trRec)
		}
		return
	}
	if p.tr != nil && d.started {
		p.tr.emitting(pr, d.by)
	}
	p.emitAggregate(pr, r, s)
}

// emitAggregate emits the alert of an aggregate rule that fired on r, with
// the measures p.aggVars holds.
func (p *Partition) emitAggregate(pr *planRule, r *Record, s *aggState) {
	b := p.newAlertBuf()
	b.ptrs = append(b.ptrs[:0], r)
	b.steps = append(b.steps[:0], StepRecords{Step: "event", Records: b.ptrs[:1:1]})
	a := pr.agg
	b.measures = b.measures[:0]
	for i, m := range p.aggVars.vals {
		b.measures = append(b.measures, Measure{Name: a.names[i], Value: m.v, Int: m.isInt, None: !m.ok})
	}
	if a.tumbling {
		b.window = [2]int64{s.start, s.start + a.window}
	} else {
		b.window = [2]int64{r.Time - a.window, r.Time}
	}
	p.emit(b, pr, nil, r.Key, b.steps, nil, r.Event, false)
}

// expireAggregate drops an aggregate rule's window once every event has
// left it by now, and the rule's suppression entries that expired.
func (p *Partition) expireAggregate(rk *ruleKey, now int64) {
	p.expireSuppression(rk, now)
	if rk.x == nil || rk.x.agg == nil {
		return
	}
	s, a := rk.x.agg, rk.rule.agg
	if now < s.deadline(a) {
		return
	}
	rk.x.agg = nil
	rk.nextOK = false
	p.changed = true
}

// appendAggState encodes an aggregate rule's window: the count of events
// and of values per event; a flags byte (1: having held at the last
// counted event; 2: events left the window since; 16: panes follow); the
// tumbling window's start (signed); the first event's time (signed) and
// each next one's as the difference from the one before (times never
// decrease); then the values, 8 bytes little-endian each, event by event;
// then, when flagged, the panes (appendPanes).
func appendAggState(dst []byte, s *aggState, cols int) []byte {
	n := s.len()
	dst = binary.AppendUvarint(dst, uint64(n))
	dst = binary.AppendUvarint(dst, uint64(cols))
	var flags byte
	if s.held {
		flags |= 1
	}
	if s.slid {
		flags |= 2
	}
	if len(s.panes) > 0 {
		flags |= aggFlagPanes
	}
	dst = append(dst, flags)
	dst = binary.AppendVarint(dst, s.start)
	prev := int64(0)
	for i, t := range s.times[s.head:] {
		if i == 0 {
			dst = binary.AppendVarint(dst, t)
		} else {
			dst = binary.AppendUvarint(dst, uint64(t-prev))
		}
		prev = t
	}
	for _, v := range s.vals[s.head*cols:] {
		dst = binary.LittleEndian.AppendUint64(dst, v)
	}
	if len(s.panes) > 0 {
		dst = appendPanes(dst, s.panes)
	}
	return dst
}

// aggFlagPanes is appendAggState's flag that panes follow the entries.
const aggFlagPanes = 16

// readAggState decodes what appendAggState wrote. a is the rule's plan, nil
// when the rule is gone (the window is read past and dropped).
func readAggState(d *snapDecoder, a *aggPlan) *aggState {
	n := d.count()
	cols := d.count()
	if d.err == nil && a != nil && cols != a.cols {
		d.fail(fmt.Sprintf("%d values per event of a rule with %d", cols, a.cols))
	}
	var flags uint64
	if d.err == nil {
		if len(d.b) == 0 {
			d.fail("no flags")
		} else {
			flags, d.b = uint64(d.b[0]), d.b[1:]
		}
	}
	s := &aggState{held: flags&1 != 0, slid: flags&2 != 0, start: d.varint()}
	if d.err == nil && n*max(cols, 1) > len(d.b) {
		d.fail(fmt.Sprintf("%d events of %d values, %d bytes left", n, cols, len(d.b)))
	}
	if d.err != nil {
		return nil
	}
	s.times = make([]int64, n)
	for i := range s.times {
		if i == 0 {
			s.times[i] = d.varint()
			continue
		}
		delta := d.uvarint()
		if d.err == nil && delta > uint64(math.MaxInt64)-uint64(s.times[i-1]) {
			d.fail("time past the end of time")
		}
		s.times[i] = s.times[i-1] + int64(delta)
	}
	s.vals = make([]uint64, n*cols)
	for i := range s.vals {
		s.vals[i] = d.fixed64()
	}
	if d.err == nil && flags&aggFlagPanes != 0 {
		s.panes = readPanes(d, cols, a)
	}
	if d.err != nil {
		return nil
	}
	return s
}
