package feed

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// The feed tests run against kfake with an alerts topic of three
// partitions. Alerts are written to chosen partitions by a producer of
// their own, as the engine's sinks would write them; the assertions look
// at which alerts (by id) a subscriber or Recent gets, in which order per
// partition, and whether cursors resume without loss or repetition.

const (
	feedTopic      = "alerts"
	testPartitions = 3
)

// TestMain fails the package's tests if a goroutine outlives them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// feedCluster starts kfake with the alerts topic.
func feedCluster(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, feedTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// feedAlertJSON is the alert JSON the engine would write for alert n.
func feedAlertJSON(t testing.TB, n int) []byte {
	t.Helper()
	ev, err := rules.ParseEvent(fmt.Appendf(nil, `{"n":%d,"account_id":"acct-%d"}`, n, n%4))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 20, 10, 0, n, 0, time.UTC)
	a := &matcher.Alert{
		ID: fmt.Sprintf("alert-%03d", n), Ruleset: "payments", Rule: "big-transfer", RuleVersion: "v1",
		Severity: []rules.Severity{"low", "high", "critical"}[n%3], Key: fmt.Sprintf("acct-%d", n%4),
		Summary: fmt.Sprintf("alert %d", n), Start: at, End: at, DetectedAt: at,
		Steps: []matcher.StepRecords{{Step: "event", Records: []*matcher.Record{{Event: ev}}}},
	}
	return a.AppendJSON(nil)
}

// feedProducer writes alerts to chosen partitions.
type feedProducer struct {
	t  *testing.T
	cl *kgo.Client
}

func newFeedProducer(t *testing.T, brokers []string) *feedProducer {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &feedProducer{t: t, cl: cl}
}

// produce writes alerts from..to-1, alert n to partition n%3, and waits
// for the acknowledgements.
func (p *feedProducer) produce(from, to int) {
	p.t.Helper()
	for n := from; n < to; n++ {
		r := &kgo.Record{Topic: feedTopic, Partition: int32(n % testPartitions), Key: fmt.Appendf(nil, "alert-%03d", n), Value: feedAlertJSON(p.t, n)}
		if err := p.cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			p.t.Fatal(err)
		}
	}
}

// produceRaw writes one record of any value to partition 0.
func (p *feedProducer) produceRaw(value string) {
	p.t.Helper()
	r := &kgo.Record{Topic: feedTopic, Partition: 0, Value: []byte(value)}
	if err := p.cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		p.t.Fatal(err)
	}
}

// startFeed runs a feed until the test ends.
func startFeed(t *testing.T, opts AlertFeedOptions) *AlertFeed {
	t.Helper()
	opts.Topic = feedTopic
	f, err := NewAlertFeed(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return f
}

// feedWait bounds every wait of these tests: a failure guard, not a
// timing assertion.
const feedWait = 15 * time.Second

// receive reads n alerts from ch.
func receive(t *testing.T, ch <-chan Alert, n int) []Alert {
	t.Helper()
	var got []Alert
	timeout := time.After(feedWait)
	for len(got) < n {
		select {
		case fa, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %d of %d alerts", len(got), n)
			}
			if fa.Err != nil {
				t.Fatalf("subscription ended after %d of %d alerts: %v", len(got), n, fa.Err)
			}
			got = append(got, fa)
		case <-timeout:
			t.Fatalf("got %d of %d alerts", len(got), n)
		}
	}
	return got
}

// ids lists the alerts' ids.
func ids(fas []Alert) []string {
	out := make([]string, len(fas))
	for i, fa := range fas {
		out[i] = fa.Alert.ID
	}
	return out
}

// wantIDs names alerts from..to-1.
func wantIDs(from, to int) []string {
	var out []string
	for n := from; n < to; n++ {
		out = append(out, fmt.Sprintf("alert-%03d", n))
	}
	return out
}

// byPartition groups alert ids by the partition produce put them in,
// since order is kept within a partition only.
func byPartition(idList []string) map[int][]string {
	out := make(map[int][]string)
	for _, id := range idList {
		var n int
		if _, err := fmt.Sscanf(id, "alert-%d", &n); err != nil {
			panic(err)
		}
		out[n%testPartitions] = append(out[n%testPartitions], id)
	}
	return out
}

// filterIDs returns the alerts from..to-1 of the non-low alerts of list.
func filterIDs(list []string, from, to int) []string {
	var keep []string
	for _, id := range list {
		if mustNumID(id)%3 != 0 {
			keep = append(keep, id)
		}
	}
	return keep[from:min(to, len(keep))]
}

func mustNumID(id string) int {
	var n int
	if _, err := fmt.Sscanf(id, "alert-%d", &n); err != nil {
		panic(err)
	}
	return n
}

func sortedIDs(fas []Alert) []string {
	out := ids(fas)
	slices.Sort(out)
	return out
}

func reversed(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}
