package cep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/state"
)

// The checkpoint protocol of a partition (docs/design.md#runtime), in the
// order that makes a crash at any point safe:
//
//  1. a new owner claims the partition in the Store with a higher fencing
//     generation before anything else (restore), so that an older owner's
//     later commits fail and it stops (fenced);
//  2. a checkpoint first waits until every record the partition produced
//     (alerts, late, dead letters) is acknowledged;
//  3. then commits the changed and emptied keys, the resume offset (the
//     oldest record still buffered, else the next), the streams'
//     watermarks and the changed buckets of the index of the deadlines of
//     keys with open windows to the Store, atomically (checkpoint);
//  4. and only then commits the same offset to Kafka. The Store, not
//     Kafka, says where a new owner resumes.
//
// checkpointer holds the Store and Kafka side of it; the worker's methods
// below build what goes in.

// checkpointer commits one partition's checkpoints to the Store and then
// to Kafka, under the generation it claimed.
type checkpointer struct {
	store Store
	pid   state.PartitionID
	cl    *kgo.Client
	log   *slog.Logger

	gen int64 // fencing generation of this ownership
	seq int64 // Seq of the committed checkpoint (Store.Stage)
	// oracle tells whether the transaction that staged a pending
	// checkpoint committed (resolvePending).
	oracle txnOracle
	// exactlyOnce: offsets reach Kafka only inside the engine's
	// transactions (engine_txn.go), never from a checkpoint.
	exactlyOnce bool
	storeOffset int64 // offset of the last checkpoint in the Store; -1 none
	// kafkaCommitted is the offset last sent to Kafka (in exactly-once
	// mode, carried by a committed transaction); -1 none.
	kafkaCommitted int64
	// inTxn is the offset the open transaction commits for the partition
	// (txnCheckpoint); -1 none.
	inTxn int64
	// draining: the partition is revoked, and its last checkpoint commits
	// to Kafka itself, synchronously.
	draining bool
	// staged is the checkpoint staged for the open transaction, when
	// hasStaged.
	staged    state.Checkpoint
	hasStaged bool
	// failing is set while checkpoints fail.
	failing    bool
	lastCommit time.Time
	// drop are Store keys of streams a reload dropped, deleted by the next
	// commit.
	drop []string
}

func newCheckpointer(st Store, pid state.PartitionID, cl *kgo.Client, log *slog.Logger, exactlyOnce bool) *checkpointer {
	return &checkpointer{
		store: st, pid: pid, cl: cl, log: log, storeOffset: -1, kafkaCommitted: -1, inTxn: -1,
		oracle: kafkaOracle{cl: cl, group: pid.Group}, exactlyOnce: exactlyOnce,
	}
}

// claim loads the partition's checkpoint and claims the partition with the
// next generation. ok is false when the Store holds no checkpoint; the
// returned checkpoint's Offset is then -1.
func (c *checkpointer) claim(ctx context.Context) (state.Checkpoint, bool, error) {
	// Claiming with a higher generation fences the previous owner: should
	// it still be running (a zombie that lost the partition without
	// noticing), its next commit fails instead of overwriting ours. The
	// Store reads and raises the generation in one step, so two owners
	// claiming at once cannot both hold the same one.
	_, ok, claim, err := c.store.Claim(ctx, c.pid)
	if err != nil {
		return claim, false, fmt.Errorf("claim partition: %w", err)
	}
	// A checkpoint staged for a transaction the previous owner did not see
	// through is resolved, in either mode, so that switching modes after
	// a crash is safe (resolved).
	cp, found, promoted, err := c.resolved(ctx, claim.Generation)
	if err != nil {
		return claim, false, fmt.Errorf("claim partition: %w", err)
	}
	if found {
		// The claim, after Promote or Discard: the same generation, maybe
		// a newer offset, streams and Seq.
		ok = ok || promoted
		claim = cp
	}
	c.gen = claim.Generation
	c.seq = claim.Seq
	c.storeOffset = claim.Offset
	return claim, ok, nil
}

// reload reads the partition's checkpoint again for the same owner, after
// an aborted transaction: a pending checkpoint is resolved as in claim,
// under this owner's generation, which is not raised. A newer owner's
// generation in the Store fails it with state.ErrFenced: an instance
// that was paused while its partitions moved must not take them back.
func (c *checkpointer) reload(ctx context.Context) (state.Checkpoint, bool, error) {
	cp, ok, _, err := c.resolved(ctx, c.gen)
	if err != nil {
		return cp, false, fmt.Errorf("reload partition: %w", err)
	}
	if ok && cp.Generation > c.gen {
		return cp, false, fmt.Errorf("reload partition: generation %d, stored %d: %w", c.gen, cp.Generation, state.ErrFenced)
	}
	if !ok {
		cp = state.Checkpoint{Offset: -1, Generation: c.gen}
	}
	c.seq = cp.Seq
	c.storeOffset = cp.Offset
	return cp, ok, nil
}

// resolved resolves the partition's pending checkpoint under generation
// gen — Kafka's committed offset metadata says whether its transaction
// committed (promote: roll forward) or not (discard) — and returns the
// committed checkpoint then (found false: none), and whether it is a
// promoted one.
func (c *checkpointer) resolved(ctx context.Context, gen int64) (cp state.Checkpoint, found, promoted bool, err error) {
	if promoted, err = resolvePending(ctx, c.store, c.pid, gen, c.oracle); err != nil {
		return cp, false, false, err
	}
	if promoted {
		c.log.Info("pending checkpoint of a committed transaction promoted")
	}
	cp, found, err = c.store.LoadCheckpoint(ctx, c.pid)
	return cp, found, promoted, err
}

// commit writes the keys and the checkpoint to the Store atomically, then,
// unless draining, sends the offset to Kafka without waiting.
func (c *checkpointer) commit(ctx context.Context, put []state.KeyState, del []string, offset int64, streams []byte) error {
	cp := state.Checkpoint{Offset: offset, Generation: c.gen, Seq: c.seq, Streams: streams}
	if err := c.store.Commit(ctx, c.pid, put, del, cp); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	c.storeOffset = offset
	c.drop = nil
	c.failing = false
	if offset >= 0 && offset != c.kafkaCommitted && !c.draining && !c.exactlyOnce {
		c.commitKafkaAsync(offset)
	}
	return nil
}

// stage writes the keys and a pending checkpoint to the Store for the
// engine's open transaction (engine_txn.go); promote makes it the
// committed one once the transaction committed.
func (c *checkpointer) stage(ctx context.Context, put []state.KeyState, del []string, offset int64, streams []byte) error {
	pend := state.Checkpoint{Offset: offset, Generation: c.gen, Seq: c.seq + 1, Streams: streams}
	if err := c.store.Stage(ctx, c.pid, put, del, pend); err != nil {
		return fmt.Errorf("stage checkpoint: %w", err)
	}
	c.staged, c.hasStaged = pend, true
	c.drop = nil
	c.failing = false
	return nil
}

// txnCheckpoint returns the checkpoint whose resume offset the open
// transaction commits to the group for the partition: the staged one;
// else, when the group's offset is behind the committed one, that. A
// partition that produced nothing commits its checkpoints to the Store
// directly, and in exactly-once mode only a transaction moves the group's
// offset: without this, the group's offset would stay where the
// partition last produced an output. ok is false when there is nothing
// to commit.
//
// The committed checkpoint goes with its own tag, txnTag(gen, seq): no
// checkpoint is pending while one is committed directly, and a later
// staging takes a higher Seq, so the tag can never be taken for the
// decision on a pending checkpoint (resolvePending).
func (c *checkpointer) txnCheckpoint() (cp state.Checkpoint, ok bool) {
	if c.hasStaged {
		return c.staged, true
	}
	if c.storeOffset < 0 || c.storeOffset == c.kafkaCommitted {
		return cp, false
	}
	return state.Checkpoint{Offset: c.storeOffset, Generation: c.gen, Seq: c.seq}, true
}

// promote makes the staged checkpoint the committed one.
func (c *checkpointer) promote(ctx context.Context) error {
	cp, err := c.store.Promote(ctx, c.pid, c.gen)
	if err != nil {
		return fmt.Errorf("promote checkpoint: %w", err)
	}
	c.seq = cp.Seq
	c.storeOffset = cp.Offset
	c.hasStaged = false
	return nil
}

// commitKafkaAsync commits offset to the group without waiting: the
// Store's checkpoint, not Kafka's offset, is where the next owner resumes,
// so the worker need not wait, and a failure is only logged (a lagging
// Kafka offset costs nothing but lag metrics).
func (c *checkpointer) commitKafkaAsync(offset int64) {
	c.kafkaCommitted = offset
	c.cl.CommitOffsets(context.Background(), c.offsets(offset), func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err == nil {
			err = commitResponseErr(resp)
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			c.log.Warn("commit offset to kafka", "offset", offset, "err", err)
		}
	})
}

// commitKafka commits offset to the group and waits for it, as a revoked
// partition must. A failure is only logged, as in commitKafkaAsync.
func (c *checkpointer) commitKafka(ctx context.Context, offset int64) {
	var cerr error
	c.cl.CommitOffsetsSync(ctx, c.offsets(offset), func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		cerr = commitResponseErr(resp)
	})
	if cerr != nil {
		c.log.Warn("commit offset to kafka", "offset", offset, "err", cerr)
		return
	}
	c.kafkaCommitted = offset
}

func (c *checkpointer) offsets(offset int64) map[string]map[int32]kgo.EpochOffset {
	return map[string]map[int32]kgo.EpochOffset{c.pid.Topic: {c.pid.Partition: {Epoch: -1, Offset: offset}}}
}

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
			w.joinTxn()
			return true
		}
		w.setFailing(err)
		w.log.Warn("restore partition", "err", err)
		if !w.sleep(w.retry.backoff) {
			return false
		}
	}
}

func (w *worker) tryRestore() error {
	cp, ok, err := w.ckpt.claim(w.ctx)
	if err != nil {
		return err
	}
	return w.restoreFrom(cp, ok)
}

// restoreFrom resets the worker's streams to the checkpoint cp (ok: the
// Store had one).
func (w *worker) restoreFrom(cp state.Checkpoint, ok bool) error {
	w.resumeAt = cp.Offset
	w.next = cp.Offset
	w.readTo = cp.Offset
	now := w.e.opts.Clock()
	for _, sp := range w.sps {
		part, err := matcher.NewPartition(sp.s.prog, w, w.matcherOptions(sp))
		if err != nil {
			return err
		}
		sp.s.part = part
		sp.resetKeys()
		sp.keys.storeEmpty = cp.Offset < 0
		sp.lastSeen = now
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
			ss, ok := saved.streams[sp.keys.ns]
			if !ok {
				continue
			}
			if err := sp.s.part.Restore(ss.cp); err != nil {
				return err
			}
			sp.skipBelow = ss.cp.Watermark
			sp.saved = ss.cp
			if ss.deadlines != nil {
				// A version 1 checkpoint: the index itself, which the next
				// checkpoint writes into buckets.
				sp.keys.restoreDeadlines(ss.deadlines)
				continue
			}
			err := sp.keys.restoreIndex(w.ctx, w.ckpt.store, w.ckpt.pid, ss.buckets, func(bucket int64, err error) {
				w.log.Error("deadline index bucket unreadable: its keys load when their events come, not when their windows close", "bucket", bucket, "err", err)
			})
			if err != nil {
				return err
			}
		}
	}
	w.log.Info("partition restored", "offset", w.resumeAt, "generation", w.ckpt.gen)
	return nil
}

// fenced stops the worker for good: a newer owner has the partition. Its
// fetching is paused until the group takes the partition away (the next
// assignment resumes it).
func (w *worker) fenced(err error) {
	w.log.Warn("partition fenced by a newer owner: dropping its state", "err", err)
	w.q.fence()
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

// maybeCheckpoint checkpoints when one is due: every CheckpointInterval,
// or at the retry time while the Store fails. It returns false when the
// worker must stop.
func (w *worker) maybeCheckpoint() bool {
	if w.e.txn != nil {
		// The barriers checkpoint (engine_txn.go).
		return true
	}
	now := time.Now()
	if w.ckpt.failing {
		if now.Before(w.retry.at) {
			return true
		}
	} else if now.Sub(w.ckpt.lastCommit) < w.e.opts.CheckpointInterval && w.uncommitted < w.e.opts.MaxUncommittedRecords {
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
		w.q.pokeIfQueued()
		return true
	}
	if errors.Is(err, state.ErrFenced) {
		w.fenced(err)
		return false
	}
	if w.ctx.Err() != nil {
		return false
	}
	w.ckpt.failing = true
	w.setFailing(err)
	w.log.Warn("checkpoint", "err", err)
	return true
}

// drain is the end of a revoked partition: the batch in hand is done (the
// worker is between batches here); what is queued is dropped (the next
// owner fetches it again); a last checkpoint is written, retried until
// DrainTimeout after the revocation (drainTimer then ends ctx).
func (w *worker) drain() {
	w.q.retire()
	// A reload may have dropped the topic (SetRulesets stops its workers
	// this way): switched first, the last checkpoint deletes the keys of
	// the streams no ruleset reads any more.
	w.maybeSwitch()
	w.ckpt.draining = true
	for {
		err := w.checkpoint(w.ctx)
		if err == nil {
			// Synchronously, so that the commit is in before the partition
			// moves (it also waits for earlier asynchronous ones).
			if w.ckpt.storeOffset >= 0 {
				w.ckpt.commitKafka(w.ctx, w.ckpt.storeOffset)
			}
			return
		}
		if errors.Is(err, state.ErrFenced) {
			w.log.Warn("partition fenced by a newer owner: dropping its state", "err", err)
			return
		}
		w.ckpt.failing = true
		w.setFailing(err)
		if !w.sleepCtx(w.retry.backoff) {
			w.log.Error("last checkpoint of a revoked partition failed: the next owner re-reads from the previous one", "err", err)
			return
		}
	}
}

// checkpoint makes everything processed durable (steps 2 to 4 above). Keys
// over MaxResidentKeys are evicted after, when every key in memory is also
// in the Store.
func (w *worker) checkpoint(ctx context.Context) error { return w.writeCheckpoint(ctx, false) }

// writeCheckpoint is checkpoint, or, with stage, the staging of one for
// the engine's open transaction (Store.Stage): the Store keeps it pending
// until the transaction commits (promoteStaged), and the keys it holds
// stay in memory until then.
func (w *worker) writeCheckpoint(ctx context.Context, stage bool) error {
	start := time.Now()
	pendingKeys := w.collectChanges()
	moved := false
	for _, sp := range w.sps {
		moved = moved || sp.s.part.Checkpoint() != sp.saved
	}
	if !stage && pendingKeys == 0 && w.uncommitted == 0 && len(w.ckpt.drop) == 0 && (!moved || w.next < 0) {
		w.ckpt.lastCommit = start
		// The gauges still follow the wall clock: the watermark lag of a
		// quiet partition grows until its idle timeout.
		w.observe()
		return nil // nothing new to record
	}
	if err := w.sink.wait(ctx); err != nil {
		return fmt.Errorf("flush outputs: %w", err)
	}
	var put []state.KeyState
	del := slices.Clone(w.ckpt.drop)
	var bytes, buckets int
	var arena stateArena
	// The Store has the states, or failed, once write returns.
	defer arena.release()
	for _, sp := range w.sps {
		var n, nb int
		put, del, n, nb = sp.keys.appendCommit(&arena, put, del)
		bytes += n
		buckets += nb
	}
	offset := w.resumeOffset()
	readTo := max(w.readTo, w.next)
	write := w.ckpt.commit
	if stage {
		write = w.ckpt.stage
	}
	if err := write(ctx, put, del, offset, encodeStreams(w.sps, readTo)); err != nil {
		w.e.metrics.checkpointErrors.Inc()
		return err
	}
	for _, sp := range w.sps {
		sp.keys.committed()
		// A key written may be looked for from now on.
		sp.keys.storeEmpty = sp.keys.storeEmpty && len(put) == 0
		sp.saved = sp.s.part.Checkpoint()
	}
	w.uncommitted = 0
	w.setFailing(nil)
	w.ckpt.lastCommit = time.Now()
	m := w.e.metrics
	m.committedKeys.Add(float64(len(put) + len(del) - buckets))
	m.committedBytes.Add(float64(bytes))
	if stage {
		return nil
	}
	w.committed(start, offset)
	return nil
}

// committed ends a checkpoint made durable at offset: keys over
// MaxResidentKeys are evicted, now that every key in memory is also in
// the Store, and the gauges and status follow.
func (w *worker) committed(start time.Time, offset int64) {
	var evicted int
	for _, sp := range w.sps {
		evicted += sp.keys.evict(w.e.opts.MaxResidentKeys, w.next)
	}
	m := w.e.metrics
	m.checkpointSeconds.Observe(time.Since(start).Seconds())
	m.evictedKeys.Add(float64(evicted))
	w.observe()
	w.setStatus(func(st *PartitionStatus) {
		st.CommittedOffset = offset
		st.Uncommitted = 0
	})
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
