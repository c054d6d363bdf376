// Package gctune sets the Go runtime's memory management up for Shrike's
// commands: the collector's pace, and huge pages for a replay's heap
// (hugepages_linux.go).
package gctune

import (
	"os"
	"runtime/debug"
)

// ReplayPercent is the GOGC value batch replays run with. A replay holds
// every open partial match and the events they took; at Go's default of
// 100 the collector rescans that live heap after every 100% of growth and,
// on a 2-core machine, takes a core away from the pipelined replay about
// half the time. 400 trades memory (the heap may grow to five times the
// live data) for about a third less wall time on the payments benchmark
// (BENCHMARKS.md).
const ReplayPercent = 400

// ForReplay applies ReplayPercent unless the user chose a value with the
// GOGC environment variable, which then stands, and asks for huge pages
// for the heap (see hugepages_linux.go). It returns a function that
// restores the previous GOGC and stops watching the heap (benchmarks
// measure other work after).
func ForReplay() (restore func()) {
	restoreGC := setPercent(ReplayPercent)
	stopAdvising := adviseHugePages()
	return func() {
		stopAdvising()
		restoreGC()
	}
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
