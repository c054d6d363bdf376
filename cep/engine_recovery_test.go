package cep

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// concat returns produced positions of two produce calls as one.
func concat(a, b produced) produced {
	out := produced{pos: append(slices.Clone(a.pos), b.pos...), end: map[int32]int64{}}
	for _, m := range []map[int32]int64{a.end, b.end} {
		for p, o := range m {
			out.end[p] = max(out.end[p], o)
		}
	}
	return out
}

// TestEngineRestartFromCheckpoint stops an engine in the middle of the
// stream — gracefully, or as a crash that loses what was processed after
// the last checkpoint — and starts another on the same Store: together they
// emit every alert Replay finds, duplicates carrying the same ids.
func TestEngineRestartFromCheckpoint(t *testing.T) {
	for _, kind := range engineStores() {
		for _, crash := range []bool{false, true} {
			t.Run(kind.name+"/"+map[bool]string{false: "graceful", true: "crash"}[crash], func(t *testing.T) {
				testRestart(t, kind, crash)
			})
		}
	}
}

func testRestart(t *testing.T, kind storeKind, crash bool) {
	brokers := cluster(t, "payments")
	rs := loadPayments(t)
	// Much disorder: a restart then re-reads events that were
	// matched before the checkpoint after one still buffered.
	lines := paymentsEvents(t, 6000, 300, 0.3)
	third := len(lines) / 3
	clock := newFakeClock()
	log := newAlertLog()
	fs := newFaultStore(kind.open(t))
	opts := EngineOptions{
		Brokers: brokers, Rulesets: []*rules.Compiled{rs}, Store: fs,
		Clock: clock.Now, OnAlert: log.add, DrainTimeout: 300 * time.Millisecond,
	}

	first := start(t, opts)
	prod := produce(t, brokers, "payments", rs, lines[:third])
	testkit.WaitFor(t, 0, "the first third to be processed and checkpointed", func() bool {
		return consumed(prod, first) && checkpointed(first)
	})
	if crash {
		// From here on nothing the first engine does reaches the
		// Store, as if it were killed: the second third is matched
		// and alerted, but not checkpointed.
		fs.frozen.Store(true)
		prod = concat(prod, produce(t, brokers, "payments", rs, lines[third:2*third]))
		testkit.WaitFor(t, 0, "the second third to be processed", func() bool { return consumed(prod, first) })
	}
	alertsBefore := log.count()
	first.stop(t)

	fs.frozen.Store(false)
	fs.asked.Store(0)
	fs.askedBuckets.Store(0)

	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	second := start(t, opts)
	prod = concat(prod, produce(t, brokers, "payments", rs, lines[len(prod.pos):]))
	testkit.WaitFor(t, 0, "everything to be processed", func() bool { return consumed(prod, second) })
	closeWindows(t, clock, prod, second)
	second.stop(t)
	if alertsBefore == 0 {
		t.Error("the first engine alerted nothing: the restart is not tested mid-stream")
	}
	log.check(t, replayAlerts(t, rs, lines, prod))
	// A graceful stop checkpoints where it stopped: nothing is
	// matched twice. A crash loses what came after the last
	// checkpoint, which the second engine matches again.
	if dup := log.duplicates(); crash != (dup > 0) {
		t.Errorf("%d duplicate alerts", dup)
	}
	// The second engine went on from the first one's partial
	// matches, loading them from the Store, and asked for no key
	// twice. It skipped the records it re-read that the first one
	// had matched, rather than take them for late.
	text := testkit.MetricsText(t, reg)
	if v := metricValue(text, "shrike_state_loaded_keys_total"); v <= 0 {
		t.Errorf("the second engine loaded %v keys", v)
	}
	if n := fs.asked.Load(); n > 300 {
		t.Errorf("the second engine asked for %d keys, the fixture has 300", n)
	}
	// It read the deadline index at its restore, once.
	if n := fs.askedBuckets.Load(); n == 0 || n > 300 {
		t.Errorf("the second engine asked for %d buckets of the deadline index, want some, at most one per key (300)", n)
	}
	if v := metricValue(text, `shrike_engine_late_events_total{topic="payments"}`); v > 0 {
		t.Errorf("%v events late", v)
	}
	if v := metricValue(text, `shrike_engine_skipped_records_total{topic="payments"}`); v <= 0 {
		t.Errorf("%v re-read records skipped", v)
	}
}

// TestEngineIdleWaitsForReRead restarts mid-stream while the new owner
// cannot fetch (its fetches are held at the broker) and its wall clock
// passes the stream's idle_timeout: the records its checkpoint says were
// read past the checkpoint's offset (events still in the reorder buffer)
// are there to be fetched, so the partition is not idle, and once fetched
// they are matched rather than taken for late.
func TestEngineIdleWaitsForReRead(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, "payments"), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	rs := loadPayments(t)
	lines := paymentsEvents(t, 2000, 100, 0.1)
	clock := newFakeClock()
	log := newAlertLog()
	store := state.NewMemory()
	opts := EngineOptions{Brokers: brokers, Rulesets: []*rules.Compiled{rs}, Store: store, Clock: clock.Now, OnAlert: log.add}

	first := start(t, opts)
	prod := produce(t, brokers, "payments", rs, lines)
	testkit.WaitFor(t, 0, "the stream to be processed and checkpointed", func() bool {
		return consumed(prod, first) && checkpointed(first)
	})
	first.stop(t)
	// The last max_out_of_orderness of each partition's events waited in
	// the reorder buffer: each checkpoint's offset is behind the end.
	behind := 0
	for p, end := range prod.end {
		cp, ok, err := store.LoadCheckpoint(t.Context(), state.PartitionID{Group: DefaultGroup, Topic: "payments", Partition: p})
		if err != nil || !ok {
			t.Fatalf("partition %d: checkpoint %v %v", p, ok, err)
		}
		if cp.Offset < end {
			behind++
		}
	}
	if behind == 0 {
		t.Fatal("no checkpoint is behind the end of its partition: nothing is re-read")
	}

	release := make(chan struct{})
	c.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	second := start(t, opts)
	testkit.WaitFor(t, 0, "the second engine to restore its partitions", func() bool {
		st := second.Status().Partitions
		return len(st) == testPartitions && !slices.ContainsFunc(st, func(p PartitionStatus) bool { return !p.Restored })
	})
	clock.Advance(rs.Stream.IdleTimeout + time.Second)
	// Idle checks run every tickInterval: give them several before the
	// records come.
	time.Sleep(5 * tickInterval)
	close(release)
	testkit.WaitFor(t, 0, "everything to be processed", func() bool { return consumed(prod, second) })
	closeWindows(t, clock, prod, second)
	second.stop(t)
	if v := metricValue(testkit.MetricsText(t, reg), `shrike_engine_late_events_total{topic="payments"}`); v > 0 {
		t.Errorf("%v re-read events taken for late", v)
	}
	log.check(t, replayAlerts(t, rs, lines, prod))
}

// TestEngineRebalance starts a second engine in the group of a first one
// mid-stream: partitions move to it (restored from the first one's last
// checkpoints), and the two together emit every alert Replay finds.
func TestEngineRebalance(t *testing.T) {
	for _, kind := range engineStores() {
		t.Run(kind.name, func(t *testing.T) { testRebalance(t, kind) })
	}
}

func testRebalance(t *testing.T, kind storeKind) {
	brokers := cluster(t, "payments")
	rs := loadPayments(t)
	lines := paymentsEvents(t, 6000, 300, 0.05)
	clock := newFakeClock()
	log := newAlertLog()
	opts := EngineOptions{Brokers: brokers, Rulesets: []*rules.Compiled{rs}, Store: kind.open(t), Clock: clock.Now, OnAlert: log.add}

	first := start(t, opts)
	prod := produce(t, brokers, "payments", rs, lines[:len(lines)/2])
	testkit.WaitFor(t, 0, "the first half to be processed", func() bool { return consumed(prod, first) })
	if n := len(first.Status().Partitions); n != testPartitions {
		t.Fatalf("the first engine has %d partitions, want all %d", n, testPartitions)
	}

	second := start(t, opts)
	testkit.WaitFor(t, 0, "partitions to move to the second engine", func() bool {
		a, b := first.Status(), second.Status()
		return a.Ready && b.Ready && len(b.Partitions) > 0 && len(a.Partitions)+len(b.Partitions) == testPartitions
	})
	prod = concat(prod, produce(t, brokers, "payments", rs, lines[len(lines)/2:]))
	testkit.WaitFor(t, 0, "everything to be processed", func() bool { return consumed(prod, first, second) })
	closeWindows(t, clock, prod, first, second)
	first.stop(t)
	second.stop(t)
	log.check(t, replayAlerts(t, rs, lines, prod))
	// A revoked partition checkpoints before it moves: nothing is matched
	// twice.
	if dup := log.duplicates(); dup > 0 {
		t.Errorf("%d duplicate alerts", dup)
	}
}

// TestEngineEvictsKeys caps the keys in memory far below the fixture's:
// keys are evicted at checkpoints and loaded back when an event or a
// closing window needs them, and the alerts stay those of Replay.
func TestEngineEvictsKeys(t *testing.T) {
	for _, kind := range engineStores() {
		t.Run(kind.name, func(t *testing.T) { testEvictsKeys(t, kind) })
	}
}

func testEvictsKeys(t *testing.T, kind storeKind) {
	brokers := cluster(t, "payments")
	rs := loadPayments(t)
	lines := paymentsEvents(t, 4000, 300, 0.05)
	clock := newFakeClock()
	log := newAlertLog()
	reg := prometheus.NewRegistry()
	e := start(t, EngineOptions{
		Brokers: brokers, Rulesets: []*rules.Compiled{rs}, Store: kind.open(t),
		Clock: clock.Now, OnAlert: log.add, Registerer: reg,
		MaxResidentKeys: 4, CheckpointInterval: time.Millisecond, PollRecords: 50,
	})
	testkit.WaitFor(t, 0, "the engine to be ready", e.Ready)
	// Produced in slices, so that checkpoints (and evictions) fall between
	// them rather than after everything.
	var prod produced
	for i := 0; i < len(lines); i += 400 {
		prod = concat(prod, produce(t, brokers, "payments", rs, lines[i:min(i+400, len(lines))]))
		testkit.WaitFor(t, 0, "a slice to be processed", func() bool { return consumed(prod, e) })
	}
	closeWindows(t, clock, prod, e)
	e.stop(t)
	log.check(t, replayAlerts(t, rs, lines, prod))
	text := testkit.MetricsText(t, reg)
	for _, name := range []string{"shrike_state_evicted_keys_total", "shrike_state_loaded_keys_total"} {
		if v := metricValue(text, name); v < 100 {
			t.Errorf("%s = %v, want many", name, v)
		}
	}
}

// metricValue finds a metric's value in testkit.MetricsText's output; name has its
// labels, if any, as testkit.MetricsText writes them. -1 when absent.
func metricValue(text, name string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				return -1
			}
			return v
		}
	}
	return -1
}

// TestEngineStoreFailure makes the Store fail for a while: the engine
// reports not ready, keeps processing up to MaxUncommittedRecords past its
// last checkpoint and then stops taking records, retries, and once the
// Store is back everything arrives.
func TestEngineStoreFailure(t *testing.T) {
	brokers := cluster(t, "payments")
	rs := loadPayments(t)
	lines := paymentsEvents(t, 4000, 300, 0.05)
	clock := newFakeClock()
	log := newAlertLog()
	fs := newFaultStore(state.NewMemory())
	const maxUncommitted = 200
	e := start(t, EngineOptions{
		Brokers: brokers, Rulesets: []*rules.Compiled{rs}, Store: fs,
		Clock: clock.Now, OnAlert: log.add, MaxUncommittedRecords: maxUncommitted, PollRecords: 50,
	})
	testkit.WaitFor(t, 0, "the engine to be ready", e.Ready)
	fs.fail.Store(true)
	prod := produce(t, brokers, "payments", rs, lines)
	testkit.WaitFor(t, 0, "the engine to report the Store failing", func() bool { return !e.Ready() })
	// Every partition stops once it is maxUncommitted records past its last
	// checkpoint (plus the batch that crossed it).
	testkit.WaitFor(t, 0, "every partition to stop at its backlog limit", func() bool {
		st := e.Status()
		if len(st.Partitions) != testPartitions {
			return false
		}
		for _, p := range st.Partitions {
			if p.NextOffset-max(fs.checkpointOf(p.Partition).Offset, 0) < maxUncommitted {
				return false
			}
		}
		return true
	})
	for _, p := range e.Status().Partitions {
		if past := p.NextOffset - max(fs.checkpointOf(p.Partition).Offset, 0); past > maxUncommitted+50 {
			t.Errorf("partition %d processed %d records past its checkpoint, limit %d", p.Partition, past, maxUncommitted)
		}
		if p.StoreError == "" {
			t.Errorf("partition %d reports no store error", p.Partition)
		}
	}
	fs.fail.Store(false)
	testkit.WaitFor(t, 0, "the engine to be ready again", e.Ready)
	testkit.WaitFor(t, 0, "everything to be processed", func() bool { return consumed(prod, e) })
	closeWindows(t, clock, prod, e)
	e.stop(t)
	if fs.failures.Load() == 0 {
		t.Error("the store never failed")
	}
	log.check(t, replayAlerts(t, rs, lines, prod))
}

// TestEngineFailingCommits fails a number of commits in the middle of the
// stream, as a Redis failing over would: they are retried, later
// checkpoints carry what the failed ones had, and nothing is lost or
// matched twice.
func TestEngineFailingCommits(t *testing.T) {
	brokers := cluster(t, "payments")
	rs := loadPayments(t)
	lines := paymentsEvents(t, 4000, 300, 0.05)
	clock := newFakeClock()
	log := newAlertLog()
	fs := newFaultStore(state.NewMemory())
	e := start(t, EngineOptions{Brokers: brokers, Rulesets: []*rules.Compiled{rs}, Store: fs, Clock: clock.Now, OnAlert: log.add})
	testkit.WaitFor(t, 0, "the engine to be ready", e.Ready)
	prod := produce(t, brokers, "payments", rs, lines[:len(lines)/2])
	testkit.WaitFor(t, 0, "the first half to be processed", func() bool { return consumed(prod, e) })
	const failing = 10
	fs.failCommits.Store(failing)
	prod = concat(prod, produce(t, brokers, "payments", rs, lines[len(lines)/2:]))
	testkit.WaitFor(t, 0, "everything to be processed and checkpointed", func() bool {
		return consumed(prod, e) && checkpointed(e) && fs.failCommits.Load() <= 0
	})
	closeWindows(t, clock, prod, e)
	e.stop(t)
	if n := fs.failures.Load(); n != failing {
		t.Errorf("%d commits failed, want %d", n, failing)
	}
	log.check(t, replayAlerts(t, rs, lines, prod))
	if dup := log.duplicates(); dup > 0 {
		t.Errorf("%d duplicate alerts", dup)
	}
}
