package cep

import (
	"container/heap"
	"context"
	"fmt"
	"maps"
	"math"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/state"
)

// keyCache is what a partition worker knows of one stream's keys besides
// the ones its matcher.Partition holds in memory: which keys are evicted
// (their state is in the Store only) and when their windows close, which
// keys the Store is known not to hold, and which changed since the last
// checkpoint. It decides which keys to load and which to evict, and it
// owns three of the Engine's invariants (doc.go):
//
//   - a key the matcher changed since the last checkpoint is never loaded:
//     the Store, not yet told, would give back a state the matcher has
//     since changed or emptied;
//   - an evicted key with an open window is loaded before the watermark
//     passes its deadline, so that its timeout or absence fires on time;
//   - a key with buffered records is never evicted, since the matcher
//     will need its state when the watermark releases them.
//
// Like its Partition, it is used by the worker's goroutine only. It does
// no I/O but through keyLoad.run, one Store call per batch.
type keyCache struct {
	part *matcher.Partition
	ns   string // prefix of the stream's keys in the Store

	// storeEmpty: the Store holds no key of the partition but evicted
	// ones (a partition without checkpoint, until a checkpoint writes a
	// key), so that keys neither resident nor evicted are not looked for.
	storeEmpty bool
	// fresh marks a stream added by a reload: the Store holds none of its
	// keys but evicted ones, for good.
	fresh bool

	// deadlines holds the earliest window close of every key with state
	// and an open window, resident or not, as of the last checkpoint plus
	// pending changes, so that after a restart the keys whose windows
	// close are loaded in time. The Store holds it as the deadline index
	// (deadlineindex.go): buckets holds the same keys by bucket, and dirty
	// the buckets changed since the last commit, true for those that
	// gained a key, the only ones a checkpoint writes (those that only
	// lost keys keep them in the Store until they are written again or
	// empty).
	deadlines map[string]int64
	buckets   map[int64]map[string]struct{}
	dirty     map[int64]bool
	// evicted are keys whose state is in the Store only, with their
	// deadline (noWindow when none); due orders those with a deadline.
	evicted map[string]int64
	due     deadlineHeap
	// recent are the keys pushed since the last checkpoint: eviction
	// spares them while it can. They are tracked only while crowded: the
	// keys in memory are over half the cap at the last checkpoint.
	// recentFrom is the offset they are tracked from: a record pushed
	// since has an offset at least that.
	recent     map[string]struct{}
	crowded    bool
	recentFrom int64
	// evictPos is where the next eviction goes on in the order the
	// matcher offers resident keys in (Partition.EvictFrom).
	evictPos uint64
	// absent are keys known to have no state in the Store, so that they
	// are not asked for again and again. Bounded: cleared when it grows
	// past the resident cap.
	absent map[string]struct{}
	// pending are keys whose Store state may differ from memory: changes
	// taken from the matcher but not yet committed. One that is not
	// resident holds no state, whatever the Store says until the next
	// commit deletes it, so it is never loaded.
	pending map[string]struct{}
	// emptied are the pending keys the last appendCommit found without
	// state (deleted from the Store): absent once committed.
	emptied []string
}

// noWindow marks an evicted key without an open window.
const noWindow = math.MaxInt64

// newKeyCache is the cache of a stream whose keys are in the Store under
// the prefix ns; reset gives it its Partition.
func newKeyCache(ns string) *keyCache {
	c := &keyCache{ns: ns}
	c.reset(nil)
	return c
}

// reset forgets every key: part is a new Partition, holding none.
func (c *keyCache) reset(part *matcher.Partition) {
	c.part = part
	c.deadlines = map[string]int64{}
	c.buckets = map[int64]map[string]struct{}{}
	c.dirty = map[int64]bool{}
	c.evicted = map[string]int64{}
	c.due = nil
	c.recent = map[string]struct{}{}
	c.crowded = false
	c.absent = map[string]struct{}{}
	c.pending = map[string]struct{}{}
	c.emptied = nil
}

// restoreDeadlines takes a checkpoint's deadline index: those keys are in
// the Store with an open window, and are loaded when it closes.
func (c *keyCache) restoreDeadlines(deadlines map[string]int64) {
	for k, d := range deadlines {
		c.setDeadline(k, d, true)
		c.evicted[k] = d
		c.due.push(d, k)
	}
}

// collect moves the keys the matcher changed into pending and returns how
// many are pending. It runs before every decision to load keys: a key
// whose window closed since the last checkpoint may have lost all its
// state, and the Store, not yet told, would give it back.
func (c *keyCache) collect() int {
	changed, emptied := c.part.Changes()
	for _, k := range changed {
		c.pending[k] = struct{}{}
	}
	for _, k := range emptied {
		c.pending[k] = struct{}{}
	}
	return len(c.pending)
}

// needsLoad reports whether key's state may be in the Store while it is
// not in memory. It may say yes wrongly for a key emptied since the last
// checkpoint until collect has run.
func (c *keyCache) needsLoad(key string) bool {
	if c.part.Resident(key) {
		return false
	}
	if _, ok := c.evicted[key]; ok {
		return true
	}
	if c.storeEmpty || c.fresh {
		return false
	}
	if _, ok := c.pending[key]; ok {
		return false
	}
	_, ok := c.absent[key]
	return !ok
}

// pushed notes that a record of key was pushed, for eviction to spare it.
func (c *keyCache) pushed(key string) {
	if c.crowded {
		c.recent[key] = struct{}{}
	}
}

// appendDue appends the evicted keys whose windows close before the
// watermark wm (at or before wm-1, when the matcher fires them).
func (c *keyCache) appendDue(l *keyLoad, wm int64) {
	for len(c.due) > 0 && c.due[0].deadline <= wm-1 {
		e := c.due.pop()
		if d, ok := c.evicted[e.key]; !ok || d != e.deadline {
			continue // loaded since, or evicted again with another deadline
		}
		l.add(c, e.key)
	}
}

// restore takes what the Store gave for key: its state (ok), or nothing.
// A state that cannot be decoded is dropped, and its error returned: the
// key starts over rather than stopping the partition.
func (c *keyCache) restore(key string, data []byte, ok bool) error {
	delete(c.evicted, key)
	if !ok {
		c.absent[key] = struct{}{}
		// The index may list a key the Store no longer holds (an entry
		// left in a bucket that only lost keys): it goes.
		c.setDeadline(key, 0, false)
		return nil
	}
	err := c.part.RestoreKey(key, data)
	if !c.part.Resident(key) {
		// Nothing of it survived (its rules changed or it was corrupt):
		// delete it at the next checkpoint.
		c.pending[key] = struct{}{}
		c.absent[key] = struct{}{}
		c.setDeadline(key, 0, false)
		return err
	}
	// The index may hold an older deadline of the key (left in a bucket
	// that only lost keys): its state says which.
	d, open := c.part.KeyDeadline(key)
	c.setDeadline(key, d, open)
	return err
}

// appendCommit appends the pending keys' states, encoded into arena, to
// put and the emptied ones to del, for a checkpoint, and keeps deadlines
// in step: the buckets of the deadline index that gained keys are put
// too, and those left empty deleted. It returns the bytes of key state
// put, and how many of put and del are buckets.
func (c *keyCache) appendCommit(arena *stateArena, put []state.KeyState, del []string) (_ []state.KeyState, _ []string, stateBytes, buckets int) {
	var bytes int
	c.emptied = c.emptied[:0]
	for k := range c.pending {
		if b, ok := arena.appendKeyState(c.part, k); ok {
			put = append(put, state.KeyState{Key: c.ns + k, State: b})
			bytes += len(b)
			d, open := c.part.KeyDeadline(k)
			c.setDeadline(k, d, open)
		} else {
			del = append(del, c.ns+k)
			c.setDeadline(k, 0, false)
			c.emptied = append(c.emptied, k)
		}
	}
	for b, grown := range c.dirty {
		name := deadlineBucketName(c.ns, b)
		keys := c.buckets[b]
		if len(keys) == 0 {
			del = append(del, name)
			buckets++
			continue
		}
		if !grown {
			// It only lost keys: the Store's copy lists them still, which
			// costs a restart an early load of each, not a missed
			// deadline. Rewriting it for them would write, at every
			// checkpoint, a bucket for each key whose deadline moved.
			continue
		}
		put = append(put, state.KeyState{Key: name, State: encodeDeadlineBucket(b, keys, c.deadlines)})
		buckets++
	}
	return put, del, bytes, buckets
}

// setDeadline records key's deadline d (open) or that it has none (not
// open), and marks the buckets of the deadline index it changes.
func (c *keyCache) setDeadline(key string, d int64, open bool) {
	old, had := c.deadlines[key]
	if had && open && old == d {
		return
	}
	if had {
		b := deadlineBucket(key, old)
		if keys := c.buckets[b]; keys != nil {
			delete(keys, key)
			if len(keys) == 0 {
				delete(c.buckets, b)
			}
		}
		if _, ok := c.dirty[b]; !ok {
			c.dirty[b] = false
		}
	}
	if !open {
		delete(c.deadlines, key)
		return
	}
	c.deadlines[key] = d
	b := deadlineBucket(key, d)
	keys := c.buckets[b]
	if keys == nil {
		keys = map[string]struct{}{}
		c.buckets[b] = keys
	}
	keys[key] = struct{}{}
	c.dirty[b] = true
}

// committed records that the Store holds what appendCommit gave it.
func (c *keyCache) committed() {
	for _, k := range c.emptied {
		c.absent[k] = struct{}{}
	}
	c.emptied = c.emptied[:0]
	clear(c.pending)
	clear(c.dirty)
}

// evict drops keys from memory until at most limit are resident: first
// keys not pushed since the previous checkpoint, then any, never keys with
// buffered records. It runs right after a successful commit, when every
// key in memory is also in the Store; next is the offset of the next
// record to be pushed. It returns how many it evicted.
func (c *keyCache) evict(limit int, next int64) int {
	var n int
	resident := c.part.Stats().Keys
	tracked := c.crowded // recent holds every key pushed since recentFrom
	c.crowded = resident > limit/2
	if resident > limit {
		// The keys with buffered records, a set of every buffered
		// record's key (as many as max_out_of_orderness of traffic), are
		// needed only among the recent keys when every buffered record
		// was pushed since recent was started: the others have none.
		var buffered matcher.BufferedSet
		built := false
		oldest, anyBuffered := c.part.OldestBuffered()
		recentHoldsBuffered := tracked && (!anyBuffered || oldest >= c.recentFrom)
		offer := func(hot bool, buffered matcher.BufferedSet) func(k string) bool {
			return func(k string) bool {
				// A pass evicts only keys of its own kind (recent or not).
				if _, recent := c.recent[k]; recent != hot || buffered.MayHold(k) {
					return true
				}
				d, ok := c.part.KeyDeadline(k)
				if !ok {
					d = noWindow
				}
				c.part.Evict(k)
				c.evicted[k] = d
				if d != noWindow {
					c.due.push(d, k)
				}
				delete(c.absent, k)
				resident--
				n++
				return resident > limit
			}
		}
		for _, hot := range []bool{false, true} {
			if resident <= limit {
				break
			}
			if !built && (hot || !recentHoldsBuffered) {
				buffered, built = c.part.BufferedSet(), true
			}
			// The matcher offers keys from where the last eviction
			// stopped, only as many as it takes; a lap may miss keys an
			// eviction moved, so laps go on while they evict.
			for resident > limit {
				before := n
				c.evictPos = c.part.EvictFrom(c.evictPos, offer(hot, buffered))
				if n == before {
					break
				}
			}
		}
		if len(c.due) > 2*len(c.evicted)+1024 {
			// Keys loaded or evicted again leave stale entries behind;
			// rebuilt, the heap stays within a small factor of evicted.
			c.due = c.due[:0]
			for k, d := range c.evicted {
				if d != noWindow {
					c.due = append(c.due, deadlineEntry{d, k})
				}
			}
			heap.Init(&c.due)
		}
	}
	clear(c.recent)
	c.recentFrom = next
	if len(c.absent) > limit {
		clear(c.absent)
	}
	return n
}

// storeKeys returns the Store names of every key of the stream the cache
// knows of (in memory, evicted, with a deadline, or changed since the last
// checkpoint): what to delete when the stream is dropped.
func (c *keyCache) storeKeys() []string {
	keys := map[string]struct{}{}
	for _, k := range c.part.ResidentKeys() {
		keys[k] = struct{}{}
	}
	for _, m := range []map[string]int64{c.evicted, c.deadlines} {
		for k := range m {
			keys[k] = struct{}{}
		}
	}
	changed, emptied := c.part.Changes()
	for _, ks := range [][]string{changed, emptied} {
		for _, k := range ks {
			keys[k] = struct{}{}
		}
	}
	maps.Copy(keys, c.pending)
	names := make([]string, 0, len(keys)+len(c.buckets)+len(c.dirty))
	for k := range keys {
		names = append(names, c.ns+k)
	}
	// The deadline index: its buckets in the Store are those in memory and
	// those emptied since the last commit.
	for b := range c.buckets {
		if _, ok := c.dirty[b]; !ok {
			names = append(names, deadlineBucketName(c.ns, b))
		}
	}
	for b := range c.dirty {
		names = append(names, deadlineBucketName(c.ns, b))
	}
	return names
}

// keyLoad gathers the keys of a partition's streams that one Store call
// loads: one call per batch, not one per key.
type keyLoad struct {
	keys  []loadKey
	names []string
	seen  map[loadKey]bool
}

// loadKey is a key of a stream the Store may hold state for.
type loadKey struct {
	c   *keyCache
	key string
}

// reset empties the load for the next batch, keeping its memory.
func (l *keyLoad) reset() {
	l.keys = l.keys[:0]
	clear(l.seen)
}

// add adds a key, once.
func (l *keyLoad) add(c *keyCache, key string) {
	k := loadKey{c, key}
	if l.seen == nil {
		l.seen = map[loadKey]bool{}
	}
	if !l.seen[k] {
		l.seen[k] = true
		l.keys = append(l.keys, k)
	}
}

// run loads the keys from st in one call and hands each to its cache;
// bad is called with every key whose state was dropped as undecodable. It
// returns how many keys had a state. On error nothing is loaded, and the
// keys that were due are due again: the retry recomputes the list.
func (l *keyLoad) run(ctx context.Context, st Store, pid state.PartitionID, bad func(key string, err error)) (int, error) {
	if len(l.keys) == 0 {
		return 0, nil
	}
	l.names = l.names[:0]
	for _, k := range l.keys {
		l.names = append(l.names, k.c.ns+k.key)
	}
	got, err := st.LoadKeys(ctx, pid, l.names)
	if err != nil {
		for _, k := range l.keys {
			if d, ok := k.c.evicted[k.key]; ok && d != noWindow {
				k.c.due.push(d, k.key)
			}
		}
		return 0, fmt.Errorf("load keys: %w", err)
	}
	var loaded int
	for i, k := range l.keys {
		data, ok := got[l.names[i]]
		if ok {
			loaded++
		}
		if err := k.c.restore(k.key, data, ok); err != nil {
			bad(k.key, err)
		}
	}
	return loaded, nil
}

// deadlineHeap orders evicted keys by the time their earliest window
// closes. Entries are not removed when a key is loaded or evicted again:
// appendDue skips those that no longer match evicted.
type deadlineHeap []deadlineEntry

type deadlineEntry struct {
	deadline int64
	key      string
}

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h deadlineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)        { *h = append(*h, x.(deadlineEntry)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func (h *deadlineHeap) push(d int64, key string) { heap.Push(h, deadlineEntry{d, key}) }
func (h *deadlineHeap) pop() deadlineEntry       { return heap.Pop(h).(deadlineEntry) }
