package matcher

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTimerQueuePopsInDeadlineOrder pushes timers mostly in deadline
// order, some out of it, and pops some between pushes: every pop must
// return the earliest deadline pushed and not popped, across chunks.
func TestTimerQueuePopsInDeadlineOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var q timerQueue
	var want []int64 // the deadlines in the queue, sorted
	next := int64(0)
	for step := range 200_000 {
		if rng.IntN(3) > 0 || len(want) == 0 {
			d := next
			if rng.IntN(10) == 0 {
				d -= rng.Int64N(5000) // out of order: to the heap
			} else {
				next += rng.Int64N(3)
			}
			q.push(timer{deadline: d, hash: uint64(step)})
			at, _ := slices.BinarySearch(want, d)
			want = slices.Insert(want, at, d)
		} else {
			if got := q.min().deadline; got != want[0] {
				t.Fatalf("step %d: min %d, want %d", step, got, want[0])
			}
			if got := q.pop().deadline; got != want[0] {
				t.Fatalf("step %d: popped %d, want %d", step, got, want[0])
			}
			want = want[1:]
		}
		if q.len() != len(want) {
			t.Fatalf("step %d: len %d, want %d", step, q.len(), len(want))
		}
	}
	for len(want) > 0 {
		if got := q.pop().deadline; got != want[0] {
			t.Fatalf("draining: popped %d, want %d", got, want[0])
		}
		want = want[1:]
	}
	if q.len() != 0 || len(q.fifo.chunks) > 1 {
		t.Fatalf("drained queue: len %d, %d chunks", q.len(), len(q.fifo.chunks))
	}
}
