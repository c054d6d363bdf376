package feed

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultDeliveryTimeout bounds how long a Publisher keeps retrying one
// record when PublisherOptions.DeliveryTimeout is zero: long enough to ride
// out a leader election, short enough that a producer pointed at the wrong
// cluster stops with an error rather than hang.
const DefaultDeliveryTimeout = 30 * time.Second

// PublisherOptions configure NewPublisher. Zero values are the documented
// defaults.
type PublisherOptions struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string
	// ClientID names the client to the brokers. Default "shrike".
	ClientID string
	// DeliveryTimeout: see DefaultDeliveryTimeout.
	DeliveryTimeout time.Duration
	// Extra are further franz-go options, applied last.
	Extra []kgo.Opt
}

// Publisher writes events into Kafka topics for producers that are not
// Kafka clients themselves: `shrike gen --kafka`, and the API's
// PublishEvents. Records are batched and sent asynchronously; the first
// delivery failure is kept and returned by the next Publish and by Flush,
// so a caller learns of a broken cluster within a batch or two. It is safe
// for concurrent use.
type Publisher struct {
	cl    *kgo.Client
	acked atomic.Uint64
	// limits caches each topic's max.message.bytes (topicLimit) for
	// RecordLimit.
	limits sync.Map

	mu  sync.Mutex
	err error // first delivery failure
}

// NewPublisher creates the client and checks that a broker answers, so
// that a wrong address is reported at once rather than after the delivery
// timeout.
func NewPublisher(ctx context.Context, opts PublisherOptions) (*Publisher, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("publisher: no brokers")
	}
	if opts.ClientID == "" {
		opts.ClientID = "shrike"
	}
	if opts.DeliveryTimeout <= 0 {
		opts.DeliveryTimeout = DefaultDeliveryTimeout
	}
	kopts := []kgo.Opt{
		kgo.SeedBrokers(opts.Brokers...),
		kgo.ClientID(opts.ClientID),
		kgo.RecordDeliveryTimeout(opts.DeliveryTimeout),
		// Events are small JSON objects: compression pays for itself.
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()),
	}
	cl, err := kgo.NewClient(append(kopts, opts.Extra...)...)
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("publisher: no broker of %v answers: %w", opts.Brokers, err)
	}
	return &Publisher{cl: cl}, nil
}

// Publish queues one record for topic. It blocks only while the client's
// buffer is full. Key and value must not be modified afterwards. It returns
// ctx's error, or the first delivery failure of an earlier record, after
// which the caller should stop.
func (p *Publisher) Publish(ctx context.Context, topic string, key, value []byte) error {
	if err := p.Err(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p.cl.Produce(ctx, &kgo.Record{Topic: topic, Key: key, Value: value}, p.promise)
	return nil
}

func (p *Publisher) promise(r *kgo.Record, err error) {
	if err == nil {
		p.acked.Add(1)
		return
	}
	p.mu.Lock()
	if p.err == nil {
		p.err = fmt.Errorf("publish to %s: %w", r.Topic, err)
	}
	p.mu.Unlock()
}

// Err returns the first delivery failure, if any.
func (p *Publisher) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Flush waits until every queued record is delivered or failed, and
// returns the first failure (or ctx's error).
func (p *Publisher) Flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("publisher: flush: %w", err)
	}
	return p.Err()
}

// Acked returns how many records the brokers acknowledged.
func (p *Publisher) Acked() uint64 { return p.acked.Load() }

// Close releases the client; records not yet flushed are failed.
func (p *Publisher) Close() { p.cl.Close() }
