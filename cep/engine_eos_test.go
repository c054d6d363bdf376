package cep

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// readIDs reads the keys (alert ids) of every record of topic with the
// given isolation level, until nothing new comes for a second.
func readIDs(t *testing.T, brokers []string, topic string, iso kgo.IsolationLevel) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(iso), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ids := map[string]int{}
	deadline := time.Now().Add(30 * time.Second)
	quiet := time.Now()
	for time.Since(quiet) < time.Second && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			ids[string(r.Key)]++
			quiet = time.Now()
		})
	}
	return ids
}

// checkExactlyOnce checks that OnAlert saw the alerts want once each, and
// that a read_committed consumer of the alerts topic reads exactly those
// alerts' ids, once each; it returns what that consumer read.
func checkExactlyOnce(t *testing.T, brokers []string, log *alertLog, want []string) map[string]int {
	t.Helper()
	log.check(t, want)
	if d := log.duplicates(); d > 0 {
		t.Errorf("OnAlert saw %d duplicates", d)
	}
	committed := readIDs(t, brokers, DefaultAlertsTopic, kgo.ReadCommitted())
	if d := dupCount(committed); d != 0 {
		t.Errorf("read_committed: %d duplicate records", d)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(committed) != len(log.ids) {
		t.Errorf("read_committed: %d distinct alerts, OnAlert saw %d", len(committed), len(log.ids))
	}
	for _, id := range log.ids {
		if committed[id] == 0 {
			t.Errorf("alert %s of OnAlert not read committed", id)
		}
	}
	return committed
}

func dupCount(ids map[string]int) (dups int) {
	for _, n := range ids {
		dups += n - 1
	}
	return dups
}

// TestEngineExactlyOnceRebalance moves partitions between two engines in
// exactly-once mode mid-stream: a read_committed consumer of the alerts
// topic then sees every alert Replay finds exactly once, and OnAlert is
// called once per alert.
func TestEngineExactlyOnceRebalance(t *testing.T) {
	for _, kind := range engineStores() {
		t.Run(kind.name, func(t *testing.T) {
			brokers := cluster(t, "payments")
			rs := loadPayments(t)
			lines := paymentsEvents(t, 6000, 300, 0.05)
			clock := newFakeClock()
			log := newAlertLog()
			store := kind.open(t)
			opts := func(id string) EngineOptions {
				return EngineOptions{
					Brokers: brokers, Rulesets: []*rules.Compiled{rs}, Store: store, Clock: clock.Now, OnAlert: log.add,
					ExactlyOnce: true, TransactionalID: id, TransactionTimeout: 3 * time.Second,
				}
			}
			first := start(t, opts("a"))
			prod := produce(t, brokers, "payments", rs, lines[:len(lines)/2])
			testkit.WaitFor(t, 0, "the first half to be processed", func() bool { return consumed(prod, first) })
			second := start(t, opts("b"))
			testkit.WaitFor(t, 0, "partitions to move to the second engine", func() bool {
				a, b := first.Status(), second.Status()
				return a.Ready && b.Ready && len(b.Partitions) > 0 && len(a.Partitions)+len(b.Partitions) == testPartitions
			})
			prod = concat(prod, produce(t, brokers, "payments", rs, lines[len(lines)/2:]))
			testkit.WaitFor(t, 0, "everything to be processed", func() bool { return consumed(prod, first, second) })
			closeWindows(t, clock, prod, first, second)
			want := replayAlerts(t, rs, lines, prod)
			testkit.WaitFor(t, 0, "every alert to be committed", func() bool { return log.count() >= len(want) })
			first.stop(t)
			second.stop(t)
			committed := checkExactlyOnce(t, brokers, log, want)
			all := readIDs(t, brokers, DefaultAlertsTopic, kgo.ReadUncommitted())
			for id := range committed {
				if all[id] == 0 {
					t.Errorf("alert %s read committed but not uncommitted", id)
				}
			}
			t.Logf("%d alerts; read_uncommitted saw %d records", len(want), len(all)+dupCount(all))
		})
	}
}

// TestEngineExactlyOnceStoreFailures fails staged checkpoints and their
// promotions in the middle of the stream: the transactions of those
// barriers abort (or, for a promotion, the worker goes back to the
// committed checkpoint and promotes it), and a read_committed consumer
// still sees every alert once.
func TestEngineExactlyOnceStoreFailures(t *testing.T) {
	brokers := cluster(t, "payments")
	rs := loadPayments(t)
	lines := paymentsEvents(t, 6000, 300, 0.05)
	clock := newFakeClock()
	log := newAlertLog()
	fs := newFaultStore(state.NewMemory())
	reg := prometheus.NewRegistry()
	e := start(t, EngineOptions{
		Brokers: brokers, Rulesets: []*rules.Compiled{rs}, Store: fs, Clock: clock.Now, OnAlert: log.add,
		Registerer: reg, ExactlyOnce: true, TransactionalID: "failures", TransactionTimeout: 2 * time.Second,
	})
	third := len(lines) / 3
	prod := produce(t, brokers, "payments", rs, lines[:third])
	testkit.WaitFor(t, 0, "the first third to be processed", func() bool { return consumed(prod, e) })
	// The stage retries of a barrier last a second (half the transaction
	// timeout): failing more stages than a second of retries makes at
	// least one barrier abort.
	fs.failStages.Store(1000)
	prod = concat(prod, produce(t, brokers, "payments", rs, lines[third:2*third]))
	testkit.WaitFor(t, 0, "a transaction to abort", func() bool {
		return metricValue(testkit.MetricsText(t, reg), `shrike_engine_transactions_total{outcome="aborted"}`) > 0
	})
	fs.failStages.Store(0)
	fs.failPromotes.Store(1000)
	testkit.WaitFor(t, 0, "promotions to fail", func() bool { return fs.failPromotes.Load() < 990 })
	fs.failPromotes.Store(0)
	prod = concat(prod, produce(t, brokers, "payments", rs, lines[2*third:]))
	testkit.WaitFor(t, 0, "everything to be processed", func() bool { return consumed(prod, e) })
	closeWindows(t, clock, prod, e)
	want := replayAlerts(t, rs, lines, prod)
	testkit.WaitFor(t, 0, "every alert to be committed", func() bool { return log.count() >= len(want) })
	e.stop(t)
	checkExactlyOnce(t, brokers, log, want)
}

// TestEngineExactlyOnceOldBroker runs an exactly-once engine against a
// broker of Kafka 2.4, whose offset commits in transactions carry no
// group generation: Run fails at once, naming the request and the
// setting that turns exactly-once outputs off.
func TestEngineExactlyOnceOldBroker(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "payments"), kfake.MaxVersions(kversion.V2_4_0()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	e, err := NewEngine(EngineOptions{
		Brokers: c.ListenAddrs(), Rulesets: []*rules.Compiled{loadPayments(t)}, Store: state.NewMemory(),
		ExactlyOnce: true, TransactionalID: "old-broker",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = e.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "TxnOffsetCommit v3") || !strings.Contains(err.Error(), "kafka.exactly_once: false") {
		t.Fatalf("Run: %v, want an error naming TxnOffsetCommit v3 and kafka.exactly_once: false", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Run returned only when its context ended")
	}
}

// TestEngineExactlyOnceOffsetsWithoutOutputs lets a partition produce an
// alert and then take records that produce nothing: its checkpoints after
// the alert go to the Store directly, as no output depends on them, and
// the group's committed offset must follow them all the same, so that the
// group's lag and a consumer of the offsets see the partition done.
func TestEngineExactlyOnceOffsetsWithoutOutputs(t *testing.T) {
	for _, kind := range engineStores() {
		t.Run(kind.name, func(t *testing.T) {
			brokers := cluster(t, "payments")
			rs := loadPayments(t)
			log := newAlertLog()
			reg := prometheus.NewRegistry()
			e := start(t, EngineOptions{
				Brokers: brokers, Rulesets: []*rules.Compiled{rs}, Store: kind.open(t), Clock: newFakeClock().Now,
				OnAlert: log.add, Registerer: reg, ExactlyOnce: true, TransactionalID: "offsets-" + kind.name,
				TransactionTimeout: 3 * time.Second,
			})
			testkit.WaitFor(t, 0, "the engine to be ready", e.Ready)

			// A large card authorisation alerts once the logout after it
			// moves the watermark past it (max_out_of_orderness 5s).
			event := func(typ string, at time.Duration, extra string) []byte {
				return fmt.Appendf(nil, `{"type":%q,"account_id":"acct-1","ts":%q%s}`, typ, ts(at), extra)
			}
			produceToPartition(t, brokers, "payments", 0, rs, [][]byte{
				event("card_auth", 0, `,"success":true,"amount":6000.0,"currency":"EUR","merchant":"m","card_id":"c1"`),
				event("logout", 10*time.Second, ""),
			})
			testkit.WaitFor(t, 0, "the alert to be committed", func() bool { return log.count() == 1 })
			// Logouts alert nothing: the first is matched, the second waits
			// for the watermark, and the partition resumes at it.
			prod := produceToPartition(t, brokers, "payments", 0, rs, [][]byte{
				event("logout", 20*time.Second, ""),
				event("logout", 30*time.Second, ""),
			})
			resume := prod.pos[1].Offset
			testkit.WaitFor(t, 0, "the store's checkpoint to reach the last logout", func() bool {
				for _, p := range e.Status().Partitions {
					if p.Partition == 0 {
						return p.CommittedOffset == resume
					}
				}
				return false
			})
			// Two more committed transactions: the one of the barrier that
			// checkpointed there has ended by the second.
			txns := func() float64 {
				return metricValue(testkit.MetricsText(t, reg), `shrike_engine_transactions_total{outcome="committed"}`)
			}
			from := txns()
			testkit.WaitFor(t, 0, "two more transactions", func() bool { return txns() >= from+2 })
			if got := committedOffsets(t, brokers, DefaultGroup, "payments")[0]; got != resume {
				t.Errorf("committed offset of partition 0 = %d, want %d (the store's checkpoint)", got, resume)
			}
			if n := log.count(); n != 1 {
				t.Errorf("%d alerts, want 1", n)
			}
		})
	}
}
