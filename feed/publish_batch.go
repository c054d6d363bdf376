package feed

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrRecordTooLarge is the condition of a BatchError whose record Kafka
// does not take: over the producer's ProducerBatchMaxBytes or the topic's
// max.message.bytes. Retrying cannot help; the event must shrink.
var ErrRecordTooLarge = errors.New("record too large for kafka")

// BatchError is PublishBatch's error: which record failed and which
// records Kafka acknowledged all the same (a batch spans partitions, and a
// broker refuses one partition's records without the others').
type BatchError struct {
	Topic string
	// Index is the first record that failed; Key its key.
	Index int
	Key   []byte
	// Size is that record's key and value bytes, Limit the most a record
	// of the topic may take (0 when unknown); set for ErrRecordTooLarge.
	Size, Limit int
	// Published lists the records Kafka acknowledged, ascending; empty
	// when none was (always so when the batch was refused before any
	// record was produced).
	Published []int
	Err       error
}

func (e *BatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "publish to %s: record %d", e.Topic, e.Index)
	if len(e.Key) > 0 {
		fmt.Fprintf(&b, " (key %q)", truncateKey(e.Key))
	}
	if e.Size > 0 {
		fmt.Fprintf(&b, " of %d bytes", e.Size)
		if e.Limit > 0 {
			fmt.Fprintf(&b, ", over the limit of %d bytes,", e.Limit)
		}
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *BatchError) Unwrap() error { return e.Err }

// truncateKey keeps error messages short whatever the key.
func truncateKey(k []byte) string {
	const most = 64
	if len(k) <= most {
		return string(k)
	}
	return string(k[:most]) + "…"
}

// recordOverhead bounds what a record batch holding one record adds to the
// record's key and value (the batch header, the record's lengths, deltas
// and attributes), with room to spare, as the engine's alert bound does.
const recordOverhead = 512

// PublishBatch produces one record per value to topic, in order (values
// with the same key keep their order in their partition), and returns
// once Kafka acknowledged or failed every one of them: the count
// acknowledged and, on failure, a *BatchError. Unlike Publish it is
// synchronous and keeps no failure for later calls, so that one failed
// request (the API's PublishEvents) does not fail the requests after it.
// keys[i] is value i's record key; nil or a shorter keys means no key.
//
// A record larger than the topic takes (RecordLimit) fails the whole batch
// before anything is produced, with ErrRecordTooLarge. A broker may still
// refuse a record as too large (its limit changed since it was asked): the
// BatchError then lists the records produced all the same.
func (p *Publisher) PublishBatch(ctx context.Context, topic string, keys, values [][]byte) (int, error) {
	limit := p.RecordLimit(ctx, topic)
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Value: v}
		if i < len(keys) {
			recs[i].Key = keys[i]
		}
		if size := len(recs[i].Key) + len(v); size > limit {
			return 0, &BatchError{Topic: topic, Index: i, Key: recs[i].Key, Size: size, Limit: limit, Err: ErrRecordTooLarge}
		}
	}
	res := p.cl.ProduceSync(ctx, recs...)
	// Results come in the order records completed, not the input order.
	index := make(map[*kgo.Record]int, len(recs))
	for i, r := range recs {
		index[r] = i
	}
	failed := make([]error, len(recs))
	var published []int
	for _, r := range res {
		if r.Err == nil {
			published = append(published, index[r.Record])
		} else {
			failed[index[r.Record]] = r.Err
		}
	}
	p.acked.Add(uint64(len(published)))
	if len(published) == len(recs) {
		return len(published), nil
	}
	slices.Sort(published)
	// A broker refuses a partition's whole batch when one record is too
	// large: the largest record refused is named, the others of its batch
	// were refused with it.
	var first *BatchError
	for i, err := range failed {
		if err == nil {
			continue
		}
		size := len(recs[i].Key) + len(recs[i].Value)
		tooLarge := errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
		switch {
		case first == nil:
		case tooLarge && (!errors.Is(first.Err, ErrRecordTooLarge) || size > first.Size):
		default:
			continue
		}
		first = &BatchError{Topic: topic, Index: i, Key: recs[i].Key, Err: err}
		if tooLarge {
			first.Size = size
			first.Err = fmt.Errorf("%w: %w", ErrRecordTooLarge, err)
		}
	}
	if errors.Is(first.Err, ErrRecordTooLarge) {
		// The topic's limit is asked for again at the next batch.
		p.limits.Delete(topic)
	}
	first.Published = published
	return len(published), first
}

// RecordLimit is the most key and value bytes a record of topic may hold:
// the smaller of the producer's ProducerBatchMaxBytes for the topic
// (franz-go's default, 1,000,012 bytes, is Kafka's default
// max.message.bytes) and the topic's max.message.bytes, less a batch's
// overhead. The topic's setting is asked for once and kept; when it cannot
// be read (no such topic yet, describing configs not allowed) the
// producer's limit stands alone, and it is asked again a minute later.
func (p *Publisher) RecordLimit(ctx context.Context, topic string) int {
	limit := 1_000_012
	if fn, ok := p.cl.OptValue(kgo.ProducerBatchMaxBytesFn).(func(string) int32); ok && fn != nil {
		limit = int(fn(topic))
	}
	if l, ok := p.limits.Load(topic); ok && (l.(topicLimit).bytes > 0 || time.Since(l.(topicLimit).asked) < unknownLimitRetry) {
		if n := l.(topicLimit).bytes; n > 0 {
			limit = min(limit, n)
		}
		return limit - recordOverhead
	}
	n := topicMaxMessageBytes(ctx, p.cl, topic)
	p.limits.Store(topic, topicLimit{bytes: n, asked: time.Now()})
	if n > 0 {
		limit = min(limit, n)
	}
	return limit - recordOverhead
}

// topicLimit is a topic's max.message.bytes as last asked; 0 when the
// brokers did not say.
type topicLimit struct {
	bytes int
	asked time.Time
}

// unknownLimitRetry is how long a topic whose limit the brokers did not
// tell (no such topic yet, describing configs not allowed) goes on the
// producer's limit before they are asked again: not once per publish.
const unknownLimitRetry = time.Minute

// topicMaxMessageBytes asks the brokers for topic's max.message.bytes; 0
// when they do not say.
func topicMaxMessageBytes(ctx context.Context, cl *kgo.Client, topic string) int {
	rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return 0
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		return 0
	}
	for _, c := range rc.Configs {
		if c.Key == "max.message.bytes" && c.Value != nil {
			if n, err := strconv.Atoi(*c.Value); err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}
