package feed

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// PublishBatch produces one record per value to topic, in order (values
// with the same key keep their order in their partition), and returns
// once Kafka acknowledged or failed every one of them: the count
// acknowledged and the first failure. Unlike Publish it is synchronous and
// keeps no failure for later calls, so that one failed request (the API's
// PublishEvents) does not fail the requests after it. keys[i] is value
// i's record key; nil or a shorter keys means no key.
func (p *Publisher) PublishBatch(ctx context.Context, topic string, keys, values [][]byte) (int, error) {
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Value: v}
		if i < len(keys) {
			recs[i].Key = keys[i]
		}
	}
	res := p.cl.ProduceSync(ctx, recs...)
	n := 0
	for _, r := range res {
		if r.Err == nil {
			n++
		}
	}
	p.acked.Add(uint64(n))
	if err := res.FirstErr(); err != nil {
		return n, fmt.Errorf("publish to %s: %w", topic, err)
	}
	return n, nil
}
