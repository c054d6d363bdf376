package cep

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// sink produces one partition worker's output records (alerts, late and
// dead-lettered records) and tells when all of them are acknowledged, which
// a checkpoint waits for: an offset is committed only after everything the
// records before it produced is in Kafka (at-least-once alerts). The
// worker's records are tracked apart from other workers', so that a
// checkpoint waits for its own records only, not for a client-wide flush.
type sink struct {
	cl      *kgo.Client
	log     *slog.Logger
	metrics *metrics

	inflight atomic.Int64
	// acked is signalled when inflight drops to zero; wait rechecks, so a
	// stale signal costs a loop.
	acked chan struct{}

	// transactional: the records go into the engine's open transaction
	// (EngineOptions.ExactlyOnce). A failed record is not produced again:
	// the transaction aborts instead, and the records are produced again
	// from the last checkpoint.
	transactional bool
	// produced counts the records produced since the last checkpoint
	// barrier, txnFailed those of them that failed (transactional only).
	produced  atomic.Int64
	txnFailed atomic.Int64

	mu sync.Mutex
	// failed are records whose produce failed with an error worth
	// retrying; the promise queues them before it counts them done, so
	// that wait sees them once inflight is zero.
	failed []*kgo.Record
}

func newSink(cl *kgo.Client, log *slog.Logger, m *metrics, transactional bool) *sink {
	return &sink{cl: cl, log: log, metrics: m, acked: make(chan struct{}, 1), transactional: transactional}
}

// produce sends r asynchronously.
func (s *sink) produce(r *kgo.Record) {
	s.produced.Add(1)
	s.inflight.Add(1)
	// Not the worker's context: franz-go fails every record of a batch
	// whose first record's context ends, and a batch mixes workers'
	// records. Close unblocks a produce waiting for buffer space.
	s.cl.Produce(context.Background(), r, s.promise)
}

func (s *sink) promise(r *kgo.Record, err error) {
	if err != nil {
		s.metrics.produceErrors.WithLabelValues(r.Topic).Inc()
		if s.transactional {
			s.txnFailed.Add(1)
			s.log.Warn("produce failed: the transaction will abort", "topic", r.Topic, "err", err)
		} else if retriable(err) {
			s.mu.Lock()
			s.failed = append(s.failed, r)
			s.mu.Unlock()
		} else {
			// Retrying cannot help (the record is too large, the topic is
			// not authorized): counted and logged, the partition goes on.
			s.log.Error("produce: record dropped", "topic", r.Topic, "err", err)
		}
	}
	if s.inflight.Add(-1) == 0 {
		select {
		case s.acked <- struct{}{}:
		default:
		}
	}
}

// retriable reports whether producing again may succeed.
func retriable(err error) bool {
	if errors.Is(err, kgo.ErrClientClosed) {
		return false
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Retriable
	}
	return true
}

// wait returns once every record produced so far is acknowledged, producing
// again those that failed with a retriable error, or when ctx ends.
func (s *sink) wait(ctx context.Context) error {
	for {
		if s.inflight.Load() == 0 {
			s.mu.Lock()
			again := s.failed
			s.failed = nil
			s.mu.Unlock()
			if len(again) == 0 {
				return nil
			}
			s.log.Warn("produce failed: producing again", "records", len(again))
			for _, r := range again {
				s.produce(r)
			}
			continue
		}
		select {
		case <-s.acked:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// commitResponseErr is the first partition error of an offset commit.
func commitResponseErr(resp *kmsg.OffsetCommitResponse) error {
	if resp == nil {
		return nil
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return err
			}
		}
	}
	return nil
}
