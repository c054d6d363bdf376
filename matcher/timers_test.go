package matcher

import (
	"math/rand/v2"
	"testing"
)

func TestTimerHeapPopsInDeadlineOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var h timerHeap
	var want []int64
	for range 500 {
		d := rng.Int64N(100)
		h.push(timer{deadline: d})
		want = append(want, d)
		if rng.IntN(3) == 0 {
			got := h.pop().deadline
			least := 0
			for i, w := range want {
				if w < want[least] {
					least = i
				}
			}
			if got != want[least] {
				t.Fatalf("pop = %d, want %d", got, want[least])
			}
			want = append(want[:least], want[least+1:]...)
		}
	}
	for prev := int64(-1); h.len() > 0; {
		d := h.pop().deadline
		if d < prev {
			t.Fatalf("pop = %d after %d", d, prev)
		}
		prev = d
	}
}
