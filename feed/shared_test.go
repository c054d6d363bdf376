package feed

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shrike-cep/shrike/internal/testkit"
)

// countingCluster starts kfake with the alerts topic and counts the
// connections clients open to it: every franz-go connection begins with
// an ApiVersions request.
func countingCluster(t *testing.T) ([]string, *atomic.Int64) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, feedTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var conns atomic.Int64
	c.ControlKey(int16(kmsg.ApiVersions), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		conns.Add(1)
		return nil, nil, false
	})
	return c.ListenAddrs(), &conns
}

// TestAlertFeedReplayersShareOneClient: many subscribers resuming from a
// position older than the ring at once do not open a Kafka client each;
// their reads go through the feed's one replay client, and each still
// gets every alert once, in order per partition.
func TestAlertFeedReplayersShareOneClient(t *testing.T) {
	brokers, conns := countingCluster(t)
	p := newFeedProducer(t, brokers)
	const alerts, subscribers = 240, 40
	p.produce(0, alerts)
	f := startFeed(t, AlertFeedOptions{Brokers: brokers, Recent: 30})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The feed is up once Recent lists the last alert of each partition.
	waitRecent(t, f, wantIDs(alerts-testPartitions, alerts))
	before := conns.Load()

	chans := make([]<-chan Alert, subscribers)
	for i := range chans {
		ch, err := f.Subscribe(ctx, "0:0,1:0,2:0")
		if err != nil {
			t.Fatal(err)
		}
		chans[i] = ch
	}
	var wg sync.WaitGroup
	tctx, tcancel := context.WithTimeout(ctx, feedWait)
	defer tcancel()
	got := make([][]Alert, subscribers)
	for i, ch := range chans {
		wg.Go(func() { got[i] = receiveQuiet(ch, alerts, tctx.Done()) })
	}
	wg.Wait()
	want := byPartition(wantIDs(0, alerts))
	for i := range got {
		if diff := cmp.Diff(want, byPartition(ids(got[i]))); diff != "" {
			t.Fatalf("subscriber %d (-want +got):\n%s", i, diff)
		}
	}
	// The replay client's connections: one to the seed, one to the
	// broker, however many subscribers replay.
	if opened := conns.Load() - before; opened > 4 {
		t.Errorf("%d replaying subscribers opened %d Kafka connections, want a shared client (at most 4)", subscribers, opened)
	}
}

// TestAlertFeedBurstDoesNotCutOff: a subscriber that reads as fast as it
// can gets every alert of a burst far larger than its channel.
func TestAlertFeedBurstDoesNotCutOff(t *testing.T) {
	brokers := feedCluster(t)
	f := startFeed(t, AlertFeedOptions{Brokers: brokers})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := f.Subscribe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	const burst = 5000
	produceBurst(t, brokers, burst)
	got := receive(t, ch, burst)
	if diff := cmp.Diff(byPartition(wantIDs(0, burst)), byPartition(ids(got))); diff != "" {
		t.Errorf("burst (-want +got):\n%s", diff)
	}
}

// produceBurst writes alerts 0..n-1 in as few requests as the producer
// makes, so that the feed fetches them in large batches.
func produceBurst(t *testing.T, brokers []string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0), kgo.MaxBufferedRecords(n+1))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: feedTopic, Partition: int32(i % testPartitions), Value: feedAlertJSON(t, i)}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// waitRecent waits until Recent lists the alerts want.
func waitRecent(t *testing.T, f *AlertFeed, want []string) {
	t.Helper()
	testkit.WaitFor(t, feedWait, fmt.Sprintf("alerts %v in Recent", want), func() bool {
		fas, _, err := f.Recent(DefaultRecentAlerts, "", nil)
		if err != nil {
			return false
		}
		listed := make(map[string]bool, len(fas))
		for _, fa := range fas {
			listed[fa.Alert.ID] = true
		}
		for _, id := range want {
			if !listed[id] {
				return false
			}
		}
		return true
	})
}

// receiveQuiet reads n alerts from ch, or what came before it ended or
// stalled: the caller compares.
func receiveQuiet(ch <-chan Alert, n int, timeout <-chan struct{}) []Alert {
	var got []Alert
	for len(got) < n {
		select {
		case fa, ok := <-ch:
			if !ok || fa.Err != nil {
				return got
			}
			got = append(got, fa)
		case <-timeout:
			return got
		}
	}
	return got
}
