package matcher

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

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

// Changes returns the keys whose state changed since the last call: those
// that still hold state (encode them with AppendKeyState) and those whose
// state is now empty (delete them from the store).
func (p *Partition) Changes() (changed, emptied []string) {
	seen := make(map[string]bool, len(p.dirty))
	for _, ks := range p.dirty {
		ks.dirty = false
		if seen[ks.key] {
			continue
		}
		seen[ks.key] = true
		if p.keys.get(ks.key, ks.hash) != nil {
			changed = append(changed, ks.key)
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
	if !ks.dirty {
		ks.dirty = true
		p.dirty = append(p.dirty, ks)
	}
}

// Resident reports whether the key's state is in memory.
func (p *Partition) Resident(key string) bool { return p.keys.lookup(key) != nil }

// Evict drops a key's state from memory. The caller must have stored it
// (it is not in Changes) and must not evict a key that still has records
// waiting for the watermark.
func (p *Partition) Evict(key string) {
	ks := p.keys.lookup(key)
	if ks == nil {
		return
	}
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
	ks := p.keys.lookup(key)
	if ks == nil {
		return 0, false
	}
	d := int64(noDeadline)
	for _, rk := range ks.rules {
		d = min(d, rk.deadline(rk.rule))
	}
	return d, d != noDeadline
}

// snapshotVersion is the encoding version; readers accept every version up
// to theirs.
const snapshotVersion = 1

// AppendKeyState appends the encoding of the key's state to dst; ok is
// false when the key holds no state.
//
// Layout (all integers varints): version; the records the state refers to
// (time, seq, source, offset, raw event); the buffer nodes (record, step,
// previous node); then per rule its name, version and runs (state id, last
// node, start time and seq, previous time) and held matches. Nodes and
// records are written once however many runs share them.
func (p *Partition) AppendKeyState(dst []byte, key string) ([]byte, bool) {
	ks := p.keys.lookup(key)
	if ks == nil {
		return dst, false
	}
	e := snapEncoder{nodes: map[*node]int{}, recs: map[*Record]int{}, sources: map[string]int{}}
	ruleKeys := ks.ruleViews() // a group's state as its members'
	for _, rk := range ruleKeys {
		for _, r := range rk.runs {
			e.addChain(r.last)
		}
		for _, r := range rk.held {
			e.addChain(r.last)
		}
	}
	dst = binary.AppendUvarint(dst, snapshotVersion)
	dst = binary.AppendUvarint(dst, uint64(len(e.sourceList)))
	for _, s := range e.sourceList {
		dst = appendLenString(dst, s)
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.recList)))
	for _, r := range e.recList {
		dst = binary.AppendVarint(dst, r.Time)
		dst = binary.AppendUvarint(dst, r.Seq)
		dst = binary.AppendUvarint(dst, uint64(e.sources[r.Pos.Source]))
		dst = binary.AppendVarint(dst, r.Pos.Offset)
		raw := r.Event.Raw()
		dst = binary.AppendUvarint(dst, uint64(len(raw)))
		dst = append(dst, raw...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.nodeList)))
	for _, n := range e.nodeList {
		dst = binary.AppendUvarint(dst, uint64(e.recs[n.rec]))
		dst = binary.AppendVarint(dst, int64(n.step))
		dst = binary.AppendUvarint(dst, e.ref(n.prev))
	}
	dst = binary.AppendUvarint(dst, uint64(len(ruleKeys)))
	for _, rk := range ruleKeys {
		dst = appendLenString(dst, rk.rule.name)
		dst = appendLenString(dst, rk.rule.rule.Version)
		for _, runs := range [][]*run{rk.runs, rk.held} {
			dst = binary.AppendUvarint(dst, uint64(len(runs)))
			for _, r := range runs {
				dst = binary.AppendUvarint(dst, uint64(r.state.ID))
				dst = binary.AppendUvarint(dst, e.ref(r.last))
				dst = binary.AppendVarint(dst, r.startTime)
				dst = binary.AppendUvarint(dst, r.startSeq)
				dst = binary.AppendVarint(dst, r.prevTime)
			}
		}
	}
	return dst, true
}

func appendLenString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

type snapEncoder struct {
	nodes      map[*node]int
	nodeList   []*node
	recs       map[*Record]int
	recList    []*Record
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
	if _, ok := e.recs[n.rec]; !ok {
		e.recs[n.rec] = len(e.recList)
		e.recList = append(e.recList, n.rec)
		if _, ok := e.sources[n.rec.Pos.Source]; !ok {
			e.sources[n.rec.Pos.Source] = len(e.sourceList)
			e.sourceList = append(e.sourceList, n.rec.Pos.Source)
		}
	}
	e.nodes[n] = len(e.nodeList)
	e.nodeList = append(e.nodeList, n)
}

// ref is 0 for nil, else the node's number plus one.
func (e *snapEncoder) ref(n *node) uint64 {
	if n == nil {
		return 0
	}
	return uint64(e.nodes[n]) + 1
}

// ErrSnapshot wraps every error decoding a key state.
var ErrSnapshot = errors.New("bad key state")

// RestoreKey loads a key's state from its encoding. State of a rule that is
// no longer in the Program, or whose version changed, is dropped: its
// automaton is gone. It fails when the key is already resident.
func (p *Partition) RestoreKey(key string, data []byte) error {
	if p.keys.lookup(key) != nil {
		return fmt.Errorf("restore key %q: already in memory", key)
	}
	d := snapDecoder{b: data}
	if v := d.uvarint(); v == 0 || v > snapshotVersion {
		return fmt.Errorf("restore key %q: %w: version %d", key, ErrSnapshot, v)
	}
	sources := make([]string, d.count())
	for i := range sources {
		sources[i] = d.string()
	}
	recs := make([]*Record, d.count())
	for i := range recs {
		r := &Record{Key: key}
		r.Time = d.varint()
		r.Seq = d.uvarint()
		src := d.index(len(sources))
		r.Pos.Offset = d.varint()
		raw := d.bytes()
		if d.err != nil {
			break
		}
		r.Pos.Source = sources[src]
		ev, err := rules.ParseEvent(raw)
		if err != nil {
			return fmt.Errorf("restore key %q: %w: event: %w", key, ErrSnapshot, err)
		}
		r.Event = ev
		recs[i] = r
	}
	nodes := make([]*node, d.count())
	for i := range nodes {
		n := &node{}
		ri := d.index(len(recs))
		if d.err != nil {
			break
		}
		n.rec = recs[ri]
		n.step = int(d.varint())
		if prev := d.uvarint(); prev > uint64(i) {
			d.fail("node refers forward")
		} else if prev > 0 {
			n.prev = nodes[prev-1]
		}
		nodes[i] = n
	}
	ks := newKeyState(key, hashKey(key))
	byName := p.prog.byName()
	nrules := d.count()
	for range nrules {
		name, version := d.string(), d.string()
		pr := byName[name]
		keep := pr != nil && pr.auto != nil && pr.rule.Version == version
		rk := &ruleKey{rule: pr}
		for part := range 2 {
			n := d.count()
			for range n {
				stateID, last := d.index(math.MaxInt), d.uvarint()
				r := &run{startTime: d.varint(), startSeq: d.uvarint(), prevTime: d.varint()}
				if d.err != nil || !keep {
					continue
				}
				if stateID >= len(pr.auto.States) || last > uint64(len(nodes)) {
					d.fail("run refers to a missing state or node")
					continue
				}
				r.state = pr.auto.States[stateID]
				if last > 0 {
					r.last = nodes[last-1]
				}
				for n := r.last; n != nil; n = n.prev {
					if n.step < 0 || n.step >= len(pr.auto.StepNames) {
						d.fail("node of a step the rule does not have")
						break
					}
				}
				if part == 0 {
					rk.runs = append(rk.runs, r)
				} else {
					rk.held = append(rk.held, r)
				}
			}
		}
		if keep && !rk.empty() {
			ks.add(rk)
		}
	}
	if d.err != nil {
		return fmt.Errorf("restore key %q: %w: %w", key, ErrSnapshot, d.err)
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

// byName indexes the Program's rules by "ruleset/rule".
func (p *Program) byName() map[string]*planRule {
	p.nameOnce.Do(func() {
		p.names = make(map[string]*planRule, len(p.rules))
		for _, r := range p.rules {
			p.names[r.name] = r
		}
	})
	return p.names
}

type snapDecoder struct {
	b   []byte
	err error
}

func (d *snapDecoder) fail(msg string) {
	if d.err == nil {
		d.err = errors.New(msg)
	}
}

func (d *snapDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("truncated")
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
		d.fail("truncated")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that cannot exceed the bytes left (every element
// takes at least one byte), so a corrupt length cannot allocate much.
func (d *snapDecoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("length past the end")
		return 0
	}
	return int(n)
}

func (d *snapDecoder) index(limit int) int {
	i := d.uvarint()
	if i >= uint64(limit) {
		d.fail("index out of range")
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

// ResidentKeys returns the keys whose state is in memory.
func (p *Partition) ResidentKeys() []string {
	keys := make([]string, 0, p.keys.len())
	for ks := range p.keys.all() {
		keys = append(keys, ks.key)
	}
	return keys
}
