package cep

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// TestPartitionMetricsRuleLabels: the per-rule counters are labelled with
// the rule's ruleset and id as they are, whatever characters they hold (a
// ruleset built in code is not held to the YAML's name pattern), and a
// draining version counts under its rule.
func TestPartitionMetricsRuleLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg, func() bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	pm := m.forPartition("t", 0)
	cur := matcher.RuleID{Ruleset: "team/pay", Rule: "pair@2"}
	old := cur
	old.Version = "v1"
	pm.countRules(map[matcher.RuleID]matcher.RuleStats{cur: {Timeouts: 2}, old: {Timeouts: 1, CELErrors: 4}}, false)
	// Counted again, only what was gained since is added.
	pm.countRules(map[matcher.RuleID]matcher.RuleStats{cur: {Timeouts: 3, Suppressed: 5}, old: {Timeouts: 1, CELErrors: 4, Suppressed: 1}}, false)
	pm.counters(cur, false).alerts.Inc()
	// The shadow version of the rule counts apart.
	pm.countRules(map[matcher.RuleID]matcher.RuleStats{cur: {Timeouts: 7}}, true)
	text := testkit.MetricsText(t, reg)
	for _, want := range []string{
		`shrike_engine_alerts_total{rule="pair@2",ruleset="team/pay",shadow="false"} 1`,
		`shrike_engine_timeouts_total{rule="pair@2",ruleset="team/pay",shadow="false"} 4`,
		`shrike_engine_cel_errors_total{rule="pair@2",ruleset="team/pay",shadow="false"} 4`,
		`shrike_engine_alerts_suppressed_total{rule="pair@2",ruleset="team/pay",shadow="false"} 6`,
		`shrike_engine_timeouts_total{rule="pair@2",ruleset="team/pay",shadow="true"} 7`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
	if n := strings.Count(text, "shrike_engine_timeouts_total{"); n != 2 {
		t.Errorf("%d timeouts series, want 2, live and shadow (every version counts under its rule)", n)
	}
}

// renamedRules is a ruleset over topic whose two rules are named after
// upload i, as a team renaming its rules at every upload does.
func renamedRules(t *testing.T, topic string, i int) *rules.Compiled {
	t.Helper()
	return compileSource(t, fmt.Appendf(nil, `ruleset: renamed
stream:
  topic: %s
  key: event.k
  time: event.ts
  max_out_of_orderness: 0s
rules:
  - id: every-%d
    severity: low
    when: event.n >= 0
  - id: pair-%d
    severity: high
    within: 1h
    pattern:
      - step: a
        where: event.type == "a"
      - step: b
        where: event.type == "b"
`, topic, i, i))
}

// seriesOf counts the series of the engine's metrics that carry label, by
// label value.
func seriesOf(t *testing.T, g prometheus.Gatherer, label string) map[string]int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()]++
				}
			}
		}
	}
	return out
}

// TestEngineRetiresRuleSeries uploads 200 versions of a ruleset whose rules
// are renamed at each upload, then moves it to another topic and deletes
// it: the per-rule series follow the live rules and the per-topic series
// the topics read, instead of growing with every name ever used.
func TestEngineRetiresRuleSeries(t *testing.T) {
	const uploads = 200
	brokers := cluster(t, "events", "other")
	reg := prometheus.NewRegistry()
	sink := &alertSink{}
	first := renamedRules(t, "events", 0)
	e := start(t, EngineOptions{
		Brokers: brokers, Store: state.NewMemory(), Clock: newFakeClock().Now,
		Rulesets: []*rules.Compiled{first}, Registerer: reg, OnAlert: sink.add,
	})
	events := newEventProducer(t, brokers, "events")
	// Every partition gets a worker, so that every switch counts the
	// rules of the plan it leaves.
	for i := range testPartitions * 8 {
		events.emit("a", fmt.Sprintf("key-%d", i))
	}
	testkit.WaitFor(t, 0, "every partition to be assigned", func() bool {
		return e.Ready() && len(e.Status().Partitions) == testPartitions
	})
	ctx := context.Background()
	var last *rules.Compiled
	for i := 1; i <= uploads; i++ {
		last = renamedRules(t, "events", i)
		if err := e.SetRulesets(ctx, []*rules.Compiled{last}); err != nil {
			t.Fatal(err)
		}
	}
	// An alert by the last version's rule: its series exist.
	events.emit("a", "key-x")
	sink.waitAlert(t, "an alert of the last version", func(a *matcher.Alert) bool { return a.Rule == fmt.Sprintf("every-%d", uploads) })
	// One more switch, so that the partitions count what they hold under
	// the last version, then the count.
	if err := e.SetRulesets(ctx, []*rules.Compiled{last}); err != nil {
		t.Fatal(err)
	}
	rulesSeen := seriesOf(t, reg, "rule")
	for rule := range rulesSeen {
		if rule != fmt.Sprintf("every-%d", uploads) && rule != fmt.Sprintf("pair-%d", uploads) {
			t.Errorf("a series of rule %q, removed %d uploads ago, is still exported", rule, uploads)
			break
		}
	}
	total := 0
	for _, n := range rulesSeen {
		total += n
	}
	// Five per-rule counters for two live rules.
	if total > 5*2 {
		t.Errorf("%d per-rule series after %d uploads, want at most %d (the live rules')", total, uploads, 5*2)
	}
	t.Logf("per-rule series after %d uploads of renamed rules: %d", uploads, total)
	if seriesOf(t, reg, "topic")["events"] == 0 {
		t.Fatal("no series of topic events while it is read")
	}

	// Moved to another topic, then deleted: nothing of events, then no
	// rule, stays.
	if err := e.SetRulesets(ctx, []*rules.Compiled{renamedRules(t, "other", uploads+1)}); err != nil {
		t.Fatal(err)
	}
	if n := seriesOf(t, reg, "topic")["events"]; n != 0 {
		t.Errorf("%d series of topic events, which no ruleset reads any more:\n%s", n, testkit.MetricsText(t, reg))
	}
	if err := e.SetRulesets(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got := seriesOf(t, reg, "ruleset"); len(got) != 0 {
		t.Errorf("series of deleted rulesets: %v", got)
	}
}

// TestEngineAlertDelays: every live alert is observed in both delay
// histograms, the detection delay from its newest event's time to the
// clock that stamps detected_at, the processing delay from the fetch to
// the handover, which a clock that stands still makes zero.
func TestEngineAlertDelays(t *testing.T) {
	const n = 30
	brokers := cluster(t, "events")
	reg := prometheus.NewRegistry()
	sink := &alertSink{}
	clock := newFakeClock()
	e := start(t, EngineOptions{
		Brokers: brokers, Store: state.NewMemory(), Clock: clock.Now,
		Rulesets: []*rules.Compiled{renamedRules(t, "events", 0)}, Registerer: reg, OnAlert: sink.add,
	})
	events := newEventProducer(t, brokers, "events")
	for i := range n {
		events.emit("a", fmt.Sprintf("key-%d", i))
	}
	// Without exactly-once, OnAlert is called as the alert is produced,
	// within the processing of the record that made it: once every record
	// is processed, the sink holds every alert.
	testkit.WaitFor(t, 0, "every event processed", func() bool { return processed(e.Engine) == n })
	alerts := sink.all()
	// Each partition's newest event waits for the watermark to pass it.
	if len(alerts) < n-testPartitions {
		t.Fatalf("%d alerts of %d events, want at least %d", len(alerts), n, n-testPartitions)
	}
	var wantSum float64
	for _, a := range alerts {
		wantSum += clock.Now().Sub(a.End).Seconds()
	}
	for _, tt := range []struct {
		name    string
		sum     float64
		epsilon float64
	}{
		{"shrike_engine_alert_detection_delay_seconds", wantSum, 1e-6},
		{"shrike_engine_alert_processing_delay_seconds", 0, 0},
	} {
		h := histogramOf(t, reg, tt.name)
		if h.GetSampleCount() != uint64(len(alerts)) || math.Abs(h.GetSampleSum()-tt.sum) > tt.epsilon {
			t.Errorf("%s: %d samples summing to %g, want %d summing to %g", tt.name, h.GetSampleCount(), h.GetSampleSum(), len(alerts), tt.sum)
		}
	}
	if wantSum < float64(len(alerts))*3600 {
		t.Errorf("detection delays sum to %gs, want over an hour per alert (the events are a day older than the clock)", wantSum)
	}
}

// histogramOf is the unlabelled histogram name of g.
func histogramOf(t *testing.T, g prometheus.Gatherer, name string) *dto.Histogram {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 && mf.GetMetric()[0].GetHistogram() != nil {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("no histogram %s", name)
	return nil
}

// TestKafkaGaugesRenamed: the Kafka client's gauges named _total are
// gathered without the suffix, in name order among the families that
// keep their names.
func TestKafkaGaugesRenamed(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shrike_kafka_buffered_fetch_records_total", Help: "h"}, func() float64 { return 7 }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shrike_kafka_buffered_produce_records_total", Help: "h"}, func() float64 { return 3 }),
		prometheus.NewGauge(prometheus.GaugeOpts{Name: "shrike_kafka_buffered_fetch_records_x", Help: "h"}),
		prometheus.NewCounter(prometheus.CounterOpts{Name: "shrike_kafka_buffered_fetch_bytes", Help: "h"}),
	)
	mfs, err := KafkaGaugesRenamed(reg).Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		got = append(got, mf.GetName())
	}
	want := []string{
		"shrike_kafka_buffered_fetch_bytes",
		"shrike_kafka_buffered_fetch_records",
		"shrike_kafka_buffered_fetch_records_x",
		"shrike_kafka_buffered_produce_records",
	}
	if !slices.Equal(got, want) {
		t.Errorf("gathered %v, want %v", got, want)
	}
}
