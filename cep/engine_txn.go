package cep

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shrike-cep/shrike/state"
)

// Exactly-once outputs (docs/design.md#exactly-once-outputs). One Kafka
// transaction per instance and checkpoint interval carries every output
// record the instance's workers produced in the interval and, for each
// partition that produced, its resume offset tagged with the checkpoint
// staged in the Store for it. The poll goroutine ends each interval with a
// barrier:
//
//	B1 the workers stop between two units of work (the barrier lock);
//	B2 each flushes its outputs and stages its checkpoint in the Store
//	   (Store.Stage; a worker that produced nothing commits as usual);
//	B3 the transaction commits the staged partitions' offsets, each with
//	   the tag txnTag(generation, seq) as metadata, and ends: this is the
//	   decision, visible to read_committed consumers at once;
//	B4 committed: each staged checkpoint is promoted (Store.Promote) and
//	   the interval's alerts go to OnAlert; aborted (a rebalance, a Store
//	   or produce failure, a fenced partition): every worker goes back to
//	   its last checkpoint;
//	B5 the next transaction begins and the workers go on.
//
// A crash anywhere leaves at most one pending checkpoint per partition;
// its next owner asks Kafka whether the tag was committed and promotes or
// discards it (resolvePending), so its state and offset match exactly the
// outputs that were committed.

// maxEndWait bounds the end of a transaction: its requests take
// milliseconds, but a rebalance in progress keeps the heartbeat End waits
// for from coming until the barrier gives up.
const maxEndWait = 3 * time.Second

// txnCoordinator runs the barriers of an exactly-once engine.
type txnCoordinator struct {
	e    *Engine
	sess *kgo.GroupTransactSession

	// mu is the barrier lock: workers hold it shared for each unit of
	// work, the barrier exclusively. wanted asks the workers to yield
	// between batches while a barrier waits for it.
	mu     sync.RWMutex
	wanted atomic.Bool
	// abortNext makes the next barrier abort: workers stopped outside a
	// rebalance (their topic dropped by a reload) left outputs in the open
	// transaction with no checkpoint to go with them.
	abortNext atomic.Bool
	closed    bool // under mu: no more transactions; workers do nothing

	// stageTimeout bounds how long a barrier retries the Store before it
	// aborts the transaction (a Store outage); endTimeout how long it
	// waits for the transaction to end.
	stageTimeout time.Duration
	endTimeout   time.Duration

	// pmu guards the poll loop's wake-ups and the rewound workers.
	pmu        sync.Mutex
	cancelPoll context.CancelFunc // ends the poll in progress
	early      bool               // a worker asks for a barrier now
	back       []rewoundPartition

	// failed is the fatal error that stopped the transactions.
	failed atomic.Pointer[error]
}

// rewoundPartition is a worker back at its checkpoint, whose fetch offset
// the poll loop sets back.
type rewoundPartition struct {
	w  *worker
	at int64 // -1: nothing to set back
	n  int64 // the rewind's number (handoff.rewindCount)
}

func newTxnCoordinator(e *Engine, sess *kgo.GroupTransactSession) *txnCoordinator {
	return &txnCoordinator{
		e:            e,
		sess:         sess,
		stageTimeout: stageTimeout(e.opts),
		endTimeout:   endTimeout(e.opts),
	}
}

// stageTimeout bounds the Store retries of a barrier: half the
// transaction timeout leaves the other half to end the transaction; never
// more than DrainTimeout.
func stageTimeout(o EngineOptions) time.Duration { return min(o.TransactionTimeout/2, o.DrainTimeout) }

// endTimeout bounds the end of a transaction (maxEndWait).
func endTimeout(o EngineOptions) time.Duration { return min(o.TransactionTimeout, maxEndWait) }

// DefaultTransactionalID is the transactional id of an instance of group
// that sets none: "shrike-<group>-<hostname>-<pid>". Instances running at
// once must not share one (each would fence the other), and the host and
// the process tell them apart; in a container, whose hostname is its own
// and whose pid is 1, it also stays the same across restarts, so a
// restart fences its predecessor's open transaction at once rather than
// after kafka.transaction_timeout. Without a hostname the host part is
// "localhost".
func DefaultTransactionalID(group string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return "shrike-" + group + "-" + host + "-" + strconv.Itoa(os.Getpid())
}

// enter starts a worker's unit of work; false when the engine's
// transactions are over.
func (t *txnCoordinator) enter() bool {
	t.mu.RLock()
	if t.closed {
		t.mu.RUnlock()
		return false
	}
	return true
}

func (t *txnCoordinator) leave() { t.mu.RUnlock() }

// requestBarrier asks for a barrier before the interval ends, as a worker
// at MaxUncommittedRecords does.
func (t *txnCoordinator) requestBarrier() {
	t.pmu.Lock()
	defer t.pmu.Unlock()
	t.early = true
	t.wakePoll()
}

// wakePoll ends the poll in progress, so that the poll loop sees an
// early barrier or a rewound worker at once; under pmu.
func (t *txnCoordinator) wakePoll() {
	if t.cancelPoll != nil {
		t.cancelPoll()
	}
}

// rewound hands the poll loop a worker back at its checkpoint.
func (t *txnCoordinator) rewound(w *worker, at, n int64) {
	t.pmu.Lock()
	defer t.pmu.Unlock()
	t.back = append(t.back, rewoundPartition{w: w, at: at, n: n})
	t.wakePoll()
}

// pollContext is ctx until the next barrier is due, ended early by
// requestBarrier and rewound.
func (t *txnCoordinator) pollContext(ctx context.Context, due time.Time) (context.Context, context.CancelFunc) {
	pctx, cancel := context.WithDeadline(ctx, due)
	t.pmu.Lock()
	defer t.pmu.Unlock()
	if t.early || len(t.back) > 0 {
		cancel()
	}
	t.cancelPoll = cancel
	return pctx, cancel
}

// takeEarly reports and clears a request for an early barrier.
func (t *txnCoordinator) takeEarly() bool {
	t.pmu.Lock()
	defer t.pmu.Unlock()
	early := t.early
	t.early = false
	return early
}

// setBack sets the fetch offsets of the rewound workers back to their
// checkpoints and lets their records in again; on the poll goroutine,
// between polls.
func (t *txnCoordinator) setBack(cl *kgo.Client) {
	t.pmu.Lock()
	back := t.back
	t.back = nil
	t.pmu.Unlock()
	for _, r := range back {
		t.e.mu.Lock()
		current := t.e.workers[topicPartition{r.w.topic, r.w.part}] == r.w
		t.e.mu.Unlock()
		if !current {
			continue
		}
		if r.at >= 0 {
			cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{r.w.topic: {r.w.part: {Epoch: -1, Offset: r.at}}})
		}
		r.w.q.endRewind(r.n)
	}
}

// pollTxn is poll in exactly-once mode: the poll goroutine also ends every
// CheckpointInterval with a barrier. It returns the error that stopped
// the transactions, nil when ctx ended.
func (e *Engine) pollTxn(ctx context.Context, t *txnCoordinator) error {
	if err := checkTransactions(ctx, t.sess.Client()); err != nil {
		t.sess.AllowRebalance()
		return t.fail(err)
	}
	if err := t.sess.Begin(); err != nil {
		return t.fail(fmt.Errorf("begin transaction: %w", err))
	}
	due := time.Now().Add(e.opts.CheckpointInterval)
	for {
		t.setBack(t.sess.Client())
		pctx, cancel := t.pollContext(ctx, due)
		fetches := t.sess.PollRecords(pctx, e.opts.PollRecords)
		cancel()
		if fetches.IsClientClosed() {
			t.close()
			t.sess.AllowRebalance()
			return nil
		}
		e.dispatch(fetches)
		if ctx.Err() != nil {
			// The last barrier commits what was processed.
			err := t.barrier(ctx, true)
			t.sess.AllowRebalance()
			return err
		}
		if early := t.takeEarly(); early || !time.Now().Before(due) {
			// Intervals are counted from barrier start to barrier start,
			// so that an alert waits at most one interval and one barrier
			// to be committed; but a barrier longer than the interval
			// still leaves half an interval to poll in, or nothing would
			// be fetched at all.
			started := time.Now()
			if err := t.barrier(ctx, false); err != nil {
				t.sess.AllowRebalance()
				return err
			}
			iv := e.opts.CheckpointInterval
			due = later(started.Add(iv), time.Now().Add(iv/2))
		}
		t.sess.AllowRebalance()
	}
}

// txnRequests are the requests exactly-once outputs need, with their
// least version: TxnOffsetCommit v3 carries the group generation that
// fences a zombie (KIP-447, Kafka 2.5).
var txnRequests = []struct {
	key kmsg.Key
	min int16
}{{kmsg.InitProducerID, 0}, {kmsg.AddPartitionsToTxn, 0}, {kmsg.EndTxn, 0}, {kmsg.TxnOffsetCommit, 3}}

// checkTransactions fails, naming the broker and the request, when a
// broker cannot take part in exactly-once outputs, rather than letting
// the first transaction fail with a broker's error code.
func checkTransactions(ctx context.Context, cl *kgo.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	vs, err := kadm.NewClient(cl).ApiVersions(ctx)
	if err != nil {
		return fmt.Errorf("ask the brokers which requests they support: %w", err)
	}
	for _, v := range vs.Sorted() {
		if v.Err != nil {
			continue // unreachable now: checked when it is used
		}
		for _, r := range txnRequests {
			if _, most, ok := v.KeyVersions(int16(r.key)); !ok || most < r.min {
				return fmt.Errorf("broker %d does not support %s v%d, which exactly-once outputs need (Kafka 2.5 or later); turn them off with kafka.exactly_once: false", v.NodeID, r.key.Name(), r.min)
			}
		}
	}
	return nil
}

// later is the later of two times.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// fail records err as the reason the transactions stopped, and stops
// them.
func (t *txnCoordinator) fail(err error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failLocked(err)
}

// failLocked is fail with the barrier lock held.
func (t *txnCoordinator) failLocked(err error) error {
	t.failed.Store(&err)
	t.e.log.Error("exactly-once outputs stopped: the engine stops", "err", err)
	t.closed = true
	return err
}

// close ends the transactions: the workers do no more work.
func (t *txnCoordinator) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
}

// barrier ends the open transaction (see the top of this file) and, unless
// last, begins the next. It returns an error when no transaction can
// begin any more (another instance with the same transactional id fenced
// this one, the client failed).
func (t *txnCoordinator) barrier(ctx context.Context, last bool) error {
	start := time.Now()
	e := t.e
	// A barrier runs to its end: stopping the engine in the middle would
	// leave the transaction open; each phase has its own bound.
	ctx = context.WithoutCancel(ctx)
	t.wanted.Store(true)
	t.mu.Lock()
	t.wanted.Store(false)
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}

	e.mu.Lock()
	all := make([]*worker, 0, len(e.workers))
	for _, w := range e.workers {
		all = append(all, w)
	}
	e.mu.Unlock()
	var ws []*worker
	for _, w := range all {
		if w.tx.ready.Load() && w.tx.fenced == nil {
			ws = append(ws, w)
		}
	}

	// B1, B2: every worker flushes and stages (or commits) at once.
	sctx, cancel := context.WithTimeout(ctx, t.stageTimeout)
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() { errs[i] = w.prepareTxn(sctx) })
	}
	wg.Wait()
	cancel()
	abort := t.abortNext.Swap(false)
	for i, err := range errs {
		if err == nil {
			continue
		}
		abort = true
		if errors.Is(err, state.ErrFenced) {
			ws[i].tx.fenced = err
		}
		e.log.Warn("checkpoint barrier: the transaction aborts", "topic", ws[i].topic, "partition", ws[i].part, "err", err)
	}
	crashPoint("staged")

	// B3: the decision, with the offsets of the staged checkpoints and of
	// the committed ones Kafka's offsets lag behind.
	staged := map[string]map[int32]state.Checkpoint{}
	for _, w := range ws {
		cp, ok := w.ckpt.txnCheckpoint()
		if !ok {
			continue
		}
		if staged[w.topic] == nil {
			staged[w.topic] = map[int32]state.Checkpoint{}
		}
		staged[w.topic][w.part] = cp
		w.ckpt.inTxn = cp.Offset
	}
	// End commits the offsets once a rebalance in progress is over, and
	// then waits for a heartbeat: the rebalance may go on from here (a
	// revocation now aborts the transaction; the revoked workers stop
	// without waiting for this barrier). endTimeout bounds the wait.
	t.sess.AllowRebalance()
	ectx, cancel := context.WithTimeout(ctx, t.endTimeout)
	endCtx := kgo.PreTxnCommitFnContext(ectx, func(req *kmsg.TxnOffsetCommitRequest) error {
		setTxnOffsets(req, staged)
		return nil
	})
	committed, err := t.sess.End(endCtx, kgo.TransactionEndTry(!abort))
	cancel()
	if err != nil {
		e.log.Warn("end transaction: aborted", "err", err)
		committed = false
		t.abortOpen(ctx)
	}

	// B4.
	if committed {
		crashPoint("committed")
		e.metrics.transactions.WithLabelValues("committed").Inc()
		pctx, cancel := context.WithTimeout(ctx, t.stageTimeout)
		for _, w := range ws {
			wg.Go(func() { w.commitTxn(pctx) })
		}
		wg.Wait()
		cancel()
		crashPoint("promoted")
	} else {
		e.metrics.transactions.WithLabelValues("aborted").Inc()
		e.log.Warn("transaction aborted: the partitions go back to their checkpoints", "asked", map[bool]string{false: "commit", true: "abort"}[abort], "partitions", len(all))
		// The session set every partition's fetch offset back to its
		// last commit, and what was produced is gone: every worker goes
		// back to its checkpoint, the ones outside this barrier too.
		for _, w := range all {
			w.abortTxn()
		}
	}
	e.metrics.barrierSeconds.Observe(time.Since(start).Seconds())
	for _, w := range ws {
		if w.tx.fenced != nil {
			w.q.poke()
		} else {
			w.q.pokeIfQueued()
		}
	}
	if last {
		t.closed = true
		return nil
	}
	if err := t.sess.Begin(); err != nil {
		return t.failLocked(fmt.Errorf("begin transaction: %w", err))
	}
	return nil
}

// abortOpen ends a transaction End left open (its context ended before
// it could abort): the buffered records are dropped and the transaction
// aborted, so that the next can begin. An error here shows at Begin.
func (t *txnCoordinator) abortOpen(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, t.e.opts.TransactionTimeout)
	defer cancel()
	cl := t.sess.Client()
	if err := cl.AbortBufferedRecords(ctx); err != nil {
		t.e.log.Warn("abort buffered records", "err", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.e.log.Warn("abort transaction", "err", err)
	}
}

// setTxnOffsets makes a transaction's offset commit carry exactly the
// given partitions (txnCheckpoint), each at its checkpoint's resume offset
// with the checkpoint's tag: franz-go would commit every polled partition
// at the position of its last poll, ahead of records the matcher still
// buffers.
func setTxnOffsets(req *kmsg.TxnOffsetCommitRequest, staged map[string]map[int32]state.Checkpoint) {
	ids := map[string][16]byte{}
	for _, t := range req.Topics {
		ids[t.Topic] = t.TopicID
	}
	req.Topics = req.Topics[:0]
	for topic, parts := range staged {
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = topic
		rt.TopicID = ids[topic]
		for p, cp := range parts {
			if cp.Offset < 0 {
				continue
			}
			rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			rp.Partition = p
			rp.Offset = cp.Offset
			rp.LeaderEpoch = -1
			tag := txnTag(cp.Generation, cp.Seq)
			rp.Metadata = &tag
			rt.Partitions = append(rt.Partitions, rp)
		}
		if len(rt.Partitions) > 0 {
			req.Topics = append(req.Topics, rt)
		}
	}
}
