package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkStateRSS measures what held state costs the `shrike run`
// command in peak resident memory, each pass a process of its own as
// users run it:
//
//   - open-matches: 500,000 keys each send one 80-byte event that opens a
//     partial match of an absence rule with a 24-hour window (a password
//     reset waiting for its second factor), against the same stream whose
//     events open nothing. B/open-match is the difference of the peak RSS
//     over the keys; open/base the ratio of the wall times.
//   - reorder-buffer: 500,000 events at 100,000 per second of event time
//     whose stream allows 2 s of disorder, so that about 200,000 events
//     wait in the reorder buffer at once, against the same stream allowing
//     none. No event opens a partial match. B/buffered-event is the
//     difference of the peak RSS over the events waiting.
//
// SHRIKE_BENCH_STATE_KEYS changes the number of keys (and events).
func BenchmarkStateRSS(b *testing.B) {
	bin := shrikeBinary(b)
	keys := envInt("SHRIKE_BENCH_STATE_KEYS", 500_000)
	dir := b.TempDir()
	openEvents := filepath.Join(dir, "open.jsonl")
	idleEvents := filepath.Join(dir, "idle.jsonl")
	// 1 ms apart: the whole stream spans 500 s of event time, far inside
	// the window, so every partial match stays open to the end.
	writeStateStream(b, openEvents, "reset", keys, time.Millisecond)
	writeStateStream(b, idleEvents, "other", keys, time.Millisecond)
	absence := writeRuleset(b, dir, "absence.yaml", "1s", `
  - id: reset-without-2fa
    within: 24h
    pattern:
      - step: reset
        where: event.type == "reset"
      - step: verify
        not: true
        where: event.type == "2fa"`)

	b.Run("open-matches", func(b *testing.B) {
		var open, base []passStats
		for b.Loop() {
			base = append(base, runShrike(b, bin, absence, idleEvents, 0))
			open = append(open, runShrike(b, bin, absence, openEvents, keys))
		}
		reportState(b, open, base, float64(keys), "B/open-match", "open/base")
	})

	// 10 µs apart: 100,000 events per second of event time.
	fast := filepath.Join(dir, "fast.jsonl")
	writeStateStream(b, fast, "other", keys, 10*time.Microsecond)
	waiting := 2 * time.Second / (10 * time.Microsecond)
	const noRuns = `
  - id: never
    within: 1m
    pattern:
      - step: first
        where: event.type == "reset"
      - step: second
        where: event.type == "2fa"`
	disordered := writeRuleset(b, dir, "disorder.yaml", "2s", noRuns)
	ordered := writeRuleset(b, dir, "ordered.yaml", "0s", noRuns)
	b.Run("reorder-buffer", func(b *testing.B) {
		var buffered, base []passStats
		for b.Loop() {
			base = append(base, runShrike(b, bin, ordered, fast, 0))
			buffered = append(buffered, runShrike(b, bin, disordered, fast, 0))
		}
		reportState(b, buffered, base, float64(min(int64(keys), int64(waiting))), "B/buffered-event", "buffered/base")
	})
}

// passStats is one `shrike run` process: its wall time and peak RSS.
type passStats struct {
	wall   time.Duration
	rssKiB int64
}

// runShrike runs `shrike run --quiet` once and checks it wrote the alerts
// expected (each open partial match ends as one when the input ends).
func runShrike(b *testing.B, bin, ruleset, events string, alerts int) passStats {
	b.Helper()
	var out lineCounter
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "run", "--quiet", "--rules", ruleset, events)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	start := time.Now()
	rss, err := runPeakRSS(b, cmd)
	if err != nil {
		b.Fatalf("shrike run --rules %s %s: %v\n%s", ruleset, events, err, stderr.Bytes())
	}
	wall := time.Since(start)
	if out.lines != alerts {
		b.Fatalf("shrike run --rules %s %s wrote %d alerts, want %d", ruleset, events, out.lines, alerts)
	}
	return passStats{wall: wall, rssKiB: rss}
}

// reportState reports the medians of the passes: peak RSS of both sides,
// the RSS difference per unit, and the ratio of wall times.
func reportState(b *testing.B, with, without []passStats, units float64, perUnit, ratio string) {
	med := func(ps []passStats, f func(passStats) float64) float64 {
		vs := make([]float64, len(ps))
		for i, p := range ps {
			vs[i] = f(p)
		}
		slices.Sort(vs)
		return vs[len(vs)/2]
	}
	rss := func(p passStats) float64 { return float64(p.rssKiB) * 1024 }
	wall := func(p passStats) float64 { return p.wall.Seconds() }
	b.ReportMetric(med(with, rss)/(1<<20), "peak-rss-MiB")
	b.ReportMetric(med(without, rss)/(1<<20), "base-peak-rss-MiB")
	b.ReportMetric((med(with, rss)-med(without, rss))/units, perUnit)
	b.ReportMetric(med(with, wall)/med(without, wall), ratio)
}

// writeStateStream writes n events of type typ, one per key, step apart in
// event time.
func writeStateStream(b *testing.B, path, typ string, n int, step time.Duration) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		ts := start.Add(time.Duration(i) * step).Format("2006-01-02T15:04:05.000000Z")
		fmt.Fprintf(w, `{"type":%q,"account_id":"acct-%07d","ts":%q}`+"\n", typ, i, ts)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// writeRuleset writes a ruleset of the given rules over the stream of
// writeStateStream, allowing disorder of maxOutOfOrderness.
func writeRuleset(b *testing.B, dir, name, maxOutOfOrderness, rulesYAML string) string {
	b.Helper()
	src := fmt.Sprintf(`ruleset: state
stream:
  key: event.account_id
  time: event.ts
  max_out_of_orderness: %s
rules:%s
`, maxOutOfOrderness, rulesYAML)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}
