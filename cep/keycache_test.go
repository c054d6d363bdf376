package cep

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/internal/gen"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// The key cache tests run a keyCache over a real matcher.Partition and a
// state.Memory, checkpointing as the worker does, without Kafka.

// keyCacheRules has one rule with a window: an "a" opens a partial match
// of its key that a "b" completes, or that times out a minute later.
const keyCacheRules = `ruleset: kc
stream: {topic: t, key: event.k, time: event.ts}
rules:
  - id: pair
    within: 1m
    pattern:
      - step: a
        where: event.type == "a"
      - step: b
        where: event.type == "b"
`

// keyCacheEnv is a stream's Partition, its keyCache and a Store.
type keyCacheEnv struct {
	t      *testing.T
	rs     *rules.Compiled
	part   *matcher.Partition
	c      *keyCache
	store  Store
	pid    state.PartitionID
	offset int64
	alerts int
	// settle processes each record at once, as the watermark passing it
	// does; without, records wait for max_out_of_orderness.
	settle bool
	// What the last checkpoint wrote: the names put, the buckets of the
	// deadline index its record lists, and the matcher's checkpoint.
	put     []string
	buckets []int64
	saved   matcher.Checkpoint
}

func newKeyCacheEnv(t *testing.T, ooo time.Duration) *keyCacheEnv {
	t.Helper()
	e := &keyCacheEnv{
		t:      t,
		rs:     load(t, "kc.yaml", keyCacheRules),
		store:  state.NewMemory(),
		pid:    state.PartitionID{Group: "g", Topic: "t", Partition: 0},
		settle: ooo == 0,
	}
	e.c = newKeyCache("ns:")
	e.restart(ooo)
	return e
}

// restart gives the cache a new Partition, as a restore does.
func (e *keyCacheEnv) restart(ooo time.Duration) {
	e.t.Helper()
	prog, err := matcher.NewProgram([]*rules.Compiled{e.rs})
	if err != nil {
		e.t.Fatal(err)
	}
	e.part, err = matcher.NewPartition(prog, e, matcher.Options{MaxOutOfOrderness: ooo})
	if err != nil {
		e.t.Fatal(err)
	}
	e.c.reset(e.part)
}

func (e *keyCacheEnv) Alert(*matcher.Alert) { e.alerts++ }
func (e *keyCacheEnv) Late(*matcher.Record) { e.t.Error("unexpected late record") }

// push pushes an event of key at event time at, as a worker's batch does.
func (e *keyCacheEnv) push(key, typ string, at time.Duration) {
	e.t.Helper()
	ev, err := rules.ParseEvent(fmt.Appendf(nil, `{"k":%q,"type":%q}`, key, typ))
	if err != nil {
		e.t.Fatal(err)
	}
	e.offset++
	e.c.pushed(key)
	e.part.Push(&matcher.Record{Event: ev, Key: key, Time: int64(at), Pos: matcher.Position{Source: "t/0", Offset: e.offset}})
	if e.settle {
		e.part.Advance(int64(at) + 1)
	}
}

// checkpoint commits the changes to the Store and evicts down to limit,
// in the worker's order; it returns the names deleted and the keys
// evicted.
func (e *keyCacheEnv) checkpoint(limit int) (del []string, evicted int) {
	e.t.Helper()
	e.c.collect()
	var arena stateArena
	defer arena.release()
	put, del, _, _ := e.c.appendCommit(&arena, nil, nil)
	if err := e.store.Commit(context.Background(), e.pid, put, del, state.Checkpoint{Offset: e.offset, Generation: 1}); err != nil {
		e.t.Fatal(err)
	}
	e.put = e.put[:0]
	for _, ks := range put {
		e.put = append(e.put, ks.Key)
	}
	e.buckets = e.c.bucketNumbers()
	e.saved = e.part.Checkpoint()
	e.c.committed()
	return del, e.c.evict(limit, e.offset+1)
}

// restartFromStore restarts as a worker restores from the last
// checkpoint: a new Partition at its watermark, the deadline index read
// from the buckets it lists.
func (e *keyCacheEnv) restartFromStore() {
	e.t.Helper()
	e.restart(0)
	if err := e.part.Restore(e.saved); err != nil {
		e.t.Fatal(err)
	}
	err := e.c.restoreIndex(context.Background(), e.store, e.pid, e.buckets, func(b int64, err error) {
		e.t.Errorf("bucket %d: %v", b, err)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// storedIndex reads the deadline index the last checkpoint left in the
// Store.
func (e *keyCacheEnv) storedIndex() map[string]int64 {
	e.t.Helper()
	names := make([]string, len(e.buckets))
	for i, b := range e.buckets {
		names[i] = deadlineBucketName(e.c.ns, b)
	}
	got, err := e.store.LoadKeys(context.Background(), e.pid, names)
	if err != nil {
		e.t.Fatal(err)
	}
	index := map[string]int64{}
	for i, b := range e.buckets {
		data, ok := got[names[i]]
		if !ok {
			e.t.Fatalf("bucket %d listed but not in the Store", b)
		}
		if err := decodeDeadlineBucket(b, data, index); err != nil {
			e.t.Fatal(err)
		}
	}
	return index
}

// load loads keys through a keyLoad; it fails the test on a bad state.
func (e *keyCacheEnv) load(l *keyLoad) int {
	e.t.Helper()
	n, err := l.run(context.Background(), e.store, e.pid, func(key string, err error) {
		e.t.Errorf("bad state of %q: %v", key, err)
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// stored reports whether the Store holds a state of key.
func (e *keyCacheEnv) stored(key string) bool {
	e.t.Helper()
	got, err := e.store.LoadKeys(context.Background(), e.pid, []string{e.c.ns + key})
	if err != nil {
		e.t.Fatal(err)
	}
	_, ok := got[e.c.ns+key]
	return ok
}

func TestKeyCacheLoadsEvictedKey(t *testing.T) {
	e := newKeyCacheEnv(t, 0)
	e.push("k1", "a", 0)
	if _, n := e.checkpoint(0); n != 1 || e.part.Resident("k1") {
		t.Fatalf("evicted %d keys, k1 resident %v: want k1 evicted", n, e.part.Resident("k1"))
	}
	if !e.c.needsLoad("k1") {
		t.Fatal("an evicted key is not to be loaded")
	}
	var l keyLoad
	l.add(e.c, "k1")
	l.add(e.c, "k1") // once per load
	l.add(e.c, "never-seen")
	if n := e.load(&l); n != 1 {
		t.Errorf("loaded %d keys, want 1", n)
	}
	if !e.part.Resident("k1") || e.c.needsLoad("k1") {
		t.Error("k1 is not in memory after its load")
	}
	// The key completes its match with the state it got back.
	e.push("k1", "b", time.Second)
	if e.alerts != 1 {
		t.Errorf("%d alerts, want 1: the loaded partial match was lost", e.alerts)
	}
	// A key the Store did not have is not asked for again.
	if e.c.needsLoad("never-seen") {
		t.Error("a key the Store did not have is asked for again")
	}
}

// TestKeyCacheStoreEmpty: a partition without checkpoint looks for no key
// but evicted ones; a fresh stream, for good.
func TestKeyCacheStoreEmpty(t *testing.T) {
	for _, tc := range []struct {
		name              string
		storeEmpty, fresh bool
		want              bool
	}{
		{"checkpointed", false, false, true},
		{"no checkpoint", true, false, false},
		{"fresh stream", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newKeyCacheEnv(t, 0)
			e.c.storeEmpty, e.c.fresh = tc.storeEmpty, tc.fresh
			if got := e.c.needsLoad("k"); got != tc.want {
				t.Errorf("needsLoad of an unknown key = %v, want %v", got, tc.want)
			}
			e.push("k1", "a", 0)
			e.checkpoint(0)
			if !e.c.needsLoad("k1") {
				t.Error("an evicted key is not to be loaded")
			}
		})
	}
}

// TestKeyCacheNeverLoadsChangedKey: a key whose state the matcher emptied
// since the last checkpoint is not loaded, though the Store still holds
// its older state, and the next checkpoint deletes that.
func TestKeyCacheNeverLoadsChangedKey(t *testing.T) {
	e := newKeyCacheEnv(t, 0)
	e.push("k1", "a", 0)
	e.checkpoint(10)
	if !e.stored("k1") {
		t.Fatal("k1 was not committed")
	}
	// Its window closes: the partial match times out, the key is empty.
	e.part.Advance(int64(2 * time.Minute))
	if e.part.Resident("k1") {
		t.Fatal("k1 still holds state after its window closed")
	}
	e.c.collect()
	if e.c.needsLoad("k1") {
		t.Error("a key emptied since the last checkpoint is to be loaded: the Store would give back its old state")
	}
	del, _ := e.checkpoint(10)
	if !slices.Contains(del, "ns:k1") || e.stored("k1") {
		t.Errorf("checkpoint deleted %q, want ns:k1 deleted", del)
	}
	if e.c.needsLoad("k1") {
		t.Error("a key deleted from the Store is to be loaded")
	}
}

// TestKeyCacheLoadsDueKey: an evicted key with an open window is due when
// the watermark passes its deadline, not before, so that its timeout
// fires on time; after a restart the deadline index in the Store says the
// same, and so does a version 1 checkpoint's index.
func TestKeyCacheLoadsDueKey(t *testing.T) {
	for _, restart := range []string{"none", "store", "version 1"} {
		t.Run("restart="+restart, func(t *testing.T) {
			e := newKeyCacheEnv(t, 0)
			e.push("k1", "a", 0)
			e.push("k2", "a", 30*time.Second)
			deadline, ok := e.part.KeyDeadline("k1")
			if !ok {
				t.Fatal("k1 has no open window")
			}
			if _, n := e.checkpoint(0); n != 2 {
				t.Fatalf("evicted %d keys, want 2", n)
			}
			switch restart {
			case "store":
				e.restartFromStore()
			case "version 1":
				// An older Shrike's checkpoint: the index in the record,
				// none in the Store.
				saved := maps.Clone(e.c.deadlines)
				for _, b := range e.buckets {
					if err := e.store.Commit(context.Background(), e.pid, nil, []string{deadlineBucketName(e.c.ns, b)}, state.Checkpoint{Offset: e.offset, Generation: 1}); err != nil {
						t.Fatal(err)
					}
				}
				got, err := decodeStreams(encodeStreamsV1(e.c.ns, e.saved, saved))
				if err != nil {
					t.Fatal(err)
				}
				e.restart(0)
				if err := e.part.Restore(got.streams[e.c.ns].cp); err != nil {
					t.Fatal(err)
				}
				e.c.restoreDeadlines(got.streams[e.c.ns].deadlines)
				// The next checkpoint writes the whole index into
				// buckets, which a restart from it reads.
				e.checkpoint(0)
				if diff := gocmp.Diff(saved, e.storedIndex()); diff != "" {
					t.Errorf("index in the Store after a version 1 restore (-want +got):\n%s", diff)
				}
				e.restartFromStore()
			}
			var l keyLoad
			e.c.appendDue(&l, deadline)
			if len(l.keys) != 0 {
				t.Fatalf("due at the deadline: %v, want none (the matcher fires at deadline+1)", l.keys)
			}
			e.c.appendDue(&l, deadline+1)
			if len(l.keys) != 1 || l.keys[0].key != "k1" {
				t.Fatalf("due past k1's deadline: %v, want k1 only", l.keys)
			}
			if n := e.load(&l); n != 1 {
				t.Fatalf("loaded %d keys, want 1", n)
			}
			e.part.Advance(deadline + 1)
			if got := e.part.Stats().Timeouts; got != 1 {
				t.Errorf("%d timeouts, want 1: k1's window closed", got)
			}
		})
	}
}

// keyInBucketOf returns a key starting with base that shares of's
// buckets of the deadline index (for a deadline in the same second).
func keyInBucketOf(of, base string) string {
	for i := 0; ; i++ {
		k := fmt.Sprintf("%s-%d", base, i)
		if deadlineBucket(k, 0) == deadlineBucket(of, 0) {
			return k
		}
	}
}

// encodeStreamsV1 writes one stream's checkpoint in version 1, the
// deadline index in the record (TestStreamsVersion1 pins the bytes).
func encodeStreamsV1(ns string, cp matcher.Checkpoint, deadlines map[string]int64) []byte {
	b := binary.AppendUvarint(nil, 1)
	b = binary.AppendVarint(b, 0)
	b = binary.AppendUvarint(b, 1)
	b = appendString(b, ns)
	b = binary.AppendVarint(b, cp.Watermark)
	b = binary.AppendVarint(b, cp.MaxTime)
	b = binary.AppendUvarint(b, cp.Seq)
	keys := slices.Sorted(maps.Keys(deadlines))
	slices.SortStableFunc(keys, func(x, y string) int { return cmp.Compare(deadlines[x], deadlines[y]) })
	b = binary.AppendUvarint(b, uint64(len(keys)))
	var prev int64
	for _, k := range keys {
		b = appendString(b, k)
		b = binary.AppendVarint(b, deadlines[k]-prev)
		prev = deadlines[k]
	}
	return b
}

// TestKeyCacheIndexIncremental: a checkpoint writes only the buckets of
// the deadline index that gained keys, whole, which drops the keys they
// lost; a bucket that only lost keys is not written again, and one left
// empty is deleted.
func TestKeyCacheIndexIncremental(t *testing.T) {
	k2, k4 := keyInBucketOf("k1", "k2"), keyInBucketOf("k1", "k4")
	e := newKeyCacheEnv(t, 0)
	e.push("k3", "a", 0)
	e.push("k1", "a", 10*time.Second)
	e.push(k2, "a", 10100*time.Millisecond)
	d1, _ := e.part.KeyDeadline("k1")
	d2, _ := e.part.KeyDeadline(k2)
	d3, _ := e.part.KeyDeadline("k3")
	e.checkpoint(10)
	early := deadlineBucketName(e.c.ns, deadlineBucket("k3", d3))
	late := deadlineBucketName(e.c.ns, deadlineBucket(k2, d2))
	if early == late || deadlineBucket("k1", d1) != deadlineBucket(k2, d2) {
		t.Fatal("want k1 and k2 in one bucket, k3 in another")
	}
	if diff := gocmp.Diff(map[string]int64{"k1": d1, k2: d2, "k3": d3}, e.storedIndex()); diff != "" {
		t.Errorf("index in the Store (-want +got):\n%s", diff)
	}
	// k1 completes its match: its state empties, and its bucket, which
	// only lost it, is not written.
	e.push("k1", "b", 10200*time.Millisecond)
	if e.alerts != 1 || e.part.Resident("k1") {
		t.Fatalf("%d alerts, k1 resident %v: want k1's match completed", e.alerts, e.part.Resident("k1"))
	}
	del, _ := e.checkpoint(10)
	if !slices.Contains(del, e.c.ns+"k1") || len(e.put) != 0 {
		t.Errorf("checkpoint put %q and deleted %q, want k1 deleted and nothing put", e.put, del)
	}
	// k4 joins k2's bucket: it is written, without k1; k3's is not.
	e.push(k4, "a", 10300*time.Millisecond)
	d4, _ := e.part.KeyDeadline(k4)
	e.checkpoint(10)
	if !slices.Contains(e.put, late) || slices.Contains(e.put, early) {
		t.Errorf("checkpoint put %q, want %s written and %s not (unchanged)", e.put, late, early)
	}
	if diff := gocmp.Diff(map[string]int64{k2: d2, "k3": d3, k4: d4}, e.storedIndex()); diff != "" {
		t.Errorf("index in the Store after k4 joined (-want +got):\n%s", diff)
	}
	// Every window closes: the buckets empty and are deleted.
	e.part.Advance(d4 + 1)
	del, _ = e.checkpoint(10)
	if !slices.Contains(del, early) || !slices.Contains(del, late) {
		t.Errorf("checkpoint deleted %q, want the emptied buckets %s and %s", del, early, late)
	}
	if len(e.buckets) != 0 {
		t.Errorf("checkpoint lists buckets %v, want none", e.buckets)
	}
	if stored, err := e.store.LoadKeys(context.Background(), e.pid, []string{early, late}); err != nil || len(stored) != 0 {
		t.Errorf("emptied buckets in the Store: %v (err %v)", stored, err)
	}
	// A checkpoint with nothing changed writes no bucket.
	e.checkpoint(10)
	if len(e.put) != 0 {
		t.Errorf("checkpoint without changes put %q", e.put)
	}
}

// TestKeyCacheIndexLeftEntry: a key deleted from a bucket that kept other
// keys is still listed in the Store's copy; a restart loads it at that
// deadline, finds nothing, fires nothing for it and drops it from the
// index, and the other key's timeout fires.
func TestKeyCacheIndexLeftEntry(t *testing.T) {
	k2 := keyInBucketOf("k1", "k2")
	e := newKeyCacheEnv(t, 0)
	e.push("k1", "a", 0)
	e.push(k2, "a", time.Millisecond)
	d1, _ := e.part.KeyDeadline("k1")
	d2, _ := e.part.KeyDeadline(k2)
	e.checkpoint(0)
	var l keyLoad
	l.add(e.c, "k1")
	e.load(&l)
	e.push("k1", "b", time.Second)
	e.checkpoint(0)
	if e.alerts != 1 || e.stored("k1") {
		t.Fatalf("%d alerts, k1 stored %v: want k1 completed and deleted", e.alerts, e.stored("k1"))
	}
	if _, ok := e.storedIndex()["k1"]; !ok {
		t.Fatal("k1 not left in its bucket: the test needs it there")
	}
	e.restartFromStore()
	l.reset()
	e.c.appendDue(&l, d1+1)
	if len(l.keys) != 1 || l.keys[0].key != "k1" {
		t.Fatalf("due past k1's listed deadline: %v, want k1", l.keys)
	}
	if n := e.load(&l); n != 0 {
		t.Fatalf("loaded %d keys, want none (k1 is deleted)", n)
	}
	if _, ok := e.c.deadlines["k1"]; ok {
		t.Error("k1, found deleted, is still in the index")
	}
	l.reset()
	e.c.appendDue(&l, d2+1)
	e.load(&l)
	e.part.Advance(d2 + 1)
	if got := e.part.Stats().Timeouts; got != 1 {
		t.Errorf("%d timeouts, want 1 (k2's)", got)
	}
}

// TestKeyCacheCrashBetweenCheckpoints: what changed since the last
// checkpoint is not in the Store's index, which still holds that
// checkpoint's: a restart from it loads the evicted key at its deadline
// and fires its timeout, and knows nothing of the key added since.
func TestKeyCacheCrashBetweenCheckpoints(t *testing.T) {
	e := newKeyCacheEnv(t, 0)
	e.push("k1", "a", 0)
	d1, _ := e.part.KeyDeadline("k1")
	e.checkpoint(0)
	// Since: k1 loaded and completed, k2 opened, no checkpoint.
	var l keyLoad
	l.add(e.c, "k1")
	e.load(&l)
	e.push("k1", "b", time.Second)
	e.push("k2", "a", 2*time.Second)
	e.c.collect()
	var arena stateArena
	e.c.appendCommit(&arena, nil, nil) // a commit that never reached the Store
	arena.release()
	e.restartFromStore()
	if diff := gocmp.Diff(map[string]int64{"k1": d1}, e.c.deadlines); diff != "" {
		t.Errorf("deadlines after the restart (-want +got):\n%s", diff)
	}
	l.reset()
	e.c.appendDue(&l, d1+1)
	if len(l.keys) != 1 || l.keys[0].key != "k1" {
		t.Fatalf("due past k1's deadline: %v, want k1", l.keys)
	}
	if n := e.load(&l); n != 1 {
		t.Fatalf("loaded %d keys, want 1", n)
	}
	e.part.Advance(d1 + 1)
	if got := e.part.Stats().Timeouts; got != 1 {
		t.Errorf("%d timeouts, want 1: k1's window closed as of the checkpoint", got)
	}
}

// TestKeyCacheBadBucket: a bucket the checkpoint lists that the Store
// lacks or cannot be decoded is reported and rewritten by the next
// checkpoint; the other buckets restore.
func TestKeyCacheBadBucket(t *testing.T) {
	e := newKeyCacheEnv(t, 0)
	e.push("k1", "a", 0)
	e.push("k2", "a", 10*time.Second)
	d1, _ := e.part.KeyDeadline("k1")
	d2, _ := e.part.KeyDeadline("k2")
	e.checkpoint(0)
	b1 := deadlineBucket("k1", d1)
	if err := e.store.Commit(context.Background(), e.pid, []state.KeyState{{Key: deadlineBucketName(e.c.ns, b1), State: []byte{5}}}, nil, state.Checkpoint{Offset: e.offset, Generation: 1}); err != nil {
		t.Fatal(err)
	}
	e.restart(0)
	var bad []int64
	if err := e.c.restoreIndex(context.Background(), e.store, e.pid, e.buckets, func(b int64, err error) {
		if !errors.Is(err, errDeadlineBucket) {
			t.Errorf("bucket %d: error %v, want errDeadlineBucket", b, err)
		}
		bad = append(bad, b)
	}); err != nil {
		t.Fatal(err)
	}
	if diff := gocmp.Diff([]int64{b1}, bad); diff != "" {
		t.Errorf("bad buckets (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff(map[string]int64{"k2": d2}, e.c.deadlines); diff != "" {
		t.Errorf("deadlines restored (-want +got):\n%s", diff)
	}
	if del, _ := e.checkpoint(0); !slices.Contains(del, deadlineBucketName(e.c.ns, b1)) {
		t.Errorf("checkpoint deleted %q, want the bad bucket", del)
	}
}

// TestKeyCacheLoadFailureKeepsKeysDue: keys taken from the due heap for a
// load that fails are due again for the retry.
func TestKeyCacheLoadFailureKeepsKeysDue(t *testing.T) {
	e := newKeyCacheEnv(t, 0)
	e.push("k1", "a", 0)
	deadline, _ := e.part.KeyDeadline("k1")
	e.checkpoint(0)
	fs := newFaultStore(e.store)
	fs.fail.Store(true)
	var l keyLoad
	e.c.appendDue(&l, deadline+1)
	if _, err := l.run(context.Background(), fs, e.pid, nil); err == nil {
		t.Fatal("a load from a failing Store succeeded")
	}
	l.reset()
	e.c.appendDue(&l, deadline+1)
	if len(l.keys) != 1 || l.keys[0].key != "k1" {
		t.Errorf("due after a failed load: %v, want k1", l.keys)
	}
}

// TestKeyCacheNeverEvictsBufferedKey: a key with records waiting for the
// watermark stays in memory whatever the cap.
func TestKeyCacheNeverEvictsBufferedKey(t *testing.T) {
	e := newKeyCacheEnv(t, 10*time.Second)
	e.push("k1", "a", 0)
	e.push("k2", "a", 0)
	e.push("k2", "a", 20*time.Second) // the watermark goes to 10s: buffered
	if !e.part.BufferedKeys()["k2"] || !e.part.Resident("k1") || !e.part.Resident("k2") {
		t.Fatal("want k1 and k2 in memory, k2 with a buffered record")
	}
	// The set of buffered keys may hold k1 too (its hash sharing k2's
	// bit, a chance of 1 in 64 per process): k1 then stays as well.
	want := 1
	if e.part.BufferedSet().MayHold("k1") {
		want = 0
	}
	if _, n := e.checkpoint(0); n != want {
		t.Errorf("evicted %d keys, want %d", n, want)
	}
	if e.part.Resident("k1") != (want == 0) || !e.part.Resident("k2") {
		t.Errorf("k1 resident %v, k2 resident %v: want k1 evicted (unless the set may hold it), k2 kept", e.part.Resident("k1"), e.part.Resident("k2"))
	}
}

// TestKeyCacheNeverEvictsKeyBufferedBeforeLastCheckpoint: while crowded,
// a key not pushed since the last checkpoint may still have a record
// waiting for the watermark from before it; it stays in memory too.
func TestKeyCacheNeverEvictsKeyBufferedBeforeLastCheckpoint(t *testing.T) {
	e := newKeyCacheEnv(t, 10*time.Second)
	for _, k := range []string{"k1", "k2", "k3"} {
		e.push(k, "a", 0)
	}
	e.push("k2", "a", 20*time.Second) // the watermark goes to 10s: buffered
	if _, n := e.checkpoint(4); n != 0 || !e.c.crowded {
		t.Fatalf("evicted %d keys, crowded %v: want none, crowded (3 keys > 4/2)", n, e.c.crowded)
	}
	e.push("k3", "a", 29*time.Second) // the watermark goes to 19s: k2's record still waits
	if !e.part.BufferedKeys()["k2"] || !e.part.BufferedKeys()["k3"] {
		t.Fatal("want k2 and k3 with buffered records")
	}
	// As above, the set of buffered keys may hold k1 by chance.
	want := 1
	if e.part.BufferedSet().MayHold("k1") {
		want = 0
	}
	if _, n := e.checkpoint(1); n != want {
		t.Errorf("evicted %d keys, want %d", n, want)
	}
	if e.part.Resident("k1") != (want == 0) || !e.part.Resident("k2") || !e.part.Resident("k3") {
		t.Errorf("resident k1 %v, k2 %v, k3 %v: want k1 evicted (unless the set may hold it), k2 and k3 (buffered records) kept",
			e.part.Resident("k1"), e.part.Resident("k2"), e.part.Resident("k3"))
	}
}

// TestKeyCacheEvictsRecentLast: while crowded, keys pushed since the last
// checkpoint are evicted only when the others are not enough.
func TestKeyCacheEvictsRecentLast(t *testing.T) {
	e := newKeyCacheEnv(t, 0)
	for i, k := range []string{"k1", "k2", "k3"} {
		e.push(k, "a", time.Duration(i)*time.Second)
	}
	if _, n := e.checkpoint(4); n != 0 || !e.c.crowded {
		t.Fatalf("evicted %d keys, crowded %v: want none, crowded (3 keys > 4/2)", n, e.c.crowded)
	}
	e.push("k2", "a", 3*time.Second)
	if _, n := e.checkpoint(1); n != 2 {
		t.Fatalf("evicted %d keys, want 2", n)
	}
	if !e.part.Resident("k2") {
		t.Error("the key pushed since the last checkpoint was evicted before the others")
	}
}

// TestKeyCacheCorruptState: a stored state that cannot be decoded is
// reported, not loaded, and deleted by the next checkpoint.
func TestKeyCacheCorruptState(t *testing.T) {
	e := newKeyCacheEnv(t, 0)
	if err := e.store.Commit(context.Background(), e.pid, []state.KeyState{{Key: "ns:k1", State: []byte{0xff}}}, nil, state.Checkpoint{Generation: 1}); err != nil {
		t.Fatal(err)
	}
	var l keyLoad
	l.add(e.c, "k1")
	var bad []string
	if _, err := l.run(context.Background(), e.store, e.pid, func(key string, _ error) { bad = append(bad, key) }); err != nil {
		t.Fatal(err)
	}
	if diff := gocmp.Diff([]string{"k1"}, bad); diff != "" {
		t.Errorf("bad states (-want +got):\n%s", diff)
	}
	if e.part.Resident("k1") || e.c.needsLoad("k1") {
		t.Error("a corrupt state is in memory or to be loaded again")
	}
	if del, _ := e.checkpoint(10); !slices.Contains(del, "ns:k1") {
		t.Errorf("checkpoint deleted %q, want ns:k1", del)
	}
}

// TestKeyCacheStoreKeys: a dropped stream deletes every key it knows of.
func TestKeyCacheStoreKeys(t *testing.T) {
	e := newKeyCacheEnv(t, 0)
	e.push("evicted", "a", 0)
	e.checkpoint(0)
	e.push("resident", "a", time.Second)
	got := e.c.storeKeys()
	slices.Sort(got)
	// The deadline index's bucket of the evicted key too.
	d := e.c.deadlines["evicted"]
	want := []string{deadlineBucketName(e.c.ns, deadlineBucket("evicted", d)), "ns:evicted", "ns:resident"}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("store keys (-want +got):\n%s", diff)
	}
}

func TestDeadlineHeap(t *testing.T) {
	var h deadlineHeap
	for i, d := range []int64{50, 10, 40, 10, 30} {
		h.push(d, string(rune('a'+i)))
	}
	var got []int64
	for len(h) > 0 {
		got = append(got, h.pop().deadline)
	}
	if diff := gocmp.Diff([]int64{10, 10, 30, 40, 50}, got); diff != "" {
		t.Errorf("deadlines (-want +got):\n%s", diff)
	}
}

// BenchmarkKeyStatesEncode encodes the states of the payments ruleset's
// keys after 200,000 events of the benchmark stream over 20,000 accounts,
// as a checkpoint does: "arena" into stateArena's pooled buffers,
// "per-key" each into a slice of its own grown from nothing.
func BenchmarkKeyStatesEncode(b *testing.B) {
	rs := loadPayments(b)
	prog, err := matcher.NewProgram([]*rules.Compiled{rs})
	if err != nil {
		b.Fatal(err)
	}
	part, err := matcher.NewPartition(prog, discardOutput{}, matcher.Options{MaxOutOfOrderness: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	g, err := gen.New(gen.Options{Seed: 20261120, Events: 200_000, Keys: 20_000, Rate: 1000, FraudRate: 0.0005})
	if err != nil {
		b.Fatal(err)
	}
	var layout rules.Layout
	for i := int64(0); ; i++ {
		line, ok := g.Next()
		if !ok {
			break
		}
		var ev rules.Event
		if err := ev.ParseWith(slices.Clone(line), &layout); err != nil {
			b.Fatal(err)
		}
		key, err := rs.Key.EvalKey(&ev)
		if err != nil {
			b.Fatal(err)
		}
		t, err := rs.Time.EvalTime(&ev)
		if err != nil {
			b.Fatal(err)
		}
		part.Push(&matcher.Record{Event: &ev, Key: key, Time: t, Pos: matcher.Position{Source: "payments/0", Offset: i}})
	}
	keys := part.ResidentKeys()
	b.Run("arena", func(b *testing.B) {
		var n int
		for b.Loop() {
			var arena stateArena
			n = 0
			for _, k := range keys {
				s, _ := arena.appendKeyState(part, k)
				n += len(s)
			}
			arena.release()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/key")
		b.ReportMetric(float64(n)/float64(len(keys)), "B/key")
	})
	b.Run("per-key", func(b *testing.B) {
		var n int
		for b.Loop() {
			n = 0
			for _, k := range keys {
				s, _ := part.AppendKeyState(nil, k)
				n += len(s)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/key")
		b.ReportMetric(float64(n)/float64(len(keys)), "B/key")
	})
}

// discardOutput drops what a Partition emits.
type discardOutput struct{}

func (discardOutput) Alert(*matcher.Alert) {}
func (discardOutput) Late(*matcher.Record) {}
