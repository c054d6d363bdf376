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
// probe on; an entry is the key's only if the key state's key is equal.
type keyTable struct {
	slots []keySlot // a power of two in length; ks == nil marks a free slot
	n     int
}

type keySlot struct {
	hash uint64
	ks   *keyState
}

// maxLoad bounds the share of used slots (in eighths): above it, probe
// sequences grow long.
const maxLoad = 6

func newKeyTable() keyTable { return keyTable{slots: make([]keySlot, 8)} }

func (t *keyTable) mask() uint64 { return uint64(len(t.slots) - 1) }

// home returns the slot key hash h probes first.
func (t *keyTable) home(h uint64) *keySlot { return &t.slots[h&t.mask()] }

// get returns the state of key, whose hash is h; nil when not resident.
func (t *keyTable) get(key string, h uint64) *keyState {
	m := t.mask()
	for i := h & m; ; i = (i + 1) & m {
		s := &t.slots[i]
		if s.ks == nil {
			return nil
		}
		if s.hash == h && s.ks.key == key {
			return s.ks
		}
	}
}

// lookup is get for a caller without the hash.
func (t *keyTable) lookup(key string) *keyState { return t.get(key, hashKey(key)) }

// put adds ks, which must not be resident.
func (t *keyTable) put(ks *keyState) {
	if (t.n+1)*8 > len(t.slots)*maxLoad {
		t.grow()
	}
	t.insert(keySlot{hash: ks.hash, ks: ks})
	t.n++
}

func (t *keyTable) insert(e keySlot) {
	m := t.mask()
	i := e.hash & m
	for t.slots[i].ks != nil {
		i = (i + 1) & m
	}
	t.slots[i] = e
}

func (t *keyTable) grow() {
	old := t.slots
	t.slots = make([]keySlot, 2*len(old))
	for _, e := range old {
		if e.ks != nil {
			t.insert(e)
		}
	}
}

// remove drops ks, which must be resident. The entries after it in its
// probe sequence shift back, so that no free slot breaks a sequence (no
// tombstones to clean up).
func (t *keyTable) remove(ks *keyState) {
	m := t.mask()
	i := ks.hash & m
	for t.slots[i].ks != ks {
		i = (i + 1) & m
	}
	for j := i; ; {
		j = (j + 1) & m
		e := t.slots[j]
		if e.ks == nil {
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

// all yields every resident key state. It iterates over a copy, so that
// the loop may remove states (which moves entries).
func (t *keyTable) all() iter.Seq[*keyState] {
	states := make([]*keyState, 0, t.n)
	for _, e := range t.slots {
		if e.ks != nil {
			states = append(states, e.ks)
		}
	}
	return slices.Values(states)
}

// from calls fn with the states of the slots at positions pos, pos+1, ...
// of an order spread over the table, until fn returns false or every slot
// was visited once, and returns the position to go on from. fn may
// remove the state it is given; an entry that removal moves back may then
// be given twice, or not at all, in one call.
//
// The order is spread so that a caller removing states as it goes
// (eviction) thins the table evenly: removed in slot order, the first
// part of the table emptied and the rest stayed full, one long probe
// sequence that every lookup of a key landing there (most of them, for a
// key not resident) walked to its end, hundreds of slots at half load.
// An odd stride visits every slot of a power-of-two table once, and the
// golden ratio's spreads any run of visits evenly.
func (t *keyTable) from(pos uint64, fn func(*keyState) bool) uint64 {
	m := t.mask()
	stride := (0x9E3779B97F4A7C15 & m) | 1
	j := (pos * stride) & m
	for range len(t.slots) {
		pos++
		if ks := t.slots[j].ks; ks != nil && !fn(ks) {
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
	state := func(d int) *keyState {
		if i := b.head + d; i < len(b.fifo) {
			return p.keys.home(b.fifo[i].keyHash()).ks
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
		prefetchKeyState(state(d), 6-d)
	}
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
