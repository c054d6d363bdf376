package matcher

import (
	"container/heap"
	"log/slog"
	"math"
	"time"

	"github.com/shrike-cep/shrike/nfa"
)

// Partition runs a Program over the keys of one source partition: it buffers
// records until the watermark passes them, then feeds each key's automata in
// event-time order (ties in arrival order). It is not safe for concurrent use.
type Partition struct {
	prog *Program
	out  Output
	opts Options

	keys    map[string]*keyState
	pending recordHeap // records waiting for the watermark
	timers  timerHeap  // keys with a window that closes
	maxTime int64      // newest event time seen
	wm      int64      // records with Time < wm are late
	seq     uint64

	// Per-event cache of event-only conditions: a slot is valid when its
	// generation equals gen, which moves on with every processed record.
	gen      uint32
	cacheGen []uint32
	cacheVal []bool

	// Scratch space reused across events, so that stepping a run allocates
	// only the runs and buffer nodes it creates.
	scratch    ruleKey
	edgeBuf    []*nfa.Edge
	stateStack []*nfa.State
	finalStack []*nfa.State
	produced   []*run
	nextBuf    []*run
	runMemo    []leafValue
	vars       runVars

	stats    Stats
	perRule  []RuleStats
	liveRuns int
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
		out:      out,
		opts:     opts,
		keys:     map[string]*keyState{},
		maxTime:  math.MinInt64,
		wm:       math.MinInt64,
		cacheGen: make([]uint32, prog.slots),
		cacheVal: make([]bool, prog.slots),
		perRule:  make([]RuleStats, len(prog.rules)),
	}, nil
}

// keyState is everything one key holds: per rule its open partial matches.
type keyState struct {
	key   string
	rules []ruleKey
	// deadline is when the earliest window of the key closes; the timer heap
	// holds an entry for it. noDeadline when none is scheduled.
	deadline int64
	dead     bool
}

const noDeadline = math.MaxInt64

// Push adds one record. It assigns r.Seq, raises the watermark to the newest
// event time minus MaxOutOfOrderness, and matches every buffered record the
// watermark has passed. A record behind the watermark goes to Output.Late.
func (p *Partition) Push(r *Record) {
	p.seq++
	r.Seq = p.seq
	p.stats.Events++
	if r.Time < p.wm {
		p.stats.Late++
		p.out.Late(r)
		return
	}
	heap.Push(&p.pending, r)
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
	s.Keys = len(p.keys)
	s.Buffered = len(p.pending)
	s.ByRule = make(map[string]RuleStats, len(p.perRule))
	for i, rs := range p.perRule {
		s.ByRule[p.prog.rules[i].name] = rs
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
	for len(p.pending) > 0 && p.pending[0].Time <= now {
		r := heap.Pop(&p.pending).(*Record)
		p.process(r)
	}
	for len(p.timers) > 0 && p.timers[0].deadline <= now {
		t := heap.Pop(&p.timers).(timer)
		ks := t.key
		if ks.dead || ks.deadline != t.deadline {
			continue // superseded
		}
		ks.deadline = noDeadline
		for _, pr := range p.prog.rules {
			if pr.auto != nil && !ks.rules[pr.index].empty() {
				p.advanceTime(pr, &ks.rules[pr.index], now, ks.key)
			}
		}
		p.settle(ks)
	}
}

// process matches one record against every rule for its key.
func (p *Partition) process(r *Record) {
	p.gen++
	if p.gen == 0 { // wrapped: stale generations could look valid
		clear(p.cacheGen)
		p.gen = 1
	}
	ks := p.keys[r.Key]
	for _, pr := range p.prog.rules {
		if pr.auto == nil {
			if p.cond(pr.when, pr, nil, r) {
				p.emitSingle(pr, r)
			}
			continue
		}
		var rk *ruleKey
		if ks != nil {
			rk = &ks.rules[pr.index]
		} else {
			p.scratch = ruleKey{}
			rk = &p.scratch
		}
		if !rk.empty() {
			p.advanceTime(pr, rk, r.Time, r.Key)
		}
		p.step(pr, rk, r)
		if ks == nil && !rk.empty() {
			ks = &keyState{key: r.Key, rules: make([]ruleKey, len(p.prog.rules)), deadline: noDeadline}
			ks.rules[pr.index] = *rk
			p.keys[r.Key] = ks
		}
	}
	if ks != nil {
		p.settle(ks)
	}
}

// settle drops a key without state and schedules the next window close.
func (p *Partition) settle(ks *keyState) {
	next := int64(noDeadline)
	empty := true
	for _, pr := range p.prog.rules {
		rk := &ks.rules[pr.index]
		if pr.auto == nil || rk.empty() {
			continue
		}
		empty = false
		if d := rk.deadline(pr); d < next {
			next = d
		}
	}
	if empty {
		ks.dead = true
		delete(p.keys, ks.key)
		return
	}
	// An earlier entry already in the heap fires first and reschedules, so
	// only a closer deadline needs a new entry.
	if next < ks.deadline {
		ks.deadline = next
		heap.Push(&p.timers, timer{deadline: next, key: ks})
	}
}

func (p *Partition) addLive(pr *planRule, delta int) {
	if delta == 0 {
		return
	}
	p.liveRuns += delta
	if p.liveRuns > p.stats.PeakRuns {
		p.stats.PeakRuns = p.liveRuns
	}
	_ = pr
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

type timer struct {
	deadline int64
	key      *keyState
}

type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}
