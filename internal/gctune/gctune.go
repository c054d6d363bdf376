// Package gctune sets the Go runtime's memory management up for Shrike's
// commands: the collector's pace, and huge pages for a replay's heap
// (hugepages_linux.go).
package gctune

import (
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// ReplayPercent is the GOGC value batch replays run with. A replay holds
// every open partial match and the events they took; at Go's default of
// 100 the collector rescans that live heap after every 100% of growth and,
// on a 2-core machine, takes a core away from the pipelined replay about
// half the time. 400 trades memory (the heap may grow to five times the
// live data, up to the bound of MinReplayHeadroom) for about a third less
// wall time on the payments benchmark (BENCHMARKS.md).
const ReplayPercent = 400

// ForReplay applies ReplayPercent unless the user chose a value with the
// GOGC environment variable, which then stands, and asks for huge pages
// for the heap (see hugepages_linux.go). It returns a function that
// restores the previous GOGC and stops watching the heap (benchmarks
// measure other work after).
func ForReplay() (restore func()) {
	restoreGC := setPercent(ReplayPercent)
	stopAdvising := adviseHugePages()
	stopBounding := boundHeadroom()
	return func() {
		stopBounding()
		stopAdvising()
		restoreGC()
	}
}

// MinReplayHeadroom is the least a replay's heap may grow past its live
// data before the collector runs; past that much live data the heap may
// grow by as much again as is live, as at GOGC=100. ReplayPercent alone
// lets a heap grow to five times its live data: a replay holding state for
// half a million keys (250 MB) that ends in a burst of alerts, each
// garbage once written, peaked at 1 GB of resident memory, and paid a
// page fault for every new page of it (BENCHMARKS.md, "State in memory").
const MinReplayHeadroom = 256 << 20

// headroomPoll is how often the bound follows the live heap, which changes
// only when a collection ends.
const headroomPoll = 10 * time.Millisecond

// boundHeadroom keeps the runtime's memory limit at the live heap plus its
// headroom (MinReplayHeadroom or the live heap, the larger) until stop is
// called, which restores the limit before. A limit the user set with
// GOMEMLIMIT stands, and nothing is bounded.
func boundHeadroom() (stop func()) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return func() {}
	}
	before := debug.SetMemoryLimit(-1)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		tick := time.NewTicker(headroomPoll)
		defer tick.Stop()
		var live uint64
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v != live {
				live = v
				debug.SetMemoryLimit(headroomLimit(live))
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		debug.SetMemoryLimit(before)
	}
}

// headroomLimit is the memory limit for a live heap of live bytes.
func headroomLimit(live uint64) int64 {
	limit := live + max(MinReplayHeadroom, live)
	if limit > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(limit)
}

// ServePercent is the GOGC value `shrike serve` runs with. The engine's
// live heap is the resident key states, their partial matches and the
// events those hold (and, embedded, the broker's log); at Go's default of
// 100 collecting it cost about a quarter of the engine's CPU on the serve
// benchmark (BENCHMARKS.md). 300 lets the heap grow to four times the live
// data between collections. Operators who must bound memory set
// GOMEMLIMIT, under which the collector works harder as the heap nears
// the limit, or GOGC, which replaces this value.
const ServePercent = 300

// ForServe applies ServePercent unless GOGC is set; see ForReplay.
func ForServe() (restore func()) { return setPercent(ServePercent) }

func setPercent(percent int) (restore func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	old := debug.SetGCPercent(percent)
	return func() { debug.SetGCPercent(old) }
}
