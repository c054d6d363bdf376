package cep

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// canon describes an alert by what must not depend on where its events
// were read: rule, key, timeout and the matched events' Kafka positions.
func canon(a *matcher.Alert, pos func(matcher.Position) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s key=%s timeout=%v", a.Ruleset, a.Rule, a.Key, a.Timeout)
	for _, s := range a.Steps {
		fmt.Fprintf(&b, " %s:", s.Step)
		for _, r := range s.Records {
			b.WriteString(" " + pos(r.Pos))
		}
	}
	return b.String()
}

func kafkaPos(p matcher.Position) string { return fmt.Sprintf("%s@%d", p.Source, p.Offset) }

// TestEngineMatchesReplay runs the engine over a topic of three partitions
// and compares its alerts with Replay's of the same events, the alerts
// topic with what OnAlert saw, the checkpoints and committed offsets with
// the ends of the partitions, and a few metrics with what happened.
func TestEngineMatchesReplay(t *testing.T) {
	for _, kind := range engineStores() {
		t.Run(kind.name, func(t *testing.T) {
			brokers := cluster(t, "payments")
			rs := loadPayments(t)
			lines := paymentsEvents(t, 4000, 300, 0.05)
			prod := produce(t, brokers, "payments", rs, lines)
			want := replayAlerts(t, rs, lines, prod)

			clock := newFakeClock()
			log := newAlertLog()
			store := kind.open(t)
			reg := prometheus.NewRegistry()
			e := start(t, EngineOptions{
				Brokers: brokers, Rulesets: []*rules.Compiled{rs}, Store: store,
				Clock: clock.Now, OnAlert: log.add, Registerer: reg,
			})
			testkit.WaitFor(t, 0, "the engine to be ready", e.Ready)
			testkit.WaitFor(t, 0, "every record to be processed", func() bool { return consumed(prod, e) })
			closeWindows(t, clock, prod, e)
			e.stop(t)
			log.check(t, want)

			// The alerts topic holds every alert, keyed by its id, once (no
			// restart happened), its value the alert's JSON.
			topic := readTopic(t, brokers, DefaultAlertsTopic)
			var ids []string
			for _, r := range topic {
				var a struct {
					ID, Rule, Key string
				}
				if err := json.Unmarshal(r.Value, &a); err != nil {
					t.Fatalf("alert record %q: %v", r.Value, err)
				}
				if string(r.Key) != a.ID {
					t.Errorf("alert record keyed %q, its id is %q", r.Key, a.ID)
				}
				ids = append(ids, a.ID)
			}
			var wantIDs []string
			for _, id := range log.ids {
				wantIDs = append(wantIDs, id)
			}
			sort.Strings(ids)
			sort.Strings(wantIDs)
			if diff := cmp.Diff(wantIDs, ids); diff != "" {
				t.Errorf("alert ids on the alerts topic (-want +got):\n%s", diff)
			}

			// The last checkpoint of each partition resumes at its end, and Kafka's
			// committed offset says the same.
			for p, end := range prod.end {
				cp, ok, err := store.LoadCheckpoint(context.Background(), state.PartitionID{Group: DefaultGroup, Topic: "payments", Partition: p})
				if err != nil || !ok {
					t.Fatalf("checkpoint of partition %d: %v %v", p, ok, err)
				}
				if cp.Offset != end {
					t.Errorf("partition %d: checkpoint offset %d, want %d", p, cp.Offset, end)
				}
			}
			committed := committedOffsets(t, brokers, DefaultGroup, "payments")
			if diff := cmp.Diff(prod.end, committed); diff != "" {
				t.Errorf("kafka committed offsets (-want +got):\n%s", diff)
			}

			metricsText := testkit.MetricsText(t, reg)
			for _, m := range []string{
				`shrike_engine_records_total{topic="payments"} 4000`,
				`shrike_engine_events_total{topic="payments"} 4000`,
				`shrike_engine_alerts_total{rule="account-takeover",ruleset="payments",shadow="false"}`,
				`shrike_state_checkpoint_duration_seconds_count`,
			} {
				if !strings.Contains(metricsText, m) {
					t.Errorf("metrics lack %s", m)
				}
			}
		})
	}
}

// committedOffsets returns the group's committed offsets of topic.
func committedOffsets(t *testing.T, brokers []string, group, topic string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.Topic == topic {
			out[o.Partition] = o.At
		}
	})
	return out
}

// deletePrefix deletes the keys of opts.KeyPrefix on the shared Redis.
func deletePrefix(t testing.TB, opts state.Options) {
	testkit.DeleteRedisKeys(t, opts.Addrs, opts.Cluster, opts.KeyPrefix+":*")
}
