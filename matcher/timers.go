package matcher

// timerQueue orders the keys' timers by deadline. Most timers are
// scheduled in deadline order (a window of one length, opened as event
// time moves on): those go to a FIFO of fixed-size chunks, where pushing
// and popping touch one line of memory and no array is outgrown and left
// to the collector, and only the others pay for the heap. Timers of one
// deadline pop in the order they were scheduled among the FIFO's, and the
// heap's first.
type timerQueue struct {
	fifo timerFIFO
	heap timerHeap
}

func (q *timerQueue) len() int { return q.fifo.len() + q.heap.len() }

func (q *timerQueue) push(t timer) {
	if q.fifo.len() == 0 || t.deadline >= q.fifo.last().deadline {
		q.fifo.push(t)
		return
	}
	q.heap.push(t)
}

// fromHeap reports whether the earliest timer is the heap's.
func (q *timerQueue) fromHeap() bool {
	if q.heap.len() == 0 {
		return false
	}
	return q.fifo.len() == 0 || q.heap.min().deadline <= q.fifo.first().deadline
}

// min returns the earliest timer; the queue must not be empty.
func (q *timerQueue) min() timer {
	if q.fromHeap() {
		return q.heap.min()
	}
	return q.fifo.first()
}

// pop removes and returns the earliest timer; the queue must not be empty.
func (q *timerQueue) pop() timer {
	if q.fromHeap() {
		return q.heap.pop()
	}
	return q.fifo.pop()
}

// timerChunkLen is the number of timers in a chunk of the FIFO (8 KiB).
const timerChunkLen = 512

type timerChunk [timerChunkLen]timer

// timerFIFO is a queue of timers in chunks: the first chunk is read from
// head, the last written up to tail.
type timerFIFO struct {
	chunks []*timerChunk
	head   int // in chunks[0]
	tail   int // in the last chunk
	n      int
	// spare is a chunk emptied, for the next one needed.
	spare *timerChunk
}

func (f *timerFIFO) len() int { return f.n }

func (f *timerFIFO) first() timer { return f.chunks[0][f.head] }

func (f *timerFIFO) last() timer { return f.chunks[len(f.chunks)-1][f.tail-1] }

func (f *timerFIFO) push(t timer) {
	if len(f.chunks) == 0 || f.tail == timerChunkLen {
		c := f.spare
		if c == nil {
			c = new(timerChunk)
		}
		f.spare = nil
		f.chunks = append(f.chunks, c)
		f.tail = 0
	}
	f.chunks[len(f.chunks)-1][f.tail] = t
	f.tail++
	f.n++
}

func (f *timerFIFO) pop() timer {
	t := f.chunks[0][f.head]
	f.head++
	f.n--
	if f.n == 0 {
		// Its one chunk left, empty: it is written again from its start.
		f.head, f.tail = 0, 0
		return t
	}
	if f.head == timerChunkLen {
		f.spare = f.chunks[0]
		f.chunks[0] = nil
		f.chunks = f.chunks[1:]
		f.head = 0
	}
	return t
}
