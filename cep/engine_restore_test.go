package cep

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// restoreRules has an aggregate rule and a single-event rule, both with
// alert suppression: the per-key state a restart or a rebalance must hand
// over is an aggregate window and suppressions. The stream allows no
// disorder, so an event is matched as soon as a later one of its
// partition arrives.
const restoreRules = `
ruleset: restore
stream:
  topic: cards
  key: event.k
  time: event.ts
rules:
  - id: card-spree
    aggregate:
      where: event.type == "card"
      window: 10m
      measures:
        cards: count_distinct(event.card)
        n: count()
      having: cards >= 3
    alert:
      suppress: {for: 1h}
  - id: big
    when: event.type == "big"
    alert:
      suppress: {for: 1h}
`

// restoreEvent is one event of restorePhases, sent for every key; label
// names it in the alerts.
type restoreEvent struct {
	at    time.Duration
	typ   string
	card  string
	label string
}

// restorePhases are the events of each key, in three phases with a
// handover between them, each phase ending with a tick that releases
// the phase's events from the reorder buffer:
//
//  1. two distinct cards of the three a spree needs are counted, and
//     big@30s alerts, suppressing big until 1h0m30s;
//  2. after the first handover, card@2m is the third distinct card in the
//     window restored with the key: card-spree fires (cards 3 of n 4
//     counted), suppressing it until 1h2m; big@10m falls in the restored
//     suppression;
//  3. after the second handover, the burst ending at 32m makes having true
//     again (the window had emptied) within the restored suppression of
//     card-spree, and big@40m within big's; big@1h10m and the burst
//     ending at 1h32m come after the suppressions and alert.
var restorePhases = [][]restoreEvent{{
	{0, "card", "c1", "card@0m"},
	{30 * time.Second, "big", "", "big@30s"},
	{time.Minute, "card", "c2", "card@1m"},
	{90 * time.Second, "card", "c2", "card@1m30s"},
	{90*time.Second + time.Millisecond, "tick", "", "tick"},
}, {
	{2 * time.Minute, "card", "c3", "card@2m"},
	{10 * time.Minute, "big", "", "big@10m"},
	{10*time.Minute + time.Millisecond, "tick", "", "tick"},
}, {
	{30 * time.Minute, "card", "c4", "card@30m"},
	{31 * time.Minute, "card", "c5", "card@31m"},
	{32 * time.Minute, "card", "c6", "card@32m"},
	{40 * time.Minute, "big", "", "big@40m"},
	{70 * time.Minute, "big", "", "big@1h10m"},
	{90 * time.Minute, "card", "c7", "card@1h30m"},
	{91 * time.Minute, "card", "c8", "card@1h31m"},
	{92 * time.Minute, "card", "c9", "card@1h32m"},
	{92*time.Minute + time.Millisecond, "tick", "", "tick"},
}}

// restoreKeys are the keys of the test, one per partition, so that a
// rebalance that moves any partition moves a key.
var restoreKeys = []string{"k0", "k1", "k2"}

// restoreWant are the alerts of each key across the handovers: every
// other event that would alert is suppressed.
var restoreWant = []string{
	"big event=big@30s",
	"card-spree event=card@2m measures=cards:3,n:4 window=09:52:00-10:02:00",
	"big event=big@1h10m",
	"card-spree event=card@1h32m measures=cards:3,n:3 window=11:22:00-11:32:00",
}

// restoreLines are the events of evs for every key, in time order, and
// the partition of each line.
func restoreLines(evs []restoreEvent) (lines [][]byte, partitions []int32) {
	for _, ev := range evs {
		for p, k := range restoreKeys {
			line := fmt.Sprintf(`{"k":%q,"type":%q,"label":%q,"ts":%q`, k, ev.typ, ev.label, ts(ev.at))
			if ev.card != "" {
				line += fmt.Sprintf(`,"card":%q`, ev.card)
			}
			lines = append(lines, []byte(line+"}"))
			partitions = append(partitions, int32(p))
		}
	}
	return lines, partitions
}

// produceRestore writes the events of evs, each key's to its partition.
func produceRestore(t *testing.T, brokers []string, rs *rules.Compiled, evs []restoreEvent) ([][]byte, produced) {
	t.Helper()
	lines, partitions := restoreLines(evs)
	i := 0
	prod := produceKeyed(t, brokers, rs, lines, func(r *kgo.Record) {
		r.Topic, r.Partition = "cards", partitions[i]
		i++
	}, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	return lines, prod
}

// TestEngineRestoresWindowsAndSuppression hands keys over twice in the
// middle of an aggregate's window and of suppressions (restorePhases):
// the engine that owns a key is stopped and another started (restart), or
// a second engine joins the group and takes partitions over, and then
// leaves it, handing them back (rebalance). The engine that owns a key
// after a handover, restoring it from the Store, fires the spree on its
// third card, suppresses what the restored suppressions cover, and alerts
// once they end. The alerts topic holds each key's alerts once, as an
// uninterrupted replay of the same events gives them.
func TestEngineRestoresWindowsAndSuppression(t *testing.T) {
	for _, kind := range engineStores() {
		for _, handover := range []string{"restart", "rebalance"} {
			t.Run(kind.name+"/"+handover, func(t *testing.T) {
				testRestoresWindowsAndSuppression(t, kind, handover == "rebalance")
			})
		}
	}
}

func testRestoresWindowsAndSuppression(t *testing.T, kind storeKind, rebalance bool) {
	brokers := cluster(t, "cards")
	rs := load(t, "restore.yaml", restoreRules)
	clock := newFakeClock()
	log := newAlertLog()
	store := kind.open(t)
	var regs []*prometheus.Registry
	startEngine := func() *running {
		regs = append(regs, prometheus.NewRegistry())
		return start(t, EngineOptions{
			Brokers: brokers, Rulesets: []*rules.Compiled{rs}, Store: store,
			Clock: clock.Now, OnAlert: log.add, Registerer: regs[len(regs)-1],
		})
	}
	owners := func(engines ...*running) func() bool {
		return func() bool {
			n := 0
			for _, e := range engines {
				st := e.Status()
				if !st.Ready {
					return false
				}
				n += len(st.Partitions)
			}
			return n == testPartitions
		}
	}

	first := startEngine()
	engines := []*running{first}
	var lines [][]byte
	var prod produced
	for phase, events := range restorePhases {
		switch {
		case phase == 0:
		case !rebalance:
			engines[0].stop(t)
			engines = []*running{startEngine()}
		case phase == 1:
			second := startEngine()
			engines = append(engines, second)
			testkit.WaitFor(t, 0, "partitions to move to the second engine", func() bool {
				return owners(engines...)() && len(second.Status().Partitions) > 0
			})
		default:
			engines[1].stop(t)
			engines = engines[:1]
			testkit.WaitFor(t, 0, "partitions to move back to the first engine", owners(engines...))
		}
		phaseLines, phaseProd := produceRestore(t, brokers, rs, events)
		lines, prod = append(lines, phaseLines...), concat(prod, phaseProd)
		testkit.WaitFor(t, 0, fmt.Sprintf("the events of phase %d to be processed and checkpointed", phase+1), func() bool {
			return consumed(prod, engines...) && checkpointed(engines...)
		})
		// Only the tick waits in the reorder buffer: the engine that takes
		// a partition over re-reads no card or big event, so it knows those
		// of earlier phases from the key's state alone.
		for p, end := range prod.end {
			cp, ok, err := store.LoadCheckpoint(context.Background(), state.PartitionID{Group: DefaultGroup, Topic: "cards", Partition: p})
			if err != nil || !ok {
				t.Fatalf("checkpoint of partition %d: %v %v", p, ok, err)
			}
			if cp.Offset != end-1 {
				t.Fatalf("phase %d, partition %d: checkpoint offset %d, want %d (the tick's)", phase+1, p, cp.Offset, end-1)
			}
		}
	}
	first.stop(t)
	for _, e := range engines {
		e.stop(t)
	}

	want := map[string][]string{}
	for _, k := range restoreKeys {
		want[k] = restoreWant
	}
	// The alerts topic's partitions do not keep the alerts' order: each
	// key's are sorted by the time of the event that fired them.
	type timed struct {
		at    time.Time
		alert string
	}
	byKey := map[string][]timed{}
	var ids []string
	for _, r := range readTopic(t, brokers, DefaultAlertsTopic) {
		k, alert, at, id := describeRestoreAlert(t, r)
		byKey[k] = append(byKey[k], timed{at, alert})
		ids = append(ids, id)
	}
	got := map[string][]string{}
	for k, alerts := range byKey {
		sort.Slice(alerts, func(i, j int) bool { return alerts[i].at.Before(alerts[j].at) })
		for _, a := range alerts {
			got[k] = append(got[k], a.alert)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alerts on the alerts topic by key (-want +got):\n%s", diff)
	}
	// Each alert once, keyed by an id of its own: the same ids as OnAlert
	// saw (and as the replay below gives the same matches).
	sort.Strings(ids)
	if dup := slices.Compact(slices.Clone(ids)); len(dup) != len(ids) {
		t.Errorf("alert ids repeat: %v", ids)
	}
	var logged []string
	log.mu.Lock()
	for _, id := range log.ids {
		logged = append(logged, id)
	}
	log.mu.Unlock()
	sort.Strings(logged)
	if diff := cmp.Diff(logged, ids); diff != "" {
		t.Errorf("alert ids on the topic (-OnAlert +topic):\n%s", diff)
	}
	if dup := log.duplicates(); dup > 0 {
		t.Errorf("%d duplicate alerts", dup)
	}
	// The handover changed nothing: an uninterrupted replay of the same
	// events matches the same events.
	log.check(t, replayAlerts(t, rs, lines, prod))

	// Every suppression was counted, by the engine that matched it.
	suppressed := map[string]float64{}
	for _, reg := range regs {
		text := testkit.MetricsText(t, reg)
		for _, rule := range []string{"big", "card-spree"} {
			if v := metricValue(text, `shrike_engine_alerts_suppressed_total{rule="`+rule+`",ruleset="restore",shadow="false"}`); v > 0 {
				suppressed[rule] += v
			}
		}
	}
	wantSuppressed := map[string]float64{"big": 2 * float64(len(restoreKeys)), "card-spree": float64(len(restoreKeys))}
	if diff := cmp.Diff(wantSuppressed, suppressed); diff != "" {
		t.Errorf("suppressed alerts (-want +got):\n%s", diff)
	}
}

// describeRestoreAlert reads an alert record of the alerts topic: its
// key, its rule with the label of the event that fired it and, for an
// aggregate, its measures and window, that event's time, and its id (the
// record's key).
func describeRestoreAlert(t *testing.T, r *kgo.Record) (key, alert string, at time.Time, id string) {
	t.Helper()
	var a struct {
		ID, Rule, Key string
		Measures      map[string]json.Number
		Window        *struct{ Start, End time.Time }
		Events        map[string][]struct {
			Label string
			TS    time.Time
		}
	}
	if err := json.Unmarshal(r.Value, &a); err != nil {
		t.Fatalf("alert record %q: %v", r.Value, err)
	}
	if string(r.Key) != a.ID || len(a.ID) != 32 {
		t.Errorf("alert record keyed %q, its id is %q", r.Key, a.ID)
	}
	fired := a.Events["event"]
	if len(a.Events) != 1 || len(fired) != 1 {
		t.Fatalf("alert %s holds events %v, want one event", a.ID, a.Events)
	}
	alert = a.Rule + " event=" + fired[0].Label
	if len(a.Measures) > 0 {
		var measures []string
		for name, v := range a.Measures {
			measures = append(measures, name+":"+v.String())
		}
		sort.Strings(measures)
		alert += " measures=" + strings.Join(measures, ",")
	}
	if a.Window != nil {
		alert += " window=" + a.Window.Start.UTC().Format(time.TimeOnly) + "-" + a.Window.End.UTC().Format(time.TimeOnly)
	}
	return a.Key, alert, fired[0].TS, a.ID
}
