package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultPartitions is the partition count of the embedded broker's topics
// when KafkaOptions.Partitions is zero: more than one, so that the
// per-partition paths of the engine run, few enough for a laptop.
const DefaultPartitions = 3

// KafkaOptions configure NewKafka. Zero values are the documented
// defaults.
type KafkaOptions struct {
	// Port is the broker's port on 127.0.0.1. Zero picks a free port
	// (`shrike serve` passes 9092, Kafka's usual port).
	Port int
	// Partitions is the partition count of Topics and of topics created on
	// first use. Default DefaultPartitions.
	Partitions int
	// Topics are created at start (existing ones are kept as they are).
	Topics []string
	// Logger receives the broker's errors (at Warn) and its request log
	// (at Debug). Default: discard.
	Logger *slog.Logger
}

// MaxSessionTimeout is the longest consumer group session the broker
// grants, as Kafka's group.max.session.timeout.ms does by default (kfake's
// own bound is 5 minutes).
const MaxSessionTimeout = 30 * time.Minute

// Kafka is an in-process, single-broker Kafka-protocol cluster. It keeps
// everything in memory: kfake can persist its log to a directory, but that
// log is not crash-safe (a kill -9 can leave it truncated or unreadable,
// and kfake truncates what it cannot read at the next start without an
// error), so the option is not offered; a real Kafka is the durable one.
type Kafka struct {
	cluster *kfake.Cluster
	addrs   []string
	once    sync.Once
}

// NewKafka starts the broker and creates opts.Topics. ctx bounds the topic
// creation.
func NewKafka(ctx context.Context, opts KafkaOptions) (*Kafka, error) {
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("embedded kafka: bad port %d", opts.Port)
	}
	if opts.Partitions < 0 {
		return nil, fmt.Errorf("embedded kafka: bad partition count %d", opts.Partitions)
	}
	if opts.Partitions == 0 {
		opts.Partitions = DefaultPartitions
	}
	kopts := []kfake.Opt{
		kfake.Ports(opts.Port), // one port: one broker
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(opts.Partitions),
		kfake.GroupMaxSessionTimeout(MaxSessionTimeout),
	}
	if opts.Logger != nil {
		kopts = append(kopts, kfake.WithLogger(kfakeLogger{opts.Logger}))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka: %w", err)
	}
	k := &Kafka{cluster: c, addrs: c.ListenAddrs()}
	if err := k.createTopics(ctx, opts.Partitions, opts.Topics); err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

// createTopics creates the topics on the cluster itself rather than through
// kfake's seeding. Cluster.CreateTopic runs the broker's own CreateTopics
// handler, so the package needs no Kafka client for it.
func (k *Kafka) createTopics(ctx context.Context, partitions int, topics []string) error {
	for _, t := range slices.Compact(slices.Sorted(slices.Values(topics))) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("embedded kafka: create topic %s: %w", t, err)
		}
		err := k.cluster.CreateTopic(t, int32(partitions), nil)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("embedded kafka: create topic %s: %w", t, err)
		}
	}
	return nil
}

// Addrs returns the broker's host:port addresses (one).
func (k *Kafka) Addrs() []string { return slices.Clone(k.addrs) }

// Close stops the broker; its records are gone.
func (k *Kafka) Close() {
	k.once.Do(k.cluster.Close)
}

// kfakeLogger routes kfake's log into slog. kfake logs every request at
// its Info level, far too chatty for an operator's Info.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	lvl := slog.LevelDebug
	if level == kfake.LogLevelError {
		lvl = slog.LevelWarn
	}
	if !k.l.Enabled(context.Background(), lvl) {
		return
	}
	// Not under "msg": that is the record's own message key, and a handler
	// writing both would print two "msg" fields.
	k.l.Log(context.Background(), lvl, "embedded kafka", "detail", fmt.Sprintf(msg, args...))
}
