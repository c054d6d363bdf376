package cep

import (
	"fmt"
	"maps"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shrike-cep/shrike/matcher"
)

// metrics are the engine's Prometheus metrics (README.md#operating-it), named
// shrike_<subsystem>_<name>_<unit>. Labels are topics, partitions and rule
// names, never event keys. The hot path counts locally and adds per batch.
type metrics struct {
	records        *prometheus.CounterVec // topic
	events         *prometheus.CounterVec // topic
	late           *prometheus.CounterVec // topic
	deadLettered   *prometheus.CounterVec // topic, reason
	skipped        *prometheus.CounterVec // topic
	alerts         *prometheus.CounterVec // ruleset, rule
	timeouts       *prometheus.CounterVec // ruleset, rule
	dropped        *prometheus.CounterVec // ruleset, rule
	celErrors      *prometheus.CounterVec // ruleset, rule
	produceErrors  *prometheus.CounterVec // topic
	partialMatches *prometheus.GaugeVec   // topic, partition
	residentKeys   *prometheus.GaugeVec   // topic, partition
	bufferedEvents *prometheus.GaugeVec   // topic, partition
	watermarkLag   *prometheus.GaugeVec   // topic, partition
	consumerLag    *prometheus.GaugeVec   // topic, partition

	fetchErrors       prometheus.Counter
	partitions        prometheus.Gauge
	ready             prometheus.GaugeFunc
	checkpointSeconds prometheus.Histogram
	checkpointErrors  prometheus.Counter
	storeErrors       prometheus.Counter
	committedKeys     prometheus.Counter
	committedBytes    prometheus.Counter
	loadedKeys        prometheus.Counter
	evictedKeys       prometheus.Counter
	badStates         prometheus.Counter
	shrunkAlerts      prometheus.Counter
}

// newMetrics makes the metrics and registers them with reg, unless nil;
// ready is the engine's readiness, read at each scrape.
func newMetrics(reg prometheus.Registerer, ready func() bool) (*metrics, error) {
	counterVec := func(subsystem, name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shrike", Subsystem: subsystem, Name: name, Help: help}, labels)
	}
	gaugeVec := func(subsystem, name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "shrike", Subsystem: subsystem, Name: name, Help: help}, labels)
	}
	counter := func(subsystem, name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "shrike", Subsystem: subsystem, Name: name, Help: help})
	}
	gauge := func(subsystem, name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "shrike", Subsystem: subsystem, Name: name, Help: help})
	}
	m := &metrics{
		records:        counterVec("engine", "records_total", "Kafka records processed.", "topic"),
		events:         counterVec("engine", "events_total", "Events handed to the matcher (records decoded, keyed and timed).", "topic"),
		late:           counterVec("engine", "late_events_total", "Events behind their stream's watermark, sent to the late topic.", "topic"),
		deadLettered:   counterVec("engine", "deadlettered_events_total", "Records sent to the dead-letter topic, by reason.", "topic", "reason"),
		skipped:        counterVec("engine", "skipped_records_total", "Records re-read after a restore that were matched before the checkpoint.", "topic"),
		alerts:         counterVec("engine", "alerts_total", "Alerts produced, timeout alerts included.", "ruleset", "rule"),
		timeouts:       counterVec("engine", "timeouts_total", "Partial matches whose window closed.", "ruleset", "rule"),
		dropped:        counterVec("engine", "dropped_partial_matches_total", "Partial matches dropped by the per-key cap.", "ruleset", "rule"),
		celErrors:      counterVec("engine", "cel_errors_total", "Condition evaluations that failed and counted as false.", "ruleset", "rule"),
		produceErrors:  counterVec("engine", "produce_errors_total", "Output records whose produce failed.", "topic"),
		partialMatches: gaugeVec("engine", "partial_matches", "Open partial matches of the partition's keys in memory.", "topic", "partition"),
		residentKeys:   gaugeVec("state", "resident_keys", "Keys whose state is in memory.", "topic", "partition"),
		bufferedEvents: gaugeVec("engine", "buffered_events", "Events waiting for the watermark.", "topic", "partition"),
		watermarkLag:   gaugeVec("engine", "watermark_lag_seconds", "Wall clock minus the partition's watermark.", "topic", "partition"),
		consumerLag:    gaugeVec("engine", "consumer_lag_records", "Records of the partition not yet processed.", "topic", "partition"),

		fetchErrors: counter("engine", "fetch_errors_total", "Errors fetching from Kafka."),
		partitions:  gauge("engine", "assigned_partitions", "Partitions assigned to this instance."),
		ready: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "shrike", Subsystem: "engine", Name: "ready",
			Help: "1 when the engine has joined its group, restored every assigned partition and the Store works.",
		}, func() float64 {
			if ready() {
				return 1
			}
			return 0
		}),
		checkpointSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "shrike", Subsystem: "state", Name: "checkpoint_duration_seconds",
			Help:    "Time to flush outputs, commit state and commit the offset.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		checkpointErrors: counter("state", "checkpoint_errors_total", "Checkpoints whose Store commit failed."),
		storeErrors:      counter("state", "store_errors_total", "Failed Store calls (retried)."),
		committedKeys:    counter("state", "committed_keys_total", "Key states written or deleted by checkpoints."),
		committedBytes:   counter("state", "committed_bytes_total", "Bytes of key state written by checkpoints."),
		loadedKeys:       counter("state", "loaded_keys_total", "Key states loaded from the Store."),
		evictedKeys:      counter("state", "evicted_keys_total", "Key states evicted from memory."),
		badStates:        counter("state", "bad_key_states_total", "Stored key states that could not be decoded and were dropped."),
		shrunkAlerts:     counter("engine", "shrunk_alerts_total", "Alerts too large for a Kafka record, produced with their events replaced by their positions."),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		m.records, m.events, m.late, m.deadLettered, m.skipped, m.alerts, m.timeouts, m.dropped,
		m.celErrors, m.produceErrors, m.partialMatches, m.residentKeys, m.bufferedEvents,
		m.watermarkLag, m.consumerLag, m.fetchErrors, m.partitions, m.ready, m.checkpointSeconds,
		m.checkpointErrors, m.storeErrors, m.committedKeys, m.committedBytes, m.loadedKeys,
		m.evictedKeys, m.badStates, m.shrunkAlerts,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// partitionMetrics are the labelled metrics of one partition worker,
// resolved once for its topic and partition so that counting a record, an
// alert or a dead letter looks up no label. Series that a zero would
// misreport (the lags before any fetch or event) are resolved at their
// first value.
type partitionMetrics struct {
	engine *metrics
	topic  string
	part   string

	records, events, late, skipped               prometheus.Counter
	deadLettered                                 [len(deadReasons)]prometheus.Counter
	partialMatches, residentKeys, bufferedEvents prometheus.Gauge
	watermarkLag, consumerLag                    prometheus.Gauge // nil until set

	// rules are the per-rule counters by matcher rule, and last the
	// matcher's per-rule statistics when last counted: the metrics add
	// what they gained since.
	rules map[matcher.RuleID]*ruleCounters
	last  map[matcher.RuleID]matcher.RuleStats
}

// ruleCounters are one rule's counters.
type ruleCounters struct {
	alerts, timeouts, dropped, celErrors prometheus.Counter
}

func (m *metrics) forPartition(topic string, partition int32) *partitionMetrics {
	p := strconv.Itoa(int(partition))
	pm := &partitionMetrics{
		engine:         m,
		topic:          topic,
		part:           p,
		records:        m.records.WithLabelValues(topic),
		events:         m.events.WithLabelValues(topic),
		late:           m.late.WithLabelValues(topic),
		skipped:        m.skipped.WithLabelValues(topic),
		partialMatches: m.partialMatches.WithLabelValues(topic, p),
		residentKeys:   m.residentKeys.WithLabelValues(topic, p),
		bufferedEvents: m.bufferedEvents.WithLabelValues(topic, p),
		rules:          map[matcher.RuleID]*ruleCounters{},
		last:           map[matcher.RuleID]matcher.RuleStats{},
	}
	for i, r := range deadReasons {
		pm.deadLettered[i] = m.deadLettered.WithLabelValues(topic, r)
	}
	return pm
}

// setWatermarkLag sets the partition's watermark lag.
func (pm *partitionMetrics) setWatermarkLag(seconds float64) {
	if pm.watermarkLag == nil {
		pm.watermarkLag = pm.engine.watermarkLag.WithLabelValues(pm.topic, pm.part)
	}
	pm.watermarkLag.Set(seconds)
}

// setConsumerLag sets the partition's consumer lag.
func (pm *partitionMetrics) setConsumerLag(records int64) {
	if pm.consumerLag == nil {
		pm.consumerLag = pm.engine.consumerLag.WithLabelValues(pm.topic, pm.part)
	}
	pm.consumerLag.Set(float64(records))
}

// forget removes the partition's gauges when its worker stops, so that a
// partition that moved to another instance is not reported twice.
func (pm *partitionMetrics) forget() {
	m := pm.engine
	for _, g := range []*prometheus.GaugeVec{m.partialMatches, m.residentKeys, m.bufferedEvents, m.watermarkLag, m.consumerLag} {
		g.DeleteLabelValues(pm.topic, pm.part)
	}
}

// counters returns the counters of a rule; every version of a rule counts
// under the rule's labels.
func (pm *partitionMetrics) counters(id matcher.RuleID) *ruleCounters {
	if c := pm.rules[id]; c != nil {
		return c
	}
	m := pm.engine
	c := &ruleCounters{
		alerts:    m.alerts.WithLabelValues(id.Ruleset, id.Rule),
		timeouts:  m.timeouts.WithLabelValues(id.Ruleset, id.Rule),
		dropped:   m.dropped.WithLabelValues(id.Ruleset, id.Rule),
		celErrors: m.celErrors.WithLabelValues(id.Ruleset, id.Rule),
	}
	pm.rules[id] = c
	return c
}

// countRules adds what a Partition's per-rule counters gained since they
// were last counted (or taken as baselines by rebase).
func (pm *partitionMetrics) countRules(byRule map[matcher.RuleID]matcher.RuleStats) {
	for id, rs := range byRule {
		last := pm.last[id]
		c := pm.counters(id)
		c.timeouts.Add(delta(rs.Timeouts, last.Timeouts))
		c.dropped.Add(delta(rs.Dropped, last.Dropped))
		c.celErrors.Add(delta(rs.CELErrors, last.CELErrors))
		pm.last[id] = rs
	}
}

// rebase takes the per-rule counters of the Partitions as the baselines,
// forgetting rules no Partition has any more: a reload's switch, after
// counting under the old rules, does so.
func (pm *partitionMetrics) rebase(parts []*matcher.Partition) {
	clear(pm.last)
	for _, p := range parts {
		maps.Copy(pm.last, p.Stats().ByRule)
	}
}

// delta is what a counter gained since last; a counter that restarted
// (a rule's new version) gained all it holds.
func delta(cur, last uint64) float64 {
	if cur < last {
		return float64(cur)
	}
	return float64(cur - last)
}
