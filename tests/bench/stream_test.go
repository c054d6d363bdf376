package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shrike-cep/shrike/internal/gctune"
	"github.com/shrike-cep/shrike/internal/gen"
	"github.com/shrike-cep/shrike/rules"
)

// streamOptions is the benchmark stream: a million events over 100,000
// accounts at 1,000 events per second of event time (about 17 minutes, so
// the rules' 10–60 minute windows stay open across most of it), 5% of them
// arriving up to 1.5 s late — inside the ruleset's 5 s max_out_of_orderness,
// so none is dropped as late — and one fraud scenario every 2,000 slots.
func streamOptions() gen.Options {
	return gen.Options{
		Seed:        20261120,
		Events:      envInt("SHRIKE_BENCH_EVENTS", 1_000_000),
		Keys:        envInt("SHRIKE_BENCH_KEYS", 100_000),
		Rate:        1000,
		OutOfOrder:  0.05,
		MaxLateness: 1500 * time.Millisecond,
		FraudRate:   0.0005,
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

var (
	streamOnce  sync.Once
	streamPath  string
	streamLines int
	streamErr   error
	tempDir     string
)

func TestMain(m *testing.M) {
	// As `shrike run` does before it loads a ruleset: the reservation is
	// possible only before the first collection (internal/gctune). Every
	// benchmark, the floor included, runs on the heap it shapes.
	gctune.ReserveHugePages()
	code := m.Run()
	for _, dir := range []string{tempDir, binaryDir} {
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
	}
	os.Exit(code)
}

// benchStream returns the path of the benchmark stream and its number of
// lines, generating it on first use.
func benchStream(b *testing.B) (string, int) {
	b.Helper()
	streamOnce.Do(func() {
		if p := os.Getenv("SHRIKE_BENCH_DATA"); p != "" {
			streamPath = p
			if _, err := os.Stat(p); err != nil {
				streamErr = writeStream(p)
			}
		} else {
			tempDir, streamErr = os.MkdirTemp("", "shrike-bench-")
			if streamErr != nil {
				return
			}
			streamPath = filepath.Join(tempDir, "payments.jsonl")
			streamErr = writeStream(streamPath)
		}
		if streamErr == nil {
			streamLines, streamErr = countLines(streamPath)
		}
	})
	if streamErr != nil {
		b.Fatalf("benchmark stream: %v", streamErr)
	}
	return streamPath, streamLines
}

func writeStream(path string) error {
	g, err := gen.New(streamOptions())
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create stream: %w", err)
	}
	if _, err := g.WriteTo(f); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close stream: %w", err)
	}
	return nil
}

// countLines counts the stream's lines by reading it through, rather than
// into memory: a 250 MB buffer live at the first collection would set the
// collector's goal from it, and the benchmarks after it would run with
// almost no collection, unlike `shrike run` in a fresh process.
func countLines(path string) (int, error) {
	n := 0
	err := readLines(path, func([]byte) { n++ })
	return n, err
}

// readLines calls fn with every line of path; the slice is only valid
// during the call, as with any streaming reader.
func readLines(path string, fn func(line []byte)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read lines: %w", err)
	}
	defer func() { _ = f.Close() }() // read only: a Close error loses nothing
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fn(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read lines: %w", err)
	}
	return nil
}

var (
	rulesetOnce sync.Once
	ruleset     *rules.Compiled
	rulesetErr  error
)

// paymentsRuleset loads rulesets/payments.yaml as `shrike run` does.
func paymentsRuleset(tb testing.TB) *rules.Compiled {
	tb.Helper()
	rulesetOnce.Do(func() {
		path := filepath.Join("..", "..", "rulesets", "payments.yaml")
		src, err := os.ReadFile(path)
		if err != nil {
			rulesetErr = err
			return
		}
		ruleset, rulesetErr = rules.Load(path, src, rules.CompileOptions{})
	})
	if rulesetErr != nil {
		tb.Fatalf("load payments ruleset: %v", rulesetErr)
	}
	return ruleset
}

// perEvent measures allocations and wall time across a benchmark loop and
// reports them per event, plus events/s.
// It also reports the process's CPU time per event (all goroutines, the
// garbage collector's included), which noise from other processes on a
// shared machine inflates far less than wall time.
type perEvent struct {
	mallocs uint64
	cpu     time.Duration
}

func startPerEvent() perEvent {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return perEvent{mallocs: ms.Mallocs, cpu: processCPU()}
}

func (p perEvent) report(b *testing.B, eventsPerOp int) {
	cpu := processCPU() - p.cpu
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	events := float64(b.N) * float64(eventsPerOp)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
	b.ReportMetric(float64(cpu.Nanoseconds())/events, "cpu-ns/event")
	b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(ms.Mallocs-p.mallocs)/events, "allocs/event")
}

// heapSampler records the peak of the live heap while a benchmark runs. It
// reads runtime/metrics, which does not stop the world, so sampling every
// few milliseconds costs the measured code next to nothing.
type heapSampler struct {
	stop chan struct{}
	done chan struct{}
	peak uint64
}

const heapMetric = "/memory/classes/heap/objects:bytes"

func startHeapSampler() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		s := []metrics.Sample{{Name: heapMetric}}
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			h.peak = max(h.peak, s[0].Value.Uint64())
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

// Stop ends sampling and returns the peak heap in bytes.
func (h *heapSampler) Stop() uint64 {
	close(h.stop)
	<-h.done
	return h.peak
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
