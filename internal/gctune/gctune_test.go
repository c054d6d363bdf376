package gctune

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestForServeSetsPercentUnlessGOGCIsSet(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	restore := ForServe()
	if got := debug.SetGCPercent(ServePercent); got != ServePercent {
		t.Errorf("GOGC after ForServe = %d, want %d", got, ServePercent)
	}
	restore()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC after restore = %d, want 100", got)
	}

	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150)
	defer ForReplay()()
	if got := debug.SetGCPercent(150); got != 150 {
		t.Errorf("GOGC with the variable set = %d, want the user's 150", got)
	}
}

func TestHeadroomLimit(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int64
	}{
		{0, MinReplayHeadroom},
		{100 << 20, 100<<20 + MinReplayHeadroom},
		{MinReplayHeadroom, 2 * MinReplayHeadroom},
		{1 << 30, 2 << 30},
		{math.MaxUint64 / 2, math.MaxInt64},
	} {
		if got := headroomLimit(c.live); got != c.want {
			t.Errorf("headroomLimit(%d) = %d, want %d", c.live, got, c.want)
		}
	}
}

// TestBoundHeadroomFollowsTheLiveHeap checks that the memory limit follows
// the live heap while bounded and comes back when stopped, and that a
// GOMEMLIMIT the user set stands.
func TestBoundHeadroomFollowsTheLiveHeap(t *testing.T) {
	const before = 5 << 40
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(before))
	stop := boundHeadroom()
	runtime.GC()
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		metrics.Read(live)
		want := headroomLimit(live[0].Value.Uint64())
		got := debug.SetMemoryLimit(-1)
		if got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("memory limit %d, want %d for %d live bytes", got, want, live[0].Value.Uint64())
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("memory limit after stop = %d, want %d", got, before)
	}

	t.Setenv("GOMEMLIMIT", "1GiB")
	boundHeadroom()()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("memory limit with GOMEMLIMIT set = %d, want the user's %d untouched", got, before)
	}
}
