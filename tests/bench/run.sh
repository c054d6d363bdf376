#!/usr/bin/env bash
# Runs the end-to-end benchmarks in interleaved rounds and prints the median
# of every metric plus the engine/floor ratio (the median of the per-round
# ratios, so that noise which slows one round slows both sides of its ratio).
#
#   tests/bench/run.sh [ROUNDS] [BENCH_REGEXP]
#
# ROUNDS defaults to 5; BENCH_REGEXP to 'ReadLines|Floor|Engine|Matcher'
# (which includes BenchmarkEngineVsFloor, the paired measurement of the
# ratio, see engine_test.go, and BenchmarkCommandVsFloor, which times the
# `shrike run` command itself, see command_test.go).
# One go test process per round: each process runs every benchmark once, in
# turn, so the floor and the engine see the same machine state. The stream
# is generated once into a temporary file (SHRIKE_BENCH_DATA) and reused by
# all rounds. Raw output stays in $OUT (default: a temporary directory) for
# benchstat, if installed: benchstat "$OUT"/round-*.txt
# Environment: SHRIKE_BENCH_EVENTS, SHRIKE_BENCH_KEYS (stream size),
# SHRIKE_BENCH_MATCHER_EVENTS, SHRIKE_BENCH_MEMORY_KEYS, CPUPROFILE=file
# (profile BenchmarkEngine in one extra run).
set -euo pipefail

rounds=${1:-5}
pattern=${2:-'ReadLines|Floor|Engine|Matcher'}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

out=${OUT:-$(mktemp -d -t shrike-bench-XXXXXX)}
mkdir -p "$out"
export SHRIKE_BENCH_DATA=${SHRIKE_BENCH_DATA:-$out/payments.jsonl}

binary() { # the test binary of round $1
	if [[ ${LAYOUT:-random} == default ]]; then echo "$out/bench.test"; else echo "$out/bench-$1.test"; fi
}
go test -c -o "$out/bench.test" ./tests/bench/
if [[ ${LAYOUT:-random} != default ]]; then
	for i in $(seq 1 "$rounds"); do
		go test -c -ldflags="-randlayout=$i" -o "$(binary "$i")" ./tests/bench/
	done
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(go version | cut -d' ' -f3-), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "results: $out"

for i in $(seq 1 "$rounds"); do
	# -test.run '^$' skips the tests; the benchmarks read the shared stream.
	ldflags=""
	[[ ${LAYOUT:-random} == default ]] || ldflags="-randlayout=$i"
	(cd tests/bench && SHRIKE_BENCH_LDFLAGS="$ldflags" "$(binary "$i")" -test.run '^$' -test.bench "$pattern" -test.benchmem -test.count 1) >"$out/round-$i.txt"
	echo "round $i/$rounds done"
done

if [[ -n ${CPUPROFILE:-} ]]; then
	(cd tests/bench && "$out/bench.test" -test.run '^$' -test.bench '^BenchmarkEngine$' -test.count 1 -test.cpuprofile "$out/cpu.pprof") >/dev/null
	go tool pprof -top -nodecount=25 "$out/bench.test" "$out/cpu.pprof" | tee "$CPUPROFILE"
fi

cat "$out"/round-*.txt | awk '
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	if (!(name in seen)) { seen[name] = 1; order[++nnames] = name }
	round[name]++
	for (i = 3; i + 1 <= NF; i += 2) {
		unit = $(i + 1)
		k = name SUBSEP unit
		if (!(k in nvals)) { units[name] = units[name] " " unit }
		vals[k, ++nvals[k]] = $i
		byround[name, unit, round[name]] = $i
	}
}
function median(k,   n, i, j, t, a) {
	n = nvals[k]
	for (i = 1; i <= n; i++) a[i] = vals[k, i]
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function num(v) { return v >= 1000 ? sprintf("%.0f", v) : sprintf("%.4g", v) }
function mid(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
END {
	printf "\n%-42s %-22s %14s %14s %14s   (n)\n", "benchmark", "unit", "median", "min", "max"
	for (x = 1; x <= nnames; x++) {
		name = order[x]
		nu = split(units[name], us, " ")
		for (u = 1; u <= nu; u++) {
			k = name SUBSEP us[u]
			lo = hi = vals[k, 1]
			for (i = 2; i <= nvals[k]; i++) { if (vals[k, i] < lo) lo = vals[k, i]; if (vals[k, i] > hi) hi = vals[k, i] }
			printf "%-42s %-22s %14s %14s %14s   (%d)\n", name, us[u], num(median(k)), num(lo), num(hi), nvals[k]
		}
	}
	n = 0
	for (r = 1; r <= round["BenchmarkEngine"] && r <= round["BenchmarkFloor"]; r++) {
		e = byround["BenchmarkEngine", "ns/event", r]; f = byround["BenchmarkFloor", "ns/event", r]
		if (e != "" && f > 0) ratios[++n] = e / f
	}
	if (n > 0) {
		lo = hi = ratios[1]
		for (i = 2; i <= n; i++) { if (ratios[i] < lo) lo = ratios[i]; if (ratios[i] > hi) hi = ratios[i] }
		printf "\nengine/floor wall time: median %.2fx (min %.2fx, max %.2fx, %d rounds); target <= 2x\n", mid(ratios, n), lo, hi, n
	}
	n = 0
	for (r = 1; r <= round["BenchmarkEngine"] && r <= round["BenchmarkFloor"]; r++) {
		e = byround["BenchmarkEngine", "cpu-ns/event", r]; f = byround["BenchmarkFloor", "cpu-ns/event", r]
		if (e != "" && f > 0) cratios[++n] = e / f
	}
	if (n > 0) {
		lo = hi = cratios[1]
		for (i = 2; i <= n; i++) { if (cratios[i] < lo) lo = cratios[i]; if (cratios[i] > hi) hi = cratios[i] }
		printf "engine/floor CPU time:  median %.2fx (min %.2fx, max %.2fx, %d rounds)\n", mid(cratios, n), lo, hi, n
	}
	k = "BenchmarkEngineVsFloor" SUBSEP "engine/floor"
	if (nvals[k] > 0) {
		lo = hi = vals[k, 1]
		for (i = 2; i <= nvals[k]; i++) { if (vals[k, i] < lo) lo = vals[k, i]; if (vals[k, i] > hi) hi = vals[k, i] }
		printf "engine/floor, paired (floor before and after each replay): median %.2fx (min %.2fx, max %.2fx, %d rounds); target <= 2x\n", median(k), lo, hi, nvals[k]
	}
	k = "BenchmarkCommandVsFloor" SUBSEP "command/floor"
	if (nvals[k] > 0) {
		lo = hi = vals[k, 1]
		for (i = 2; i <= nvals[k]; i++) { if (vals[k, i] < lo) lo = vals[k, i]; if (vals[k, i] > hi) hi = vals[k, i] }
		printf "shrike run command/floor (a process per run, floor before and after): median %.2fx (min %.2fx, max %.2fx, %d rounds); target <= 2x\n", median(k), lo, hi, nvals[k]
	}
}'

if command -v benchstat >/dev/null; then
	echo
	benchstat "$out"/round-*.txt
fi
