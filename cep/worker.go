package cep

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
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

// maxQueuedRecords is how many fetched records may wait for a worker before
// its partition is paused; it is resumed when half of them are done.
const maxQueuedRecords = 100_000

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
	cl     *kgo.Client
	log    *slog.Logger
	topic  string
	tbytes []byte // topic, for Line.Topic
	part   int32
	pid    state.PartitionID
	source string // "topic/partition": matcher positions, alert ids
	sink   *sink

	// streams are this worker's copies of the engine's streams that read
	// the topic, each with its own matcher.Partition; sps[i] is the state
	// of streams[i].
	streams []*stream
	sps     []*streamPart
	byPart  map[*stream]*streamPart

	// Hand-over from the poll loop, under qmu.
	qmu    sync.Mutex
	queue  []fetched
	queued int  // records in queue
	paused bool // fetching of the partition is paused
	gone   bool // the worker stopped: drop what comes
	wake   chan struct{}

	// ctx ends when the worker must stop at once (lost, or the drain gave
	// up); revoke is closed to ask it to finish and checkpoint.
	ctx      context.Context
	cancel   context.CancelFunc
	revoke   chan struct{}
	stopOnce sync.Once
	// restored is closed once the partition is restored; resumeAt is then
	// the offset to fetch from (-1: Kafka's committed offset).
	restored chan struct{}
	resumeAt int64
	done     chan struct{}
	// drainTimer cancels ctx when a revoked worker takes longer than
	// DrainTimeout to finish.
	drainTimer *time.Timer

	// Worker goroutine only.
	gen         int64 // fencing generation of this ownership
	next        int64 // offset after the last record processed; -1: none yet
	readTo      int64 // records below it were read by an earlier owner
	storeEmpty  bool  // the Store holds no key of this partition but evicted ones
	uncommitted int   // records processed since the last checkpoint
	lastCommit  time.Time
	failing     bool // the last Store call failed
	backoff     time.Duration
	retryAt     time.Time
	decoded     []decodedRecord
	pushes      []push
	line        Line
	layout      rules.Layout // of the events decoded last
	loads       []loadKey
	loadNames   []string
	cur         *kgo.Record // the record being pushed, for Late
	curLate     bool
	// commitFailing is set while checkpoints fail; failing also covers
	// loads.
	commitFailing  bool
	kafkaCommitted int64                        // offset last sent to Kafka; -1 none
	storeOffset    int64                        // offset of the last checkpoint in the Store; -1 none
	draining       bool                         // revoked: the last checkpoint commits to Kafka itself
	ruleStats      map[string]matcher.RuleStats // per "ruleset/rule", last seen
	ruleNames      map[string][2]string         // "ruleset/rule" to its labels
	alertCtr       map[string]*ruleCounters
	// plan is the engine's plan the streams come from; dropKeys are Store
	// keys of streams dropped by a reload, deleted by the next checkpoint.
	plan     *enginePlan
	dropKeys []string

	// planGen is the generation of plan, for SetRulesets to wait on;
	// switched is signalled after each switch.
	planGen  atomic.Int64
	switched chan struct{}

	smu sync.Mutex
	st  PartitionStatus
}

// fetched is one poll's records of the partition.
type fetched struct {
	recs []*kgo.Record
	hw   int64 // the partition's high watermark at the fetch
}

// decodedRecord is what became of one fetched record.
type decodedRecord struct {
	rec      *kgo.Record
	from, to int   // w.pushes[from:to] are its records
	dead     error // why it is dead-lettered
}

// streamPart is a worker's state of one stream: the partition of the
// matcher and what the worker knows of the stream's keys in the Store.
type streamPart struct {
	s    *stream
	ns   string // prefix of the stream's keys in the Store
	ooo  int64  // max out-of-orderness, ns
	idle time.Duration
	// saved is the matcher checkpoint last committed: a checkpoint with no
	// key and no record to record is still written when it moved.
	saved matcher.Checkpoint
	// skipBelow is the restored watermark: records read by an earlier owner
	// (below readTo) with an earlier event time were matched, or reported
	// late, before the checkpoint, and are skipped.
	skipBelow int64
	lastSeen  time.Time // Clock time of the last record pushed
	// fresh marks a stream added by a reload: the Store holds no key of
	// it, so none is looked for.
	fresh bool

	// deadlines holds the earliest window close of every key with state
	// and an open window, resident or not, as of the last checkpoint plus
	// pending changes: it goes into each checkpoint, so that after a
	// restart the keys whose windows close are loaded in time.
	deadlines map[string]int64
	// evicted are keys whose state is in the Store only, with their
	// deadline (noWindow when none); due orders those with a deadline.
	evicted map[string]int64
	due     deadlineHeap
	// recent are the keys pushed since the last checkpoint: eviction
	// spares them while it can. They are tracked only while crowded: the
	// keys in memory are over half MaxResidentKeys at the last checkpoint.
	recent  map[string]struct{}
	crowded bool
	// absent are keys known to have no state in the Store, so that they
	// are not asked for again and again. Bounded: cleared when it grows
	// past the resident cap.
	absent map[string]struct{}
	// pending are keys whose Store state may differ from memory: changes
	// taken from the matcher but not yet committed. One that is not
	// resident holds no state, whatever the Store says until the next
	// commit deletes it, so it is never loaded.
	pending map[string]struct{}
}

// noWindow marks an evicted key without an open window.
const noWindow = math.MaxInt64

func newWorker(e *Engine, cl *kgo.Client, topic string, part int32) *worker {
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{
		e:         e,
		cl:        cl,
		topic:     topic,
		tbytes:    []byte(topic),
		part:      part,
		pid:       state.PartitionID{Group: e.opts.Group, Topic: topic, Partition: part},
		source:    topic + "/" + strconv.Itoa(int(part)),
		log:       e.log.With("topic", topic, "partition", part),
		wake:      make(chan struct{}, 1),
		switched:  make(chan struct{}, 1),
		ctx:       ctx,
		cancel:    cancel,
		revoke:    make(chan struct{}),
		restored:  make(chan struct{}),
		done:      make(chan struct{}),
		resumeAt:  -1,
		next:      -1,
		byPart:    map[*stream]*streamPart{},
		ruleStats: map[string]matcher.RuleStats{},
		ruleNames: map[string][2]string{},
		alertCtr:  map[string]*ruleCounters{},

		kafkaCommitted: -1,
		storeOffset:    -1,
	}
	w.sink = newSink(cl, w.log, e.metrics)
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

// enqueue hands a poll's records of the partition to the worker. It never
// blocks: when too many records wait, the partition is paused.
func (w *worker) enqueue(recs []*kgo.Record, hw int64) {
	w.qmu.Lock()
	defer w.qmu.Unlock()
	if w.gone {
		return
	}
	w.queue = append(w.queue, fetched{recs: recs, hw: hw})
	w.queued += len(recs)
	if w.queued >= maxQueuedRecords && !w.paused {
		w.paused = true
		w.cl.PauseFetchPartitions(map[string][]int32{w.topic: {w.part}})
		w.setStatus(func(st *PartitionStatus) { st.Paused = true })
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// take removes the oldest queued batch.
func (w *worker) take() (fetched, bool) {
	w.qmu.Lock()
	defer w.qmu.Unlock()
	if len(w.queue) == 0 {
		return fetched{}, false
	}
	f := w.queue[0]
	w.queue[0] = fetched{}
	w.queue = w.queue[1:]
	w.queued -= len(f.recs)
	if w.paused && w.queued <= maxQueuedRecords/2 {
		w.paused = false
		w.cl.ResumeFetchPartitions(map[string][]int32{w.topic: {w.part}})
		w.setStatus(func(st *PartitionStatus) { st.Paused = false })
	}
	return f, true
}

// retire drops the queue and stops the hand-over. A paused partition is
// resumed: pauses outlive assignments, and the partition may come back.
func (w *worker) retire() {
	w.qmu.Lock()
	defer w.qmu.Unlock()
	w.gone = true
	w.queue, w.queued = nil, 0
	if w.paused {
		w.paused = false
		w.cl.ResumeFetchPartitions(map[string][]int32{w.topic: {w.part}})
	}
}

func (w *worker) run() {
	defer close(w.done)
	defer func() {
		// stopOnce orders this read after the write in stop.
		w.stopOnce.Do(func() {})
		if w.drainTimer != nil {
			w.drainTimer.Stop()
		}
		w.cancel()
	}()
	defer w.retire()
	defer w.e.metrics.forget(w.topic, w.part)
	if !w.restore() {
		return
	}
	w.maybeSwitch()
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-w.revoke:
			w.drain()
			return
		case <-w.wake:
			if !w.processQueue() {
				return
			}
		case <-tick.C:
			if !w.idleAdvance() {
				return
			}
		}
		// A reload (SetRulesets) pokes wake; an idle worker switches here.
		w.maybeSwitch()
		if !w.maybeCheckpoint() {
			return
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
		if w.commitFailing && w.uncommitted >= w.e.opts.MaxUncommittedRecords {
			return true
		}
		// Between batches: the one place a reload switches the rules.
		w.maybeSwitch()
		f, ok := w.take()
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

// fenced stops the worker for good: a newer owner has the partition. Its
// fetching is paused until the group takes the partition away (the next
// assignment resumes it).
func (w *worker) fenced(err error) {
	w.log.Warn("partition fenced by a newer owner: dropping its state", "err", err)
	w.qmu.Lock()
	w.gone = true
	w.queue, w.queued = nil, 0
	if !w.paused {
		w.paused = true
		w.cl.PauseFetchPartitions(map[string][]int32{w.topic: {w.part}})
	}
	w.qmu.Unlock()
	w.setStatus(func(st *PartitionStatus) {
		st.Fenced = true
		st.Paused = true
	})
	// The worker stays, reported fenced (not ready), until the group
	// revokes the partition or it is lost.
	select {
	case <-w.revoke:
	case <-w.ctx.Done():
	}
}

// errStopping ends a Store retry loop when the worker is asked to stop.
var errStopping = errors.New("partition worker stopping")

// restore loads the partition's checkpoint, claims the partition and
// restores each stream's watermark, retrying while the Store fails. It
// returns false when the worker is stopped first.
func (w *worker) restore() bool {
	for {
		if p := w.e.plan.Load(); p != w.plan {
			// Reloaded before the partitions exist: nothing to carry over.
			w.initStreams(p)
		}
		err := w.tryRestore()
		if err == nil {
			w.setFailing(nil)
			w.setStatus(func(st *PartitionStatus) {
				st.Restored = true
				st.CommittedOffset = w.resumeAt
			})
			close(w.restored)
			return true
		}
		w.setFailing(err)
		w.log.Warn("restore partition", "err", err)
		if !w.sleep(w.backoff) {
			return false
		}
	}
}

func (w *worker) tryRestore() error {
	st := w.e.opts.Store
	cp, ok, err := st.LoadCheckpoint(w.ctx, w.pid)
	if err != nil {
		return fmt.Errorf("load checkpoint: %w", err)
	}
	claim := state.Checkpoint{Offset: -1, Generation: cp.Generation + 1, Streams: cp.Streams}
	if ok {
		claim.Offset = cp.Offset
	}
	// Claiming with a higher generation fences the previous owner: should
	// it still be running (a zombie that lost the partition without
	// noticing), its next commit fails instead of overwriting ours.
	if err := st.Commit(w.ctx, w.pid, nil, nil, claim); err != nil {
		return fmt.Errorf("claim partition: %w", err)
	}
	w.gen = claim.Generation
	w.resumeAt = claim.Offset
	w.storeOffset = claim.Offset
	w.next = claim.Offset
	w.readTo = claim.Offset
	w.storeEmpty = claim.Offset < 0
	now := w.e.opts.Clock()
	for _, sp := range w.sps {
		sp.deadlines = map[string]int64{}
		sp.evicted = map[string]int64{}
		sp.due = nil
		sp.recent = map[string]struct{}{}
		sp.absent = map[string]struct{}{}
		sp.pending = map[string]struct{}{}
		sp.skipBelow = math.MinInt64
		sp.lastSeen = now
		sp.s.part, err = matcher.NewPartition(sp.s.prog, w, matcher.Options{
			MaxOutOfOrderness: sp.s.rulesets[0].Stream.MaxOutOfOrderness,
			MaxRunsPerKey:     w.e.opts.MaxRunsPerKey,
			Clock:             w.e.opts.Clock,
			Logger:            w.log,
		})
		if err != nil {
			return err
		}
	}
	if ok && len(cp.Streams) > 0 {
		saved, err := decodeStreams(cp.Streams)
		if err != nil {
			// The key states are still usable: only the watermarks and the
			// deadline index are gone, so the partition goes on from its
			// offset as if new, rather than not at all.
			w.log.Error("checkpoint streams unreadable: watermarks start over", "err", err)
			return nil
		}
		w.readTo = max(w.readTo, saved.readTo)
		for _, sp := range w.sps {
			ss, ok := saved.streams[sp.ns]
			if !ok {
				continue
			}
			if err := sp.s.part.Restore(ss.cp); err != nil {
				return err
			}
			sp.skipBelow = ss.cp.Watermark
			sp.saved = ss.cp
			for k, d := range ss.deadlines {
				sp.deadlines[k] = d
				sp.evicted[k] = d
				sp.due.push(d, k)
			}
		}
	}
	w.log.Info("partition restored", "offset", w.resumeAt, "generation", w.gen)
	return nil
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

func (w *worker) nextBackoff() time.Duration {
	if w.backoff == 0 {
		w.backoff = minBackoff
	} else {
		w.backoff = min(2*w.backoff, maxBackoff)
	}
	return w.backoff
}

// setFailing records the outcome of a Store call: not ready while it
// fails.
func (w *worker) setFailing(err error) {
	w.failing = err != nil
	if err == nil {
		w.backoff = 0
		w.setStatus(func(st *PartitionStatus) { st.StoreError = "" })
		return
	}
	w.e.metrics.storeErrors.Inc()
	w.retryAt = time.Now().Add(w.nextBackoff())
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

// process decodes, keys and times a batch's records like Replay does, loads
// the keys the batch needs from the Store in one call, then pushes the
// records in offset order. A Store error leaves the batch unprocessed (it
// is retried until it works, or the worker stops).
func (w *worker) process(f fetched) error {
	w.decoded = w.decoded[:0]
	clear(w.pushes)
	w.pushes = w.pushes[:0]
	for _, r := range f.recs {
		if r.Offset < w.next {
			continue // fetched twice (a seek back): already processed
		}
		w.decodeRecord(r)
	}
	for {
		err := w.loadNeeded()
		if err == nil {
			break
		}
		if errors.Is(err, state.ErrFenced) {
			return err
		}
		w.setFailing(err)
		w.log.Warn("load keys", "err", err)
		if !w.sleep(w.backoff) {
			return errStopping
		}
	}
	if w.failing && !w.commitFailing {
		w.setFailing(nil)
	}
	now := w.e.opts.Clock()
	var events, skipped int
	for i := range w.decoded {
		d := &w.decoded[i]
		w.cur, w.curLate = d.rec, false
		for _, p := range w.pushes[d.from:d.to] {
			sp := w.partOf(p.s)
			if sp.crowded {
				sp.recent[p.rec.Key] = struct{}{}
			}
			sp.lastSeen = now
			sp.s.part.Push(p.rec)
		}
		if d.to > d.from {
			events++
		}
		if d.dead != nil {
			if d.rec.Offset >= w.readTo {
				w.deadLetter(d.rec, d.dead)
			} else {
				skipped++
			}
		} else if d.to == d.from {
			skipped++ // read by an earlier owner, behind its watermark
		}
		w.next = d.rec.Offset + 1
	}
	w.cur = nil
	w.uncommitted += len(w.decoded)
	m := w.e.metrics
	m.records.WithLabelValues(w.topic).Add(float64(len(w.decoded)))
	m.events.WithLabelValues(w.topic).Add(float64(events))
	if skipped > 0 {
		m.skipped.WithLabelValues(w.topic).Add(float64(skipped))
	}
	if f.hw >= 0 && w.next >= 0 {
		m.consumerLag.WithLabelValues(w.topic, strconv.Itoa(int(w.part))).Set(float64(max(f.hw-w.next, 0)))
	}
	n := uint64(len(w.decoded))
	w.setStatus(func(st *PartitionStatus) {
		st.NextOffset = w.next
		st.Records += n
		st.Uncommitted = w.uncommitted
	})
	return nil
}

// decodeRecord turns one Kafka record into pushes, as decodeLine does for a
// file's line: the record's value is the event, its key and timestamp
// stand in for a missing key or time expression.
func (w *worker) decodeRecord(r *kgo.Record) {
	d := decodedRecord{rec: r, from: len(w.pushes), to: len(w.pushes)}
	if r.Value == nil {
		d.dead = ErrTombstone
		w.decoded = append(w.decoded, d)
		return
	}
	ms := r.Timestamp.UnixMilli()
	w.line = Line{
		Event:      r.Value,
		Envelope:   true,
		Topic:      w.tbytes,
		Key:        r.Key,
		HasKey:     r.Key != nil,
		TimeMillis: ms,
		HasTime:    !r.Timestamp.IsZero() && ms >= 0 && ms <= math.MaxInt64/1_000_000,
		Partition:  int64(r.Partition),
		Offset:     r.Offset,
	}
	w.pushes, _, d.dead = decodeEvent(w.streams, &w.layout, &w.line, matcher.Position{Source: w.source, Offset: r.Offset}, w.pushes)
	if r.Offset < w.readTo {
		// Read by an earlier owner: what was behind its watermark was
		// matched or reported late before its checkpoint.
		kept := d.from
		for _, p := range w.pushes[d.from:] {
			if p.rec.Time >= w.partOf(p.s).skipBelow {
				w.pushes[kept] = p
				kept++
			}
		}
		clear(w.pushes[kept:])
		w.pushes = w.pushes[:kept]
	}
	d.to = len(w.pushes)
	w.decoded = append(w.decoded, d)
}

// loadKey is a key the Store may hold state for.
type loadKey struct {
	sp  *streamPart
	key string
}

// loadNeeded restores, in one Store call, every key the decoded batch
// pushes that is not in memory but may be stored, and every evicted key
// whose window closes before the watermark the batch raises.
func (w *worker) loadNeeded() error {
	w.loads = w.loads[:0]
	var seen map[loadKey]bool // allocated for the first key to load
	collected := false
	for _, p := range w.pushes {
		sp := w.partOf(p.s)
		if !w.needsLoad(sp, p.rec.Key) {
			continue
		}
		if !collected {
			// Only now, as it costs a map: with the changes in pending,
			// needsLoad knows the keys emptied since the last checkpoint.
			w.collectChanges()
			collected = true
			if !w.needsLoad(sp, p.rec.Key) {
				continue
			}
		}
		if seen == nil {
			seen = map[loadKey]bool{}
		}
		if k := (loadKey{sp, p.rec.Key}); !seen[k] {
			seen[k] = true
			w.loads = append(w.loads, k)
		}
	}
	for _, sp := range w.sps {
		if len(sp.due) == 0 {
			continue
		}
		wm := sp.s.part.Watermark()
		for _, p := range w.pushes {
			if p.s == sp.s {
				wm = max(wm, satSub(p.rec.Time, sp.ooo))
			}
		}
		if seen == nil {
			seen = map[loadKey]bool{}
		}
		w.loads = sp.appendDue(w.loads, wm, seen)
	}
	return w.load()
}

// partOf returns the state of one of the worker's streams.
func (w *worker) partOf(s *stream) *streamPart {
	if len(w.sps) == 1 {
		return w.sps[0] // the common case: one stream per topic
	}
	return w.byPart[s]
}

// needsLoad reports whether key's state may be in the Store while it is
// not in memory. It may say yes wrongly for a key emptied since the last
// checkpoint until collectChanges has run.
func (w *worker) needsLoad(sp *streamPart, key string) bool {
	if sp.s.part.Resident(key) {
		return false
	}
	if _, ok := sp.evicted[key]; ok {
		return true
	}
	if w.storeEmpty || sp.fresh {
		return false
	}
	if _, ok := sp.pending[key]; ok {
		return false
	}
	_, ok := sp.absent[key]
	return !ok
}

// collectChanges moves the keys the matcher changed into pending. It runs
// before every decision to load keys: a key whose window closed since the
// last checkpoint may have lost all its state, and the Store, not yet told,
// would give it back.
func (w *worker) collectChanges() int {
	n := 0
	for _, sp := range w.sps {
		changed, emptied := sp.s.part.Changes()
		for _, k := range changed {
			sp.pending[k] = struct{}{}
		}
		for _, k := range emptied {
			sp.pending[k] = struct{}{}
		}
		n += len(sp.pending)
	}
	return n
}

// appendDue appends the evicted keys whose windows close before the
// watermark wm (at or before wm-1, when the matcher fires them).
func (sp *streamPart) appendDue(dst []loadKey, wm int64, seen map[loadKey]bool) []loadKey {
	for len(sp.due) > 0 && sp.due[0].deadline <= wm-1 {
		e := sp.due.pop()
		if d, ok := sp.evicted[e.key]; !ok || d != e.deadline {
			continue // loaded since, or evicted again with another deadline
		}
		if k := (loadKey{sp, e.key}); !seen[k] {
			seen[k] = true
			dst = append(dst, k)
		}
	}
	return dst
}

// load restores w.loads from the Store in one call.
func (w *worker) load() error {
	if len(w.loads) == 0 {
		return nil
	}
	w.loadNames = w.loadNames[:0]
	for _, l := range w.loads {
		w.loadNames = append(w.loadNames, l.sp.ns+l.key)
	}
	got, err := w.e.opts.Store.LoadKeys(w.ctx, w.pid, w.loadNames)
	if err != nil {
		// Keys popped from due for this load come back with the retry:
		// they are still evicted, and the retry recomputes the list.
		for _, l := range w.loads {
			if d, ok := l.sp.evicted[l.key]; ok && d != noWindow {
				l.sp.due.push(d, l.key)
			}
		}
		return fmt.Errorf("load keys: %w", err)
	}
	var loaded int
	for i, l := range w.loads {
		sp := l.sp
		delete(sp.evicted, l.key)
		data, ok := got[w.loadNames[i]]
		if !ok {
			sp.absent[l.key] = struct{}{}
			continue
		}
		loaded++
		if err := sp.s.part.RestoreKey(l.key, data); err != nil {
			// A corrupt state cannot be matched on; the key starts over
			// rather than stopping the partition.
			w.e.metrics.badStates.Inc()
			w.log.Error("restore key state: dropped", "key", l.key, "err", err)
		}
		if !sp.s.part.Resident(l.key) {
			// Nothing of it survived (its rules changed or it was corrupt):
			// delete it at the next checkpoint.
			sp.pending[l.key] = struct{}{}
			sp.absent[l.key] = struct{}{}
			delete(sp.deadlines, l.key)
		}
	}
	w.e.metrics.loadedKeys.Add(float64(loaded))
	return nil
}

// idleAdvance moves the watermark of every stream that has been quiet for
// its idle_timeout with the wall clock, so that windows close and absence
// rules fire on a quiet partition (docs/semantics.md). It returns false when the
// worker must stop.
func (w *worker) idleAdvance() bool {
	w.collectChanges()
	now := w.e.opts.Clock()
	w.loads = w.loads[:0]
	var wms []int64
	seen := map[loadKey]bool{}
	for _, sp := range w.sps {
		wm := int64(math.MinInt64)
		// A partition that never saw an event has no window to close; its
		// watermark stays, so that the first events it gets (a replay of
		// older data, say) are not late only because it was idle.
		if sp.idle > 0 && now.Sub(sp.lastSeen) >= sp.idle && sp.s.part.Checkpoint().MaxTime != math.MinInt64 {
			wm = satSub(now.UnixNano(), sp.ooo)
			w.loads = sp.appendDue(w.loads, wm, seen)
		}
		wms = append(wms, wm)
	}
	if len(w.loads) > 0 {
		if err := w.load(); err != nil {
			if errors.Is(err, state.ErrFenced) {
				w.fenced(err)
				return false
			}
			w.setFailing(err)
			w.log.Warn("load keys", "err", err)
			return true // retried at the next tick
		}
	}
	for i, sp := range w.sps {
		if wms[i] > sp.s.part.Watermark() {
			sp.s.part.Advance(wms[i])
		}
	}
	return true
}

// satSub is a - b, saturated at math.MinInt64 (watermarks start there).
func satSub(a, b int64) int64 {
	if a < math.MinInt64+b {
		return math.MinInt64
	}
	return a - b
}

// maybeCheckpoint checkpoints when one is due: every CheckpointInterval,
// or at the retry time while the Store fails. It returns false when the
// worker must stop.
func (w *worker) maybeCheckpoint() bool {
	now := time.Now()
	if w.commitFailing {
		if now.Before(w.retryAt) {
			return true
		}
	} else if now.Sub(w.lastCommit) < w.e.opts.CheckpointInterval && w.uncommitted < w.e.opts.MaxUncommittedRecords {
		// A backlog reaching MaxUncommittedRecords checkpoints at once, so
		// that a failing Store is noticed before the partition runs past
		// the bound, whatever the interval.
		return true
	}
	// A checkpoint that hangs (outputs never acknowledged) fails and is
	// retried like a Store failure, reported as not ready.
	ctx, cancel := context.WithTimeout(w.ctx, w.e.opts.DrainTimeout)
	err := w.checkpoint(ctx)
	cancel()
	if err == nil {
		// Batches left queued while the Store failed go on now.
		w.qmu.Lock()
		if len(w.queue) > 0 {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
		w.qmu.Unlock()
		return true
	}
	if errors.Is(err, state.ErrFenced) {
		w.fenced(err)
		return false
	}
	if w.ctx.Err() != nil {
		return false
	}
	w.commitFailing = true
	w.setFailing(err)
	w.log.Warn("checkpoint", "err", err)
	return true
}

// drain is the end of a revoked partition: the batch in hand is done (the
// worker is between batches here); what is queued is dropped (the next
// owner fetches it again); a last checkpoint is written, retried until
// DrainTimeout after the revocation (drainTimer then ends ctx).
func (w *worker) drain() {
	w.retire()
	// A reload may have dropped the topic (SetRulesets stops its workers
	// this way): switched first, the last checkpoint deletes the keys of
	// the streams no ruleset reads any more.
	w.maybeSwitch()
	w.draining = true
	for {
		err := w.checkpoint(w.ctx)
		if err == nil {
			// Synchronously, so that the commit is in before the partition
			// moves (it also waits for earlier asynchronous ones).
			if w.storeOffset >= 0 {
				w.commitKafka(w.ctx, w.storeOffset)
			}
			return
		}
		if errors.Is(err, state.ErrFenced) {
			w.log.Warn("partition fenced by a newer owner: dropping its state", "err", err)
			return
		}
		w.commitFailing = true
		w.setFailing(err)
		if !w.sleepCtx(w.backoff) {
			w.log.Error("last checkpoint of a revoked partition failed: the next owner re-reads from the previous one", "err", err)
			return
		}
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

// checkpoint makes everything processed durable, in the order that makes a
// crash at any point safe (docs/design.md#runtime): (1) the records produced so far
// (alerts, late, dead letters) are acknowledged; (2) the changed key states,
// the emptied keys and the checkpoint (resume offset, generation, stream
// watermarks and deadline index) are committed to the Store atomically;
// (3) only then the same offset is committed to Kafka. Keys over
// MaxResidentKeys are evicted after.
func (w *worker) checkpoint(ctx context.Context) error {
	start := time.Now()
	pendingKeys := w.collectChanges()
	moved := false
	for _, sp := range w.sps {
		moved = moved || sp.s.part.Checkpoint() != sp.saved
	}
	if pendingKeys == 0 && w.uncommitted == 0 && len(w.dropKeys) == 0 && (!moved || w.next < 0) {
		w.lastCommit = start
		// The gauges still follow the wall clock: the watermark lag of a
		// quiet partition grows until its idle timeout.
		w.observe()
		return nil // nothing new to record
	}
	if err := w.sink.wait(ctx); err != nil {
		return fmt.Errorf("flush outputs: %w", err)
	}
	var put []state.KeyState
	del := slices.Clone(w.dropKeys) // of streams a reload dropped
	var bytes int
	for _, sp := range w.sps {
		for k := range sp.pending {
			if b, ok := sp.s.part.AppendKeyState(nil, k); ok {
				put = append(put, state.KeyState{Key: sp.ns + k, State: b})
				bytes += len(b)
				if d, ok := sp.s.part.KeyDeadline(k); ok {
					sp.deadlines[k] = d
				} else {
					delete(sp.deadlines, k)
				}
			} else {
				del = append(del, sp.ns+k)
				delete(sp.deadlines, k)
			}
		}
	}
	offset := w.resumeOffset()
	readTo := max(w.readTo, w.next)
	cp := state.Checkpoint{Offset: offset, Generation: w.gen, Streams: w.encodeStreams(readTo)}
	if err := w.e.opts.Store.Commit(ctx, w.pid, put, del, cp); err != nil {
		w.e.metrics.checkpointErrors.Inc()
		return fmt.Errorf("commit: %w", err)
	}
	for _, sp := range w.sps {
		for k := range sp.pending {
			if !sp.s.part.Resident(k) {
				sp.absent[k] = struct{}{}
			}
		}
		clear(sp.pending)
		sp.saved = sp.s.part.Checkpoint()
	}
	w.storeEmpty = w.storeEmpty && len(put) == 0
	w.dropKeys = nil
	w.uncommitted = 0
	w.commitFailing = false
	w.setFailing(nil)
	w.storeOffset = offset
	if offset >= 0 && offset != w.kafkaCommitted && !w.draining {
		w.commitKafkaAsync(offset)
	}
	w.lastCommit = time.Now()
	evicted := w.evict()
	for _, sp := range w.sps {
		clear(sp.recent)
		if len(sp.absent) > w.e.opts.MaxResidentKeys {
			clear(sp.absent)
		}
	}
	m := w.e.metrics
	m.checkpointSeconds.Observe(time.Since(start).Seconds())
	m.committedKeys.Add(float64(len(put) + len(del)))
	m.committedBytes.Add(float64(bytes))
	m.evictedKeys.Add(float64(evicted))
	w.observe()
	w.setStatus(func(st *PartitionStatus) {
		st.CommittedOffset = offset
		st.Uncommitted = 0
	})
	return nil
}

// resumeOffset is where a restart resumes: the oldest record any stream
// still buffers, else the next record. -1 when nothing was read.
func (w *worker) resumeOffset() int64 {
	off := w.next
	for _, sp := range w.sps {
		if o, ok := sp.s.part.OldestBuffered(); ok && (off < 0 || o < off) {
			off = o
		}
	}
	return off
}

// commitKafkaAsync commits offset to the group without waiting: the
// Store's checkpoint, not Kafka's offset, is where the next owner resumes,
// so the worker need not wait, and a failure is only logged (a lagging
// Kafka offset costs nothing but lag metrics).
func (w *worker) commitKafkaAsync(offset int64) {
	w.kafkaCommitted = offset
	w.cl.CommitOffsets(context.Background(), map[string]map[int32]kgo.EpochOffset{
		w.topic: {w.part: {Epoch: -1, Offset: offset}},
	}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err == nil {
			err = commitResponseErr(resp)
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			w.log.Warn("commit offset to kafka", "offset", offset, "err", err)
		}
	})
}

// commitKafka commits offset to the group and waits for it, as a revoked
// partition must. A failure is only logged, as in commitKafkaAsync.
func (w *worker) commitKafka(ctx context.Context, offset int64) {
	var cerr error
	w.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{
		w.topic: {w.part: {Epoch: -1, Offset: offset}},
	}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		cerr = commitResponseErr(resp)
	})
	if cerr != nil {
		w.log.Warn("commit offset to kafka", "offset", offset, "err", cerr)
		return
	}
	w.kafkaCommitted = offset
}

// evict drops keys from memory until each stream is within
// MaxResidentKeys: first keys not pushed since the previous checkpoint,
// then any, never keys with buffered records. It runs right after a
// successful commit, when every key in memory is also in the Store.
func (w *worker) evict() int {
	limit := w.e.opts.MaxResidentKeys
	var n int
	for _, sp := range w.sps {
		resident := sp.s.part.Stats().Keys
		sp.crowded = resident > limit/2
		if resident <= limit {
			continue
		}
		buffered := sp.s.part.BufferedKeys()
		keys := sp.s.part.ResidentKeys()
		for _, hot := range []bool{false, true} {
			for _, k := range keys {
				if resident <= limit {
					break
				}
				if _, recent := sp.recent[k]; recent != hot || buffered[k] || !sp.s.part.Resident(k) {
					continue
				}
				d, ok := sp.s.part.KeyDeadline(k)
				if !ok {
					d = noWindow
				}
				sp.s.part.Evict(k)
				sp.evicted[k] = d
				if d != noWindow {
					sp.due.push(d, k)
				}
				delete(sp.absent, k)
				resident--
				n++
			}
		}
		if len(sp.due) > 2*len(sp.evicted)+1024 {
			// Keys loaded or evicted again leave stale entries behind;
			// rebuilt, the heap stays within a small factor of evicted.
			sp.due = sp.due[:0]
			for k, d := range sp.evicted {
				if d != noWindow {
					sp.due = append(sp.due, deadlineEntry{d, k})
				}
			}
			heap.Init(&sp.due)
		}
	}
	return n
}

// observe updates the partition's gauges and the per-rule counters the
// matcher keeps (as deltas since the last call).
func (w *worker) observe() {
	m := w.e.metrics
	p := strconv.Itoa(int(w.part))
	var live, keys, buffered int
	wm := int64(math.MaxInt64)
	for _, sp := range w.sps {
		st := sp.s.part.Stats()
		live += st.LiveRuns
		keys += st.Keys
		buffered += st.Buffered
		wm = min(wm, sp.s.part.Watermark())
		for name, rs := range st.ByRule {
			last := w.ruleStats[name]
			c := w.counters(name)
			c.timeouts.Add(delta(rs.Timeouts, last.Timeouts))
			c.dropped.Add(delta(rs.Dropped, last.Dropped))
			c.celErrors.Add(delta(rs.CELErrors, last.CELErrors))
			w.ruleStats[name] = rs
		}
	}
	m.partialMatches.WithLabelValues(w.topic, p).Set(float64(live))
	m.residentKeys.WithLabelValues(w.topic, p).Set(float64(keys))
	m.bufferedEvents.WithLabelValues(w.topic, p).Set(float64(buffered))
	var wmTime time.Time
	if wm != math.MinInt64 && wm != math.MaxInt64 {
		wmTime = time.Unix(0, wm)
		m.watermarkLag.WithLabelValues(w.topic, p).Set(w.e.opts.Clock().Sub(wmTime).Seconds())
	}
	w.setStatus(func(st *PartitionStatus) { st.Watermark = wmTime })
}

// Alert implements matcher.Output: the alert goes to the alerts topic,
// keyed by its id, and to OnAlert.
func (w *worker) Alert(a *matcher.Alert) {
	w.counters(a.Ruleset + "/" + a.Rule).alerts.Inc()
	w.sink.produce(&kgo.Record{
		Topic: w.e.opts.AlertsTopic,
		Key:   []byte(a.ID),
		Value: a.AppendJSON(nil),
	})
	if w.e.opts.OnAlert != nil {
		w.e.opts.OnAlert(a)
	}
}

// Late implements matcher.Output. Only the record being pushed can be late,
// so it is the Kafka record in hand; a record late in several streams is
// sent once.
func (w *worker) Late(r *matcher.Record) {
	if w.cur == nil || w.curLate {
		return
	}
	w.curLate = true
	w.e.metrics.late.WithLabelValues(w.topic).Inc()
	reason := fmt.Sprintf("late: event time %s is behind the watermark", time.Unix(0, r.Time).UTC().Format(time.RFC3339Nano))
	w.sink.produce(copyRecord(w.cur, w.e.opts.LateTopic, reason))
}

// deadLetter sends a record that could not be used to the dead-letter
// topic with the reason.
func (w *worker) deadLetter(r *kgo.Record, reason error) {
	w.e.metrics.deadLettered.WithLabelValues(w.topic, deadReason(reason)).Inc()
	if w.log.Enabled(context.Background(), slog.LevelDebug) {
		w.log.Debug("dead-lettered", "offset", r.Offset, "err", reason)
	}
	w.sink.produce(copyRecord(r, w.e.opts.DeadLetterTopic, reason.Error()))
}

// deadReason is the metric label of a dead-letter reason.
func deadReason(err error) string {
	switch {
	case errors.Is(err, ErrTombstone):
		return "tombstone"
	case errors.Is(err, errNoKey):
		return "no_key"
	case errors.Is(err, errNoTime):
		return "no_time"
	default:
		return "invalid_event"
	}
}

// copyRecord is r for topic: the original key, value and headers plus the
// reason header.
func copyRecord(r *kgo.Record, topic, reason string) *kgo.Record {
	headers := make([]kgo.RecordHeader, 0, len(r.Headers)+1)
	headers = append(headers, r.Headers...)
	headers = append(headers, kgo.RecordHeader{Key: ReasonHeader, Value: []byte(reason)})
	return &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: headers}
}
