package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The service tests run against kfake with an alerts topic of three
// partitions, written by a producer of their own as the engine would, and
// receivers on loopback.

const (
	testAlerts     = "alerts"
	testUndeliv    = "undelivered"
	testPartitions = 3
)

func testCluster(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, testAlerts, testUndeliv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func testClient(t *testing.T, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func alertJSON(n int) []byte {
	sev := []string{"low", "high", "critical"}[n%3]
	return fmt.Appendf(nil, `{"id":"alert-%03d","ruleset":"payments","rule":"big","rule_version":"v1","severity":%q,`+
		`"key":"acct-%d","summary":"alert %d","labels":{},"start":"2026-11-20T10:00:00Z","end":"2026-11-20T10:00:00Z",`+
		`"detected_at":"2026-11-20T10:00:01Z","timeout":false,"events":{"event":[{"n":%d}]}}`, n, sev, n%4, n, n)
}

// produceAlerts writes alerts from..to-1, keyed by id, as the engine does.
func produceAlerts(t *testing.T, cl *kgo.Client, from, to int) {
	t.Helper()
	var rs []*kgo.Record
	for n := from; n < to; n++ {
		rs = append(rs, &kgo.Record{Topic: testAlerts, Key: fmt.Appendf(nil, "alert-%03d", n), Value: alertJSON(n)})
	}
	if err := cl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// ids is a set of alert ids received, with how often each came.
type ids struct {
	mu sync.Mutex
	m  map[string]int
}

func (s *ids) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]int{}
	}
	s.m[id]++
}

func (s *ids) sorted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id := range s.m {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func wantIDs(ns ...int) []string {
	var out []string
	for _, n := range ns {
		out = append(out, fmt.Sprintf("alert-%03d", n))
	}
	slices.Sort(out)
	return out
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runService runs a Service until the returned stop is called.
func runService(t *testing.T, o Options) (*Service, func()) {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		s.Close()
	}
	t.Cleanup(stop)
	return s, stop
}

func groupCommitted(t *testing.T, adm *kadm.Client, group string) map[int32]int64 {
	t.Helper()
	offs, err := adm.FetchOffsets(context.Background(), group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == testAlerts && o.Err == nil {
			out[o.Partition] = o.At
		}
	})
	return out
}

func endOffsets(t *testing.T, adm *kadm.Client) map[int32]int64 {
	t.Helper()
	l, err := adm.ListEndOffsets(context.Background(), testAlerts)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	l.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

func TestServiceDeliversFilteredRetriedAndDeadLetters(t *testing.T) {
	brokers := testCluster(t)
	prod := testClient(t, brokers, kgo.DefaultProduceTopic(testAlerts))
	adm := kadm.NewClient(testClient(t, brokers))
	secret := []byte("k3y-0123456789abcdef")

	// Alerts written before the webhooks first run are history: a new
	// webhook starts at the end of the topic.
	produceAlerts(t, prod, 0, 5)

	var got ids
	var mu sync.Mutex
	attempts := map[string]int{}
	var badSig []string
	ok := startReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		rr := receivedRequestOf(r)
		err := Verify(secret, r.Header.Get(HeaderSignature), rr)
		if err == nil {
			err = VerifyTimestamped(secret, r.Header.Get(HeaderTimestampedSignature), r.Header.Get(HeaderTimestamp), rr, time.Now(), time.Minute)
		}
		if err != nil {
			mu.Lock()
			badSig = append(badSig, err.Error())
			mu.Unlock()
		}
		id := r.Header.Get(HeaderAlertID)
		mu.Lock()
		attempts[id]++
		n := attempts[id]
		mu.Unlock()
		// Every alert fails its first attempt.
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if !strings.Contains(string(rr), `"id":"`+id+`"`) {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		got.add(id)
	})
	// The second webhook's receiver is down for good.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String() + "/hook"
	_ = ln.Close()

	reg := prometheus.NewRegistry()
	opts := Options{
		Brokers: brokers, AlertsTopic: testAlerts, UndeliveredTopic: testUndeliv, Group: "g",
		CommitInterval: 50 * time.Millisecond, Registerer: reg,
		Webhooks: []Webhook{
			{
				Name: "soc", URL: ok.URL + "/hook", Secret: secret, Filter: `alert.severity in ["high", "critical"]`,
				Backoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxInFlight: 4,
			},
			{
				Name: "down", URL: down, Secret: secret, MaxAttempts: 2,
				Backoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
			},
		},
	}
	_, stop := runService(t, opts)
	// Every series exists at 0 before the first delivery.
	for _, name := range []string{"soc", "down"} {
		if n := seriesCount(t, reg, "shrike_webhook_deliveries_total"); n != 4 {
			t.Errorf("%d series of shrike_webhook_deliveries_total at start, want 4", n)
		}
		if v := metricValue(t, reg, "shrike_webhook_retries_total", map[string]string{"webhook": name}); v != 0 {
			t.Errorf("retries of %s at start = %v", name, v)
		}
	}
	// An empty partition may have no start committed: it starts at its
	// beginning, which is its end.
	waitUntil(t, "both groups to start at the end of the topic", func() bool {
		return len(groupCommitted(t, adm, GroupName("g", "soc"))) > 0 && len(groupCommitted(t, adm, GroupName("g", "down"))) > 0
	})
	produceAlerts(t, prod, 5, 35)

	var wantSoc []int
	for n := 5; n < 35; n++ {
		if n%3 != 0 { // high and critical
			wantSoc = append(wantSoc, n)
		}
	}
	waitUntil(t, "soc to get every high and critical alert", func() bool { return len(got.sorted()) == len(wantSoc) })
	if d := slices.Compare(got.sorted(), wantIDs(wantSoc...)); d != 0 {
		t.Errorf("soc got %v, want %v", got.sorted(), wantIDs(wantSoc...))
	}
	mu.Lock()
	if len(badSig) > 0 {
		t.Errorf("bad signatures: %v", badSig)
	}
	mu.Unlock()

	// Every alert of the down webhook lands in the undelivered topic.
	consumer := testClient(t, brokers, kgo.ConsumeTopics(testUndeliv), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var dead []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(dead) < 30 && ctx.Err() == nil {
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) { dead = append(dead, r) })
	}
	if len(dead) != 30 {
		t.Fatalf("%d records in the undelivered topic, want 30", len(dead))
	}
	for _, r := range dead {
		h := map[string]string{}
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		if h[UndeliveredWebhook] != "down" || h[UndeliveredAttempts] != "2" ||
			!strings.Contains(h[UndeliveredReason], "POST http://"+ln.Addr().String()) ||
			!strings.HasPrefix(h[UndeliveredSource], testAlerts+"/") {
			t.Errorf("undelivered record headers %v", h)
		}
		if !strings.Contains(string(r.Value), `"id":"`+string(r.Key)+`"`) {
			t.Errorf("undelivered record %s holds %s, not its alert", r.Key, r.Value)
		}
	}

	// Offsets are committed after the last alert's delivery ended.
	ends := endOffsets(t, adm)
	for _, group := range []string{GroupName("g", "soc"), GroupName("g", "down")} {
		waitUntil(t, group+" to commit the end of every partition", func() bool {
			c := groupCommitted(t, adm, group)
			for p, end := range ends {
				if c[p] != end {
					return false
				}
			}
			return true
		})
	}
	if v := metricValue(t, reg, "shrike_webhook_deliveries_total", map[string]string{"webhook": "soc", "result": "delivered"}); v != float64(len(wantSoc)) {
		t.Errorf("soc delivered = %v, want %d", v, len(wantSoc))
	}
	if v := metricValue(t, reg, "shrike_webhook_retries_total", map[string]string{"webhook": "soc"}); v != float64(len(wantSoc)) {
		t.Errorf("soc retries = %v, want %d (one per alert)", v, len(wantSoc))
	}
	if v := metricValue(t, reg, "shrike_webhook_deliveries_total", map[string]string{"webhook": "down", "result": "failed"}); v != 30 {
		t.Errorf("down failed = %v, want 30", v)
	}
	stop()

	// A restart resumes after what was delivered: nothing comes again.
	before := ok.count.Load()
	opts.Registerer = nil
	_, stop2 := runService(t, opts)
	produceAlerts(t, prod, 35, 37) // 35 and 36: critical, low
	waitUntil(t, "the new alert after the restart", func() bool { return len(got.sorted()) == len(wantSoc)+1 })
	stop2()
	got.mu.Lock()
	defer got.mu.Unlock()
	for id, n := range got.m {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	if extra := ok.count.Load() - before; extra != 2 { // alert 35, failing once
		t.Errorf("%d requests after the restart, want 2", extra)
	}
}

func receivedRequestOf(r *http.Request) []byte {
	b := make([]byte, 0, 1024)
	buf := make([]byte, 512)
	for {
		n, err := r.Body.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			return b
		}
	}
}

// metricValue is the value of the counter series name{labels} in reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// seriesCount is how many series of name reg has.
func seriesCount(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// TestServiceCommitsInOrder: while the first alert of a partition is held
// by its receiver, the alerts after it are delivered but the partition's
// commit offset stays before it; once it is delivered, the commit moves
// to the partition's end.
func TestServiceCommitsInOrder(t *testing.T) {
	brokers := testCluster(t)
	prod := testClient(t, brokers, kgo.DefaultProduceTopic(testAlerts), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(testClient(t, brokers))
	hold := make(chan struct{})
	rc := startReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		if r.Header.Get(HeaderAlertID) == "alert-000" {
			<-hold
		}
	})
	reg := prometheus.NewRegistry()
	s, _ := runService(t, Options{
		Brokers: brokers, AlertsTopic: testAlerts, UndeliveredTopic: testUndeliv, Group: "g",
		CommitInterval: 20 * time.Millisecond, Registerer: reg,
		Webhooks: []Webhook{{Name: "soc", URL: rc.URL, Secret: []byte("k3y-0123456789abcdef"), Timeout: time.Minute, MaxInFlight: 4}},
	})
	defer close(hold)
	waitUntil(t, "the group to start", func() bool { return len(groupCommitted(t, adm, GroupName("g", "soc"))) > 0 })
	var rs []*kgo.Record
	for n := range 20 {
		rs = append(rs, &kgo.Record{Partition: 0, Key: fmt.Appendf(nil, "alert-%03d", n), Value: alertJSON(n)})
	}
	if err := prod.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	first := rs[0].Offset
	delivered := func() float64 {
		return metricValue(t, reg, "shrike_webhook_deliveries_total", map[string]string{"webhook": "soc", "result": "delivered"})
	}
	waitUntil(t, "the 19 alerts after the held one", func() bool { return delivered() == 19 })
	r := s.hooks[0]
	r.mu.Lock()
	p := r.parts[topicPartition{testAlerts, 0}]
	if p == nil || (p.dirty && p.commit.Offset > first) || len(p.pending) != 20 {
		t.Errorf("with the first alert held: partition %+v, want no commit past offset %d and 20 records queued", p, first)
	}
	r.mu.Unlock()
	if c := groupCommitted(t, adm, GroupName("g", "soc")); c[0] > first {
		t.Errorf("committed offset %d past the held alert at %d", c[0], first)
	}
	hold <- struct{}{}
	waitUntil(t, "the held alert", func() bool { return delivered() == 20 })
	waitUntil(t, "the commit of the whole partition", func() bool {
		return groupCommitted(t, adm, GroupName("g", "soc"))[0] == rs[19].Offset+1
	})
	r.mu.Lock()
	if r.pending != 0 {
		t.Errorf("%d records still queued", r.pending)
	}
	r.mu.Unlock()
}

// BenchmarkServiceDelivery measures deliveries per second to a loopback
// receiver that answers at once, through kfake: the cost of the consumer,
// the signing and the HTTP round trip, at the default max_in_flight.
func BenchmarkServiceDelivery(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, testAlerts, testUndeliv))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got.Add(1)
	}))
	defer srv.Close()
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(testAlerts))
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	s, err := New(Options{
		Brokers: brokers, AlertsTopic: testAlerts, UndeliveredTopic: testUndeliv, Group: "bench",
		Webhooks: []Webhook{{Name: "bench", URL: srv.URL, Secret: []byte("k3y-0123456789abcdef")}},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	adm := kadm.NewClient(prod)
	for {
		offs, err := adm.FetchOffsets(ctx, GroupName("bench", "bench"))
		if err == nil && len(offs) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	rs := make([]*kgo.Record, b.N)
	for n := range rs {
		rs[n] = &kgo.Record{Key: fmt.Appendf(nil, "alert-%03d", n), Value: alertJSON(n)}
	}
	b.ResetTimer()
	if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	for got.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "alerts/s")
}

// TestServiceRebalance: a second instance joins a webhook's group while
// alerts are being delivered, then the first leaves; every alert is
// delivered, duplicates with their ids.
func TestServiceRebalance(t *testing.T) {
	brokers := testCluster(t)
	prod := testClient(t, brokers, kgo.DefaultProduceTopic(testAlerts))
	adm := kadm.NewClient(testClient(t, brokers))
	var got ids
	rc := startReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		got.add(r.Header.Get(HeaderAlertID))
	})
	opts := Options{
		Brokers: brokers, AlertsTopic: testAlerts, UndeliveredTopic: testUndeliv, Group: "g",
		CommitInterval: 20 * time.Millisecond,
		Webhooks:       []Webhook{{Name: "soc", URL: rc.URL, Secret: []byte("k3y-0123456789abcdef"), MaxInFlight: 2}},
	}
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	opts.Registerer = regA
	_, stopA := runService(t, opts)
	waitUntil(t, "the group to start", func() bool { return len(groupCommitted(t, adm, GroupName("g", "soc"))) > 0 })
	const n = 600
	produceAlerts(t, prod, 0, n)
	waitUntil(t, "instance A to deliver some", func() bool { return len(got.sorted()) >= 50 })
	opts.Registerer = regB
	runService(t, opts)
	waitUntil(t, "more deliveries after B joined", func() bool { return len(got.sorted()) >= 250 })
	stopA()
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	waitUntil(t, "every alert", func() bool { return len(got.sorted()) == n })
	if d := slices.Compare(got.sorted(), wantIDs(all...)); d != 0 {
		t.Errorf("delivered %v", got.sorted())
	}
	delivered := func(reg *prometheus.Registry) float64 {
		return metricValue(t, reg, "shrike_webhook_deliveries_total", map[string]string{"webhook": "soc", "result": "delivered"})
	}
	// An alert A was posting when it stopped reached the receiver but is
	// not counted by A, whose delivery ended unanswered; B delivers it
	// again, and counts it, a moment after the receiver has every id.
	waitUntil(t, "the two instances' counters to reach every alert", func() bool {
		return delivered(regA)+delivered(regB) >= n
	})
	a, b := delivered(regA), delivered(regB)
	if a == 0 || b == 0 {
		t.Errorf("instance A delivered %v, B %v, of %d alerts: want both some", a, b, n)
	}
	t.Logf("A delivered %v, B %v, of %d alerts", a, b, n)
}
