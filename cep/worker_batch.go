package cep

import (
	"errors"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// A batch's way through a worker: its records are decoded, keyed and timed
// as Replay does, the keys they need are loaded from the Store in one call,
// and they are pushed into the streams' Partitions in offset order.

// workerBatch is the scratch of one batch's processing, kept between batches so
// that the hot path allocates little.
type workerBatch struct {
	decoded []decodedRecord
	pushes  []push
	line    Line
	layout  rules.Layout // of the events decoded last
	loads   keyLoad
	// cur is the record being pushed, for Late; late is set once it was
	// sent to the late topic.
	cur  *kgo.Record
	late bool
	// now is the wall clock when the batch came, which bounds its event
	// times (streamPart.skew).
	now int64
	// fetchedAt is the wall clock when the batch was fetched, the start
	// of its alerts' processing delay.
	fetchedAt time.Time
}

// decodedRecord is what became of one fetched record.
type decodedRecord struct {
	rec      *kgo.Record
	from, to int   // batch.pushes[from:to] are its records
	dead     error // why it is dead-lettered
}

// process decodes, keys and times a batch's records like Replay does, loads
// the keys the batch needs from the Store in one call, then pushes the
// records in offset order. A Store error leaves the batch unprocessed (it
// is retried until it works, or the worker stops).
func (w *worker) process(f fetched) error {
	b := &w.batch
	b.decoded = b.decoded[:0]
	clear(b.pushes)
	b.pushes = b.pushes[:0]
	b.now = w.e.opts.Clock().UnixNano()
	b.fetchedAt = f.at
	if w.firstOffset < 0 && len(f.recs) > 0 {
		w.firstOffset = f.recs[0].Offset
	}
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
		if !w.sleep(w.retry.backoff) {
			return errStopping
		}
	}
	if w.retry.failing && !w.ckpt.failing {
		w.setFailing(nil)
	}
	now := w.e.opts.Clock()
	var events, skipped int
	for i := range b.decoded {
		d := &b.decoded[i]
		b.cur, b.late = d.rec, false
		for _, p := range b.pushes[d.from:d.to] {
			sp := w.partOf(p.s)
			sp.keys.pushed(p.rec.Key)
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
	b.cur = nil
	w.uncommitted += len(b.decoded)
	w.m.records.Add(float64(len(b.decoded)))
	w.m.events.Add(float64(events))
	if skipped > 0 {
		w.m.skipped.Add(float64(skipped))
	}
	if f.hw >= 0 && w.next >= 0 {
		w.m.setConsumerLag(max(f.hw-w.next, 0))
	}
	n := uint64(len(b.decoded))
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
	b := &w.batch
	d := decodedRecord{rec: r, from: len(b.pushes), to: len(b.pushes)}
	if r.Value == nil {
		d.dead = ErrTombstone
		b.decoded = append(b.decoded, d)
		return
	}
	ms := r.Timestamp.UnixMilli()
	b.line = Line{
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
	b.pushes, _, d.dead = decodeEvent(w.streams, &b.layout, &b.line, matcher.Position{Source: w.source, Offset: r.Offset}, b.pushes)
	// An event too far ahead of the wall clock is kept from its stream
	// before anything sees its time: the batch's loads, the watermark and
	// the matcher. It is dead-lettered like an event that cannot be timed.
	kept := d.from
	for _, p := range b.pushes[d.from:] {
		sp := w.partOf(p.s)
		if err := tooFarAhead(p.s, p.rec.Time, b.now, "wall clock", sp.skew); err != nil {
			if d.dead == nil {
				d.dead = err
			}
			continue
		}
		b.pushes[kept] = p
		kept++
	}
	clear(b.pushes[kept:])
	b.pushes = b.pushes[:kept]
	if r.Offset < w.readTo {
		// Read by an earlier owner: what was behind its watermark was
		// matched or reported late before its checkpoint.
		kept := d.from
		for _, p := range b.pushes[d.from:] {
			if p.rec.Time >= w.partOf(p.s).skipBelow {
				b.pushes[kept] = p
				kept++
			}
		}
		clear(b.pushes[kept:])
		b.pushes = b.pushes[:kept]
	}
	d.to = len(b.pushes)
	b.decoded = append(b.decoded, d)
}

// loadNeeded restores, in one Store call, every key the decoded batch
// pushes that is not in memory but may be stored, and every evicted key
// whose window closes before the watermark the batch raises.
func (w *worker) loadNeeded() error {
	b := &w.batch
	b.loads.reset()
	collected := false
	for _, p := range b.pushes {
		keys := w.partOf(p.s).keys
		if !keys.needsLoad(p.rec.Key) {
			continue
		}
		if !collected {
			// Only now, as it costs a map: with the changes in pending,
			// needsLoad knows the keys emptied since the last checkpoint.
			w.collectChanges()
			collected = true
			if !keys.needsLoad(p.rec.Key) {
				continue
			}
		}
		b.loads.add(keys, p.rec.Key)
	}
	for _, sp := range w.sps {
		if len(sp.keys.due) == 0 {
			continue
		}
		wm := sp.s.part.Watermark()
		for _, p := range b.pushes {
			if p.s == sp.s {
				wm = max(wm, satSub(p.rec.Time, sp.ooo))
			}
		}
		sp.keys.appendDue(&b.loads, wm)
	}
	return w.load()
}

// load restores the batch's loads from the Store in one call.
func (w *worker) load() error {
	loaded, err := w.batch.loads.run(w.ctx, w.e.opts.Store, w.ckpt.pid, func(key string, err error) {
		w.e.metrics.badStates.Inc()
		w.log.Error("restore key state: dropped", "key", key, "err", err)
	})
	if err != nil {
		return err
	}
	w.e.metrics.loadedKeys.Add(float64(loaded))
	return nil
}

// partOf returns the state of one of the worker's streams.
func (w *worker) partOf(s *stream) *streamPart {
	if len(w.sps) == 1 {
		return w.sps[0] // the common case: one stream per topic
	}
	return w.byPart[s]
}

// collectChanges moves the keys the matcher changed into the caches'
// pending keys and returns how many are pending.
func (w *worker) collectChanges() int {
	n := 0
	for _, sp := range w.sps {
		n += sp.keys.collect()
	}
	return n
}

// idleAdvance moves the watermark of every stream that has been quiet for
// its idle_timeout with the wall clock, so that windows close and absence
// rules fire on a quiet partition (docs/semantics.md). It returns false when the
// worker must stop.
func (w *worker) idleAdvance() bool {
	if w.behind() {
		return true
	}
	w.collectChanges()
	now := w.e.opts.Clock()
	loads := &w.batch.loads
	loads.reset()
	var wms []int64
	for _, sp := range w.sps {
		wm := int64(math.MinInt64)
		// A partition that never saw an event has no window to close; its
		// watermark stays, so that the first events it gets (a replay of
		// older data, say) are not late only because it was idle.
		if sp.idle > 0 && now.Sub(sp.lastSeen) >= sp.idle && sp.s.part.Checkpoint().MaxTime != math.MinInt64 {
			wm = satSub(now.UnixNano(), sp.ooo)
			sp.keys.appendDue(loads, wm)
		}
		wms = append(wms, wm)
	}
	if err := w.load(); err != nil {
		if errors.Is(err, state.ErrFenced) {
			w.fenced(err)
			return false
		}
		w.setFailing(err)
		w.log.Warn("load keys", "err", err)
		return true // retried at the next tick
	}
	for i, sp := range w.sps {
		if wms[i] > sp.s.part.Watermark() {
			sp.s.part.Advance(wms[i])
		}
	}
	return true
}

// behind reports whether the partition has records it knows of but has
// not matched yet: records an earlier owner, or this one before its
// transaction aborted, read past the checkpoint it restored (below
// readTo), or fetched records waiting, paused or dropped for a rewind. Such
// a partition is not quiet however long the wall clock says it was: its
// re-fetch may wait out a rebalance or a fetch in flight, and a watermark
// moved on meanwhile would make those records late.
func (w *worker) behind() bool {
	return w.next < w.readTo || w.q.holding()
}

// satSub is a - b, saturated at math.MinInt64 (watermarks start there).
func satSub(a, b int64) int64 {
	if a < math.MinInt64+b {
		return math.MinInt64
	}
	return a - b
}
