package bench

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// runPeakRSS runs cmd to its end and returns the peak resident memory of
// the process it started, in KiB, and the error Wait returned.
//
// The rusage of the exited process is no measure of it: os/exec starts a
// command with vfork, whose child shares the parent's memory until it
// calls exec, and Linux carries the high-water mark of that memory into
// the child's ru_maxrss, so that every command would report at least the
// benchmark's own resident memory. The process's own high-water mark
// (VmHWM in /proc/PID/status) starts afresh at exec; it is read every
// 2 ms until the process exits (a peak reached in its last 2 ms is missed).
func runPeakRSS(tb testing.TB, cmd *exec.Cmd) (peakKiB int64, err error) {
	tb.Helper()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	var peak atomic.Int64
	status := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status"
	done := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			if kib, ok := readHighWaterMark(status); ok {
				peak.Store(max(peak.Load(), kib))
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	<-polled
	if peak.Load() == 0 {
		tb.Fatalf("%s: no VmHWM read from %s", cmd.Path, status)
	}
	return peak.Load(), err
}

// readHighWaterMark returns the VmHWM line of a /proc/PID/status file, in KiB.
func readHighWaterMark(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	i := bytes.Index(b, []byte("VmHWM:"))
	if i < 0 {
		return 0, false
	}
	fields := bytes.Fields(b[i+len("VmHWM:"):])
	if len(fields) < 2 || string(fields[1]) != "kB" {
		return 0, false
	}
	kib, err := strconv.ParseInt(string(fields[0]), 10, 64)
	return kib, err == nil
}

// lineCounter is an io.Writer that counts the lines written to it and
// keeps none of them, so that a command's output does not grow the
// benchmark's own memory.
type lineCounter struct{ lines int }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.lines += bytes.Count(p, []byte("\n"))
	return len(p), nil
}
