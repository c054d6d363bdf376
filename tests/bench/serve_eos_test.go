package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// outputMode is how the benchmarked engine produces its alerts: plainly
// (eos=off, at-least-once) or in one Kafka transaction per checkpoint
// interval (eos=on, cep.EngineOptions.ExactlyOnce).
type outputMode struct {
	name        string
	exactlyOnce bool
}

// outputModes are the sub-benchmarks of each serve benchmark, eos=off
// first: the at-least-once baseline.
var outputModes = []outputMode{{"eos=off", false}, {"eos=on", true}}

// alertReader reads the alerts topic as a downstream consumer does, from
// its start, at read_committed when the engine produces transactionally
// and at read_uncommitted otherwise: the isolation level each mode's
// users read with. It times each alert from its emission (the engine's
// Produce, recorded by alertHooks under the record's key, the alert id)
// to its arrival here, which is when the alert becomes visible to users.
// In exactly-once mode an acknowledged record is not yet visible: it
// waits for its transaction to commit at the end of the checkpoint
// interval.
type alertReader struct {
	hooks  *alertHooks
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	records   int64
	ids       map[string]struct{}
	unknown   int64 // records whose id the engine never emitted
	latencies []time.Duration
	err       error
}

// startAlertReader starts reading topic in the background; the reader
// has joined no group and resets to the start, so records produced before
// its first fetch are still read.
func startAlertReader(brokers []string, topic string, readCommitted bool, hooks *alertHooks) (*alertReader, error) {
	iso := kgo.ReadUncommitted()
	if readCommitted {
		iso = kgo.ReadCommitted()
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(iso),
	)
	if err != nil {
		return nil, fmt.Errorf("alert reader: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &alertReader{hooks: hooks, cancel: cancel, done: make(chan struct{}), ids: map[string]struct{}{}}
	go func() {
		defer close(r.done)
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			// One arrival time per fetch: the records of a fetch become
			// visible together.
			now := time.Now()
			fs.EachError(func(t string, p int32, err error) {
				if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
					r.fail(fmt.Errorf("alert reader: fetch %s/%d: %w", t, p, err))
				}
			})
			r.mu.Lock()
			fs.EachRecord(func(rec *kgo.Record) {
				r.records++
				id := string(rec.Key)
				r.ids[id] = struct{}{}
				v, ok := hooks.emitted.Load(id)
				if !ok {
					r.unknown++
					return
				}
				r.latencies = append(r.latencies, now.Sub(v.(time.Time)))
			})
			r.mu.Unlock()
		}
	}()
	return r, nil
}

func (r *alertReader) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
}

// distinct is how many distinct alert ids the reader has read.
func (r *alertReader) distinct() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int64(len(r.ids))
}

// alertsRead is what the reader has read so far: records, distinct ids,
// records of ids the engine never emitted, and the first fetch error.
func (r *alertReader) alertsRead() (records, distinct, unknown int64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.records, int64(len(r.ids)), r.unknown, r.err
}

// stop ends the reader and returns its latencies.
func (r *alertReader) stop() []time.Duration {
	r.cancel()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.latencies
}
