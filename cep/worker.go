package cep

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/state"
)

// A worker owns one assigned topic partition: its matcher.Partitions (one
// per stream reading the topic), its keys and its checkpoints. Everything
// but the hand-over queue and the status runs on the worker's goroutine,
// because a matcher.Partition is not safe for concurrent use.
//
// Its life: restore (load the Store checkpoint, claim the partition with a
// higher fencing generation, restore each stream's watermark), then process
// the batches the poll loop queues, checkpoint every CheckpointInterval,
// and, when revoked, finish the batch in hand, checkpoint and commit; when
// lost, drop everything unwritten.
//
// Its parts, each in its own file: the handoff from the poll loop
// (worker_queue.go), a batch's decoding, key loads and pushes
// (worker_batch.go), a keyCache per stream (keycache.go), the checkpoint
// protocol (worker_checkpoint.go) and its encoding of the streams
// (worker_streams.go), the outputs (worker_output.go), the metrics
// (partitionMetrics) and the switch to reloaded rulesets
// (reload_engine.go).

// Backoff between Store retries.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// tickInterval is how often a worker checks for idle streams and due
// checkpoints when no record comes.
const tickInterval = 100 * time.Millisecond

type worker struct {
	e      *Engine
	log    *slog.Logger
	topic  string
	tbytes []byte // topic, for Line.Topic
	part   int32
	source string // "topic/partition": matcher positions, alert ids
	sink   *sink
	// maxAlert is the most bytes an alert's JSON may take to fit in one
	// record of the alerts topic (alertLimit); 0 until the first alert.
	maxAlert int
	m        *partitionMetrics
	q        *handoff
	ckpt     *checkpointer

	// streams are this worker's copies of the engine's streams that read
	// the topic, each with its own matcher.Partition; sps[i] is the state
	// of streams[i].
	streams []*stream
	sps     []*streamPart
	byPart  map[*stream]*streamPart

	// ctx ends when the worker must stop at once (lost, or the drain gave
	// up); revoke is closed to ask it to finish and checkpoint.
	ctx      context.Context
	cancel   context.CancelFunc
	revoke   chan struct{}
	stopOnce sync.Once
	// drainTimer cancels ctx when a revoked worker takes longer than
	// DrainTimeout to finish.
	drainTimer *time.Timer
	// restored is closed once the partition is restored; resumeAt is then
	// the offset to fetch from (-1: Kafka's committed offset).
	restored chan struct{}
	resumeAt int64
	done     chan struct{}

	// Worker goroutine only.
	next        int64 // offset after the last record processed; -1: none yet
	firstOffset int64 // offset of the first record this owner got; -1: none yet
	readTo      int64 // records below it were read by an earlier owner
	uncommitted int   // records processed since the last checkpoint
	retry       retry // of the Store calls
	batch       workerBatch
	// plan is the engine's plan the streams come from.
	plan *enginePlan

	// planGen is the generation of plan, for SetRulesets to wait on;
	// switched is signalled after each switch.
	planGen  atomic.Int64
	switched chan struct{}

	// tx is the worker's part in the engine's transactions (exactly-once
	// mode, worker_txn.go).
	tx workerTxn

	smu sync.Mutex
	st  PartitionStatus
}

// streamPart is a worker's state of one stream: the partition of the
// matcher and what the worker knows of the stream's keys.
type streamPart struct {
	s    *stream
	keys *keyCache
	ooo  int64 // max out-of-orderness, ns
	idle time.Duration
	// skew bounds how far ahead of the wall clock an event time may be
	// (maxClockSkew); zero: no bound.
	skew time.Duration
	// saved is the matcher checkpoint last committed: a checkpoint with no
	// key and no record to record is still written when it moved.
	saved matcher.Checkpoint
	// skipBelow is the restored watermark: records read by an earlier owner
	// (below readTo) with an earlier event time were matched, or reported
	// late, before the checkpoint, and are skipped.
	skipBelow int64
	lastSeen  time.Time // Clock time of the last record pushed
}

// newWorker makes the worker of a partition; ctx is Run's. The worker's
// context carries ctx's values but not its end: the end of Run's ctx asks
// the worker to drain (run), and a drain's checkpoint and commit need a
// context that has not ended; DrainTimeout later, or when the partition is
// lost, the worker's context ends.
func newWorker(ctx context.Context, e *Engine, cl *kgo.Client, topic string, part int32) *worker {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w := &worker{
		e:           e,
		topic:       topic,
		tbytes:      []byte(topic),
		part:        part,
		source:      topic + "/" + strconv.Itoa(int(part)),
		log:         e.log.With("topic", topic, "partition", part),
		m:           e.metrics.forPartition(topic, part),
		switched:    make(chan struct{}, 1),
		ctx:         wctx,
		cancel:      cancel,
		revoke:      make(chan struct{}),
		restored:    make(chan struct{}),
		done:        make(chan struct{}),
		resumeAt:    -1,
		next:        -1,
		firstOffset: -1,
		byPart:      map[*stream]*streamPart{},
	}
	w.q = newHandoff(cl, topic, part, func(p bool) { w.setStatus(func(st *PartitionStatus) { st.Paused = p }) })
	w.ckpt = newCheckpointer(e.opts.Store, state.PartitionID{Group: e.opts.Group, Topic: topic, Partition: part}, cl, w.log, e.opts.ExactlyOnce)
	w.sink = newSink(cl, w.log, e.metrics, e.opts.ExactlyOnce)
	w.st = PartitionStatus{Topic: topic, Partition: part, NextOffset: -1, CommittedOffset: -1}
	w.initStreams(e.plan.Load())
	return w
}

// stop asks the worker to finish (drain: the batch in hand, a checkpoint
// and a commit) or to stop at once. It does not wait: done is closed when
// the worker has stopped.
func (w *worker) stop(drain bool) {
	if drain {
		w.stopOnce.Do(func() {
			w.drainTimer = time.AfterFunc(w.e.opts.DrainTimeout, w.cancel)
			close(w.revoke)
		})
		return
	}
	w.cancel()
}

// enqueue hands a poll's records of the partition to the worker without
// blocking.
func (w *worker) enqueue(recs []*kgo.Record, hw int64, at time.Time) { w.q.enqueue(recs, hw, at) }

// run is the worker's goroutine; ctx is Run's, whose end stops the worker
// as a revocation does: the batch in hand, a checkpoint and a commit,
// within DrainTimeout.
func (w *worker) run(ctx context.Context) {
	defer close(w.done)
	if w.e.txn == nil {
		defer context.AfterFunc(ctx, func() { w.stop(true) })()
	}
	// In exactly-once mode the end of ctx is the poll loop's: its last
	// barrier commits what the workers processed, and leaving the group
	// then stops them.
	defer func() {
		// stopOnce orders this read after the write in stop.
		w.stopOnce.Do(func() {})
		if w.drainTimer != nil {
			w.drainTimer.Stop()
		}
		w.cancel()
	}()
	defer w.q.retire()
	defer w.m.forget()
	if !w.restore() {
		return
	}
	if w.unit(func() bool { w.maybeSwitch(); return true }) == unitStop {
		return
	}
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	for {
		var work func() bool
		select {
		case <-w.ctx.Done():
			return
		case <-w.revoke:
			if w.e.txn == nil {
				w.drain()
			}
			// In exactly-once mode a revoked partition's work since the
			// last barrier is dropped: its outputs are in a transaction
			// the revocation aborts, and the next owner redoes it.
			return
		case <-w.q.wake:
			work = w.processQueue
		case <-tick.C:
			work = w.idleAdvance
		}
		switch w.unit(func() bool {
			if !work() {
				return false
			}
			// A reload (SetRulesets) pokes wake; an idle worker switches
			// here.
			w.maybeSwitch()
			return w.maybeCheckpoint()
		}) {
		case unitStop:
			return
		case unitFenced:
			w.fenced(w.tx.fenced)
			return
		case unitRewind:
			if !w.rewindTxn() {
				return
			}
		}
	}
}

// stopping reports whether the worker was asked to stop, either way.
func (w *worker) stopping() bool {
	select {
	case <-w.revoke:
		return true
	case <-w.ctx.Done():
		return true
	default:
		return false
	}
}

// processQueue processes the queued batches in order. Between batches it
// yields to a revocation, and it leaves the rest queued while checkpoints
// fail with too much processed past the last one (the partition is paused
// once the queue is long). It returns false when the worker must stop at
// once.
func (w *worker) processQueue() bool {
	for !w.stopping() {
		if w.uncommitted >= w.e.opts.MaxUncommittedRecords && (w.ckpt.failing || w.e.txn != nil) {
			// In exactly-once mode the barrier checkpoints: asked for
			// early, it pokes the worker when it is done.
			if w.e.txn != nil {
				w.e.txn.requestBarrier()
			}
			return true
		}
		if t := w.e.txn; t != nil && t.wanted.Load() {
			// A barrier waits for this unit to end; it pokes the worker
			// when it is done.
			return true
		}
		// Between batches: the one place a reload switches the rules.
		w.maybeSwitch()
		f, ok := w.q.take()
		if !ok {
			return true
		}
		if err := w.process(f); err != nil {
			if errors.Is(err, state.ErrFenced) {
				w.fenced(err)
				return false
			}
			// Stopped while loading keys: a revocation drains what was
			// processed before the batch; nothing else is left to do.
			return w.ctx.Err() == nil
		}
		if !w.maybeCheckpoint() {
			return false
		}
	}
	return true
}

// errStopping ends a Store retry loop when the worker is asked to stop.
var errStopping = errors.New("partition worker stopping")

// retry paces a worker's Store calls while the Store fails.
type retry struct {
	failing bool // the last Store call failed
	backoff time.Duration
	at      time.Time // when to try again
}

// sleep waits d, or until the worker is asked to stop (false).
func (w *worker) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.revoke:
		return false
	case <-w.ctx.Done():
		return false
	}
}

// sleepCtx waits d, or until ctx ends (false): a draining worker, whose
// revoke channel is closed already, waits this way.
func (w *worker) sleepCtx(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.ctx.Done():
		return false
	}
}

// setFailing records the outcome of a Store call: not ready while it
// fails, retried with a growing backoff.
func (w *worker) setFailing(err error) {
	r := &w.retry
	r.failing = err != nil
	if err == nil {
		r.backoff = 0
		w.setStatus(func(st *PartitionStatus) { st.StoreError = "" })
		return
	}
	w.e.metrics.storeErrors.Inc()
	r.backoff = min(max(2*r.backoff, minBackoff), maxBackoff)
	r.at = time.Now().Add(r.backoff)
	w.setStatus(func(st *PartitionStatus) { st.StoreError = err.Error() })
}

func (w *worker) setStatus(fn func(*PartitionStatus)) {
	w.smu.Lock()
	fn(&w.st)
	w.smu.Unlock()
}

func (w *worker) status() PartitionStatus {
	w.smu.Lock()
	defer w.smu.Unlock()
	return w.st
}

// observe updates the partition's gauges and the per-rule counters the
// matcher keeps (as deltas since the last call).
func (w *worker) observe() {
	var live, keys, buffered int
	wm := int64(math.MaxInt64)
	open := map[metricRule]int{}
	for _, sp := range w.sps {
		st := sp.s.part.Stats()
		live += st.LiveRuns
		keys += st.Keys
		buffered += st.Buffered
		wm = min(wm, sp.s.part.Watermark())
		w.m.countRules(st.ByRule, sp.s.shadow())
		for id, rs := range st.ByRule {
			if rs.LiveRuns > 0 {
				open[activityRule(id, sp.s.shadow())] += rs.LiveRuns
			}
		}
	}
	w.e.metrics.activity.setOpen(w.m.tp, open)
	w.m.partialMatches.Set(float64(live))
	w.m.residentKeys.Set(float64(keys))
	w.m.bufferedEvents.Set(float64(buffered))
	var wmTime time.Time
	if wm != math.MinInt64 && wm != math.MaxInt64 {
		wmTime = time.Unix(0, wm)
		w.m.setWatermarkLag(w.e.opts.Clock().Sub(wmTime).Seconds())
	}
	w.setStatus(func(st *PartitionStatus) { st.Watermark = wmTime })
}
