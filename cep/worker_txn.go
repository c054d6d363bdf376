package cep

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/state"
)

// A worker's part in the checkpoint barriers of exactly-once mode
// (engine_txn.go). The coordinator runs prepareTxn and commitTxn or
// abortTxn on its own goroutine while it holds the barrier lock: every
// worker is then between two units of work (unit), so its state is the
// coordinator's to read and write until the lock is released.

// workerTxn is what the coordinator and the worker share about the open
// transaction.
type workerTxn struct {
	// ready: the worker is restored and takes part in barriers; what it
	// produces goes into the open transaction.
	ready atomic.Bool
	// rewind: the transaction aborted (or this worker's staged checkpoint
	// could not be promoted); the worker goes back to its last checkpoint
	// before anything else.
	rewind atomic.Bool
	// fenced is the error of a barrier that found a newer owner; written
	// under the barrier lock, read in a unit.
	fenced error
	// alerts of the open transaction, handed to OnAlert once it commits:
	// an API subscriber never sees an alert that may be aborted.
	alerts []*matcher.Alert
}

// unitResult says what the worker must do after a unit.
type unitResult int

const (
	unitDone   unitResult = iota // go on
	unitStop                     // stop the worker
	unitRewind                   // go back to the last checkpoint
	unitFenced                   // a newer owner has the partition
)

// unit runs fn, one unit of the worker's work (a batch, an idle advance, a
// reload), so that the barrier sees the worker between units: in
// exactly-once mode under the coordinator's read lock. fn returns false
// when the worker must stop.
func (w *worker) unit(fn func() bool) unitResult {
	t := w.e.txn
	if t == nil {
		if fn() {
			return unitDone
		}
		return unitStop
	}
	if !t.enter() {
		return unitDone // the engine is stopping: nothing more goes out
	}
	defer t.leave()
	switch {
	case w.stopping():
		// Revoked or lost while a barrier held it: nothing more of this
		// partition goes into a transaction.
		return unitStop
	case w.tx.fenced != nil:
		return unitFenced
	case w.tx.rewind.Load():
		return unitRewind
	case !fn():
		return unitStop
	}
	return unitDone
}

// prepareTxn is the worker's part of a barrier's first phase: outputs
// flushed, then either a checkpoint staged for the transaction (when the
// worker produced since the last barrier: its outputs and its state must
// become visible together) or, when it produced nothing, an ordinary
// checkpoint, as nothing in Kafka depends on it. Store failures are
// retried until ctx ends.
func (w *worker) prepareTxn(ctx context.Context) error {
	if n := w.sink.txnFailed.Load(); n > 0 {
		return fmt.Errorf("%s: %d output records failed", w.source, n)
	}
	stage := w.sink.produced.Load() > 0
	if stage {
		if err := w.sink.wait(ctx); err != nil {
			return fmt.Errorf("%s: flush outputs: %w", w.source, err)
		}
		if n := w.sink.txnFailed.Load(); n > 0 {
			return fmt.Errorf("%s: %d output records failed", w.source, n)
		}
	}
	return w.storeRetry(ctx, func() error { return w.writeCheckpoint(ctx, stage) })
}

// storeRetry runs op until it succeeds, is fenced or ctx ends, with the
// worker's backoff.
func (w *worker) storeRetry(ctx context.Context, op func() error) error {
	for {
		err := op()
		if err == nil || errors.Is(err, state.ErrFenced) {
			w.setFailing(nil)
			return err
		}
		w.setFailing(err)
		w.log.Warn("checkpoint barrier", "err", err)
		t := time.NewTimer(w.retry.backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (gave up: %w)", w.source, err, context.Cause(ctx))
		}
	}
}

// commitTxn is the worker's part of a committed barrier: its staged
// checkpoint becomes the committed one, and the transaction's alerts go to
// OnAlert. A checkpoint that cannot be promoted before ctx ends sends the
// worker back to it (rewind), which promotes it then: Kafka says its
// transaction committed.
func (w *worker) commitTxn(ctx context.Context) {
	start := time.Now()
	if w.ckpt.inTxn >= 0 {
		w.ckpt.kafkaCommitted = w.ckpt.inTxn
	}
	if w.ckpt.hasStaged {
		err := w.storeRetry(ctx, func() error { return w.ckpt.promote(ctx) })
		switch {
		case errors.Is(err, state.ErrFenced):
			w.tx.fenced = err
		case err != nil:
			w.log.Warn("promote committed checkpoint: going back to it", "err", err)
			w.beginRewind()
		default:
			w.committed(start, w.ckpt.storeOffset)
		}
	}
	if on := w.e.opts.OnAlert; on != nil {
		for _, a := range w.tx.alerts {
			on(a)
		}
	}
	w.endTxn()
}

// abortTxn is the worker's part of an aborted barrier: what it produced
// is gone, so it goes back to its last checkpoint.
func (w *worker) abortTxn() {
	w.endTxn()
	w.beginRewind()
}

// endTxn forgets the transaction that ended.
func (w *worker) endTxn() {
	clear(w.tx.alerts)
	w.tx.alerts = w.tx.alerts[:0]
	w.sink.produced.Store(0)
	w.sink.txnFailed.Store(0)
	w.ckpt.hasStaged = false
	w.ckpt.inTxn = -1
}

// beginRewind stops the worker's intake until it is back at its last
// checkpoint (rewindTxn, on the worker's goroutine).
func (w *worker) beginRewind() {
	w.tx.ready.Store(false)
	w.tx.rewind.Store(true)
	w.q.startRewind()
}

// rewindTxn goes back to the last checkpoint, on the worker's goroutine,
// after an aborted transaction: the Store's checkpoint (a pending one
// resolved by Kafka's word), the matcher state restored from it, and the
// fetch offset set back by the poll loop. It returns false when the
// worker must stop.
func (w *worker) rewindTxn() bool {
	// Cleared before the count is read: an abort in between sends the
	// worker back again, with a count this rewind's end does not match.
	w.tx.rewind.Store(false)
	n := w.q.rewindCount()
	w.setStatus(func(st *PartitionStatus) { st.Restored = false })
	for {
		cp, ok, err := w.ckpt.reload(w.ctx)
		if err == nil {
			err = w.restoreFrom(cp, ok)
		}
		if err == nil {
			break
		}
		if errors.Is(err, state.ErrFenced) {
			w.fenced(err)
			return false
		}
		w.setFailing(err)
		w.log.Warn("rewind partition", "err", err)
		if !w.sleep(w.retry.backoff) {
			return false
		}
	}
	w.setFailing(nil)
	w.uncommitted = 0
	w.setStatus(func(st *PartitionStatus) {
		st.Restored = true
		st.CommittedOffset = w.resumeAt
		st.Uncommitted = 0
	})
	at := w.resumeAt
	if at < 0 {
		// Never checkpointed: back to the first record this owner got.
		at = w.firstOffset
	}
	w.e.txn.rewound(w, at, n)
	w.joinTxn()
	return true
}

// joinTxn makes a restored worker take part in barriers, unless an abort
// already asked it to rewind.
func (w *worker) joinTxn() {
	t := w.e.txn
	if t == nil || !t.enter() {
		return
	}
	defer t.leave()
	if !w.tx.rewind.Load() {
		w.tx.ready.Store(true)
	}
}
