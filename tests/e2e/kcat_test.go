package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// produceFlush puts one flush event into each partition with kcat and
// returns them, in order.
func produceFlush(t *testing.T, broker string) []string {
	t.Helper()
	var flushes []string
	for p := range partitions {
		ev := flushEvent(p)
		kcatProduce(t, broker, paymentsTopic, p, []kv{{"zz-flush", ev}})
		flushes = append(flushes, ev)
	}
	return flushes
}

// TestKcatEndToEnd is the README's quick start, checked: `shrike serve` on
// its embedded Kafka and Redis with the shipped rulesets, the payments
// recording produced with kcat keyed by account, alerts read back with
// kcat, and they are `shrike run`'s alerts on the same events.
func TestKcatEndToEnd(t *testing.T) {
	requireTools(t, "kcat")
	rulesDir, payments, recording := shipped(t)
	s := startServe(t, serveOptions{Rules: rulesDir})
	s.waitReady(t, 60*time.Second)

	// The stream's idle_timeout (30 s) runs from the partitions' assignment:
	// the recording, from 2026, must arrive before the watermark follows the
	// wall clock, or it would all be late.
	events := readLines(t, recording)
	kcatProduce(t, s.kafka, paymentsTopic, -1, keyed(t, events))
	events = append(events, produceFlush(t, s.kafka)...)

	want := runAlerts(t, payments, events)
	got := waitAlerts(t, s.kafka, want, 60*time.Second)
	if got.records != len(got.ids) {
		t.Errorf("%d alert records for %d distinct alerts: no restart happened, so none may be repeated", got.records, len(got.ids))
	}

	ms := s.metrics(t)
	if n := metricSum(ms, "shrike_engine_events_total"); n != float64(len(events)) {
		t.Errorf("shrike_engine_events_total = %v, want %d", n, len(events))
	}
	if n := metricSum(ms, "shrike_engine_late_events_total"); n != 0 {
		t.Errorf("%v events were late: the recording reached the engine after its partitions went idle", n)
	}
	if n := metricSum(ms, "shrike_engine_alerts_total"); n != float64(len(want)) {
		t.Errorf("shrike_engine_alerts_total = %v, want %d", n, len(want))
	}

	// The README's backtest of a topic: `kcat -C -J` dumps it partition
	// by partition, and `shrike run` of the dump keeps a watermark per
	// partition, so it finds the alerts of the events in time order.
	dump := kcatDump(t, s.kafka, paymentsTopic)
	got2, stderr := runFile(t, payments, dump)
	if diff := cmp.Diff(want, got2); diff != "" {
		t.Errorf("shrike run of the kcat -C -J dump, against the events in time order (-want +got):\n%s", shortDiff(diff))
	}
	if !regexp.MustCompile(`(?m)^late +0$`).MatchString(stderr) || strings.Contains(stderr, "warning") {
		t.Errorf("shrike run of the kcat -C -J dump: events were late:\n%s", stderr)
	}
	s.exitedCleanly(t)
}

// kcatDump writes topic, read from the beginning with kcat -C -J as the
// README says, to a file and returns its path.
func kcatDump(t *testing.T, broker, topic string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), topic+".kcat")
	if err := os.WriteFile(path, kcatJSON(t, broker, topic), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMalformedRecord puts a record that is not JSON into every partition
// in the middle of the recording: each goes to the dead-letter topic with
// its original key and value and a reason header, and the events after it
// still alert.
func TestMalformedRecord(t *testing.T) {
	requireTools(t, "kcat")
	_, payments, recording := shipped(t)
	rulesDir := t.TempDir()
	copyFile(t, payments, filepath.Join(rulesDir, "payments.yaml"))
	s := startServe(t, serveOptions{Rules: rulesDir})
	s.waitReady(t, 60*time.Second)

	events := readLines(t, recording)
	half := len(events) / 2
	first, second := events[:half], events[half:]
	kcatProduce(t, s.kafka, paymentsTopic, -1, keyed(t, first))
	const bad = `{"type":"login","account_id":"acct-1", this is not JSON`
	var sent []string
	for p := range partitions {
		kcatProduce(t, s.kafka, paymentsTopic, p, []kv{{"bad-key", bad}})
		sent = append(sent, bad)
	}
	kcatProduce(t, s.kafka, paymentsTopic, -1, keyed(t, second))
	all := append(append(append([]string{}, first...), sent...), second...)
	all = append(all, produceFlush(t, s.kafka)...)

	// `shrike run` dead-letters the same lines and goes on, too.
	want := runAlerts(t, payments, all)
	if !alertsAfter(t, want, second[0]) {
		t.Fatal("no alert of shrike run ends after the malformed records: the test would not show that the partition keeps flowing")
	}
	waitAlerts(t, s.kafka, want, 60*time.Second)

	var dead []kcatRecord
	waitFor(t, 30*time.Second, "the dead-lettered records", func() bool {
		dead = kcatConsume(t, s.kafka, deadLetterTopic)
		return len(dead) >= partitions
	})
	if len(dead) != partitions {
		t.Errorf("%d dead-lettered records, want %d", len(dead), partitions)
	}
	for _, r := range dead {
		if r.Payload == nil || *r.Payload != bad {
			t.Errorf("dead-lettered value %v, want the original %q", r.Payload, bad)
		}
		if r.Key == nil || *r.Key != "bad-key" {
			t.Errorf("dead-lettered key %v, want the original %q", r.Key, "bad-key")
		}
		reason, ok := r.header("shrike-reason")
		if !ok || !strings.Contains(reason, "JSON") {
			t.Errorf("dead-lettered record's shrike-reason header = %q (present: %v), want the decoding error", reason, ok)
		}
	}
	ms := s.metrics(t)
	if n := metricSum(ms, "shrike_engine_deadlettered_events_total"); n != partitions {
		t.Errorf("shrike_engine_deadlettered_events_total = %v, want %d", n, partitions)
	}
	s.exitedCleanly(t)
}

// alertsAfter reports whether some alert (canonical JSON) ends at or after
// the event time of event.
func alertsAfter(t *testing.T, alerts []string, event string) bool {
	t.Helper()
	var ev struct{ TS time.Time }
	if err := json.Unmarshal([]byte(event), &ev); err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		var al struct{ End time.Time }
		if err := json.Unmarshal([]byte(a), &al); err != nil {
			t.Fatal(err)
		}
		if !al.End.Before(ev.TS) {
			return true
		}
	}
	return false
}
