package cep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/matcher"
)

// A worker's outputs: it is the matcher.Output of its Partitions, and it
// produces alerts, late and dead-lettered records through its sink, whose
// acknowledgements every checkpoint waits for.

// Alert implements matcher.Output: the alert goes to the alerts topic (a
// shadow version's to the shadow alerts topic), keyed by its id, and to
// OnAlert.
func (w *worker) Alert(a *matcher.Alert) {
	c := w.m.counters(matcher.RuleID{Ruleset: a.Ruleset, Rule: a.Rule}, a.Shadow)
	c.alerts.Inc()
	c.tally.alerts.Add(1)
	if !a.Shadow {
		w.observeDelays(a)
	}
	// An alert too large for a record would be refused by the client or
	// the broker, and retrying cannot help: it is shrunk before it is
	// produced, keeping its id and its events' positions.
	if w.maxAlert == 0 {
		w.maxAlert = w.e.alertLimit(w.ctx, w.sink.cl)
	}
	value, shrunk := a.AppendJSONWithin(nil, w.maxAlert)
	if shrunk {
		w.e.metrics.shrunkAlerts.Inc()
		w.log.Warn("alert too large for a record: events replaced by their positions",
			"ruleset", a.Ruleset, "rule", a.Rule, "id", a.ID, "bytes", len(value), "limit", w.maxAlert)
	}
	topic := w.e.opts.AlertsTopic
	if a.Shadow {
		topic = w.e.opts.ShadowAlertsTopic
	}
	w.sink.produce(&kgo.Record{
		Topic: topic,
		Key:   []byte(a.ID),
		Value: value,
	})
	switch {
	case w.e.txn != nil:
		// Handed to OnAlert once the transaction commits (commitTxn).
		if w.e.opts.OnAlert != nil {
			w.tx.alerts = append(w.tx.alerts, a)
		}
		crashPoint("work")
	case w.e.opts.OnAlert != nil:
		w.e.opts.OnAlert(a)
	}
}

// observeDelays observes how long a live alert took: from the time of
// its newest event (not for a timeout alert, which fires when its window
// closes, by design long after its last event) and from the fetch of the
// record whose processing produced it (not for an alert of a quiet
// partition's clock, which no record produced), to now, when it is
// handed to the producer. A negative delay (an event dated ahead of the
// clock, within max_clock_skew) counts as 0.
func (w *worker) observeDelays(a *matcher.Alert) {
	m := w.e.metrics
	if !a.Timeout && !a.End.IsZero() {
		m.detectionDelay.Observe(max(a.DetectedAt.Sub(a.End).Seconds(), 0))
	}
	if b := &w.batch; b.cur != nil && !b.fetchedAt.IsZero() {
		m.processingDelay.Observe(max(w.e.opts.Clock().Sub(b.fetchedAt).Seconds(), 0))
	}
}

// recordOverhead bounds what a record batch holding one record adds to the
// record's key and value (the batch header, the record's lengths, deltas
// and attributes, the older message formats' fields), with room to spare.
const recordOverhead = 512

// alertLimit is the most bytes of JSON an alert can take and still fit,
// with its id as key, in one record the client produces to topic: the
// smaller of the client's ProducerBatchMaxBytes for the topic (franz-go's
// default, 1,000,012 bytes, is Kafka's default max.message.bytes) and the
// topic's max.message.bytes, less the batch's overhead. Alert ids are 32
// hex digits. brokerMax is the topic's max.message.bytes, 0 when unknown.
func alertLimit(cl *kgo.Client, topic string, brokerMax int) int {
	limit := 1_000_012
	if fn, ok := cl.OptValue(kgo.ProducerBatchMaxBytesFn).(func(string) int32); ok && fn != nil {
		limit = int(fn(topic))
	}
	if brokerMax > 0 {
		limit = min(limit, brokerMax)
	}
	return limit - 32 - recordOverhead
}

// topicMaxMessageBytes asks the brokers for topic's max.message.bytes,
// the largest record batch they accept for it. It returns 0 when it
// cannot tell (the topic does not exist yet, describing configs is not
// allowed): the client's own limit then stands alone.
func topicMaxMessageBytes(ctx context.Context, cl *kgo.Client, topic string, log *slog.Logger) int {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, topic)
	if err == nil {
		var rc kadm.ResourceConfig
		rc, err = rcs.On(topic, nil)
		if err == nil {
			err = rc.Err
		}
		for _, c := range rc.Configs {
			if c.Key == "max.message.bytes" && c.Value != nil {
				n, perr := strconv.Atoi(*c.Value)
				if perr == nil && n > 0 {
					return n
				}
			}
		}
	}
	log.Info("alerts topic: max.message.bytes unknown, the producer's limit bounds alerts", "topic", topic, "err", err)
	return 0
}

// Late implements matcher.Output. Only the record being pushed can be late,
// so it is the Kafka record in hand; a record late in several streams is
// sent once.
func (w *worker) Late(r *matcher.Record) {
	b := &w.batch
	if b.cur == nil || b.late {
		return
	}
	b.late = true
	w.m.late.Inc()
	reason := fmt.Sprintf("late: event time %s is behind the watermark", time.Unix(0, r.Time).UTC().Format(time.RFC3339Nano))
	w.sink.produce(copyRecord(b.cur, w.e.opts.LateTopic, reason))
}

// deadLetter sends a record that could not be used to the dead-letter
// topic with the reason.
func (w *worker) deadLetter(r *kgo.Record, reason error) {
	w.m.deadLettered[deadReason(reason)].Inc()
	if w.log.Enabled(context.Background(), slog.LevelDebug) {
		w.log.Debug("dead-lettered", "offset", r.Offset, "err", reason)
	}
	w.sink.produce(copyRecord(r, w.e.opts.DeadLetterTopic, reason.Error()))
}

// Reasons of dead letters, indexes of deadReasons.
const (
	deadTombstone = iota
	deadNoKey
	deadNoTime
	deadInvalid
	deadClockSkew
)

// deadReasons are the metric labels of the dead-letter reasons.
var deadReasons = [...]string{
	deadTombstone: "tombstone",
	deadNoKey:     "no_key",
	deadNoTime:    "no_time",
	deadInvalid:   "invalid_event",
	deadClockSkew: "clock_skew",
}

// deadReason is the reason of a dead letter (an index of deadReasons).
func deadReason(err error) int {
	switch {
	case errors.Is(err, ErrTombstone):
		return deadTombstone
	case errors.Is(err, errNoKey):
		return deadNoKey
	case errors.Is(err, errNoTime):
		return deadNoTime
	case errors.Is(err, ErrClockSkew):
		return deadClockSkew
	default:
		return deadInvalid
	}
}

// copyRecord is r for topic: the original key, value and headers plus the
// reason header.
func copyRecord(r *kgo.Record, topic, reason string) *kgo.Record {
	headers := make([]kgo.RecordHeader, 0, len(r.Headers)+1)
	headers = append(headers, r.Headers...)
	headers = append(headers, kgo.RecordHeader{Key: ReasonHeader, Value: []byte(reason)})
	return &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: headers}
}
