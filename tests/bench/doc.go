// Package bench holds Shrike's end-to-end benchmarks: the payments ruleset
// (rulesets/payments.yaml) replayed through cep.Replay, the path `shrike run`
// takes, over a generated stream of a million events, measured next to a
// decode-only floor in the same process.
//
// Invariants:
//   - The stream is generated once per process (internal/gen, fixed seed)
//     into a temporary directory, or read from SHRIKE_BENCH_DATA when that
//     names a file, and removed at exit; every benchmark reads the same bytes.
//   - Only benchmarks touch the big stream: `go test ./tests/bench` runs the
//     quick tests alone, so the default test run stays fast.
//   - Metrics are per event (ns/event, allocs/event, events/s) so that runs
//     over streams of different sizes compare; run.sh turns them into
//     medians and the engine/floor ratio.
package bench
