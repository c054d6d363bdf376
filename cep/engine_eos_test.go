package cep

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/rules"
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
					Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
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
			log.check(t, want)
			if d := log.duplicates(); d > 0 {
				t.Errorf("OnAlert saw %d duplicates", d)
			}
			committed := readIDs(t, brokers, DefaultAlertsTopic, kgo.ReadCommitted())
			if len(committed) != len(want) || dupCount(committed) != 0 {
				t.Errorf("read_committed: %d distinct alerts (want %d), %d duplicates", len(committed), len(want), dupCount(committed))
			}
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
