package bench

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/internal/gctune"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// fixedClock keeps detected_at out of the measurement's variance.
func fixedClock() time.Time { return time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC) }

// BenchmarkEngine replays the stream through rulesets/payments.yaml with
// cep.Replay, exactly as `shrike run --rules rulesets/payments.yaml FILE`
// does (alerts are encoded, then discarded instead of printed), with the
// collector set up as `shrike run` sets it (internal/gctune).
func BenchmarkEngine(b *testing.B) {
	defer gctune.ForReplay()()
	path, lines := benchStream(b)
	rs := paymentsRuleset(b)
	var sum cep.Summary
	heap := startHeapSampler()
	pe := startPerEvent()
	for b.Loop() {
		sum = replayStream(b, rs, path, false)
	}
	pe.report(b, lines)
	peak := heap.Stop()
	if sum.Events != uint64(lines) || sum.DeadLettered != 0 || sum.Late != 0 {
		b.Fatalf("replay took %d of %d events (%d dead-lettered, %d late), want all", sum.Events, lines, sum.DeadLettered, sum.Late)
	}
	b.ReportMetric(float64(sum.PeakRuns), "peak-partial-matches")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(sum.Alerts), "alerts")
}

// BenchmarkEngineVsFloor measures the engine/floor ratio (BENCHMARKS.md) with
// both sides as close in time as possible: each iteration decodes the
// stream for the floor, replays it as BenchmarkEngine does, and decodes it
// for the floor again, and the engine's wall time is divided by the mean
// of the two floors around it. The machine here changes speed by up to 2×
// within seconds (other tenants); separate benchmarks seconds apart then
// compare different machines, this one mostly the same.
func BenchmarkEngineVsFloor(b *testing.B) {
	defer gctune.ForReplay()()
	path, lines := benchStream(b)
	rs := paymentsRuleset(b)
	var engine, floor time.Duration
	var ratios []float64
	// Each pass starts on a collected heap, as a `shrike run` process
	// starts on an empty one: otherwise the replay would pay for
	// collecting the floor's garbage (268 MB of strings per pass).
	for b.Loop() {
		e, f := pairWithFloor(b, path, lines, func() {
			if sum := replayStream(b, rs, path, false); sum.Events != uint64(lines) {
				b.Fatalf("replay took %d of %d events", sum.Events, lines)
			}
		})
		engine += e
		floor += f
		ratios = append(ratios, float64(e)/float64(f))
	}
	slices.Sort(ratios)
	b.ReportMetric(float64(engine.Nanoseconds())/float64(b.N)/float64(lines), "engine-ns/event")
	b.ReportMetric(float64(floor.Nanoseconds())/float64(b.N)/float64(lines), "floor-ns/event")
	b.ReportMetric(ratios[len(ratios)/2], "engine/floor")
}

// replayStream replays the stream file with rs as `shrike run` does, the
// alerts encoded and discarded (sequential: all on one goroutine).
func replayStream(b *testing.B, rs *rules.Compiled, path string, sequential bool) cep.Summary {
	b.Helper()
	sum, err := cep.Replay(context.Background(), cep.ReplayOptions{
		Rulesets:   []*rules.Compiled{rs},
		Inputs:     []cep.Input{{Name: path}},
		Alerts:     discard{},
		Clock:      fixedClock,
		Sequential: sequential,
	})
	if err != nil {
		b.Fatalf("replay: %v", err)
	}
	return sum
}

// pairWithFloor times run between two floor passes over the stream, each
// of the three started on a collected heap, and returns run's wall time
// and the mean of the floors'.
func pairWithFloor(b *testing.B, path string, lines int, run func()) (pass, floor time.Duration) {
	b.Helper()
	timed := func(f func()) time.Duration {
		runtime.GC()
		t := time.Now()
		f()
		return time.Since(t)
	}
	f1 := timed(func() { floorPass(b, path, lines) })
	pass = timed(run)
	f2 := timed(func() { floorPass(b, path, lines) })
	return pass, (f1 + f2) / 2
}

// BenchmarkEngineSequential is BenchmarkEngine with the whole replay on one
// goroutine (cep.ReplayOptions.Sequential): the gain of decoding on a second
// goroutine ahead of the matcher is the difference between the two.
func BenchmarkEngineSequential(b *testing.B) {
	defer gctune.ForReplay()()
	path, lines := benchStream(b)
	rs := paymentsRuleset(b)
	var sum cep.Summary
	heap := startHeapSampler()
	pe := startPerEvent()
	for b.Loop() {
		sum = replayStream(b, rs, path, true)
	}
	pe.report(b, lines)
	peak := heap.Stop()
	if sum.Events != uint64(lines) || sum.DeadLettered != 0 || sum.Late != 0 {
		b.Fatalf("replay took %d of %d events (%d dead-lettered, %d late), want all", sum.Events, lines, sum.DeadLettered, sum.Late)
	}
	b.ReportMetric(float64(sum.PeakRuns), "peak-partial-matches")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(sum.Alerts), "alerts")
}

// discard is an io.Writer that drops everything, spelled out so that the
// replay's buffered writer still runs its copy as it would to stdout.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkMatcher feeds records that are already decoded, keyed and timed
// to a matcher.Partition: the matcher and its CEL conditions alone, without
// reading, line decoding or key/time extraction. Each iteration gets freshly
// parsed events (outside the timer) so that no field decode is cached from
// the previous one. It uses the first SHRIKE_BENCH_MATCHER_EVENTS events
// (default 200,000) to keep the pre-decoded records' memory modest.
func BenchmarkMatcher(b *testing.B) { benchMatcher(b, paymentsRuleset(b), nil) }

// BenchmarkMatcherTracing is BenchmarkMatcher with the tracing of
// `shrike explain` off ("off", as BenchmarkMatcher) and on for a key the
// stream does not have ("other-key": every record pays the key check, none
// is traced): tracing off must cost nothing, and a trace must not slow
// down the keys it does not follow.
func BenchmarkMatcherTracing(b *testing.B) {
	b.Run("off", func(b *testing.B) { benchMatcher(b, paymentsRuleset(b), nil) })
	b.Run("other-key", func(b *testing.B) {
		traced := 0
		benchMatcher(b, paymentsRuleset(b), matcher.NewTracer("no-such-account", func(*matcher.TraceEvent) { traced++ }))
		if traced != 0 {
			b.Fatalf("traced %d events of a key the stream does not have", traced)
		}
	})
}

// benchMatcher is BenchmarkMatcher with the ruleset rs (over the payments
// stream) and tracer.
func benchMatcher(b *testing.B, rs *rules.Compiled, tracer *matcher.Tracer) {
	path, lines := benchStream(b)
	n := min(lines, envInt("SHRIKE_BENCH_MATCHER_EVENTS", 200_000))
	raw := make([][]byte, 0, n)
	err := readLines(path, func(line []byte) {
		if len(raw) < n {
			raw = append(raw, append([]byte(nil), line...))
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	prog, err := matcher.NewProgram([]*rules.Compiled{rs})
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]matcher.Record, n)
	var mallocs uint64
	var elapsed, cpu time.Duration
	var peak int
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j, line := range raw {
			recs[j] = decodeRecord(b, rs, line, j)
		}
		out := &countingOutput{}
		part, err := matcher.NewPartition(prog, out, matcher.Options{
			MaxOutOfOrderness: rs.Stream.MaxOutOfOrderness,
			Clock:             fixedClock,
			Tracer:            tracer,
		})
		if err != nil {
			b.Fatal(err)
		}
		before := startPerEvent()
		start := time.Now()
		b.StartTimer()
		for j := range recs {
			part.Push(&recs[j])
		}
		part.Advance(math.MaxInt64)
		b.StopTimer()
		elapsed += time.Since(start)
		after := startPerEvent()
		mallocs += after.mallocs - before.mallocs
		cpu += after.cpu - before.cpu
		st := part.Stats()
		peak = st.PeakRuns
		if st.Events != uint64(n) || st.Late != 0 {
			b.Fatalf("matcher took %d events (%d late), want %d", st.Events, st.Late, n)
		}
	}
	events := float64(b.N) * float64(n)
	b.ReportMetric(float64(elapsed.Nanoseconds())/events, "ns/event")
	b.ReportMetric(float64(cpu.Nanoseconds())/events, "cpu-ns/event")
	b.ReportMetric(events/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(mallocs)/events, "allocs/event")
	b.ReportMetric(float64(peak), "peak-partial-matches")
}

func decodeRecord(tb testing.TB, rs *rules.Compiled, line []byte, i int) matcher.Record {
	ev, err := rules.ParseEvent(line)
	if err != nil {
		tb.Fatalf("line %d: %v", i+1, err)
	}
	key, err := rs.Key.EvalKey(ev)
	if err != nil {
		tb.Fatalf("line %d: key: %v", i+1, err)
	}
	t, err := rs.Time.EvalTime(ev)
	if err != nil {
		tb.Fatalf("line %d: time: %v", i+1, err)
	}
	return matcher.Record{Event: ev, Key: key, Time: t, Pos: matcher.Position{Source: "bench", Offset: int64(i + 1)}}
}

type countingOutput struct{ alerts, late int }

func (o *countingOutput) Alert(*matcher.Alert) { o.alerts++ }
func (o *countingOutput) Late(*matcher.Record) { o.late++ }

// openers are events that each open exactly one partial match of one rule
// of rulesets/payments.yaml, and a closer that opens none (the baseline).
var openers = []struct {
	name  string
	rules []string // the rules one such event opens a partial match in
	line  string   // %d: account, %s: ts
}{
	{"absence", []string{"reset-without-2fa"}, `{"type":"password_reset","account_id":"acct-%07d","amount":0.00,"currency":"EUR","country":"DE","ip":"84.23.101.7","device":"ios-3f9a2c","success":true,"merchant":"","card_id":"","lat":52.5200,"lon":13.4050,"ts":"%s"}`},
	{"login", []string{"impossible-travel"}, `{"type":"login","account_id":"acct-%07d","amount":0.00,"currency":"EUR","country":"DE","ip":"84.23.101.7","device":"ios-3f9a2c","success":true,"merchant":"","card_id":"","lat":52.5200,"lon":13.4050,"ts":"%s"}`},
	{"failed-login", []string{"account-takeover"}, `{"type":"login","account_id":"acct-%07d","amount":0.00,"currency":"EUR","country":"DE","ip":"84.23.101.7","device":"ios-3f9a2c","success":false,"merchant":"","card_id":"","lat":52.5200,"lon":13.4050,"ts":"%s"}`},
	{"small-card-auth", []string{"card-testing"}, `{"type":"card_auth","account_id":"acct-%07d","amount":1.00,"currency":"EUR","country":"DE","ip":"84.23.101.7","device":"ios-3f9a2c","success":true,"merchant":"m-12345","card_id":"card-a222f770a9","lat":52.5200,"lon":13.4050,"ts":"%s"}`},
	{"structuring-transfer", []string{"structuring", "velocity"}, `{"type":"transfer","account_id":"acct-%07d","amount":9500.00,"currency":"EUR","country":"DE","ip":"84.23.101.7","device":"ios-3f9a2c","success":true,"merchant":"","card_id":"","lat":52.5200,"lon":13.4050,"ts":"%s"}`},
}

const baselineLine = `{"type":"logout","account_id":"acct-%07d","amount":0.00,"currency":"EUR","country":"DE","ip":"84.23.101.7","device":"ios-3f9a2c","success":true,"merchant":"","card_id":"","lat":52.5200,"lon":13.4050,"ts":"%s"}`

// fillPartition pushes one event per key for keys accounts, a millisecond
// apart, then advances the watermark just past the last one: every event
// is matched and no window (all ≥ 10m) has closed.
func fillPartition(tb testing.TB, rs *rules.Compiled, prog *matcher.Program, format string, keys int) *matcher.Partition {
	part, err := matcher.NewPartition(prog, &countingOutput{}, matcher.Options{
		MaxOutOfOrderness: rs.Stream.MaxOutOfOrderness,
		Clock:             fixedClock,
	})
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	var last int64
	for i := range keys {
		ts := start.Add(time.Duration(i) * time.Millisecond).Format("2006-01-02T15:04:05.000Z")
		rec := decodeRecord(tb, rs, fmt.Appendf(nil, format, i, ts), i)
		last = rec.Time
		part.Push(&rec)
	}
	part.Advance(last + 1)
	return part
}

// meanKeyStateBytes is the mean size of the keys' encoded states, what a
// checkpoint writes to the Store per key (matcher.Partition.AppendKeyState),
// for the keys fillPartition made.
func meanKeyStateBytes(tb testing.TB, part *matcher.Partition, keys int) float64 {
	var total int
	var buf []byte
	for i := range keys {
		var ok bool
		buf, ok = part.AppendKeyState(buf[:0], fmt.Sprintf("acct-%07d", i))
		if !ok {
			tb.Fatalf("key acct-%07d has no state", i)
		}
		total += len(buf)
	}
	return float64(total) / float64(keys)
}

// BenchmarkPartialMatchMemory measures the live heap a partial match holds,
// event included: the heap with 100,000 keys holding one open partial match
// each, minus the heap with 100,000 keys that saw an event opening none,
// divided by 100,000; and the mean size of such a key's encoded state, what
// a checkpoint writes to Redis for it (B/key-state, before Redis's own
// overhead). It is a measurement rather than a timing; the ns/op it also
// prints means nothing.
func BenchmarkPartialMatchMemory(b *testing.B) {
	rs := paymentsRuleset(b)
	prog, err := matcher.NewProgram([]*rules.Compiled{rs})
	if err != nil {
		b.Fatal(err)
	}
	keys := envInt("SHRIKE_BENCH_MEMORY_KEYS", 100_000)
	for _, o := range openers {
		b.Run(o.name, func(b *testing.B) {
			var perRun, perIdleKey, stateBytes float64
			for b.Loop() {
				h0 := liveHeap()
				base := fillPartition(b, rs, prog, baselineLine, keys)
				h1 := liveHeap()
				open := fillPartition(b, rs, prog, o.line, keys)
				h2 := liveHeap()
				st := open.Stats()
				runs := keys * len(o.rules)
				if st.LiveRuns != runs {
					b.Fatalf("%d open partial matches, want %d", st.LiveRuns, runs)
				}
				if bs := base.Stats(); bs.LiveRuns != 0 {
					b.Fatalf("baseline holds %d partial matches, want 0", bs.LiveRuns)
				}
				perRun = (float64(h2) - float64(h1)) / float64(keys*len(o.rules))
				perIdleKey = (float64(h1) - float64(h0)) / float64(keys)
				stateBytes = meanKeyStateBytes(b, open, keys)
				// Both partitions must stay alive until the heap is read.
				runtime.KeepAlive(base)
				runtime.KeepAlive(open)
			}
			b.ReportMetric(perRun, "B/partial-match")
			b.ReportMetric(perIdleKey, "B/idle-key")
			b.ReportMetric(float64(len(o.line)-2), "event-B")
			b.ReportMetric(stateBytes, "B/key-state")
		})
	}
}

// TestOpenersOpenOneRun guards BenchmarkPartialMatchMemory's premise: each
// opener opens exactly one partial match, of the rule it names, and the
// baseline none. It runs ten keys of each, quickly, in the default test run.
func TestOpenersOpenOneRun(t *testing.T) {
	rs := paymentsRuleset(t)
	prog, err := matcher.NewProgram([]*rules.Compiled{rs})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range openers {
		t.Run(o.name, func(t *testing.T) {
			part := fillPartition(t, rs, prog, o.line, 10)
			if st := part.Stats(); st.LiveRuns != 10*len(o.rules) {
				t.Fatalf("10 %s events: %d open partial matches, want %d", o.name, st.LiveRuns, 10*len(o.rules))
			}
			// Closing every window ends each partial match as a timeout
			// (or, for the absence rule, an alert) of the rule it belongs
			// to: that attributes the open ones.
			part.Advance(math.MaxInt64)
			for id, rst := range part.Stats().ByRule {
				ended := rst.Timeouts + rst.Alerts
				opened := id.Ruleset == "payments" && slices.Contains(o.rules, id.Rule)
				if opened && ended < 10 {
					t.Errorf("rule %s: %d partial matches ended, want 10", id, ended)
				}
				if !opened && ended != 0 {
					t.Errorf("rule %s: %d partial matches ended, want 0", id, ended)
				}
			}
		})
	}
	st := fillPartition(t, rs, prog, baselineLine, 10).Stats()
	if st.LiveRuns != 0 {
		t.Errorf("10 baseline events: %d open partial matches, want 0", st.LiveRuns)
	}
}
