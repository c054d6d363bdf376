package cep

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shrike-cep/shrike/state"
)

// fakeOracle answers committedTag with a fixed tag or error, and records
// what it was asked.
type fakeOracle struct {
	tag   string
	err   error
	asked []string
}

func (f *fakeOracle) committedTag(_ context.Context, topic string, partition int32) (string, error) {
	f.asked = append(f.asked, fmt.Sprintf("%s/%d", topic, partition))
	return f.tag, f.err
}

func TestTxnTag(t *testing.T) {
	if got, want := txnTag(3, 17), "shrike/1 g=3 s=17"; got != want {
		t.Errorf("txnTag(3, 17) = %q, want %q", got, want)
	}
	if txnTag(1, 12) == txnTag(11, 2) {
		t.Errorf("txnTag(1, 12) and txnTag(11, 2) are both %q", txnTag(1, 12))
	}
}

// TestResolvePending stages a checkpoint as owner A (generation 2 after a
// first owner), lets owner B claim the partition, and resolves the pending
// checkpoint as B (or, fenced, as A) with what Kafka is made to answer.
func TestResolvePending(t *testing.T) {
	pid := state.PartitionID{Group: "g", Topic: "payments", Partition: 3}
	committedKeys := map[string][]byte{"k1": []byte("old1"), "k2": []byte("old2")}
	stagedKeys := map[string][]byte{"k1": []byte("new1"), "k3": []byte("new3")} // k2 deleted

	// setup returns the store with owner A's pending checkpoint, A's and
	// B's generations, and the pending checkpoint.
	setup := func(t *testing.T, stage bool) (*state.Memory, int64, int64, state.Checkpoint) {
		t.Helper()
		ctx := context.Background()
		m := state.NewMemory()
		t.Cleanup(func() { _ = m.Close() })
		_, _, first, err := m.Claim(ctx, pid)
		if err != nil {
			t.Fatal(err)
		}
		first.Offset, first.Streams = 40, []byte("streams@40")
		if err := m.Commit(ctx, pid, []state.KeyState{{Key: "k1", State: []byte("old1")}, {Key: "k2", State: []byte("old2")}}, nil, first); err != nil {
			t.Fatal(err)
		}
		_, _, a, err := m.Claim(ctx, pid)
		if err != nil {
			t.Fatal(err)
		}
		pend := state.Checkpoint{Offset: 90, Generation: a.Generation, Seq: a.Seq + 1, Streams: []byte("streams@90")}
		if stage {
			put := []state.KeyState{{Key: "k1", State: []byte("new1")}, {Key: "k3", State: []byte("new3")}}
			if err := m.Stage(ctx, pid, put, []string{"k2"}, pend); err != nil {
				t.Fatal(err)
			}
		}
		_, _, b, err := m.Claim(ctx, pid)
		if err != nil {
			t.Fatal(err)
		}
		return m, a.Generation, b.Generation, pend
	}
	keys := func(t *testing.T, m *state.Memory) map[string][]byte {
		t.Helper()
		got, err := m.LoadKeys(context.Background(), pid, []string{"k1", "k2", "k3"})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	checkpoint := func(t *testing.T, m *state.Memory) state.Checkpoint {
		t.Helper()
		cp, ok, err := m.LoadCheckpoint(context.Background(), pid)
		if err != nil || !ok {
			t.Fatalf("LoadCheckpoint: ok %v, err %v", ok, err)
		}
		return cp
	}
	pending := func(t *testing.T, m *state.Memory) bool {
		t.Helper()
		_, ok, err := m.LoadPending(context.Background(), pid)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}

	t.Run("committed", func(t *testing.T) {
		m, a, b, pend := setup(t, true)
		o := &fakeOracle{tag: txnTag(a, pend.Seq)}
		promoted, err := resolvePending(context.Background(), m, pid, b, o)
		if err != nil || !promoted {
			t.Fatalf("resolvePending = %v, %v; want promoted", promoted, err)
		}
		if diff := cmp.Diff([]string{"payments/3"}, o.asked); diff != "" {
			t.Errorf("oracle asked (-want +got):\n%s", diff)
		}
		want := state.Checkpoint{Offset: 90, Generation: b, Seq: pend.Seq, Streams: []byte("streams@90")}
		if diff := cmp.Diff(want, checkpoint(t, m)); diff != "" {
			t.Errorf("checkpoint (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(stagedKeys, keys(t, m)); diff != "" {
			t.Errorf("keys (-want +got):\n%s", diff)
		}
		if pending(t, m) {
			t.Error("the pending checkpoint is still there")
		}
	})

	// setup's owners have generations 1 (the first), 2 (A, staging seq
	// 1) and 3 (B).
	for name, tag := range map[string]string{
		"no commit":      "",
		"previous":       txnTag(1, 0),
		"same seq of B":  txnTag(3, 1),
		"later seq of A": txnTag(2, 2),
		"foreign":        "consumer 7",
	} {
		t.Run("not committed/"+name, func(t *testing.T) {
			m, a, b, pend := setup(t, true)
			if tag == txnTag(a, pend.Seq) {
				t.Fatalf("tag %q is the staged one's", tag)
			}
			before := checkpoint(t, m)
			promoted, err := resolvePending(context.Background(), m, pid, b, &fakeOracle{tag: tag})
			if err != nil || promoted {
				t.Fatalf("resolvePending = %v, %v; want discarded", promoted, err)
			}
			want := before
			want.Seq = pend.Seq
			if diff := cmp.Diff(want, checkpoint(t, m)); diff != "" {
				t.Errorf("checkpoint (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(committedKeys, keys(t, m)); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
			if pending(t, m) {
				t.Error("the pending checkpoint is still there")
			}
			// The discarded seq is burned: staging it again fails.
			again := state.Checkpoint{Offset: 90, Generation: b, Seq: pend.Seq}
			if err := m.Stage(context.Background(), pid, nil, nil, again); err == nil {
				t.Errorf("staging seq %d again succeeded", pend.Seq)
			}
		})
	}

	t.Run("no pending", func(t *testing.T) {
		m, _, b, _ := setup(t, false)
		before := checkpoint(t, m)
		o := &fakeOracle{tag: "x"}
		promoted, err := resolvePending(context.Background(), m, pid, b, o)
		if err != nil || promoted {
			t.Fatalf("resolvePending = %v, %v; want nothing", promoted, err)
		}
		if len(o.asked) != 0 {
			t.Errorf("oracle asked %v without a pending checkpoint", o.asked)
		}
		if diff := cmp.Diff(before, checkpoint(t, m)); diff != "" {
			t.Errorf("checkpoint (-want +got):\n%s", diff)
		}
	})

	t.Run("oracle error", func(t *testing.T) {
		m, _, b, _ := setup(t, true)
		before := checkpoint(t, m)
		boom := errors.New("coordinator unreachable")
		promoted, err := resolvePending(context.Background(), m, pid, b, &fakeOracle{err: boom})
		if !errors.Is(err, boom) || promoted {
			t.Fatalf("resolvePending = %v, %v; want %v", promoted, err, boom)
		}
		if !strings.Contains(err.Error(), "g/payments/3") {
			t.Errorf("error %q does not name the partition", err)
		}
		if !pending(t, m) {
			t.Error("the pending checkpoint is gone")
		}
		if diff := cmp.Diff(before, checkpoint(t, m)); diff != "" {
			t.Errorf("checkpoint (-want +got):\n%s", diff)
		}
	})

	for _, committed := range []bool{true, false} {
		name := map[bool]string{true: "fenced/committed", false: "fenced/not committed"}[committed]
		t.Run(name, func(t *testing.T) {
			m, a, _, pend := setup(t, true)
			before := checkpoint(t, m)
			tag := ""
			if committed {
				tag = txnTag(a, pend.Seq)
			}
			// A resolves with its own generation after B claimed.
			promoted, err := resolvePending(context.Background(), m, pid, a, &fakeOracle{tag: tag})
			if !errors.Is(err, state.ErrFenced) || promoted {
				t.Fatalf("resolvePending = %v, %v; want ErrFenced", promoted, err)
			}
			if !pending(t, m) {
				t.Error("the pending checkpoint is gone")
			}
			if diff := cmp.Diff(before, checkpoint(t, m)); diff != "" {
				t.Errorf("checkpoint (-want +got):\n%s", diff)
			}
		})
	}
}

// oracleBrokers is the number of kfake brokers of the oracle tests: more
// than one, so that a request sent to any broker but the group's
// coordinator fails.
const oracleBrokers = 3

// oracleCluster starts kfake with a topic of two partitions and returns a
// plain client of it.
func oracleCluster(t *testing.T) (*kfake.Cluster, *kgo.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(oracleBrokers), kfake.SeedTopics(2, "payments"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return c, cl
}

// commitOffsetMeta commits an offset with metadata outside any transaction,
// as an admin tool would.
func commitOffsetMeta(t *testing.T, cl *kgo.Client, group, topic string, partition int32, offset int64, meta string) {
	t.Helper()
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: topic, Partition: partition, At: offset, LeaderEpoch: -1, Metadata: meta})
	resps, err := kadm.NewClient(cl).CommitOffsets(context.Background(), group, offs)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		t.Fatalf("commit %s/%d: %v", topic, partition, err)
	}
}

// txnTopicID returns the topic's id, which TxnOffsetCommit v6 names it by.
func txnTopicID(t *testing.T, cl *kgo.Client, topic string) [16]byte {
	t.Helper()
	tds, err := kadm.NewClient(cl).ListTopics(context.Background(), topic)
	if err == nil {
		err = tds.Error()
	}
	if err != nil {
		t.Fatalf("list topic %s: %v", topic, err)
	}
	return tds[topic].ID
}

// txnCommitter drives one transaction with raw requests, so that a test
// can stop between the TxnOffsetCommit and the EndTxn.
type txnCommitter struct {
	cl    *kgo.Client
	txnID string
	pid   int64
	epoch int16
}

func newTxnCommitter(t *testing.T, cl *kgo.Client, txnID string, timeout time.Duration) *txnCommitter {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID = &txnID
	req.TransactionTimeoutMillis = int32(timeout.Milliseconds())
	resp, err := req.RequestWith(context.Background(), cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		t.Fatalf("init producer id: %v", err)
	}
	return &txnCommitter{cl: cl, txnID: txnID, pid: resp.ProducerID, epoch: resp.ProducerEpoch}
}

// commitOffsets adds the group to the transaction and stages the offset
// with meta in it.
func (x *txnCommitter) commitOffsets(t *testing.T, group, topic string, partition int32, offset int64, meta string) {
	t.Helper()
	ctx := context.Background()
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = x.txnID, x.pid, x.epoch, group
	addResp, err := add.RequestWith(ctx, x.cl)
	if err == nil {
		err = kerr.ErrorForCode(addResp.ErrorCode)
	}
	if err != nil {
		t.Fatalf("add offsets to txn: %v", err)
	}
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = x.txnID, group, x.pid, x.epoch
	req.Generation = -1
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic, rt.TopicID = topic, txnTopicID(t, x.cl, topic)
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.Metadata = partition, offset, &meta
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, x.cl)
	if err != nil {
		t.Fatalf("txn offset commit: %v", err)
	}
	for _, t2 := range resp.Topics {
		for _, p := range t2.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				t.Fatalf("txn offset commit %s/%d: %v", t2.Topic, p.Partition, err)
			}
		}
	}
}

func (x *txnCommitter) end(t *testing.T, commit bool) {
	t.Helper()
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = x.txnID, x.pid, x.epoch, commit
	resp, err := req.RequestWith(context.Background(), x.cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		t.Fatalf("end txn (commit %v): %v", commit, err)
	}
}

// TestKafkaOracle reads tags from kfake: a plain commit's, none, and one
// staged in a transaction, which the oracle reports only once the
// transaction ended (the new tag if it committed, the old one if it
// aborted).
func TestKafkaOracle(t *testing.T) {
	const group = "shrike-eos"
	ask := func(t *testing.T, o kafkaOracle, timeout time.Duration, partition int32) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return o.committedTag(ctx, "payments", partition)
	}

	// Groups coordinated by each broker: kfake answers NOT_COORDINATOR
	// from the others.
	t.Run("plain commit and none", func(t *testing.T) {
		_, cl := oracleCluster(t)
		byNode := map[int32]string{}
		for i := 0; i < 100 && len(byNode) < oracleBrokers; i++ {
			g := fmt.Sprintf("%s-%d", group, i)
			r := kadm.NewClient(cl).FindGroupCoordinators(context.Background(), g)[g]
			if r.Err != nil {
				t.Fatalf("find coordinator of %s: %v", g, r.Err)
			}
			if _, ok := byNode[r.NodeID]; !ok {
				byNode[r.NodeID] = g
			}
		}
		if len(byNode) < oracleBrokers {
			t.Fatalf("groups found for coordinators %v only", byNode)
		}
		for node, g := range byNode {
			o := kafkaOracle{cl: cl, group: g}
			if tag, err := ask(t, o, 5*time.Second, 0); err != nil || tag != "" {
				t.Fatalf("group %s (coordinator %d) before any commit: committedTag = %q, %v; want \"\"", g, node, tag, err)
			}
			want := txnTag(int64(node), 1)
			commitOffsetMeta(t, cl, g, "payments", 0, 41, want)
			if tag, err := ask(t, o, 5*time.Second, 0); err != nil || tag != want {
				t.Errorf("group %s (coordinator %d), committed partition: committedTag = %q, %v; want %q", g, node, tag, err, want)
			}
			if tag, err := ask(t, o, 5*time.Second, 1); err != nil || tag != "" {
				t.Errorf("group %s (coordinator %d), partition without a commit: committedTag = %q, %v; want \"\"", g, node, tag, err)
			}
		}
	})

	for _, commit := range []bool{true, false} {
		name := map[bool]string{true: "txn commit", false: "txn abort"}[commit]
		t.Run(name, func(t *testing.T) {
			_, cl := oracleCluster(t)
			o := kafkaOracle{cl: cl, group: group}
			oldTag, newTag := txnTag(1, 1), txnTag(2, 2)
			commitOffsetMeta(t, cl, group, "payments", 0, 41, oldTag)

			x := newTxnCommitter(t, cl, "shrike-test-txn", time.Minute)
			x.commitOffsets(t, group, "payments", 0, 90, newTag)
			// Undecided: the oracle waits rather than answer either tag.
			// The error wraps the broker's last UNSTABLE_OFFSET_COMMIT
			// answer; on a loaded machine the first answer may come after
			// a short deadline, so a deadline with no answer at all is
			// asked again with a longer one.
			var (
				tag string
				err error
			)
			for wait := 1500 * time.Millisecond; ; wait *= 2 {
				tag, err = ask(t, o, wait, 0)
				if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kerr.UnstableOffsetCommit) || wait > 10*time.Second {
					break
				}
			}
			if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, kerr.UnstableOffsetCommit) {
				t.Fatalf("txn open: committedTag = %q, %v; want a deadline after UNSTABLE_OFFSET_COMMIT", tag, err)
			}
			if !strings.Contains(err.Error(), `group "shrike-eos" topic "payments" partition 0`) {
				t.Errorf("error %q does not name group, topic and partition", err)
			}

			// Asked before the end, answered after it.
			type answer struct {
				tag string
				err error
			}
			got := make(chan answer, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				tag, err := o.committedTag(ctx, "payments", 0)
				got <- answer{tag, err}
			}()
			time.Sleep(50 * time.Millisecond)
			x.end(t, commit)
			a := <-got
			want := oldTag
			if commit {
				want = newTag
			}
			if a.err != nil || a.tag != want {
				t.Errorf("after EndTxn(commit %v): committedTag = %q, %v; want %q", commit, a.tag, a.err, want)
			}
			if tag, err := ask(t, o, 5*time.Second, 1); err != nil || tag != "" {
				t.Errorf("partition 1 after the txn: committedTag = %q, %v; want \"\"", tag, err)
			}
		})
	}
}

// TestKafkaOracleTxnTimeout: a transaction that staged a tag and never
// ended (its owner crashed) is aborted at its timeout, and the oracle,
// waiting meanwhile, answers the tag from before it.
func TestKafkaOracleTxnTimeout(t *testing.T) {
	const group = "shrike-eos"
	_, cl := oracleCluster(t)
	o := kafkaOracle{cl: cl, group: group}
	commitOffsetMeta(t, cl, group, "payments", 0, 41, txnTag(1, 1))
	x := newTxnCommitter(t, cl, "shrike-test-txn", time.Second)
	x.commitOffsets(t, group, "payments", 0, 90, txnTag(2, 2))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tag, err := o.committedTag(ctx, "payments", 0)
	if err != nil || tag != txnTag(1, 1) {
		t.Errorf("committedTag = %q, %v; want %q", tag, err, txnTag(1, 1))
	}
}
