package cep

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shrike-cep/shrike/state"
)

func txnTag(gen, seq int64) string { return fmt.Sprintf("shrike/1 g=%d s=%d", gen, seq) }

type txnOracle interface {
	committedTag(ctx context.Context, topic string, partition int32) (string, error)
}

type kafkaOracle struct {
	cl    *kgo.Client
	group string
}

func (o kafkaOracle) committedTag(ctx context.Context, topic string, partition int32) (string, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = o.group
	req.RequireStable = true
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	rt.Partitions = []int32{partition}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, o.cl)
	if err != nil {
		return "", err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.Partition == partition && p.Metadata != nil {
				return *p.Metadata, nil
			}
		}
	}
	return "", nil
}

func resolvePending(ctx context.Context, st Store, pid state.PartitionID, gen int64, o txnOracle) (bool, error) {
	pend, ok, err := st.LoadPending(ctx, pid)
	if err != nil || !ok {
		return false, err
	}
	tag, err := o.committedTag(ctx, pid.Topic, pid.Partition)
	if err != nil {
		return false, err
	}
	if tag == txnTag(pend.Generation, pend.Seq) {
		_, err := st.Promote(ctx, pid, gen)
		return err == nil, err
	}
	return false, st.Discard(ctx, pid, gen)
}
