package matcher

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/cespare/xxhash/v2"

	"github.com/shrike-cep/shrike/rules"
)

// Snapshots let a runtime keep key state outside the process (docs/design.md#runtime):
// it takes the keys that changed since the last checkpoint, encodes each
// one's state, writes it with the partition's Checkpoint, and may then evict
// keys from memory and restore them later. The matcher itself does no I/O.

// Checkpoint is the partition-wide part of the state.
type Checkpoint struct {
	// Watermark: records with an earlier time were matched (or were late).
	Watermark int64
	// MaxTime is the newest event time seen.
	MaxTime int64
	// Seq is the last arrival number handed out.
	Seq uint64
}

// Checkpoint returns the partition-wide state.
func (p *Partition) Checkpoint() Checkpoint {
	return Checkpoint{Watermark: p.wm, MaxTime: p.maxTime, Seq: p.seq}
}

// Restore sets the partition-wide state of a partition that has seen no
// record yet. Records then pushed with a Time below the restored watermark
// are late: a runtime that re-reads its source from the oldest record still
// buffered at the checkpoint drops those itself, as already matched.
func (p *Partition) Restore(c Checkpoint) error {
	if p.seq != 0 || p.keys.len() > 0 {
		return errors.New("restore checkpoint: partition already in use")
	}
	p.wm, p.maxTime, p.seq = c.Watermark, c.MaxTime, c.Seq
	return nil
}

// Changes returns the keys whose state changed since the last call (none
// under Options.NoCheckpoints): those that still hold state (encode them
// with AppendKeyState) and those whose state is now empty (delete them
// from the store).
func (p *Partition) Changes() (changed, emptied []string) {
	seen := make(map[string]bool, len(p.dirty))
	for _, ks := range p.dirty {
		ks.dirty = false
		if seen[ks.key] {
			continue
		}
		seen[ks.key] = true
		if s := p.keys.find(ks.key, ks.hash); s != nil {
			changed = append(changed, ks.key)
			if s.ref == unsafe.Pointer(ks) {
				p.deflate(ks)
			}
		} else {
			emptied = append(emptied, ks.key)
		}
	}
	clear(p.dirty)
	p.dirty = p.dirty[:0]
	return changed, emptied
}

// markDirty records that ks changed.
func (p *Partition) markDirty(ks *keyState) {
	if !ks.dirty && !p.opts.NoCheckpoints {
		ks.dirty = true
		p.dirty = append(p.dirty, ks)
	}
}

// Resident reports whether the key's state is in memory.
func (p *Partition) Resident(key string) bool { return p.keys.find(key, hashKey(key)) != nil }

// Evict drops a key's state from memory. The caller must have stored it
// (it is not in Changes) and must not evict a key that still has records
// waiting for the watermark.
func (p *Partition) Evict(key string) {
	s := p.keys.find(key, hashKey(key))
	if s == nil {
		return
	}
	if c := s.compact(); c != nil {
		// Its one partial match, without expanding it.
		p.countLive(p.rules[c.rule], -1)
		p.keys.removeRef(s.ref, s.hash)
		return
	}
	ks := s.full()
	for _, rk := range ks.rules {
		p.dropLive(rk)
	}
	ks.dead = true
	p.keys.remove(ks)
}

// KeyDeadline returns the earliest time at which one of the key's windows
// closes, and false when the key has no window open. A runtime that evicts
// keys keeps their deadlines and restores them before it advances the
// watermark past one.
func (p *Partition) KeyDeadline(key string) (int64, bool) {
	ks, done := p.viewState(key)
	defer done()
	if ks == nil {
		return 0, false
	}
	d := int64(noDeadline)
	for _, rk := range ks.rules {
		d = min(d, rk.deadline(rk.rule))
	}
	return d, d != noDeadline
}

// snapshotVersion is the version of the key-state encoding AppendKeyState
// writes. RestoreKey reads it and every earlier version, so that a newer
// Shrike restores what an older one stored: testdata/keystate holds the
// states each version wrote, which TestKeyStateFixtures restores. Changing
// the layout makes a new version and keeps the decoder of the old one.
const snapshotVersion = 3

// maxTimeExponent bounds the unit of a version-2 state's times: 10^9 ns,
// whole seconds.
const maxTimeExponent = 9

var pow10 = [maxTimeExponent + 1]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// AppendKeyState appends the encoding of the key's state to dst; ok is
// false when the key holds no state.
//
// Layout of version 3 (integers are varints, "signed" ones zigzag-encoded
// as binary.AppendVarint does):
//
//	version        3
//	time exponent  k: every time below is written divided by 10^k ns, the
//	               largest such unit (≤ 1 s) that leaves no remainder
//	sources        count; each as length and bytes
//	records        count; per record: its source's index (only when there
//	               are several sources); its time, seq and offset, each
//	               signed, as the difference from the previous record's
//	               (from 0 for the first); the raw event as length and bytes
//	nodes          count; per node: its record's index, its step (signed),
//	               its previous node's index plus one (0: none, and always
//	               below the node's own: nodes are written oldest first)
//	rules          count; per rule: ruleRef, 8 bytes little-endian; the
//	               number of runs times 4, plus 1 when held matches follow,
//	               plus 2 when extra sections follow; the runs; then, when
//	               flagged, the count of held matches and the matches,
//	               which are runs too; then, when flagged, the count of
//	               extra sections and each as its kind, its length in
//	               bytes and its bytes
//	suppression    extra section of kind 1: the rule's alert suppression
//	               entries (suppress.go): count; per entry its by hash, 8
//	               bytes little-endian, and its expiry (signed) as the
//	               difference from the previous entry's (from 0 for the
//	               first)
//	aggregate      extra section of kind 2: an aggregate rule's window
//	               (appendAggState in aggregate.go)
//	run            state id; last node's index plus one (0: none); start
//	               time and start seq as the signed difference from the
//	               record of the chain's first node, and previous time from
//	               the record of the last node (0, 0 and 0 for every run
//	               the matcher makes; from 0 for a run without a node)
//
// Records and nodes are written once however many runs share them. The
// raw events are most of the bytes; the rest is a few bytes per record,
// node and run, and 8 per rule.
//
// Version 2 (read only) differs in: the number of runs times 2, plus 1
// when held matches follow, and no extra sections.
//
// Version 1 (read only) differs in: no time exponent; records as absolute
// time (signed), seq, source index (always) and offset (signed); rules as
// name and version strings (length and bytes), then the count of runs and
// the runs, then the count of held matches and them; runs with absolute
// start time (signed), start seq and previous time (signed).
func (p *Partition) AppendKeyState(dst []byte, key string) ([]byte, bool) {
	ks, done := p.viewState(key)
	defer done()
	if ks == nil {
		return dst, false
	}
	e := snapEncoder{p: p, nodes: map[*node]int{}, recs: map[*keptEvent]int{}, sources: map[string]int{}}
	ruleKeys := ks.ruleViews() // a group's state as its members'
	for _, rk := range ruleKeys {
		for _, r := range rk.runs {
			e.addChain(r.last)
		}
		for _, r := range rk.heldRuns() {
			e.addChain(r.last)
		}
	}

	// The unit of times: the largest power of ten dividing every time
	// difference written. Event times are mostly whole milliseconds.
	exp := maxTimeExponent
	fit := func(delta int64) {
		for delta%pow10[exp] != 0 {
			exp--
		}
	}
	var prevTime int64
	for _, r := range e.recList {
		fit(r.time - prevTime)
		prevTime = r.time
	}
	for _, rk := range ruleKeys {
		for _, runs := range [][]*run{rk.runs, rk.heldRuns()} {
			for _, r := range runs {
				start, _, prev := e.runDeltas(r)
				fit(start)
				fit(prev)
			}
		}
		var prevUntil int64
		for _, s := range rk.suppressions() {
			fit(s.until - prevUntil)
			prevUntil = s.until
		}
	}
	unit := pow10[exp]

	dst = binary.AppendUvarint(dst, snapshotVersion)
	dst = binary.AppendUvarint(dst, uint64(exp))
	dst = binary.AppendUvarint(dst, uint64(len(e.sourceList)))
	for _, s := range e.sourceList {
		dst = appendLenString(dst, s)
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.recList)))
	var last keptEvent
	for _, r := range e.recList {
		if len(e.sourceList) > 1 {
			dst = binary.AppendUvarint(dst, uint64(e.sources[p.sources[r.source]]))
		}
		dst = binary.AppendVarint(dst, (r.time-last.time)/unit)
		dst = binary.AppendVarint(dst, int64(r.seq-last.seq))
		dst = binary.AppendVarint(dst, r.offset-last.offset)
		raw := r.raw()
		dst = binary.AppendUvarint(dst, uint64(len(raw)))
		dst = append(dst, raw...)
		last.time, last.seq, last.offset = r.time, r.seq, r.offset
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.nodeList)))
	for _, n := range e.nodeList {
		dst = binary.AppendUvarint(dst, uint64(e.recs[n.ev]))
		dst = binary.AppendVarint(dst, int64(n.step))
		dst = binary.AppendUvarint(dst, e.ref(n.prev))
	}
	dst = binary.AppendUvarint(dst, uint64(len(ruleKeys)))
	for _, rk := range ruleKeys {
		dst = binary.LittleEndian.AppendUint64(dst, ruleRef(rk.rule.name, rk.rule.rule.Version))
		flags := uint64(0)
		if len(rk.heldRuns()) > 0 {
			flags |= 1
		}
		sup := rk.suppressions()
		var agg *aggState
		if rk.x != nil && rk.x.agg != nil && !rk.x.agg.empty() {
			agg = rk.x.agg
		}
		sections := uint64(0)
		if len(sup) > 0 {
			sections++
		}
		if agg != nil {
			sections++
		}
		if sections > 0 {
			flags |= 2
		}
		dst = binary.AppendUvarint(dst, uint64(len(rk.runs))<<2|flags)
		dst = e.appendRuns(dst, rk.runs, unit)
		if len(rk.heldRuns()) > 0 {
			dst = binary.AppendUvarint(dst, uint64(len(rk.heldRuns())))
			dst = e.appendRuns(dst, rk.heldRuns(), unit)
		}
		if sections > 0 {
			dst = binary.AppendUvarint(dst, sections)
		}
		if len(sup) > 0 {
			dst = appendSection(dst, sectionSuppression, func(dst []byte) []byte {
				return appendSuppressions(dst, sup, unit)
			})
		}
		if agg != nil {
			dst = appendSection(dst, sectionAggregate, func(dst []byte) []byte {
				return appendAggState(dst, agg, rk.rule.agg.cols)
			})
		}
	}
	return dst, true
}

// ruleRef names a rule version in a key state: a hash of the rule's
// "ruleset/rule" name and its version. Eight bytes rather than the two
// strings (36 bytes for payments/impossible-travel), a tenth of a key
// holding one partial match; two rules of one Program sharing a hash is a
// chance of 2^-64 per pair.
func ruleRef(name, version string) uint64 {
	var h xxhash.Digest
	h.Reset()
	_, _ = h.WriteString(name)    // never fails
	_, _ = h.Write([]byte{0})     // never fails
	_, _ = h.WriteString(version) // never fails
	return h.Sum64()
}

func appendLenString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

type snapEncoder struct {
	p        *Partition
	nodes    map[*node]int
	nodeList []*node
	// firstOf[i] is the number of the first node of node i's chain.
	firstOf    []int
	recs       map[*keptEvent]int
	recList    []*keptEvent
	sources    map[string]int
	sourceList []string
}

// addChain numbers the nodes of a chain, oldest first, so that a node's
// predecessor always has a smaller number.
func (e *snapEncoder) addChain(n *node) {
	if n == nil {
		return
	}
	if _, ok := e.nodes[n]; ok {
		return
	}
	e.addChain(n.prev)
	if _, ok := e.recs[n.ev]; !ok {
		e.recs[n.ev] = len(e.recList)
		e.recList = append(e.recList, n.ev)
		source := e.p.sources[n.ev.source]
		if _, ok := e.sources[source]; !ok {
			e.sources[source] = len(e.sourceList)
			e.sourceList = append(e.sourceList, source)
		}
	}
	first := len(e.nodeList)
	if n.prev != nil {
		first = e.firstOf[e.nodes[n.prev]]
	}
	e.nodes[n] = len(e.nodeList)
	e.nodeList = append(e.nodeList, n)
	e.firstOf = append(e.firstOf, first)
}

// ref is 0 for nil, else the node's number plus one.
func (e *snapEncoder) ref(n *node) uint64 {
	if n == nil {
		return 0
	}
	return uint64(e.nodes[n]) + 1
}

// runDeltas returns what version 2 writes of a run's times and seq: their
// differences from the records of its chain's first and last nodes.
func (e *snapEncoder) runDeltas(r *run) (start, startSeq, prev int64) {
	if r.last == nil {
		return r.startTime, int64(r.startSeq), r.prevTime
	}
	first := e.nodeList[e.firstOf[e.nodes[r.last]]].ev
	return r.startTime - first.time, int64(r.startSeq - first.seq), r.prevTime - r.last.ev.time
}

func (e *snapEncoder) appendRuns(dst []byte, runs []*run, unit int64) []byte {
	for _, r := range runs {
		start, startSeq, prev := e.runDeltas(r)
		dst = binary.AppendUvarint(dst, uint64(r.state.ID))
		dst = binary.AppendUvarint(dst, e.ref(r.last))
		dst = binary.AppendVarint(dst, start/unit)
		dst = binary.AppendVarint(dst, startSeq)
		dst = binary.AppendVarint(dst, prev/unit)
	}
	return dst
}

// ErrSnapshot wraps every error decoding a key state.
var ErrSnapshot = errors.New("bad key state")

// RestoreKey loads a key's state from its encoding, of any version up to
// snapshotVersion. State of a rule that is no longer in the Program, or
// whose version changed, is dropped: its automaton is gone. It fails when
// the key is already resident, and with an error wrapping ErrSnapshot when
// the encoding is corrupt, truncated or of an unknown version.
func (p *Partition) RestoreKey(key string, data []byte) error {
	if p.Resident(key) {
		return fmt.Errorf("restore key %q: already in memory", key)
	}
	ks, err := p.decodeKeyState(key, data)
	if err != nil {
		return fmt.Errorf("restore key %q: %w", key, err)
	}
	for _, rk := range ks.rules {
		p.addLive(rk.rule, len(rk.runs))
	}
	if len(ks.rules) == 0 {
		return nil
	}
	p.keys.put(ks)
	p.settle(ks)
	return nil
}

// chainBounds summarise a node's chain, so that checking a run's chain
// and finding its first record take constant time however long the chain
// and however many runs share it.
type chainBounds struct {
	first            int // number of the chain's first node
	minStep, maxStep int64
}

// decodeKeyState decodes a key state of any known version.
func (p *Partition) decodeKeyState(key string, data []byte) (*keyState, error) {
	d := snapDecoder{b: data, size: len(data), part: "version", item: -1}
	v := d.uvarint()
	if d.err != nil {
		return nil, d.error()
	}
	if v == 0 || v > snapshotVersion {
		return nil, fmt.Errorf("%w: version %d is not known to this version of Shrike (it reads 1 to %d)", ErrSnapshot, v, snapshotVersion)
	}
	d.version = v
	unit := int64(1)
	if v >= 2 {
		d.at("time exponent", -1, 0)
		if exp := d.uvarint(); exp > maxTimeExponent {
			d.fail(fmt.Sprintf("%d is above %d", exp, maxTimeExponent))
		} else {
			unit = pow10[exp]
		}
	}

	d.at("source count", -1, 0)
	sources := make([]string, d.count())
	for i := range sources {
		d.at("source", i, len(sources))
		sources[i] = d.string()
	}

	d.at("record count", -1, 0)
	recs := make([]*keptEvent, d.count())
	var last Record
	for i := range recs {
		d.at("record", i, len(recs))
		r := &Record{Key: key}
		src := 0
		if v == 1 {
			r.Time, r.Seq = d.varint(), d.uvarint()
			src = d.index(len(sources))
			r.Pos.Offset = d.varint()
		} else {
			if len(sources) != 1 {
				src = d.index(len(sources))
			}
			r.Time = last.Time + d.varint()*unit
			r.Seq = last.Seq + uint64(d.varint())
			r.Pos.Offset = last.Pos.Offset + d.varint()
			last.Time, last.Seq, last.Pos.Offset = r.Time, r.Seq, r.Pos.Offset
		}
		raw := d.bytes()
		if d.err != nil {
			return nil, d.error()
		}
		r.Pos.Source = sources[src]
		ev, err := rules.ParseEvent(raw)
		if err != nil {
			d.err = fmt.Errorf("record %d of %d: event: %w", i+1, len(recs), err)
			return nil, d.error()
		}
		// The kept event is a copy: the key state holds nothing of data.
		recs[i] = p.keep(raw, ev.Preloaded(), r.Time, r.Seq, r.Pos)
	}

	d.at("node count", -1, 0)
	nodes := make([]*node, d.count())
	chains := make([]chainBounds, len(nodes))
	for i := range nodes {
		d.at("node", i, len(nodes))
		rec := d.index(len(recs))
		step := d.varint()
		prev := d.uvarint()
		if d.err != nil {
			return nil, d.error()
		}
		if prev > uint64(i) {
			d.fail("refers to a later node")
			return nil, d.error()
		}
		n := &node{ev: recs[rec], step: int(step)}
		c := chainBounds{first: i, minStep: step, maxStep: step}
		if prev > 0 {
			n.prev = nodes[prev-1]
			pc := chains[prev-1]
			c = chainBounds{first: pc.first, minStep: min(step, pc.minStep), maxStep: max(step, pc.maxStep)}
		}
		nodes[i], chains[i] = n, c
	}

	ks := newKeyState(key, hashKey(key))
	readRuns := func(pr *planRule, part string, n int) []*run {
		var runs []*run
		for j := range n {
			d.at(part, j, n)
			stateID, lastNode := d.uvarint(), d.uvarint()
			r := &run{}
			var startSeqDelta int64
			if v == 1 {
				r.startTime, r.startSeq, r.prevTime = d.varint(), d.uvarint(), d.varint()
			} else {
				r.startTime, startSeqDelta, r.prevTime = d.varint()*unit, d.varint(), d.varint()*unit
				r.startSeq = uint64(startSeqDelta)
			}
			if d.err != nil || pr == nil {
				continue
			}
			if stateID >= uint64(len(pr.auto.States)) {
				d.fail(fmt.Sprintf("state %d of a rule with %d", stateID, len(pr.auto.States)))
				continue
			}
			if lastNode > uint64(len(nodes)) {
				d.fail(fmt.Sprintf("node %d of %d", lastNode, len(nodes)))
				continue
			}
			r.state = pr.auto.States[stateID]
			if lastNode > 0 {
				r.last = nodes[lastNode-1]
				c := chains[lastNode-1]
				if c.minStep < 0 || c.maxStep >= int64(len(pr.auto.StepNames)) {
					step := c.maxStep
					if c.minStep < 0 {
						step = c.minStep
					}
					d.fail(fmt.Sprintf("node of step %d of a rule with %d", step, len(pr.auto.StepNames)))
					continue
				}
				if v >= 2 {
					first := nodes[c.first].ev
					r.startTime += first.time
					r.startSeq += first.seq
					r.prevTime += r.last.ev.time
				}
			}
			runs = append(runs, r)
		}
		return runs
	}
	byName := p.prog.byName()
	byRef := p.prog.byRef()
	d.at("rule count", -1, 0)
	nrules := d.count()
	for i := range nrules {
		d.at("rule", i, nrules)
		var pr *planRule
		var nruns int
		held, extra := true, false
		switch v {
		case 1:
			name, version := d.string(), d.string()
			if r := byName[name]; r != nil && r.rule.Version == version {
				pr = r
			}
			nruns = d.count()
		case 2:
			pr = byRef[d.fixed64()]
			flagged := d.uvarint()
			nruns, held = d.limit(flagged>>1), flagged&1 == 1
		default:
			pr = byRef[d.fixed64()]
			flagged := d.uvarint()
			nruns, held, extra = d.limit(flagged>>2), flagged&1 == 1, flagged&2 != 0
		}
		// A single-event or aggregate rule holds no partial match, only
		// suppression entries and an aggregate's window.
		runsOf := pr
		if pr != nil && pr.auto == nil {
			runsOf = nil
			if v < 3 || (pr.rule.Alert.Suppress == nil && pr.agg == nil) {
				pr = nil
			}
		}
		if runsOf == nil && pr != nil && nruns > 0 {
			d.fail(fmt.Sprintf("%d runs of single-event rule %s", nruns, pr.name))
		}
		rk := &ruleKey{rule: pr}
		rk.runs = readRuns(runsOf, "run", nruns)
		if held {
			d.at("rule", i, nrules)
			rk.setHeld(readRuns(runsOf, "held match", d.count()))
		}
		if extra {
			d.at("rule", i, nrules)
			d.readSections(rk, unit)
			if pr == nil || pr.rule.Alert.Suppress == nil {
				rk.setSuppressions(nil) // no longer the rule's
			}
		}
		if d.err != nil {
			return nil, d.error()
		}
		if pr == nil || rk.empty() {
			continue
		}
		if slices.ContainsFunc(ks.rules, func(o *ruleKey) bool { return o.rule == pr }) {
			d.at("rule", i, nrules)
			d.fail("rule " + pr.name + " a second time")
			return nil, d.error()
		}
		ks.add(rk)
	}
	if d.err == nil && len(d.b) > 0 {
		d.at("end", -1, 0)
		d.fail(fmt.Sprintf("%d bytes past the end", len(d.b)))
	}
	if d.err != nil {
		return nil, d.error()
	}
	return ks, nil
}

// byName indexes the Program's rules by "ruleset/rule", and byRef by
// ruleRef: version 1 key states name rules, version 2 ones refer to them.
func (p *Program) byName() map[string]*planRule {
	p.indexNames()
	return p.names
}

func (p *Program) byRef() map[uint64]*planRule {
	p.indexNames()
	return p.refs
}

func (p *Program) indexNames() {
	p.nameOnce.Do(func() {
		p.names = make(map[string]*planRule, len(p.rules))
		p.refs = make(map[uint64]*planRule, len(p.rules))
		for _, r := range p.rules {
			p.names[r.name] = r
			p.refs[ruleRef(r.name, r.rule.Version)] = r
		}
	})
}

// snapDecoder reads a key state; its first error sticks, and names the
// part of the state and the byte where it arose.
type snapDecoder struct {
	b       []byte
	size    int    // of the whole state
	version uint64 // 0 until read
	err     error
	// part, item and items say what is being read ("record", 2, 5), for
	// errors; item is -1 for a part that is not one of several.
	part        string
	item, items int
}

func (d *snapDecoder) at(part string, item, items int) {
	d.part, d.item, d.items = part, item, items
}

func (d *snapDecoder) fail(msg string) {
	if d.err != nil {
		return
	}
	where := d.part
	if d.item >= 0 {
		where = fmt.Sprintf("%s %d of %d", d.part, d.item+1, d.items)
	}
	d.err = fmt.Errorf("%s at byte %d: %s", where, d.size-len(d.b), msg)
}

// error is the first error, wrapping ErrSnapshot.
func (d *snapDecoder) error() error {
	if d.version == 0 {
		return fmt.Errorf("%w: %w", ErrSnapshot, d.err)
	}
	return fmt.Errorf("%w: version %d: %w", ErrSnapshot, d.version, d.err)
}

func (d *snapDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("truncated or overlong varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *snapDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("truncated or overlong varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *snapDecoder) fixed64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

// count reads a length that cannot exceed the bytes left (every element
// takes at least one byte), so a corrupt length cannot allocate much.
func (d *snapDecoder) count() int { return d.limit(d.uvarint()) }

// limit checks a length read otherwise as count does.
func (d *snapDecoder) limit(n uint64) int {
	if d.err == nil && n > uint64(len(d.b)) {
		d.fail(fmt.Sprintf("length %d, %d bytes left", n, len(d.b)))
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}

func (d *snapDecoder) index(limit int) int {
	i := d.uvarint()
	if d.err == nil && i >= uint64(limit) {
		d.fail(fmt.Sprintf("index %d of %d", i, limit))
	}
	if d.err != nil {
		return 0
	}
	return int(i)
}

func (d *snapDecoder) bytes() []byte {
	n := d.count()
	if d.err != nil {
		return nil
	}
	b := append([]byte(nil), d.b[:n]...)
	d.b = d.b[n:]
	return b
}

func (d *snapDecoder) string() string { return string(d.bytes()) }

// OldestBuffered returns the smallest source offset among the records still
// waiting for the watermark, and false when none waits. A runtime that
// checkpoints resumes its source there after a restart: the records from
// that offset on that the restored watermark already passed were matched
// before the checkpoint, and are to be skipped.
func (p *Partition) OldestBuffered() (int64, bool) {
	oldest, ok := int64(math.MaxInt64), false
	for _, r := range p.pending.fifo[p.pending.head:] {
		oldest, ok = min(oldest, r.Pos.Offset), true
	}
	for _, r := range p.pending.heap {
		oldest, ok = min(oldest, r.Pos.Offset), true
	}
	return oldest, ok
}

// BufferedKeys returns the keys that have records waiting for the
// watermark: they must stay in memory.
func (p *Partition) BufferedKeys() map[string]bool {
	keys := make(map[string]bool)
	for _, r := range p.pending.fifo[p.pending.head:] {
		keys[r.Key] = true
	}
	for _, r := range p.pending.heap {
		keys[r.Key] = true
	}
	return keys
}

// BufferedSet tells the keys that may have records waiting for the
// watermark: a set of their hashes' bits, built in one pass over the
// buffered records without a map of their keys (which cost eviction a
// tenth of the engine's time with many keys). It may say yes for a key
// without buffered records (one in 16 or fewer, for a key whose hash
// collides), never no for one with.
type BufferedSet struct {
	bits []uint64
	mask uint64
}

// BufferedSet returns the set of keys with records waiting for the
// watermark, as of now.
func (p *Partition) BufferedSet() BufferedSet {
	n := len(p.pending.fifo) - p.pending.head + len(p.pending.heap)
	if n == 0 {
		return BufferedSet{}
	}
	// A power of two of at least 16 bits per record.
	size := uint64(64)
	for size < uint64(16*n) {
		size *= 2
	}
	set := BufferedSet{bits: make([]uint64, size/64), mask: size - 1}
	for _, r := range p.pending.fifo[p.pending.head:] {
		set.add(r.keyHash())
	}
	for _, r := range p.pending.heap {
		set.add(r.keyHash())
	}
	return set
}

func (s BufferedSet) add(h uint64) {
	i := h & s.mask
	s.bits[i/64] |= 1 << (i % 64)
}

// MayHold reports whether key may have records waiting for the
// watermark: false means it has none.
func (s BufferedSet) MayHold(key string) bool {
	if s.bits == nil {
		return false
	}
	i := hashKey(key) & s.mask
	return s.bits[i/64]&(1<<(i%64)) != 0
}

// EvictFrom offers resident keys to evict, one at a time, from position
// pos of an order spread over the Partition's key table: evict is called
// with a key, and evicts it or not (Evict), until it returns false or
// every resident key was offered; EvictFrom returns the position to go on
// from at the next eviction, so that successive evictions go round the
// keys rather than start over. Only the keys offered are visited, not
// every resident one. A key that evict leaves may be offered twice, and
// one moved by another's eviction not at all, in one call.
func (p *Partition) EvictFrom(pos uint64, evict func(key string) bool) uint64 {
	return p.keys.from(pos, func(e keySlot) bool { return evict(e.key()) })
}

// ResidentKeys returns the keys whose state is in memory.
func (p *Partition) ResidentKeys() []string {
	keys := make([]string, 0, p.keys.len())
	for e := range p.keys.all() {
		keys = append(keys, e.key())
	}
	return keys
}
