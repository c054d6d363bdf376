package cep

import (
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// maxQueuedRecords is how many fetched records may wait for a worker before
// its partition is paused; it is resumed when half of them are done.
const maxQueuedRecords = 100_000

// handoff passes one partition's fetched records from the poll loop to its
// worker. The poll loop never blocks on it, so that one slow partition (or
// a Store that is down) never holds a poll or a rebalance: a partition
// whose worker falls behind is paused instead. It is the one structure the
// two goroutines share besides the status.
type handoff struct {
	cl    *kgo.Client
	topic string
	part  int32
	// setPaused reports pausing and resuming to the status, under mu, so
	// that the two cannot be reported out of order.
	setPaused func(bool)
	// wake is signalled when a batch is queued or the worker has reason
	// to look again (a reload, a checkpoint that makes room).
	wake chan struct{}

	mu     sync.Mutex
	queue  []fetched
	queued int  // records in queue
	paused bool // fetching of the partition is paused
	gone   bool // the worker stopped: drop what comes
	// rewinding: an aborted transaction sends the worker back to its last
	// checkpoint; what was fetched past it is dropped until the poll loop
	// has set the partition's fetch offset back (endRewind).
	rewinding bool
	// rewinds counts startRewind calls: an endRewind for an earlier one
	// (the worker was sent back again meanwhile) changes nothing.
	rewinds int64
}

// fetched is one poll's records of the partition.
type fetched struct {
	recs []*kgo.Record
	hw   int64     // the partition's high watermark at the fetch
	at   time.Time // the wall clock (EngineOptions.Clock) at the fetch
}

func newHandoff(cl *kgo.Client, topic string, part int32, setPaused func(bool)) *handoff {
	return &handoff{cl: cl, topic: topic, part: part, setPaused: setPaused, wake: make(chan struct{}, 1)}
}

// enqueue queues a poll's records of the partition. It never blocks: when
// too many records wait, the partition is paused.
func (h *handoff) enqueue(recs []*kgo.Record, hw int64, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gone || h.rewinding {
		return
	}
	h.queue = append(h.queue, fetched{recs: recs, hw: hw, at: at})
	h.queued += len(recs)
	if h.queued >= maxQueuedRecords && !h.paused {
		h.pause()
		h.setPaused(true)
	}
	h.poke()
}

// take removes the oldest queued batch, resuming the partition once half
// the queue is done.
func (h *handoff) take() (fetched, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.queue) == 0 {
		return fetched{}, false
	}
	f := h.queue[0]
	h.queue[0] = fetched{}
	h.queue = h.queue[1:]
	h.queued -= len(f.recs)
	if h.paused && h.queued <= maxQueuedRecords/2 {
		h.resume()
		h.setPaused(false)
	}
	return f, true
}

// retire drops the queue and stops the hand-over. A paused partition is
// resumed: pauses outlive assignments, and the partition may come back.
func (h *handoff) retire() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gone = true
	h.queue, h.queued = nil, 0
	if h.paused {
		h.resume()
	}
}

// fence drops the queue and stops the hand-over of a partition a newer
// owner took: fetching stays paused until the group takes the partition
// away (the next assignment resumes it).
func (h *handoff) fence() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gone = true
	h.queue, h.queued = nil, 0
	if !h.paused {
		h.pause()
	}
}

// holding reports whether records of the partition are queued for the
// worker, or fetching is paused (the worker fell behind) or rewinding.
func (h *handoff) holding() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.queued > 0 || h.paused || h.rewinding
}

// startRewind drops the queue and pauses fetching until endRewind: the
// records fetched so far lie past the checkpoint the worker goes back to.
func (h *handoff) startRewind() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rewinding = true
	h.rewinds++
	h.queue, h.queued = nil, 0
	if !h.paused {
		h.pause()
		h.setPaused(true)
	}
	h.poke()
}

// rewindCount is the number of startRewind calls so far.
func (h *handoff) rewindCount() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rewinds
}

// endRewind takes records again, once the fetch offset is set back for
// the rewind numbered n (rewindCount); the poll loop calls it, between
// polls.
func (h *handoff) endRewind(n int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n != h.rewinds {
		return
	}
	h.rewinding = false
	if h.paused && !h.gone {
		h.resume()
		h.setPaused(false)
	}
}

// pokeIfQueued wakes the worker when batches wait, as they do after the
// worker left them queued while its checkpoints failed.
func (h *handoff) pokeIfQueued() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.queue) > 0 {
		h.poke()
	}
}

// poke wakes the worker without blocking.
func (h *handoff) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *handoff) pause() {
	h.paused = true
	h.cl.PauseFetchPartitions(map[string][]int32{h.topic: {h.part}})
}

func (h *handoff) resume() {
	h.paused = false
	h.cl.ResumeFetchPartitions(map[string][]int32{h.topic: {h.part}})
}
