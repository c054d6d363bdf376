package cep

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shrike-cep/shrike/state"
)

// txnTag is the metadata a transaction commits with a partition's offset
// in the consumer group when it carries the partition's checkpoint staged
// as generation gen, sequence seq. Kafka makes it visible exactly when the
// transaction commits, so it is the record of the transaction's decision
// that outlives the process. Seq alone names the staging, as a
// partition's Seq is never reused (a discarded one is burned); gen names
// the owner that staged it as well, so that a tag can never be taken for
// another owner's staging.
func txnTag(gen, seq int64) string {
	return "shrike/1 g=" + strconv.FormatInt(gen, 10) + " s=" + strconv.FormatInt(seq, 10)
}

// txnOracle tells which transaction last committed a partition's offset.
type txnOracle interface {
	// committedTag returns the metadata of the partition's committed
	// offset in the group, "" when there is none, once no transaction
	// holding an offset of the group is undecided.
	committedTag(ctx context.Context, topic string, partition int32) (string, error)
}

// kafkaOracle asks the group's coordinator with a stable OffsetFetch.
type kafkaOracle struct {
	cl    *kgo.Client
	group string
}

// Backoff of kafkaOracle while the committed offset is not stable.
const (
	oracleBackoffFirst = 20 * time.Millisecond
	oracleBackoffCap   = 500 * time.Millisecond
)

// committedTag sends an OffsetFetch naming the partition, with
// RequireStable: while a transaction that committed an offset of the group
// is neither committed nor aborted, the coordinator answers
// UNSTABLE_OFFSET_COMMIT, and committedTag waits (until the transaction
// ends or times out, or ctx ends) instead of reading the offset the
// transaction may be about to replace. The partition is named because a
// fetch of all the group's topics lists only partitions with a committed
// offset: a partition whose first commit is still pending would read as
// "none", not as unstable (kfake does so, and so did kadm's fetch of all
// topics). kgo routes the request to the group's coordinator and converts
// between the single-group form filled here and the batched form of v8+.
func (o kafkaOracle) committedTag(ctx context.Context, topic string, partition int32) (string, error) {
	backoff := oracleBackoffFirst
	for {
		tag, err := o.fetchTag(ctx, topic, partition)
		if err == nil {
			return tag, nil
		}
		if !waitStable(err) {
			return "", o.wrap(topic, partition, err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", o.wrap(topic, partition, fmt.Errorf("%w (last: %w)", ctx.Err(), err))
		case <-t.C:
		}
		backoff = min(2*backoff, oracleBackoffCap)
	}
}

// waitStable reports whether committedTag retries after err: the offset
// is not stable yet, or the group's coordinator is loading or moving.
func waitStable(err error) bool {
	for _, e := range []*kerr.Error{kerr.UnstableOffsetCommit, kerr.CoordinatorLoadInProgress, kerr.CoordinatorNotAvailable, kerr.NotCoordinator} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (o kafkaOracle) wrap(topic string, partition int32, err error) error {
	return fmt.Errorf("fetch committed offset of group %q topic %q partition %d: %w", o.group, topic, partition, err)
}

// fetchTag sends one stable OffsetFetch; an error of the group or the
// partition is returned as its *kerr.Error.
func (o kafkaOracle) fetchTag(ctx context.Context, topic string, partition int32) (string, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = o.group
	req.RequireStable = true
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	rt.Partitions = []int32{partition}
	req.Topics = []kmsg.OffsetFetchRequestTopic{rt}

	resp, err := req.RequestWith(ctx, o.cl)
	if err != nil {
		if errors.Is(err, kerr.GroupIDNotFound) {
			return "", nil
		}
		return "", err
	}
	// kgo fills the top-level fields from the one group's batched answer
	// (v8+), and the batched form from the top-level one (v0-v7); read
	// the batch, falling back on the top level.
	var (
		code   = resp.ErrorCode
		topics []kmsg.OffsetFetchResponseGroupTopic
	)
	if len(resp.Groups) > 0 {
		g := resp.Groups[0]
		if g.Group != o.group {
			return "", fmt.Errorf("answer names group %q", g.Group)
		}
		code, topics = g.ErrorCode, g.Topics
	} else {
		for _, t := range resp.Topics {
			gt := kmsg.NewOffsetFetchResponseGroupTopic()
			gt.Topic = t.Topic
			for _, p := range t.Partitions {
				gp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
				gp.Partition, gp.Offset, gp.Metadata, gp.ErrorCode = p.Partition, p.Offset, p.Metadata, p.ErrorCode
				gt.Partitions = append(gt.Partitions, gp)
			}
			topics = append(topics, gt)
		}
	}
	if err := kerr.ErrorForCode(code); err != nil {
		// A group that does not exist has committed nothing (Kafka
		// answers so with offset -1, kfake with this error). The
		// engine's group exists while it owns partitions: its members
		// are in it.
		if errors.Is(err, kerr.GroupIDNotFound) {
			return "", nil
		}
		return "", err
	}
	for _, t := range topics {
		if t.Topic != topic {
			continue
		}
		for _, p := range t.Partitions {
			if p.Partition != partition {
				continue
			}
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return "", err
			}
			if p.Offset < 0 || p.Metadata == nil {
				return "", nil
			}
			return *p.Metadata, nil
		}
	}
	return "", errors.New("partition missing from the answer")
}

// resolvePending decides the partition's pending checkpoint, if any,
// left by an owner (this one or an earlier one) that staged it for a
// Kafka transaction and did not finish: the transaction committed the
// partition's offset with the tag txnTag(pend.Generation, pend.Seq), so
// the tag Kafka holds now is the transaction's decision. The same tag
// means the transaction committed — its outputs are visible and its
// offset is the group's — while the Store was not told (a crash or an
// error after EndTxn): Promote rolls it forward. Any other tag means the
// transaction aborted, or never committed offsets (a crash before its
// TxnOffsetCommit), or its outcome was never decided and Kafka aborted it
// at its timeout (the oracle waits for that): Discard drops the staged
// state, whose outputs nobody will see, and burns its Seq so that no later
// staging reuses the tag. Both are fenced on gen, the generation the
// caller claimed the partition with: if a newer owner claimed it since,
// the answer is ErrFenced and the pending checkpoint is the newer owner's
// to decide.
//
// promoted reports a roll forward; with no pending checkpoint it is false
// and nothing changed. On an error the pending checkpoint is kept, for a
// later resolvePending.
func resolvePending(ctx context.Context, st Store, pid state.PartitionID, gen int64, o txnOracle) (promoted bool, err error) {
	name := pid.Group + "/" + pid.Topic + "/" + strconv.Itoa(int(pid.Partition))
	pend, ok, err := st.LoadPending(ctx, pid)
	if err != nil {
		return false, fmt.Errorf("resolve pending checkpoint of partition %s: %w", name, err)
	}
	if !ok {
		return false, nil
	}
	tag, err := o.committedTag(ctx, pid.Topic, pid.Partition)
	if err != nil {
		return false, fmt.Errorf("resolve pending checkpoint of partition %s: %w", name, err)
	}
	if tag == txnTag(pend.Generation, pend.Seq) {
		if _, err := st.Promote(ctx, pid, gen); err != nil {
			return false, fmt.Errorf("resolve pending checkpoint of partition %s (committed, tag %q): %w", name, tag, err)
		}
		return true, nil
	}
	if err := st.Discard(ctx, pid, gen); err != nil {
		return false, fmt.Errorf("resolve pending checkpoint of partition %s (not committed, tag %q): %w", name, tag, err)
	}
	return false, nil
}
