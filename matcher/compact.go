package matcher

import (
	"iter"
	"math"
	"strings"
	"unsafe"
)

// Most keys with state hold one partial match of one rule that took one
// event: a password reset waiting for its second factor, a first card
// payment in a velocity window. As a keyState, that is five allocations
// (the key state, the rule's state, the run, its node and the kept event),
// four of them full of pointers the collector scans. A compact key holds
// the same in one pointer-free allocation:
//
//	compactKey header | key bytes, padded to 8 | kept event (retain.go)
//
// with the rule, the run's state and the node's step as numbers; the key's
// bytes are left out when the event's bytes hold them (a key extracted
// from a string field), and the header then points at them there. The key
// table's entry points at it (keySlot), and the timers find keys by
// their hash, so that nothing else does.
//
// A key is expanded into a keyState when a record or a timer needs it
// (inflate), in objects the partition reuses, and folded back when it
// settles in the compact shape again (deflate), in place: the kept event
// of a key that had no state is allocated with room for the header and
// the key before it (Partition.keyRoom), so that folding copies nothing.
// Checkpoints, reloads and tests see keyStates: they inflate.

// compactKey is the header of a compact key's allocation.
type compactKey struct {
	// deadline is keyState.deadline: when the key's timer is scheduled.
	deadline int64
	rule     uint32 // index in Partition.rules
	state    uint32 // the run's nfa.State, by ID in the rule's automaton
	step     int16  // the node's step
	keyLen   uint16
	// keyAt is where the key's bytes are, from the header's start: after
	// it, or in the event's bytes. They are written once, when the
	// allocation is made, and never again: alerts may hold the key as a
	// string pointing at them.
	keyAt uint16
	flags uint16
}

const (
	// compactKeyInEvent marks a key whose bytes are the event's.
	compactKeyInEvent = 1 << iota
	// compactCapLogged is ruleKey.capLogged.
	compactCapLogged
)

const compactHeaderSize = unsafe.Sizeof(compactKey{})

// maxCompactKey bounds the keys that are kept compact: the prefix's size
// is stored in the kept event's flags, in 16 bits.
const maxCompactKey = 1024

// compactPrefix is the size of the header and key before the kept event
// of a key of n bytes.
func compactPrefix(n int) uintptr {
	return compactHeaderSize + (uintptr(n)+7)&^7
}

// key returns the key, a string over the allocation's bytes.
func (c *compactKey) key() string {
	return unsafe.String((*byte)(unsafe.Add(unsafe.Pointer(c), c.keyAt)), int(c.keyLen))
}

// event returns the kept event after the header.
func (c *compactKey) event() *keptEvent {
	if c.flags&compactKeyInEvent != 0 {
		return (*keptEvent)(unsafe.Add(unsafe.Pointer(c), compactHeaderSize))
	}
	return (*keptEvent)(unsafe.Add(unsafe.Pointer(c), compactPrefix(int(c.keyLen))))
}

// newCompact allocates a kept event with a compact key's header before it,
// the key written (keepFor writes the event): it returns the header and
// where the kept event goes.
func newCompact(raw []byte, numbers bool, key string) (*compactKey, *keptEvent) {
	at := keptHeaderSize
	if numbers {
		at += keptNumbersSize
	}
	// The key's bytes are the event's when the event holds them within
	// reach of keyAt's 16 bits.
	prefix, inEvent := compactPrefix(len(key)), -1
	if i := bytesIndex(raw, key); i >= 0 && compactHeaderSize+at+uintptr(i) <= math.MaxUint16 {
		prefix, inEvent = compactHeaderSize, i
	}
	blob := make([]byte, int(prefix+at)+len(raw))
	c := (*compactKey)(unsafe.Pointer(unsafe.SliceData(blob)))
	c.keyLen = uint16(len(key))
	if inEvent >= 0 {
		c.keyAt = uint16(prefix + at + uintptr(inEvent))
		c.flags = compactKeyInEvent
	} else {
		c.keyAt = uint16(compactHeaderSize)
		copy(blob[compactHeaderSize:], key)
	}
	return c, (*keptEvent)(unsafe.Pointer(&blob[prefix]))
}

// prefixOf returns the header before a kept event allocated with room
// for one, nil when it was allocated without.
func prefixOf(k *keptEvent) *compactKey {
	n := uintptr(k.flags >> keptPrefixShift)
	if n == 0 {
		return nil
	}
	return (*compactKey)(unsafe.Add(unsafe.Pointer(k), -int(n)))
}

// spares are objects a key's expansion reuses: the last compact key's,
// once it is folded again or gone, and those a new key was built in.
type spares struct {
	ks   *keyState
	rk   *ruleKey
	run  *run
	node *node
}

// inflated are the objects of the key last expanded, until it settles.
type inflated struct {
	ks   *keyState
	rk   *ruleKey
	run  *run
	node *node
}

// takeSpare returns the spare in slot, leaving it empty, or a new T when
// there is none.
func takeSpare[T any](slot **T) *T {
	if v := *slot; v != nil {
		*slot = nil
		return v
	}
	return new(T)
}

func (p *Partition) spareKeyState() *keyState { return takeSpare(&p.spare.ks) }

func (p *Partition) spareRuleKey() *ruleKey { return takeSpare(&p.spare.rk) }

// newRun returns r in a run of its own.
func (p *Partition) newRun(r run) *run {
	n := takeSpare(&p.spare.run)
	*n = r
	return n
}

// newNode returns n in a node of its own.
func (p *Partition) newNode(n node) *node {
	o := takeSpare(&p.spare.node)
	*o = n
	return o
}

// newKeyState is the package's newKeyState for a key the current record
// creates: in a spare keyState, the key's bytes in the prefix of the
// record's kept event when it has one (alerts hold the key as a string,
// which a reused keyState's own bytes could not back).
func (p *Partition) newKeyState(key string, hash uint64) *keyState {
	if p.tracer != nil {
		return newKeyState(key, hash)
	}
	ks := p.spareKeyState()
	*ks = keyState{deadline: noDeadline, hash: hash, pooled: true}
	ks.rules = ks.ruleBuf[:0]
	if k := p.retainedTo; k != nil && p.retainedFrom != nil && p.retainedFrom.Key == key {
		if c := prefixOf(k); c != nil && c.key() == key {
			ks.key = c.key()
			return ks
		}
	}
	ks.key = strings.Clone(key)
	return ks
}

// movedScratch is p.scratch.moved() into a spare ruleKey.
func (p *Partition) movedScratch() *ruleKey {
	rk := &p.scratch
	n := p.spareRuleKey()
	*n = *rk
	if len(rk.runs) > 0 && &rk.runs[:1][0] == &rk.runBuf[0] {
		n.runs = append(n.runBuf[:0], rk.runs...)
	}
	return n
}

// stateOf returns the keyState of a table entry, expanding a compact key
// into one in its place.
func (p *Partition) stateOf(s *keySlot) *keyState {
	if ks := s.full(); ks != nil {
		return ks
	}
	ks := p.inflate(s.compact(), s.hash&^compactBit)
	s.ref, s.hash = unsafe.Pointer(ks), ks.hash
	return ks
}

// inflate returns a compact key as a keyState, in spare objects, which
// p.expanded then names.
func (p *Partition) inflate(c *compactKey, hash uint64) *keyState {
	ev := c.event()
	pr := p.rules[c.rule]
	ks, rk := p.spareKeyState(), p.spareRuleKey()
	n := p.newNode(node{ev: ev, step: int(c.step)})
	r := p.newRun(run{state: pr.auto.States[c.state], last: n, startTime: ev.time, startSeq: ev.seq, prevTime: ev.time})
	*rk = ruleKey{rule: pr, capLogged: c.flags&compactCapLogged != 0}
	rk.runBuf[0] = r
	rk.runs = rk.runBuf[:1]
	*ks = keyState{key: c.key(), hash: hash, deadline: c.deadline, mask: ruleBit(pr), pooled: true}
	ks.ruleBuf[0] = rk
	ks.rules = ks.ruleBuf[:1]
	p.expanded = inflated{ks: ks, rk: rk, run: r, node: n}
	return ks
}

// giveBack makes the objects of a key that is no longer in them spares
// again (those the spares lack).
func (p *Partition) giveBack(ks *keyState, rk *ruleKey, r *run, n *node) {
	if ks != nil && ks.pooled && !ks.dirty && p.spare.ks == nil {
		*ks = keyState{}
		p.spare.ks = ks
	}
	if rk != nil && p.spare.rk == nil {
		*rk = ruleKey{}
		p.spare.rk = rk
	}
	if r != nil && p.spare.run == nil {
		*r = run{}
		p.spare.run = r
	}
	if n != nil && p.spare.node == nil {
		*n = node{}
		p.spare.node = n
	}
}

// settled ends the expansion of ks, which settle found dead (its entry
// removed): the objects it was expanded in are spares again.
func (p *Partition) settledDead(ks *keyState) {
	if e := p.expanded; e.ks == ks {
		p.expanded = inflated{}
		p.giveBack(e.ks, e.rk, e.run, e.node)
	}
}

// deflate folds ks into a compact key in its table entry when it has the
// compact shape, and reports whether it did; ks's objects are then spares.
func (p *Partition) deflate(ks *keyState) bool {
	if p.tracer != nil || p.noCompact || ks.dirty || ks.dead || len(ks.rules) != 1 || len(ks.key) > maxCompactKey {
		return false
	}
	rk := ks.rules[0]
	pr := rk.rule
	if rk.grouped || rk.x != nil || pr.auto == nil || len(rk.runs) != 1 || pr.index > math.MaxUint32 || p.rules[pr.index] != pr {
		return false
	}
	r := rk.runs[0]
	n := r.last
	if r.mask != 0 || n == nil || n.prev != nil || n.step < math.MinInt16 || n.step > math.MaxInt16 {
		return false
	}
	ev := n.ev
	if r.startTime != ev.time || r.startSeq != ev.seq || r.prevTime != ev.time {
		return false
	}
	if id := r.state.ID; id < 0 || id >= len(pr.auto.States) || pr.auto.States[id] != r.state {
		return false
	}
	c := prefixOf(ev)
	if c == nil || c.key() != ks.key {
		c = copyCompact(ev, ks.key)
	}
	c.deadline = ks.deadline
	c.rule = uint32(pr.index)
	c.state = uint32(r.state.ID)
	c.step = int16(n.step)
	c.flags &^= compactCapLogged
	if rk.capLogged {
		c.flags |= compactCapLogged
	}
	s := p.keys.find(ks.key, ks.hash)
	s.ref, s.hash = unsafe.Pointer(c), ks.hash|compactBit
	if e := p.expanded; e.ks == ks {
		p.expanded = inflated{}
	}
	p.giveBack(ks, rk, r, n)
	p.folds++
	return true
}

// copyCompact allocates a compact key for a kept event allocated without
// room for one, copying the event.
func copyCompact(ev *keptEvent, key string) *compactKey {
	c, k := newCompact(ev.raw(), ev.flags&keptNumbers != 0, key)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(k)), ev.bytesAt()+uintptr(ev.rawLen)), unsafe.Slice((*byte)(unsafe.Pointer(ev)), ev.bytesAt()+uintptr(ev.rawLen)))
	at := uintptr(unsafe.Pointer(k)) - uintptr(unsafe.Pointer(c))
	k.flags = k.flags&^(math.MaxUint16<<keptPrefixShift) | uint32(at)<<keptPrefixShift
	return c
}

// bytesIndex is strings.Index over bytes without converting them.
func bytesIndex(b []byte, s string) int {
	return strings.Index(unsafe.String(unsafe.SliceData(b), len(b)), s)
}

// expand returns the keyState of a table entry, expanding a compact key
// for good: for callers that do not settle the key.
func (p *Partition) expand(s *keySlot) *keyState {
	ks := p.stateOf(s)
	if p.expanded.ks == ks {
		p.expanded = inflated{}
	}
	return ks
}

// residentState returns the keyState of key, nil when it is not resident.
func (p *Partition) residentState(key string) *keyState {
	s := p.keys.find(key, hashKey(key))
	if s == nil {
		return nil
	}
	return p.expand(s)
}

// allStates yields every resident key's keyState, expanding compact keys.
// It iterates over a copy of the table, so that the loop may remove keys.
func (p *Partition) allStates() iter.Seq[*keyState] {
	return func(yield func(*keyState) bool) {
		for e := range p.keys.all() {
			ks := e.full()
			if ks == nil {
				s := p.keys.find(e.key(), e.hash&^compactBit)
				if s == nil || s.ref != e.ref {
					continue
				}
				ks = p.expand(s)
			}
			if !yield(ks) {
				return
			}
		}
	}
}

// viewState returns the keyState of key for reading, nil when it is not
// resident, and a function to call when done with it: a compact key is
// expanded in spare objects without leaving its form.
func (p *Partition) viewState(key string) (*keyState, func()) {
	s := p.keys.find(key, hashKey(key))
	if s == nil {
		return nil, func() {}
	}
	if ks := s.full(); ks != nil {
		return ks, func() {}
	}
	before := p.expanded
	ks := p.inflate(s.compact(), s.hash&^compactBit)
	e := p.expanded
	p.expanded = before
	return ks, func() { p.giveBack(e.ks, e.rk, e.run, e.node) }
}
