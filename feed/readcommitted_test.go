package feed

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// txnLog writes alerts in Kafka transactions, as the engine's
// exactly-once mode does, and keeps what it wrote, so that a test can
// work out what a reader of either isolation level sees.
type txnLog struct {
	t *testing.T
	// recs are the alerts written, by partition in offset order.
	recs map[int][]txnRec
	// outcome is each transaction's end: "commit", "abort", or "" while
	// it is open.
	outcome map[string]string
}

type txnRec struct {
	id  string
	txn string
}

// txnProducer is a transactional producer writing to chosen partitions.
func txnProducer(t *testing.T, brokers []string, txnID string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionalID(txnID))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// write begins the transaction txn on cl and writes alerts ns in it,
// alert n to partition n%3, waiting for the acknowledgements; the
// transaction stays open.
func (l *txnLog) write(cl *kgo.Client, txn string, ns ...int) {
	l.t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		l.t.Fatalf("begin %s: %v", txn, err)
	}
	l.outcome[txn] = ""
	for _, n := range ns {
		r := &kgo.Record{Topic: feedTopic, Partition: int32(n % testPartitions), Value: feedAlertJSON(l.t, n)}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			l.t.Fatalf("produce in %s: %v", txn, err)
		}
		l.recs[n%testPartitions] = append(l.recs[n%testPartitions], txnRec{fmt.Sprintf("alert-%03d", n), txn})
	}
}

// end commits or aborts the open transaction txn of cl.
func (l *txnLog) end(cl *kgo.Client, txn string, commit bool) {
	l.t.Helper()
	how, outcome := kgo.TryAbort, "abort"
	if commit {
		how, outcome = kgo.TryCommit, "commit"
	}
	if err := cl.EndTransaction(context.Background(), how); err != nil {
		l.t.Fatalf("end %s: %v", txn, err)
	}
	l.outcome[txn] = outcome
}

// visible is what a reader sees of the log, by partition in order: a
// read_uncommitted one every alert; a read_committed one the committed
// alerts below the first record of an open transaction.
func (l *txnLog) visible(committed bool) map[int][]string {
	out := make(map[int][]string)
	for p, recs := range l.recs {
		for _, r := range recs {
			if !committed {
				out[p] = append(out[p], r.id)
				continue
			}
			if l.outcome[r.txn] == "" {
				break
			}
			if l.outcome[r.txn] == "commit" {
				out[p] = append(out[p], r.id)
			}
		}
	}
	return out
}

func count(m map[int][]string) int {
	n := 0
	for _, ids := range m {
		n += len(ids)
	}
	return n
}

// TestAlertFeedReadCommitted: alerts written in a transaction that
// aborts, written again in one that commits, then alerts behind a
// transaction still open. With ReadCommitted a live subscriber, a
// subscriber reading back from the topic's start through the replay
// reader, and Recent see each committed alert once and no aborted one,
// and go on past the open transaction once it ends; without it they see
// the aborted copies too.
func TestAlertFeedReadCommitted(t *testing.T) {
	for _, committed := range []bool{true, false} {
		t.Run(fmt.Sprintf("ReadCommitted=%v", committed), func(t *testing.T) {
			brokers := feedCluster(t)
			log := &txnLog{t: t, recs: make(map[int][]txnRec), outcome: make(map[string]string)}
			a := txnProducer(t, brokers, "engine-a")
			b := txnProducer(t, brokers, "engine-b")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()

			big := startFeed(t, AlertFeedOptions{Brokers: brokers, ReadCommitted: committed})
			live, err := big.Subscribe(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			log.write(a, "a1", 0, 1, 2, 3, 4, 5)
			log.end(a, "a1", false)
			log.write(a, "a2", 0, 1, 2, 3, 4, 5)
			log.end(a, "a2", true)
			log.write(b, "b1", 100, 101, 102)
			log.write(a, "a3", 6, 7, 8)
			log.end(a, "a3", true)

			// A feed whose ring holds at most one alert per partition:
			// a subscriber from the start reads back from Kafka.
			small := startFeed(t, AlertFeedOptions{Brokers: brokers, Recent: testPartitions, ReadCommitted: committed})
			replayed, err := small.Subscribe(ctx, "0:0,1:0,2:0")
			if err != nil {
				t.Fatal(err)
			}

			subs := []struct {
				name string
				ch   <-chan Alert
				got  []Alert
			}{{"live", live, nil}, {"replayed", replayed, nil}}
			want := log.visible(committed)
			for i := range subs {
				subs[i].got = receive(t, subs[i].ch, count(want))
				if diff := cmp.Diff(want, byPartition(ids(subs[i].got))); diff != "" {
					t.Errorf("%s subscriber while b1 is open (-want +got):\n%s", subs[i].name, diff)
				}
			}

			// A cursor at the high watermark, past the open transaction
			// (as a feed reading uncommitted alerts makes), is a
			// position ahead, not an invalid cursor.
			ends, err := kadm.NewClient(a).ListEndOffsets(ctx, feedTopic)
			if err != nil {
				t.Fatal(err)
			}
			hwm := make(map[int32]int64)
			ends.Each(func(o kadm.ListedOffset) { hwm[o.Partition] = o.Offset })
			if _, err := big.Subscribe(ctx, encodeCursor(hwm)); err != nil {
				t.Errorf("Subscribe at the high watermark %v: %v", hwm, err)
			}

			log.end(b, "b1", false)
			want = log.visible(committed)
			for i := range subs {
				subs[i].got = append(subs[i].got, receive(t, subs[i].ch, count(want)-len(subs[i].got))...)
				if diff := cmp.Diff(want, byPartition(ids(subs[i].got))); diff != "" {
					t.Errorf("%s subscriber after b1 ended (-want +got):\n%s", subs[i].name, diff)
				}
			}
			fas, _, err := big.Recent(DefaultRecentAlerts, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, byPartition(reversed(ids(fas)))); diff != "" {
				t.Errorf("Recent (-want +got):\n%s", diff)
			}
			if !committed {
				return
			}
			// The small feed started reading below the open transaction
			// (its last stable offset), not one record before the end:
			// its ring holds the newest committed alert of each
			// partition, which the replayed subscriber got from it.
			newest := make(map[int][]string)
			for p, l := range want {
				newest[p] = l[len(l)-1:]
			}
			fas, _, err = small.Recent(DefaultRecentAlerts, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(newest, byPartition(ids(fas))); diff != "" {
				t.Errorf("Recent of the feed with a small ring (-want +got):\n%s", diff)
			}
		})
	}
}
