package matcher

import (
	"hash/maphash"
	"iter"
	"slices"
	"unsafe"
)

// The key states are found by a hash of the key that Program.Prepare
// computes on the decoding goroutine, so that the matching goroutine,
// which looks a key up for every record, does not hash it, and can tell
// where the key's entry lies before it processes the record: keys live in
// an open-addressing table (keyTable), and prefetchAhead fetches entries,
// key states and their rules for the records next in line while the
// matcher works on the current one. A key lookup then finds its memory in
// the cache instead of waiting for it.

// keySeed seeds the key hashes of every Partition in the process, so that
// a record prepared by any Program hashes its key as every Partition does.
var keySeed = maphash.MakeSeed()

func hashKey(key string) uint64 { return maphash.String(keySeed, key) }

// keyHash returns the hash of r.Key: the one Prepare computed, else a new
// one (records pushed without Prepare).
func (r *Record) keyHash() uint64 {
	if r.pre.prog != nil {
		return r.pre.keyHash
	}
	return hashKey(r.Key)
}

// keyTable holds the resident key states in an open-addressing hash table
// with linear probing. It is written out rather than a Go map so that the
// matcher can compute where a key's entry lies before it needs it, and
// prefetch it (Partition.prefetchAhead). Keys whose hashes collide simply
// probe on; an entry is the key's only if its key is equal.
//
// An entry holds the key's state in one of two forms: a keyState, or a
// compact key (compact.go), one pointer-free allocation for the common key
// holding a single partial match that took a single event.
type keyTable struct {
	slots []keySlot // a power of two in length; ref == nil marks a free slot
	n     int
}

type keySlot struct {
	// hash is the key's hash, with compactBit set when ref is a compact
	// key.
	hash uint64
	// ref is the *keyState, or the compact key's allocation.
	ref unsafe.Pointer
}

// compactBit marks the entries of compact keys in keySlot.hash. Hashes are
// compared without it, and a table is never 2^63 slots long.
const compactBit = 1 << 63

func (s *keySlot) isCompact() bool { return s.hash&compactBit != 0 }

// full returns the entry's keyState, nil when the key is compact.
func (s *keySlot) full() *keyState {
	if s.isCompact() {
		return nil
	}
	return (*keyState)(s.ref)
}

// compact returns the entry's compact key, nil when the key has a
// keyState.
func (s *keySlot) compact() *compactKey {
	if !s.isCompact() {
		return nil
	}
	return (*compactKey)(s.ref)
}

// key returns the entry's key.
func (s *keySlot) key() string {
	if c := s.compact(); c != nil {
		return c.key()
	}
	return (*keyState)(s.ref).key
}

// deadline returns when the entry's key has its timer scheduled.
func (s *keySlot) deadline() int64 {
	if c := s.compact(); c != nil {
		return c.deadline
	}
	return (*keyState)(s.ref).deadline
}

// sameHash reports whether the entry is for a key of hash h.
func (s *keySlot) sameHash(h uint64) bool { return (s.hash^h)&^compactBit == 0 }

// maxLoad bounds the share of used slots (in eighths): above it, probe
// sequences grow long.
const maxLoad = 6

func newKeyTable() keyTable { return keyTable{slots: make([]keySlot, 8)} }

func (t *keyTable) mask() uint64 { return uint64(len(t.slots) - 1) }

// home returns the slot key hash h probes first.
func (t *keyTable) home(h uint64) *keySlot { return &t.slots[h&t.mask()] }

// find returns the entry of key, whose hash is h; nil when not resident.
// The entry stays where it is until the next put or remove.
func (t *keyTable) find(key string, h uint64) *keySlot {
	m := t.mask()
	for i := h & m; ; i = (i + 1) & m {
		s := &t.slots[i]
		if s.ref == nil {
			return nil
		}
		if s.sameHash(h) && s.key() == key {
			return s
		}
	}
}

// due returns the first entry of a key of hash h whose timer is scheduled
// at deadline; nil when none is (the timer was superseded).
func (t *keyTable) due(h uint64, deadline int64) *keySlot {
	m := t.mask()
	for i := h & m; ; i = (i + 1) & m {
		s := &t.slots[i]
		if s.ref == nil {
			return nil
		}
		if s.sameHash(h) && s.deadline() == deadline {
			return s
		}
	}
}

// get returns the keyState of key, whose hash is h; nil when not resident.
// The key must not be compact.
func (t *keyTable) get(key string, h uint64) *keyState {
	if s := t.find(key, h); s != nil {
		return s.full()
	}
	return nil
}

// lookup is get for a caller without the hash.
func (t *keyTable) lookup(key string) *keyState { return t.get(key, hashKey(key)) }

// put adds ks, which must not be resident.
func (t *keyTable) put(ks *keyState) {
	if (t.n+1)*8 > len(t.slots)*maxLoad {
		t.grow()
	}
	t.insert(keySlot{hash: ks.hash &^ compactBit, ref: unsafe.Pointer(ks)})
	t.n++
}

func (t *keyTable) insert(e keySlot) {
	m := t.mask()
	i := e.hash & m
	for t.slots[i].ref != nil {
		i = (i + 1) & m
	}
	t.slots[i] = e
}

func (t *keyTable) grow() {
	old := t.slots
	t.slots = make([]keySlot, 2*len(old))
	for _, e := range old {
		if e.ref != nil {
			t.insert(e)
		}
	}
}

// remove drops ks, which must be resident.
func (t *keyTable) remove(ks *keyState) { t.removeRef(unsafe.Pointer(ks), ks.hash) }

// removeRef drops the entry whose ref is ref, of a key of hash h. The
// entries after it in its probe sequence shift back, so that no free slot
// breaks a sequence (no tombstones to clean up).
func (t *keyTable) removeRef(ref unsafe.Pointer, h uint64) {
	m := t.mask()
	i := h & m
	for t.slots[i].ref != ref {
		i = (i + 1) & m
	}
	for j := i; ; {
		j = (j + 1) & m
		e := t.slots[j]
		if e.ref == nil {
			break
		}
		// e stays when its home lies cyclically in (i, j]: moving it to i
		// would put it before its home.
		if h := e.hash & m; (i < j && i < h && h <= j) || (i > j && (i < h || h <= j)) {
			continue
		}
		t.slots[i] = e
		i = j
	}
	t.slots[i] = keySlot{}
	t.n--
}

func (t *keyTable) len() int { return t.n }

// all yields every resident entry. It iterates over a copy, so that the
// loop may remove entries (which moves them) or change their form.
func (t *keyTable) all() iter.Seq[keySlot] {
	entries := make([]keySlot, 0, t.n)
	for _, e := range t.slots {
		if e.ref != nil {
			entries = append(entries, e)
		}
	}
	return slices.Values(entries)
}

// from calls fn with the entries of the slots at positions pos, pos+1, ...
// of an order spread over the table, until fn returns false or every slot
// was visited once, and returns the position to go on from. fn may
// remove the entry it is given; an entry that removal moves back may then
// be given twice, or not at all, in one call.
//
// The order is spread so that a caller removing states as it goes
// (eviction) thins the table evenly: removed in slot order, the first
// part of the table emptied and the rest stayed full, one long probe
// sequence that every lookup of a key landing there (most of them, for a
// key not resident) walked to its end, hundreds of slots at half load.
// An odd stride visits every slot of a power-of-two table once, and the
// golden ratio's spreads any run of visits evenly.
func (t *keyTable) from(pos uint64, fn func(keySlot) bool) uint64 {
	m := t.mask()
	stride := (0x9E3779B97F4A7C15 & m) | 1
	j := (pos * stride) & m
	for range len(t.slots) {
		pos++
		if e := t.slots[j]; e.ref != nil && !fn(e) {
			return pos
		}
		j = (j + stride) & m
	}
	return pos
}

// prefetchAhead fetches, for the records next in line, the memory that
// processing them will read: the key's table entry and the record itself,
// then the key state, its list of rules, each rule's state, the list of
// partial matches, the partial matches and the newest event each took.
// Each is a level of pointers that the level before must be in the cache
// to follow, so the record d places ahead is fetched one level deeper than
// the one d+1 places ahead: a level is fetched one record's processing time
// (hundreds of nanoseconds, more than a memory access) before the next
// level reads it, and nothing waits for memory.
//
// Records are processed in the order they wait in the reorder buffer's
// FIFO, except those that arrived out of order (not prefetched).
func (p *Partition) prefetchAhead() {
	b := &p.pending
	state := func(d int) *keySlot {
		if i := b.head + d; i < len(b.fifo) {
			return p.keys.home(b.fifo[i].keyHash())
		}
		return nil
	}
	// The record carries the key's hash: it comes first.
	if i := b.head + 9; i < len(b.fifo) {
		prefetch(unsafe.Pointer(b.fifo[i]))
	}
	if i := b.head + 7; i < len(b.fifo) {
		r := b.fifo[i]
		prefetch(unsafe.Pointer(p.keys.home(r.keyHash())))
		// The key's bytes (compared with the key state's) and the event's
		// head were written on the decoding goroutine's core.
		prefetch(unsafe.Pointer(unsafe.StringData(r.Key)))
		prefetch(unsafe.Pointer(r.Event))
	}
	for d := 6; d >= 1; d-- {
		prefetchSlot(state(d), 6-d)
	}
}

// prefetchSlot is prefetchKeyState for the state in a table entry: a
// compact key is one allocation, its header and event fetched at level 0.
func prefetchSlot(s *keySlot, level int) {
	if s == nil || s.ref == nil {
		return
	}
	if s.isCompact() {
		if level == 0 {
			prefetch(s.ref)
			prefetch(unsafe.Add(s.ref, 64))
		}
		return
	}
	prefetchKeyState((*keyState)(s.ref), level)
}

// maxPrefetches bounds the lines prefetchKeyState fetches for one key and
// level.
const maxPrefetches = 16

// prefetchKeyState fetches one level of what handling a key reads: 0 its
// state, 1 its list of rules, 2 each rule's state, 3 the lists of partial
// matches, 4 the partial matches, 5 the newest node of each. Level l reads
// what level l-1 fetched, so a caller fetches each key level by level, a
// record's (or a timer's) processing time apart.
func prefetchKeyState(ks *keyState, level int) {
	if ks == nil {
		return
	}
	switch level {
	case 0:
		prefetch(unsafe.Pointer(ks))
		prefetch(unsafe.Add(unsafe.Pointer(ks), 64))
	case 1:
		if len(ks.rules) > 0 {
			prefetch(unsafe.Pointer(&ks.rules[0]))
		}
	default:
		// A core keeps a dozen or so misses in flight: past maxPrefetches
		// lines a key's prefetching only costs the walk (a key holding
		// partial matches of a hundred rules).
		n := 0
		for _, rk := range ks.rules {
			switch level {
			case 2:
				prefetch(unsafe.Pointer(rk))
				n++
			case 3:
				if len(rk.runs) > 0 {
					prefetch(unsafe.Pointer(&rk.runs[0]))
					n++
				}
			default:
				for _, r := range rk.runs {
					if level == 4 {
						prefetch(unsafe.Pointer(r))
					} else if r.last != nil {
						prefetch(unsafe.Pointer(r.last))
					}
					if n++; n >= maxPrefetches {
						return
					}
				}
			}
			if n >= maxPrefetches {
				return
			}
		}
	}
}
