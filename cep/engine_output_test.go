package cep

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// produceRecords writes records in order and waits for them.
func produceRecords(t *testing.T, brokers []string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func endOf(t *testing.T, brokers []string, topic string) produced {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	prod := produced{end: map[int32]int64{}}
	for p, o := range endOffsets(t, cl, topic) {
		if o > 0 {
			prod.end[p] = o
		}
	}
	return prod
}

// TestEngineDeadLettersAndLate feeds a partition records it cannot use
// between good ones: each goes to the dead-letter topic with its key,
// value and headers and a reason header, a late one to the late topic, and
// the partition keeps matching.
func TestEngineDeadLettersAndLate(t *testing.T) {
	brokers := cluster(t, "payments")
	rs := loadPayments(t)
	clock := newFakeClock()
	log := newAlertLog()
	reg := prometheus.NewRegistry()
	e := start(t, EngineOptions{
		Brokers: brokers, Rulesets: []*rules.Compiled{rs}, Store: state.NewMemory(),
		Clock: clock.Now, OnAlert: log.add, Registerer: reg,
	})
	testkit.WaitFor(t, 0, "the engine to be ready", e.Ready)

	rec := func(value string, headers ...kgo.RecordHeader) *kgo.Record {
		r := &kgo.Record{Topic: "payments", Key: []byte("acct-1"), Headers: headers}
		if value != "" {
			r.Value = []byte(value)
		}
		return r
	}
	transfer := func(at time.Duration, amount float64) string {
		return fmt.Sprintf(`{"type":"transfer","account_id":"acct-1","amount":%.1f,"currency":"EUR","country":"KP","ts":%q}`, amount, ts(at))
	}
	trace := kgo.RecordHeader{Key: "trace", Value: []byte("t-1")}
	produceRecords(t, brokers,
		rec(`{"type":"transfer",`, trace),
		rec(`{"type":"login","ts":"`+ts(0)+`"}`),
		rec(`{"type":"login","account_id":"acct-1"}`),
		rec(""), // a tombstone
		rec(transfer(0, 20000)),
		rec(transfer(10*time.Second, 5)),
		// Values no alert could carry to the API: a match otherwise.
		rec(strings.Replace(transfer(12*time.Second, 0), "0.0", "1e999", 1)),
		rec(strings.Replace(transfer(15*time.Second, 40000), `"EUR"`, "\"E\xffR\"", 1)),
		rec(transfer(-time.Minute, 30000), trace), // behind the watermark
		rec(transfer(20*time.Second, 25000)),
		rec(transfer(30*time.Second, 5)),
	)
	prod := endOf(t, brokers, "payments")
	testkit.WaitFor(t, 0, "every record to be processed", func() bool { return consumed(prod, e) })
	testkit.WaitFor(t, 0, "two alerts", func() bool { return log.count() >= 2 })
	e.stop(t)

	log.mu.Lock()
	var alerts []string
	for c := range log.ids {
		alerts = append(alerts, c[:strings.Index(c, " timeout")])
	}
	log.mu.Unlock()
	sort.Strings(alerts)
	if diff := cmp.Diff([]string{"payments/big-foreign-transfer key=acct-1", "payments/big-foreign-transfer key=acct-1"}, alerts); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}

	type out struct {
		Key, Value string
		Headers    []string
	}
	read := func(topic string) []out {
		var got []out
		for _, r := range readTopic(t, brokers, topic) {
			o := out{Key: string(r.Key), Value: string(r.Value)}
			for _, h := range r.Headers {
				v := string(h.Value)
				if h.Key == ReasonHeader {
					v, _, _ = strings.Cut(v, ":") // the reason's kind; details vary
				}
				o.Headers = append(o.Headers, h.Key+"="+v)
			}
			got = append(got, o)
		}
		return got
	}
	wantDead := []out{
		{"acct-1", `{"type":"transfer",`, []string{"trace=t-1", "shrike-reason=invalid event"}},
		{"acct-1", `{"type":"login","ts":"` + ts(0) + `"}`, []string{"shrike-reason=no key"}},
		{"acct-1", `{"type":"login","account_id":"acct-1"}`, []string{"shrike-reason=no event time"}},
		{"acct-1", "", []string{"shrike-reason=kafka record has a null payload (tombstone)"}},
		{"acct-1", strings.Replace(transfer(12*time.Second, 0), "0.0", "1e999", 1), []string{"shrike-reason=invalid event"}},
		{"acct-1", strings.Replace(transfer(15*time.Second, 40000), `"EUR"`, "\"E\xffR\"", 1), []string{"shrike-reason=invalid event"}},
	}
	if diff := cmp.Diff(wantDead, read(DefaultDeadLetterTopic)); diff != "" {
		t.Errorf("dead letters (-want +got):\n%s", diff)
	}
	var reasons []string
	for _, r := range readTopic(t, brokers, DefaultDeadLetterTopic)[4:] {
		for _, h := range r.Headers {
			if h.Key == ReasonHeader {
				reasons = append(reasons, string(h.Value))
			}
		}
	}
	wantReasons := []string{
		`invalid event: field "amount": number 1e999 out of range at byte 50: value cannot be represented`,
		`invalid event: invalid UTF-8 at byte 71: value cannot be represented`,
	}
	if diff := cmp.Diff(wantReasons, reasons); diff != "" {
		t.Errorf("reasons of the unrepresentable events (-want +got):\n%s", diff)
	}
	wantLate := []out{{"acct-1", transfer(-time.Minute, 30000), []string{"trace=t-1", "shrike-reason=late"}}}
	if diff := cmp.Diff(wantLate, read(DefaultLateTopic)); diff != "" {
		t.Errorf("late records (-want +got):\n%s", diff)
	}

	text := testkit.MetricsText(t, reg)
	for _, m := range []string{
		`shrike_engine_deadlettered_events_total{reason="invalid_event",topic="payments"} 3`,
		`shrike_engine_deadlettered_events_total{reason="no_key",topic="payments"} 1`,
		`shrike_engine_deadlettered_events_total{reason="no_time",topic="payments"} 1`,
		`shrike_engine_deadlettered_events_total{reason="tombstone",topic="payments"} 1`,
		`shrike_engine_late_events_total{topic="payments"} 1`,
		`shrike_engine_alerts_total{rule="big-foreign-transfer",ruleset="payments",shadow="false"} 2`,
	} {
		if !strings.Contains(text, m+"\n") {
			t.Errorf("metrics lack %s", m)
		}
	}
}

// TestEngineIdleStreamFiresAbsence sends one password reset and nothing
// after: the absence alert fires once the partition has been quiet for
// the stream's idle_timeout and its watermark follows the wall clock past
// the window.
func TestEngineIdleStreamFiresAbsence(t *testing.T) {
	brokers := cluster(t, "payments")
	rs := loadPayments(t)
	clock := newFakeClock()
	log := newAlertLog()
	var got []*matcher.Alert
	e := start(t, EngineOptions{
		Brokers: brokers, Rulesets: []*rules.Compiled{rs}, Store: state.NewMemory(), Clock: clock.Now,
		OnAlert: func(a *matcher.Alert) { log.add(a); got = append(got, a) },
	})
	testkit.WaitFor(t, 0, "the engine to be ready", e.Ready)
	// The fake clock stands a day after the event: only idleness holds
	// the watermark back.
	produceRecords(t, brokers, &kgo.Record{
		Topic: "payments", Key: []byte("acct-9"),
		Value: []byte(`{"type":"password_reset","account_id":"acct-9","ts":"` + ts(0) + `"}`),
	})
	prod := endOf(t, brokers, "payments")
	testkit.WaitFor(t, 0, "the reset to be processed and checkpointed", func() bool { return consumed(prod, e) && checkpointed(e) })
	if n := log.count(); n != 0 {
		t.Fatalf("%d alerts before the stream went idle", n)
	}
	clock.Advance(rs.Stream.IdleTimeout)
	testkit.WaitFor(t, 0, "the absence alert", func() bool { return log.count() > 0 })
	e.stop(t)
	if len(got) != 1 || got[0].Rule != "reset-without-2fa" || got[0].Key != "acct-9" {
		t.Errorf("alerts: %v", got)
	}
}

// paymentsWithoutIdleTimeout is the payments ruleset with no
// stream.idle_timeout, as a newcomer's first ruleset has none.
func paymentsWithoutIdleTimeout(t *testing.T) *rules.Compiled {
	t.Helper()
	src, err := os.ReadFile("../rulesets/payments.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text, n := regexp.MustCompile(`(?m)^  idle_timeout: .*\n`), 0
	src = text.ReplaceAllFunc(src, func([]byte) []byte { n++; return nil })
	if n != 1 {
		t.Fatalf("payments.yaml has %d idle_timeout lines, want 1", n)
	}
	rs, err := rules.Load("payments.yaml", src, rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rs.Stream.IdleTimeout != 0 {
		t.Fatalf("idle timeout %v left", rs.Stream.IdleTimeout)
	}
	return rs
}

// watermarkLag reads shrike_engine_watermark_lag_seconds of the one
// partition that has it, or -1.
func watermarkLag(t *testing.T, g prometheus.Gatherer) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^shrike_engine_watermark_lag_seconds\{[^}]*\} (\S+)$`).FindAllStringSubmatch(testkit.MetricsText(t, g), -1)
	if len(m) != 1 {
		return -1
	}
	v, err := strconv.ParseFloat(m[0][1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestEngineDefaultIdleTimeout runs a ruleset that sets no idle_timeout:
// the engine's default (30 s) applies, so the absence alert of a single
// password reset fires once the partition has been quiet that long, and
// the watermark lag metric follows the wall clock meanwhile instead of
// standing still. With the default switched off (negative), the
// partition waits for events however long it is quiet.
func TestEngineDefaultIdleTimeout(t *testing.T) {
	for _, tt := range []struct {
		name string
		idle time.Duration
		fire bool
	}{
		{name: "default", fire: true},
		{name: "never", idle: -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			brokers := cluster(t, "payments")
			rs := paymentsWithoutIdleTimeout(t)
			clock := newFakeClock()
			log := newAlertLog()
			reg := prometheus.NewRegistry()
			e := start(t, EngineOptions{
				Brokers: brokers, Rulesets: []*rules.Compiled{rs}, Store: state.NewMemory(), Clock: clock.Now,
				IdleTimeout: tt.idle, Registerer: reg, OnAlert: log.add,
			})
			testkit.WaitFor(t, 0, "the engine to be ready", e.Ready)
			produceRecords(t, brokers, &kgo.Record{
				Topic: "payments", Key: []byte("acct-9"),
				Value: []byte(`{"type":"password_reset","account_id":"acct-9","ts":"` + ts(0) + `"}`),
			})
			prod := endOf(t, brokers, "payments")
			testkit.WaitFor(t, 0, "the reset to be processed and checkpointed", func() bool { return consumed(prod, e) && checkpointed(e) })
			// The fake clock stands a day after the event, the watermark
			// 5 s (the out-of-orderness) before it.
			clock.Advance(10 * time.Second)
			var lag float64
			testkit.WaitFor(t, 0, "the lag gauge of the quiet partition to follow the clock", func() bool {
				lag = watermarkLag(t, reg)
				return lag >= clock.Now().Sub(t0).Seconds()-1
			})
			if n := log.count(); n != 0 {
				t.Fatalf("%d alerts before the stream went idle", n)
			}
			clock.Advance(time.Hour)
			if tt.fire {
				testkit.WaitFor(t, 0, "the absence alert", func() bool { return log.count() > 0 })
				// The watermark follows the wall clock, 5 s behind.
				testkit.WaitFor(t, 0, "the lag to drop to the out-of-orderness", func() bool { return watermarkLag(t, reg) == 5 })
			} else {
				// Once the gauge shows the advanced clock, the tick that
				// would have moved the watermark has run.
				testkit.WaitFor(t, 0, "the lag gauge to follow the clock", func() bool { return watermarkLag(t, reg) >= lag+3600 })
				if n := log.count(); n != 0 {
					t.Errorf("%d alerts with the idle timeout off", n)
				}
			}
		})
	}
}

// TestEngineFenced commits a newer owner's checkpoint behind the engine's
// back: the engine stops working on the partition, writes nothing over the
// newer owner's state, and reports itself not ready.
func TestEngineFenced(t *testing.T) {
	brokers := cluster(t, "payments")
	rs := loadPayments(t)
	store := state.NewMemory()
	e := start(t, EngineOptions{Brokers: brokers, Rulesets: []*rules.Compiled{rs}, Store: store, Clock: newFakeClock().Now})
	testkit.WaitFor(t, 0, "the engine to be ready", e.Ready)
	pid := state.PartitionID{Group: DefaultGroup, Topic: "payments"}
	theirs := state.Checkpoint{Offset: 0, Generation: 1000}
	// Find the partition acct-1 lands on, then let a newer owner claim it.
	produceRecords(t, brokers, &kgo.Record{
		Topic: "payments", Key: []byte("acct-1"),
		Value: []byte(`{"type":"login","account_id":"acct-1","success":true,"ts":"` + ts(0) + `"}`),
	})
	prod := endOf(t, brokers, "payments")
	for p := range prod.end {
		pid.Partition = p
	}
	testkit.WaitFor(t, 0, "the record to be processed and checkpointed", func() bool { return consumed(prod, e) && checkpointed(e) })
	if err := store.Commit(context.Background(), pid, nil, nil, theirs); err != nil {
		t.Fatal(err)
	}
	produceRecords(t, brokers, &kgo.Record{
		Topic: "payments", Key: []byte("acct-1"),
		Value: []byte(`{"type":"login","account_id":"acct-1","success":true,"ts":"` + ts(time.Second) + `"}`),
	})
	testkit.WaitFor(t, 0, "the partition to be reported fenced", func() bool {
		for _, p := range e.Status().Partitions {
			if p.Partition == pid.Partition && p.Fenced {
				return true
			}
		}
		return false
	})
	if e.Ready() {
		t.Error("ready with a fenced partition")
	}
	e.stop(t)
	cp, _, err := store.LoadCheckpoint(context.Background(), pid)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(theirs, cp); diff != "" {
		t.Errorf("the newer owner's checkpoint was overwritten (-want +got):\n%s", diff)
	}
}

// TestEngineShrinksOversizedAlert matches an event with a key of hundreds
// of KB: its alert (the key, a summary quoting it and the event) is larger
// than a record may be, by the producer's limit or by the alerts topic's
// max.message.bytes, so it is shrunk before it is produced and reaches the
// alerts topic with its id, its key cut with a marker and its event
// replaced by the event's position; nothing fails to produce. An alert of
// ordinary size beside it is produced as it is.
func TestEngineShrinksOversizedAlert(t *testing.T) {
	for _, tc := range []struct {
		name     string
		keyBytes int
		topicMax int // the alerts topic's max.message.bytes; 0: kfake's default
	}{
		{"producer limit", 500_000, 0},
		{"topic max.message.bytes", 300_000, 600_000},
	} {
		t.Run(tc.name, func(t *testing.T) { testShrinksOversizedAlert(t, tc.keyBytes, tc.topicMax) })
	}
}

func testShrinksOversizedAlert(t *testing.T, keyBytes, topicMax int) {
	brokers := cluster(t, "payments")
	createAlertsTopic(t, brokers, topicMax)
	rs := loadPayments(t)
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	byKey := map[string]*matcher.Alert{}
	e := start(t, EngineOptions{
		Brokers: brokers, Rulesets: []*rules.Compiled{rs}, Store: state.NewMemory(), Registerer: reg,
		OnAlert: func(a *matcher.Alert) {
			mu.Lock()
			byKey[a.Key] = a
			mu.Unlock()
		},
	})
	testkit.WaitFor(t, 0, "the engine to be ready", e.Ready)

	// Random letters: a key that compression cannot shrink meets the
	// brokers' limit, which applies to compressed batches.
	rnd := rand.New(rand.NewPCG(1, 2))
	letters := make([]byte, keyBytes)
	for i := range letters {
		letters[i] = 'a' + byte(rnd.IntN(26))
	}
	bigKey := "acct-" + string(letters)
	transfer := func(key string) *kgo.Record {
		return &kgo.Record{Topic: "payments", Key: []byte("k"), Value: []byte(
			`{"type":"transfer","account_id":"` + key + `","amount":20000.0,"currency":"EUR","country":"KP","ts":"` + ts(0) + `"}`)}
	}
	big, small := transfer(bigKey), transfer("acct-2")
	// A later event of the partition moves its watermark past the two.
	later := &kgo.Record{Topic: "payments", Key: []byte("k"), Value: []byte(
		`{"type":"login","account_id":"acct-3","ts":"` + ts(time.Minute) + `"}`)}
	produceRecords(t, brokers, big, small, later)
	testkit.WaitFor(t, 0, "two alerts on the alerts topic", func() bool {
		n := int64(0)
		for _, o := range endOf(t, brokers, DefaultAlertsTopic).end {
			n += o
		}
		return n >= 2
	})
	e.stop(t)

	mu.Lock()
	bigAlert, smallAlert := byKey[bigKey], byKey["acct-2"]
	mu.Unlock()
	if bigAlert == nil || smallAlert == nil {
		t.Fatalf("alerts by key: big %v, small %v", bigAlert != nil, smallAlert != nil)
	}
	type marker struct {
		Truncated bool   `json:"truncated"`
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Offset    int64  `json:"offset"`
		Bytes     int    `json:"bytes"`
	}
	type alert struct {
		ID        string              `json:"id"`
		Rule      string              `json:"rule"`
		Key       string              `json:"key"`
		Summary   string              `json:"summary"`
		Events    map[string][]marker `json:"events"`
		Truncated []string            `json:"truncated"`
	}
	got := map[string]string{}
	for _, r := range readTopic(t, brokers, DefaultAlertsTopic) {
		got[string(r.Key)] = string(r.Value)
	}
	if len(got) != 2 {
		t.Fatalf("alerts topic holds %d alerts, want 2", len(got))
	}
	if v := got[smallAlert.ID]; v != string(smallAlert.AppendJSON(nil)) {
		t.Errorf("ordinary alert on the topic:\n%s\nwant its full encoding", v)
	}
	v, ok := got[bigAlert.ID]
	if !ok {
		t.Fatalf("no alert with id %s on the alerts topic", bigAlert.ID)
	}
	if limit := e.alertLimit(context.Background(), e.cl); len(v) > limit {
		t.Errorf("shrunk alert takes %d bytes, more than the limit %d", len(v), limit)
	}
	var a alert
	if err := json.Unmarshal([]byte(v), &a); err != nil {
		t.Fatalf("shrunk alert: %v", err)
	}
	want := alert{
		ID: bigAlert.ID, Rule: "big-foreign-transfer",
		Key:     bigKey[:matcher.MaxShrunkText],
		Summary: bigAlert.Summary[:matcher.MaxShrunkText],
		Events: map[string][]marker{"event": {{
			Truncated: true, Topic: "payments", Partition: big.Partition, Offset: big.Offset, Bytes: len(big.Value),
		}}},
		Truncated: []string{"events", "key", "summary"},
	}
	if diff := cmp.Diff(want, a); diff != "" {
		t.Errorf("shrunk alert (-want +got):\n%s", diff)
	}

	text := testkit.MetricsText(t, reg)
	if !strings.Contains(text, "shrike_engine_shrunk_alerts_total 1\n") {
		t.Errorf("metrics lack shrike_engine_shrunk_alerts_total 1")
	}
	// The output topics' series start at 0: only a count over it is an
	// error counted.
	if regexp.MustCompile(`(?m)^shrike_engine_produce_errors_total\{[^}]*\} [1-9]`).MatchString(text) {
		t.Errorf("produce errors counted:\n%s", grepLines(text, "produce_errors"))
	}
}

// createAlertsTopic creates the alerts topic, with max.message.bytes set
// to topicMax unless it is 0.
func createAlertsTopic(t *testing.T, brokers []string, topicMax int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	configs := map[string]*string{}
	if topicMax > 0 {
		v := strconv.Itoa(topicMax)
		configs["max.message.bytes"] = &v
	}
	resp, err := kadm.NewClient(cl).CreateTopic(context.Background(), testPartitions, 1, configs, DefaultAlertsTopic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
}

// grepLines is the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for l := range strings.SplitSeq(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
