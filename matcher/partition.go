package matcher

import (
	"container/heap"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/shrike-cep/shrike/nfa"
)

// Partition runs a Program over the keys of one source partition: it buffers
// records until the watermark passes them, then feeds each key's automata in
// event-time order (ties in arrival order). It is not safe for concurrent use.
type Partition struct {
	prog *Program
	// rules are the Program's rules followed by the draining ones: rules
	// whose earlier version still has partial matches after SetProgram.
	rules []*planRule
	out   Output
	opts  Options

	keys    keyTable
	pending reorderBuffer // records waiting for the watermark
	timers  timerQueue    // keys with a window that closes
	maxTime int64         // newest event time seen
	wm      int64         // records with Time < wm are late
	seq     uint64

	// Per-event cache of event-only conditions: a slot is valid when its
	// generation equals gen, which moves on with every processed record.
	gen      uint32
	cacheGen []uint32
	cacheVal []bool
	// familyVals is evalFamily's scratch.
	familyVals []bool
	// aggVars are the measures of the aggregate rule being evaluated, and
	// aggHashes and aggSketch countDistinct's and countDistinctPanes' scratch.
	aggVars   aggVars
	aggHashes []uint64
	aggSketch *hllSketch

	// Scratch space reused across events, so that stepping a run allocates
	// only the runs and buffer nodes it creates.
	scratch    ruleKey
	edgeBuf    []*nfa.Edge
	stateStack []*nfa.State
	finalStack []*nfa.State
	produced   []*run
	nextBuf    []*run
	// completed are the runs a step completed, and expiredDone and
	// expiredOpen those whose windows closed, complete or not (scratch of
	// step and advanceTime, which release sorts).
	completed, expiredDone, expiredOpen []*run
	runMemo                             []leafValue
	vars                                runVars
	// retainedFrom is the record being processed once a run took it, and
	// retainedTo the kept event the runs hold (retain.go).
	retainedFrom *Record
	retainedTo   *keptEvent
	// keyRoom says the record being processed is of a key that had no
	// state or a compact one: events it keeps get room for a compact key
	// (compact.go).
	keyRoom bool
	// spare are objects compact keys are expanded in, and expanded the
	// objects of the key expanded last, until it settles.
	spare    spares
	expanded inflated
	// noCompact keeps every key a keyState, and folds counts the keys
	// folded compact (for tests).
	noCompact bool
	folds     uint64
	// sources are the record sources of kept events, by number.
	sources    []string
	sourceIDs  map[string]uint32
	lastSource uint32
	// views are the events made again from kept ones for CEL.
	views eventViews
	// handedOut says an alert was emitted while the record being processed
	// was matched: the alert may point into the record (its key, a
	// single-event rule's record), which is then not recycled
	// (Options.Recycle).
	handedOut bool
	// reused is the alertBuf every alert is built in when the Output does
	// not keep alerts (Options.ReuseAlerts).
	reused *alertBuf

	// dirty lists the keys changed since the last Changes call.
	dirty []*keyState
	// changed says whether processing the current record (or closing the
	// current key's windows) changed its state: only then is the key dirty,
	// so a checkpoint re-encodes just the keys whose partial matches moved.
	changed bool

	stats    Stats
	perRule  []RuleStats
	liveRuns int
	// gauge, when set, counts the open partial matches together with
	// other Partitions' (ShareRuns).
	gauge *RunGauge
	// quietSteps counts the (rule, record) steps leavesAsIs decided
	// without stepping (for tests).
	quietSteps uint64

	// noGroups makes the rules of a group step apart, each with its own
	// partial matches: with a Tracer, and in tests comparing the two.
	noGroups bool
	// Scratch space of the group steps (group.go).
	groupStart      run
	groupPotential  []*run
	groupEdges      []groupEdge
	groupStack      []groupFrame
	groupFinalStack []groupFrame
	groupEmits      []groupEmit
	groupErrs       []slotReach
	groupDelta      [maxGroup]int
	groupTouched    uint64
	// groupVary memoizes varying leaves per record: by group index, then
	// leaf.
	groupVary [][]varyValue

	// tracer follows one key (Options.Tracer); tr is it while the traced
	// key is being matched and nil otherwise, so that every hook costs one
	// nil check. trRec is the record being matched then, nil when the
	// watermark closes the key's windows.
	tracer *Tracer
	tr     *Tracer
	trRec  *Record

	// suppressBuf is suppressBy's scratch.
	suppressBuf []byte
}

// NewPartition returns a Partition that sends its results to out.
func NewPartition(prog *Program, out Output, opts Options) (*Partition, error) {
	if opts.MaxRunsPerKey <= 0 {
		opts.MaxRunsPerKey = 10000
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Partition{
		prog:     prog,
		rules:    prog.rules,
		out:      out,
		opts:     opts,
		keys:     newKeyTable(),
		maxTime:  math.MinInt64,
		wm:       math.MinInt64,
		cacheGen: make([]uint32, prog.slots),
		cacheVal: make([]bool, prog.slots),
		perRule:  make([]RuleStats, len(prog.rules)),
		tracer:   opts.Tracer,
		noGroups: opts.Tracer != nil,
	}, nil
}

// keyState is everything one key holds: the rules with open partial
// matches for it (usually one or two of many, so it is sparse).
type keyState struct {
	// key is the key; a short one lives in keyBuf, beside the fields a
	// lookup reads next, so that the map comparing it with the record's key
	// and the rule scan after it share their cache misses. (The record's key
	// points into its event, which the key state must not keep alive.)
	key    string
	hash   uint64 // hashKey(key)
	keyBuf [32]byte
	rules  []*ruleKey
	// ruleBuf holds rules while the key has state for one rule, as most
	// have: the keyState's size class has room for it.
	ruleBuf [1]*ruleKey
	// mask has bit i set when rules holds rule i (i < 64): most rules have
	// no state for a key, and the bit says so without touching rules.
	mask uint64
	// deadline is when the earliest window of the key closes; the timer queue
	// holds an entry for it. noDeadline when none is scheduled.
	deadline int64
	dead     bool
	dirty    bool // listed in Partition.dirty
	// pooled marks a keyState the partition reuses once its key is
	// compact or gone (compact.go): its key's bytes are not in keyBuf.
	pooled bool
}

const noDeadline = math.MaxInt64

func newKeyState(key string, hash uint64) *keyState {
	ks := new(keyState)
	ks.init(key, hash)
	return ks
}

// init makes the zero ks the state of a key without state yet.
func (ks *keyState) init(key string, hash uint64) {
	*ks = keyState{deadline: noDeadline, hash: hash}
	ks.rules = ks.ruleBuf[:0]
	if len(key) <= len(ks.keyBuf) {
		n := copy(ks.keyBuf[:], key)
		ks.key = unsafe.String(&ks.keyBuf[0], n)
	} else {
		ks.key = strings.Clone(key)
	}
}

// Push adds one record. It assigns r.Seq, raises the watermark to the newest
// event time minus MaxOutOfOrderness, and matches every buffered record the
// watermark has passed. A record behind the watermark goes to Output.Late.
func (p *Partition) Push(r *Record) {
	p.seq++
	r.Seq = p.seq
	p.stats.Events++
	if r.Time < p.wm {
		p.stats.Late++
		if p.tracer != nil && r.Key == p.tracer.key {
			p.tracer.late(p, r)
		}
		p.out.Late(r)
		return
	}
	p.pending.push(r)
	if r.Time > p.maxTime {
		p.maxTime = r.Time
		if wm := r.Time - int64(p.opts.MaxOutOfOrderness); wm > p.wm {
			p.advance(wm)
		}
	}
}

// Advance raises the watermark to wm (Unix ns) without a record, as idle
// partitions and the end of input do: records with Time < wm are matched,
// then windows that closed by wm time out. Advance(math.MaxInt64) closes all.
func (p *Partition) Advance(wm int64) {
	if wm > p.wm {
		p.advance(wm)
	}
}

// Watermark returns the current watermark (Unix ns); records with a Time
// below it are late.
func (p *Partition) Watermark() int64 { return p.wm }

// Stats returns the Partition's counters.
func (p *Partition) Stats() Stats {
	s := p.stats
	s.LiveRuns = p.liveRuns
	s.Keys = p.keys.len()
	s.Buffered = p.pending.len()
	s.ByRule = make(map[RuleID]RuleStats, len(p.perRule))
	for i, rs := range p.perRule {
		rs.LiveRuns = rs.live
		s.ByRule[p.rules[i].id()] = rs
	}
	return s
}

// advance moves the watermark to wm. Like Flink's operator, it processes the
// buffered records in (time, arrival) order, each after advancing its key's
// time to the record's time, and then advances the time of keys whose
// windows closed to the last instant before wm.
func (p *Partition) advance(wm int64) {
	p.wm = wm
	now := wm - 1 // the newest instant no record can arrive at anymore
	for r := p.pending.peek(); r != nil && r.Time <= now; r = p.pending.peek() {
		p.pending.pop()
		p.prefetchAhead()
		p.handedOut = false
		p.process(r)
		switch {
		case p.handedOut:
		case p.opts.Recycle != nil && p.tracer == nil:
			p.opts.Recycle(r)
		}
	}
	p.fireTimers(now)
}

// timerLookahead is how many due timers fireTimers takes off the heap
// ahead of the one it handles, to prefetch their key states.
const timerLookahead = 8

// fireTimers closes the windows of the keys whose timers are due by now,
// in the timers' order. Due timers are popped a few ahead of the one
// being handled, which keeps the order: handling a key only ever schedules
// a timer past now (its windows that closed by now are gone), so no timer
// popped later could have come first. The ones ahead get their key state,
// its rules and their partial matches prefetched, a level deeper the
// closer they are, as prefetchAhead does for records: at the end of input
// every key with an open window times out at once.
func (p *Partition) fireTimers(now int64) {
	var ring [timerLookahead]timer
	head, n := 0, 0
	at := func(d int) *keySlot {
		if d < n {
			return p.keys.home(ring[(head+d)%timerLookahead].hash)
		}
		return nil
	}
	for {
		for n < timerLookahead && p.timers.len() > 0 && p.timers.min().deadline <= now {
			t := p.timers.pop()
			prefetch(unsafe.Pointer(p.keys.home(t.hash)))
			ring[(head+n)%timerLookahead] = t
			n++
		}
		if n == 0 {
			return
		}
		// The entry was fetched when popped; the state it points at two
		// timers closer, and a level deeper every two timers closer.
		for level := 0; level <= 2; level++ {
			prefetchSlot(at(5-2*level), level)
		}
		t := ring[head]
		ring[head] = timer{}
		head, n = (head+1)%timerLookahead, n-1
		s := p.keys.due(t.hash, t.deadline)
		if s == nil {
			continue // superseded
		}
		p.fire(p.stateOf(s), now)
	}
}

// fire closes the windows of ks that closed by now.
func (p *Partition) fire(ks *keyState, now int64) {
	ks.deadline = noDeadline
	p.changed = false
	if p.tracer != nil && ks.key == p.tracer.key {
		p.tr, p.trRec = p.tracer, nil
	}
	for _, rk := range ks.rules {
		switch {
		case rk.empty():
		case rk.rule.agg != nil:
			p.expireAggregate(rk, now)
		case rk.grouped:
			p.groupAdvanceTime(rk.rule.group, rk, now)
			p.finishGroup(rk.rule.group, rk, ks.key, true)
		case rk.rule.auto == nil:
			p.expireSuppression(rk, now) // a single-event rule's
		default:
			p.advanceTime(rk.rule, rk, now, ks.key)
		}
	}
	p.tr = nil
	if p.changed {
		p.markDirty(ks)
	}
	p.settle(ks)
}

// process matches one record against every rule for its key.
func (p *Partition) process(r *Record) {
	p.gen++
	if p.gen == 0 { // wrapped: stale generations could look valid
		clear(p.cacheGen)
		p.groupVary = nil
		p.gen = 1
	}
	hash := r.keyHash()
	var ks *keyState
	p.keyRoom = p.tracer == nil
	if s := p.keys.find(r.Key, hash); s != nil {
		p.keyRoom = p.keyRoom && s.isCompact()
		ks = p.stateOf(s)
	}
	p.changed = false
	if p.tracer != nil && r.Key == p.tracer.key {
		p.tr, p.trRec = p.tracer, r
		p.tr.record(p, r)
	}
	for i := 0; i < len(p.rules); i++ {
		pr := p.rules[i]
		if g := pr.group; g != nil && !p.noGroups {
			ks = p.processGroup(g, ks, r, hash)
			i += len(g.members) - 1
			continue
		}
		ks = p.processRule(pr, ks, r, hash)
	}
	p.tr = nil
	if ks != nil {
		if p.changed {
			p.markDirty(ks)
		}
		p.settle(ks)
	}
	p.retainedFrom, p.retainedTo = nil, nil
	p.keyRoom = false
}

// processRule matches r against one rule for its key, whose state is ks
// (nil when it has none yet), and returns the key's state.
func (p *Partition) processRule(pr *planRule, ks *keyState, r *Record, hash uint64) *keyState {
	if bit := ruleBit(pr); bit != 0 && r.pre.prog == pr.program && r.pre.mayStart&bit == 0 && (ks == nil || ks.mask&bit == 0) && p.tr == nil {
		return ks // cannot start, and has nothing open for the key
	}
	if pr.agg != nil {
		return p.processAggregate(pr, ks, r, hash)
	}
	if pr.auto == nil {
		if p.cond(pr.when, pr, nil, r) {
			if pr.rule.Alert.Suppress != nil {
				return p.emitSingleSuppressed(pr, ks, r, hash)
			}
			p.emitSingle(pr, r)
		}
		return ks
	}
	rk := ks.find(pr)
	if rk == nil {
		if pr.draining || (pr.startTakes != nil && !p.anyStartTake(pr, r)) {
			return ks
		}
		p.scratch = ruleKey{rule: pr}
		p.step(pr, &p.scratch, r)
		if !p.scratch.empty() {
			if ks == nil {
				ks = p.newKeyState(r.Key, hash)
				p.keys.put(ks)
			}
			p.changed = true
			ks.add(p.movedScratch())
		}
		return ks
	}
	if !rk.empty() {
		p.advanceTime(pr, rk, r.Time, r.Key)
	}
	if p.tr == nil && p.leavesAsIs(pr, rk, r) {
		p.quietSteps++
		return ks
	}
	p.step(pr, rk, r)
	if rk.x != nil && len(rk.x.sup) > 0 {
		// The step may have ended the partial matches that kept expired
		// entries.
		p.expireSuppression(rk, r.Time)
	}
	return ks
}

// anyStartTake reports whether a start take condition of pr holds for r.
func (p *Partition) anyStartTake(pr *planRule, r *Record) bool {
	p.runMemo = p.runMemo[:0]
	for _, c := range pr.startTakes {
		if p.cond(c, pr, pr.startRun, r) {
			return true
		}
	}
	return false
}

// settle drops a key without state and schedules the next window close.
func (p *Partition) settle(ks *keyState) {
	next := int64(noDeadline)
	kept := ks.rules[:0]
	for _, rk := range ks.rules {
		if rk.empty() {
			continue
		}
		kept = append(kept, rk)
		if d := rk.deadline(rk.rule); d < next {
			next = d
		}
	}
	clear(ks.rules[len(kept):])
	ks.rules = kept
	ks.mask = 0
	for _, rk := range kept {
		ks.mask |= ruleBit(rk.rule)
	}
	if len(kept) == 0 {
		ks.dead = true
		p.keys.remove(ks)
		p.settledDead(ks)
		return
	}
	// An earlier entry already in the heap fires first and reschedules, so
	// only a closer deadline needs a new entry.
	if next < ks.deadline {
		ks.deadline = next
		p.timers.push(timer{deadline: next, hash: ks.hash})
	}
	if !p.deflate(ks) && p.expanded.ks == ks {
		// The key keeps the objects it was expanded in.
		p.expanded = inflated{}
	}
}

// find returns the state of rule pr for this key, nil when it has none.
func (ks *keyState) find(pr *planRule) *ruleKey {
	if ks == nil || (pr.index < 64 && ks.mask&ruleBit(pr) == 0) {
		return nil
	}
	for _, rk := range ks.rules {
		if rk.rule == pr && !rk.grouped {
			return rk
		}
	}
	return nil
}

// add gives the key state for one more rule. The key's rules are kept in
// plan order, the order in which their windows close when they close at
// once, whether or not rules share their state in groups.
func (ks *keyState) add(rk *ruleKey) {
	at := len(ks.rules)
	for at > 0 && ks.rules[at-1].rule.index > rk.rule.index {
		at--
	}
	ks.rules = slices.Insert(ks.rules, at, rk)
	ks.mask |= ruleBit(rk.rule)
}

// ruleBit is the rule's bit in keyState.mask; rules past 64 share none and
// are always looked up.
func ruleBit(pr *planRule) uint64 {
	if pr.index >= 64 {
		return 0
	}
	return 1 << pr.index
}

// addLive counts delta more open partial matches and updates the peaks. A
// drop never raises a peak, and must not: inside a step the runs the step
// created are counted but not yet noted (see countLive).
func (p *Partition) addLive(pr *planRule, delta int) {
	p.countLive(pr, delta)
	if delta > 0 {
		p.notePeak(pr)
	}
}

// countLive counts delta more open partial matches without touching the
// peaks: a step counts its runs before the per-key cap trims them, and the
// peak must only see what the cap let the key hold.
func (p *Partition) countLive(pr *planRule, delta int) {
	p.liveRuns += delta
	p.perRule[pr.index].live += delta
	if p.gauge != nil {
		p.gauge.count(pr.index, delta)
	}
}

// notePeak raises the peaks to the current counts.
func (p *Partition) notePeak(pr *planRule) {
	if p.liveRuns > p.stats.PeakRuns {
		p.stats.PeakRuns = p.liveRuns
	}
	rs := &p.perRule[pr.index]
	if rs.live > rs.PeakRuns {
		rs.PeakRuns = rs.live
	}
	if p.gauge != nil {
		p.gauge.notePeak(pr.index)
	}
}

// reorderBuffer holds records until the watermark passes them and yields
// them in (time, arrival) order. Most records arrive in order: those go to a
// FIFO, and only the others pay for the heap.
type reorderBuffer struct {
	fifo []*Record
	head int
	heap recordHeap
}

func (b *reorderBuffer) len() int { return len(b.fifo) - b.head + len(b.heap) }

func (b *reorderBuffer) push(r *Record) {
	if n := len(b.fifo); n == b.head || r.Time >= b.fifo[n-1].Time {
		b.fifo = append(b.fifo, r)
		return
	}
	heap.Push(&b.heap, r)
}

// peek returns the earliest record, nil when empty.
func (b *reorderBuffer) peek() *Record {
	var f *Record
	if b.head < len(b.fifo) {
		f = b.fifo[b.head]
	}
	if len(b.heap) == 0 {
		return f
	}
	if h := b.heap[0]; f == nil || h.Time < f.Time || (h.Time == f.Time && h.Seq < f.Seq) {
		return h
	}
	return f
}

// pop removes the record peek returned.
func (b *reorderBuffer) pop() {
	if r := b.peek(); b.head < len(b.fifo) && r == b.fifo[b.head] {
		b.fifo[b.head] = nil
		b.head++
		if b.head == len(b.fifo) {
			b.fifo, b.head = b.fifo[:0], 0
		} else if b.head >= 1024 && b.head*2 >= len(b.fifo) {
			n := copy(b.fifo, b.fifo[b.head:])
			clear(b.fifo[n:])
			b.fifo, b.head = b.fifo[:n], 0
		}
		return
	}
	heap.Pop(&b.heap)
}

// recordHeap orders buffered records by event time, then arrival.
type recordHeap []*Record

func (h recordHeap) Len() int { return len(h) }
func (h recordHeap) Less(i, j int) bool {
	if h[i].Time != h[j].Time {
		return h[i].Time < h[j].Time
	}
	return h[i].Seq < h[j].Seq
}
func (h recordHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *recordHeap) Push(x any)   { *h = append(*h, x.(*Record)) }
func (h *recordHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return r
}

// timer is a key's window closing. It names the key by its hash, and
// holds no pointer: a key's state moves between forms (compact.go), and
// the heap of a timer per key is not scanned. Two keys of one hash are
// told apart by their deadlines (keyTable.due).
type timer struct {
	deadline int64
	hash     uint64
}

// timerHeap is a 4-ary min-heap on deadline. It is written out rather
// than using container/heap, whose interface boxes every timer pushed or
// popped: an allocation per event.
//
// The heap of a partition with many keys is larger than the CPU's caches,
// and a pop reads a line of memory per level. With four children per node
// the heap is half as deep as a binary one, and the four children, 64
// bytes, fill one cache line: the array starts with timerPad unused
// entries, so that each node's children begin on a 64-byte boundary of an
// array the allocator aligned (arrays past 32 KiB start on a page).
type timerHeap []timer

const (
	timerArity = 4
	// timerPad puts the root at index timerPad and the children of the
	// node at index j at 4j-8 … 4j-5.
	timerPad = timerArity - 1
)

func (h timerHeap) len() int { return max(len(h)-timerPad, 0) }

// min returns the earliest timer; the heap must not be empty.
func (h timerHeap) min() timer { return h[timerPad] }

func (h *timerHeap) push(t timer) {
	switch {
	case len(*h) == 0:
		*h = make(timerHeap, timerPad, 64)
	case len(*h) == cap(*h):
		// Doubled, not grown by the quarter append grows a large slice
		// by: a heap of a timer per key is megabytes, and each array it
		// outgrew stays in the heap until the next collection, which a
		// replay that only adds state may never run.
		grown := make(timerHeap, len(*h), 2*cap(*h))
		copy(grown, *h)
		*h = grown
	}
	*h = append(*h, t)
	a := *h
	for i := len(a) - 1; i > timerPad; {
		parent := (i-timerPad-1)/timerArity + timerPad
		if a[parent].deadline <= a[i].deadline {
			break
		}
		a[parent], a[i] = a[i], a[parent]
		i = parent
	}
}

func (h *timerHeap) pop() timer {
	a := *h
	top := a[timerPad]
	n := len(a) - 1
	a[timerPad] = a[n]
	a[n] = timer{}
	a = a[:n]
	for i := timerPad; ; {
		least := i
		first := timerArity*(i-timerPad) + timerPad + 1
		for c := first; c < first+timerArity && c < n; c++ {
			if a[c].deadline < a[least].deadline {
				least = c
			}
		}
		if least == i {
			break
		}
		a[i], a[least] = a[least], a[i]
		i = least
	}
	*h = a
	return top
}
