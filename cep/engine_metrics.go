package cep

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

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
	suppressed     *prometheus.CounterVec // ruleset, rule
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
	transactions      *prometheus.CounterVec // outcome
	barrierSeconds    prometheus.Histogram
	detectionDelay    prometheus.Histogram
	processingDelay   prometheus.Histogram

	// activity are the per-rule figures of Engine.RuleActivity, kept
	// beside the per-rule counters.
	activity *ruleActivity
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
		activity:       newRuleActivity(),
		records:        counterVec("engine", "records_total", "Kafka records processed.", "topic"),
		events:         counterVec("engine", "events_total", "Events handed to the matcher (records decoded, keyed and timed).", "topic"),
		late:           counterVec("engine", "late_events_total", "Events behind their stream's watermark, sent to the late topic.", "topic"),
		deadLettered:   counterVec("engine", "deadlettered_events_total", "Records sent to the dead-letter topic, by reason.", "topic", "reason"),
		skipped:        counterVec("engine", "skipped_records_total", "Records re-read after a restore that were matched before the checkpoint.", "topic"),
		alerts:         counterVec("engine", "alerts_total", "Alerts produced, timeout alerts included.", "ruleset", "rule", "shadow"),
		timeouts:       counterVec("engine", "timeouts_total", "Partial matches whose window closed.", "ruleset", "rule", "shadow"),
		suppressed:     counterVec("engine", "alerts_suppressed_total", "Alerts dropped by their rule's alert.suppress (not in alerts_total).", "ruleset", "rule", "shadow"),
		dropped:        counterVec("engine", "dropped_partial_matches_total", "Partial matches dropped by the per-key cap.", "ruleset", "rule", "shadow"),
		celErrors:      counterVec("engine", "cel_errors_total", "Condition evaluations that failed and counted as false.", "ruleset", "rule", "shadow"),
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
			Help: "1 when the engine has joined its group, restored every assigned partition, every partition of the group has an owner and the Store works.",
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
		transactions:     counterVec("engine", "transactions_total", "Kafka transactions of exactly-once outputs ended, by outcome (committed, aborted).", "outcome"),
		barrierSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "shrike", Subsystem: "engine", Name: "barrier_duration_seconds",
			Help:    "Time of a checkpoint barrier in exactly-once mode: workers stopped, outputs flushed, checkpoints staged, the transaction ended, checkpoints promoted.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		detectionDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "shrike", Subsystem: "engine", Name: "alert_detection_delay_seconds",
			Help: "Live alerts of completed matches, from the event time of their newest event to their production (detected_at): " +
				"the stream's max_out_of_orderness, how late events reach Kafka, and processing. Timeout alerts are not observed.",
			Buckets: detectionDelayBuckets,
		}),
		processingDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "shrike", Subsystem: "engine", Name: "alert_processing_delay_seconds",
			Help:    "Live alerts, from the fetch of the Kafka record whose processing produced them to their handover to the producer: queueing, key loads from the Store and matching.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		m.records, m.events, m.late, m.deadLettered, m.skipped, m.alerts, m.timeouts, m.suppressed, m.dropped,
		m.celErrors, m.produceErrors, m.partialMatches, m.residentKeys, m.bufferedEvents,
		m.watermarkLag, m.consumerLag, m.fetchErrors, m.partitions, m.ready, m.checkpointSeconds,
		m.checkpointErrors, m.storeErrors, m.committedKeys, m.committedBytes, m.loadedKeys,
		m.evictedKeys, m.badStates, m.shrunkAlerts, m.transactions, m.barrierSeconds,
		m.detectionDelay, m.processingDelay,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// startAtZero makes the series of failures known in advance, the produce
// errors of the output topics and the aborted transactions, exist at
// zero before the first one, so that rate() and alerting rules on them
// work from the start.
func (m *metrics) startAtZero(outputTopics []string, exactlyOnce bool) {
	for _, t := range outputTopics {
		if t != "" {
			m.produceErrors.WithLabelValues(t)
		}
	}
	if exactlyOnce {
		m.transactions.WithLabelValues("committed")
		m.transactions.WithLabelValues("aborted")
	}
}

// detectionDelayBuckets span the delays of an alert after its newest
// event: from a stream without out-of-orderness read as events come
// (milliseconds) to one that waits minutes for late events, or a
// consumer hours behind.
var detectionDelayBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// partitionMetrics are the labelled metrics of one partition worker,
// resolved once for its topic and partition so that counting a record, an
// alert or a dead letter looks up no label. Series that a zero would
// misreport (the lags before any fetch or event) are resolved at their
// first value.
type partitionMetrics struct {
	engine *metrics
	topic  string
	part   string
	tp     topicPartition

	records, events, late, skipped               prometheus.Counter
	deadLettered                                 [len(deadReasons)]prometheus.Counter
	partialMatches, residentKeys, bufferedEvents prometheus.Gauge
	watermarkLag, consumerLag                    prometheus.Gauge // nil until set

	// rules are the per-rule counters by matcher rule, and last the
	// matcher's per-rule statistics when last counted: the metrics add
	// what they gained since.
	rules map[metricRule]*ruleCounters
	last  map[metricRule]matcher.RuleStats
}

// metricRule is a rule of the per-rule metrics: a shadow version's rules
// (label shadow="true") count apart from the live rules of the same names
// (shadow="false"), so that dashboards can set them side by side.
type metricRule struct {
	matcher.RuleID
	shadow bool
}

// ruleCounters are one rule's counters, and its totals for
// Engine.RuleActivity.
type ruleCounters struct {
	alerts, timeouts, suppressed, dropped, celErrors prometheus.Counter
	tally                                            *ruleTally
}

func (m *metrics) forPartition(topic string, partition int32) *partitionMetrics {
	p := strconv.Itoa(int(partition))
	pm := &partitionMetrics{
		engine:         m,
		topic:          topic,
		part:           p,
		tp:             topicPartition{topic, partition},
		records:        m.records.WithLabelValues(topic),
		events:         m.events.WithLabelValues(topic),
		late:           m.late.WithLabelValues(topic),
		skipped:        m.skipped.WithLabelValues(topic),
		partialMatches: m.partialMatches.WithLabelValues(topic, p),
		residentKeys:   m.residentKeys.WithLabelValues(topic, p),
		bufferedEvents: m.bufferedEvents.WithLabelValues(topic, p),
		rules:          map[metricRule]*ruleCounters{},
		last:           map[metricRule]matcher.RuleStats{},
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
	m.activity.forget(pm.tp)
}

// counters returns the counters of a rule; every version of a rule counts
// under the rule's labels.
func (pm *partitionMetrics) counters(id matcher.RuleID, shadow bool) *ruleCounters {
	key := metricRule{id, shadow}
	if c := pm.rules[key]; c != nil {
		return c
	}
	m := pm.engine
	sh := strconv.FormatBool(shadow)
	c := &ruleCounters{
		alerts:     m.alerts.WithLabelValues(id.Ruleset, id.Rule, sh),
		timeouts:   m.timeouts.WithLabelValues(id.Ruleset, id.Rule, sh),
		suppressed: m.suppressed.WithLabelValues(id.Ruleset, id.Rule, sh),
		dropped:    m.dropped.WithLabelValues(id.Ruleset, id.Rule, sh),
		celErrors:  m.celErrors.WithLabelValues(id.Ruleset, id.Rule, sh),
		tally:      m.activity.tally(id, shadow),
	}
	pm.rules[key] = c
	return c
}

// countRules adds what a Partition's per-rule counters gained since they
// were last counted (or taken as baselines by rebase); shadow says whether
// the Partition runs shadow versions.
func (pm *partitionMetrics) countRules(byRule map[matcher.RuleID]matcher.RuleStats, shadow bool) {
	for id, rs := range byRule {
		key := metricRule{id, shadow}
		last := pm.last[key]
		c := pm.counters(id, shadow)
		c.timeouts.Add(delta(rs.Timeouts, last.Timeouts))
		suppressed := delta(rs.Suppressed, last.Suppressed)
		c.suppressed.Add(suppressed)
		c.tally.suppressed.Add(uint64(suppressed))
		c.dropped.Add(delta(rs.Dropped, last.Dropped))
		c.celErrors.Add(delta(rs.CELErrors, last.CELErrors))
		pm.last[key] = rs
	}
}

// rebase takes the per-rule counters of the Partitions as the baselines,
// forgetting rules no Partition has any more: a reload's switch, after
// counting under the old rules, does so. The resolved counters go too: the
// engine deletes the series of rules that a plan drops (retire), and a
// counter resolved before that would count a rule that comes back into a
// series no scrape sees.
func (pm *partitionMetrics) rebase(streams []*stream) {
	clear(pm.last)
	clear(pm.rules)
	for _, s := range streams {
		for id, rs := range s.part.Stats().ByRule {
			pm.last[metricRule{id, s.shadow()}] = rs
		}
	}
}

// retire deletes the series of the rules and topics that plan p does not
// have: the per-rule counters of rules removed or renamed, and of rulesets
// deleted, and the per-topic counters and gauges of topics no ruleset
// reads. Without
// it every rule name a ruleset ever had would stay a series for the life of
// the process. SetRulesets calls it once the workers switched to p; a
// worker slow to switch may count a removed rule once more, and the next
// reload deletes that series again. Reloads are rare, so reading every
// series of the vectors here costs nothing that matters.
func (m *metrics) retire(p *enginePlan) {
	type version struct {
		name   string
		shadow string
	}
	rulesets := map[version]map[string]bool{}
	for _, rs := range p.rulesets {
		ids := map[string]bool{}
		for _, r := range rs.Rules {
			ids[r.ID] = true
		}
		rulesets[version{rs.Name, strconv.FormatBool(rs.Shadow)}] = ids
	}
	liveRule := func(l prometheus.Labels) bool { return rulesets[version{l["ruleset"], l["shadow"]}][l["rule"]] }
	m.activity.retire(p)
	for _, v := range []labelledVec{m.alerts, m.timeouts, m.suppressed, m.dropped, m.celErrors} {
		deleteSeries(v, liveRule)
	}
	liveTopic := func(l prometheus.Labels) bool { return slices.Contains(p.topics, l["topic"]) }
	for _, v := range []labelledVec{
		m.records, m.events, m.late, m.deadLettered, m.skipped,
		m.partialMatches, m.residentKeys, m.bufferedEvents, m.watermarkLag, m.consumerLag,
	} {
		deleteSeries(v, liveTopic)
	}
}

// labelledVec is a CounterVec or a GaugeVec.
type labelledVec interface {
	prometheus.Collector
	Delete(prometheus.Labels) bool
}

// deleteSeries deletes the series of v whose labels keep rejects.
func deleteSeries(v labelledVec, keep func(prometheus.Labels) bool) {
	ch := make(chan prometheus.Metric)
	go func() {
		v.Collect(ch)
		close(ch)
	}()
	var drop []prometheus.Labels
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil {
			continue
		}
		l := make(prometheus.Labels, len(d.GetLabel()))
		for _, p := range d.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		if !keep(l) {
			drop = append(drop, l)
		}
	}
	for _, l := range drop {
		v.Delete(l)
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
