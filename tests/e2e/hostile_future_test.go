package e2e

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// futureEvent is the hostile event: valid, keyed, and dated 2100. Taken by
// `shrike serve`, it would move its partition's watermark to 2100, so that
// every later event of the partition is late and every open window closes
// at once.
const futureEvent = `{"type":"login","account_id":"mallory","success":true,"ip":"203.0.113.9","ts":"2100-01-01T00:00:00.000Z"}`

// TestFutureTimestampDeadLettered sends, with kcat, one event dated 2100
// at the head of every partition of the payments topic, then the shipped
// recording: every good event still alerts (the alerts are those `shrike
// run` finds without the future events), nothing is late, and each future
// event is in the dead-letter topic, read back with kcat, with its
// original key and value and a reason that names its time, the wall clock
// and the stream's bound.
func TestFutureTimestampDeadLettered(t *testing.T) {
	requireTools(t, "kcat")
	_, payments, recording := shipped(t)
	rulesDir := t.TempDir()
	copyFile(t, payments, filepath.Join(rulesDir, "payments.yaml"))
	s := startServe(t, serveOptions{Rules: rulesDir})
	s.waitReady(t, 60*time.Second)

	sentAt := time.Now()
	for p := range partitions {
		kcatProduce(t, s.kafka, paymentsTopic, p, []kv{{"mallory", futureEvent}})
	}
	events := readLines(t, recording)
	kcatProduce(t, s.kafka, paymentsTopic, -1, keyed(t, events))
	good := append(append([]string{}, events...), produceFlush(t, s.kafka)...)

	want := runAlerts(t, payments, good)
	waitAlerts(t, s.kafka, want, 60*time.Second)

	var dead []kcatRecord
	waitFor(t, 30*time.Second, "the dead-lettered future events", func() bool {
		dead = kcatConsume(t, s.kafka, deadLetterTopic)
		return len(dead) >= partitions
	})
	if len(dead) != partitions {
		t.Errorf("%d dead-lettered records, want the %d future events", len(dead), partitions)
	}
	reasonRE := regexp.MustCompile(`^clock skew: event time 2100-01-01T00:00:00Z is ahead of the wall clock (\S+) by more than max_clock_skew 5m0s \(ruleset "payments", topic "payments"\)$`)
	for _, r := range dead {
		if r.Payload == nil || *r.Payload != futureEvent || r.Key == nil || *r.Key != "mallory" {
			t.Errorf("dead-lettered record %v=%v, want the original mallory=%s", r.Key, r.Payload, futureEvent)
		}
		reason, _ := r.header("shrike-reason")
		m := reasonRE.FindStringSubmatch(reason)
		if m == nil {
			t.Errorf("shrike-reason = %q, want it to match %s", reason, reasonRE)
			continue
		}
		// The wall clock named is serve's when it read the event.
		wall, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil || wall.Before(sentAt.Add(-time.Minute)) || wall.After(time.Now().Add(time.Minute)) {
			t.Errorf("the reason's wall clock %q is not the time of the test (%v)", m[1], sentAt.UTC())
		}
	}

	ms := s.metrics(t)
	if n := ms[`shrike_engine_deadlettered_events_total{reason="clock_skew",topic="payments"}`]; n != partitions {
		t.Errorf("clock_skew dead letters counted %v, want %d", n, partitions)
	}
	if n := metricSum(ms, "shrike_engine_late_events_total"); n != 0 {
		t.Errorf("%v events were late: a future event moved a watermark", n)
	}
	if n := metricSum(ms, "shrike_engine_events_total"); n != float64(len(good)) {
		t.Errorf("shrike_engine_events_total = %v, want the %d good events", n, len(good))
	}
	if t.Failed() {
		t.Logf("metrics: %s", strings.Join(metricLines(ms, "shrike_engine_deadlettered_events_total", "shrike_engine_late_events_total"), "; "))
	}
	s.exitedCleanly(t)
}

// metricLines lists the series of the named metrics as name{labels} value.
func metricLines(ms map[string]float64, names ...string) []string {
	var out []string
	for series, v := range ms {
		for _, n := range names {
			if series == n || strings.HasPrefix(series, n+"{") {
				out = append(out, series+" "+strconv.FormatFloat(v, 'g', -1, 64))
			}
		}
	}
	return out
}
