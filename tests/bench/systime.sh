#!/usr/bin/env bash
# Times the `shrike run` command on the payments stream under several
# environments, in interleaved rounds, and prints the median wall, user and
# system time, peak RSS and minor page faults of each, and each one's median
# per-round difference from the first.
#
#   tests/bench/systime.sh [ROUNDS] [NAME=ENV...]
#
# ROUNDS defaults to 5. Each NAME=ENV runs the command with ENV (one
# VAR=value, or several separated by spaces) added to its environment;
# "base=" adds nothing. Default: base= alone. Example:
#
#   tests/bench/systime.sh 9 base= gogc300=GOGC=300 nothp=GODEBUG=disablethp=1
#
# On a virtual machine whose host reclaims the memory the guest frees
# (virtio-balloon free page reporting), the first touch of memory another
# process freed a moment ago costs a twentieth of the first touch of memory
# the host took back, so a run's system time depends on the run before it
# (BENCHMARKS.md, "System time"). Each run therefore waits SETTLE seconds
# (default 5) for the host to reclaim what the run before freed, as when the
# command is run once; SETTLE=0 measures back-to-back runs. The order of the
# configurations also rotates each round.
# Environment: SHRIKE_BIN (default: built from cmd/shrike into the results
# directory), SHRIKE_BENCH_DATA (the stream; generated there if missing:
# SHRIKE_BENCH_EVENTS, default 1,000,000, SHRIKE_BENCH_KEYS, default
# 100,000), OUT (results directory, default a temporary one). Needs GNU
# time at /usr/bin/time.
set -euo pipefail

rounds=${1:-5}
shift || true
configs=("$@")
[[ ${#configs[@]} -gt 0 ]] || configs=(base=)
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

out=${OUT:-$(mktemp -d -t shrike-systime-XXXXXX)}
mkdir -p "$out"
bin=${SHRIKE_BIN:-$out/shrike}
[[ -n ${SHRIKE_BIN:-} ]] || go build -o "$bin" ./cmd/shrike
data=${SHRIKE_BENCH_DATA:-$out/payments.jsonl}
if [[ ! -s $data ]]; then
	"$bin" gen --scenario payments --events "${SHRIKE_BENCH_EVENTS:-1000000}" \
		--keys "${SHRIKE_BENCH_KEYS:-100000}" --out "$data" >/dev/null
fi
echo "machine: $(nproc) cores, $(uname -r), $(go version | cut -d' ' -f3-), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "results: $out/runs.txt"

n=${#configs[@]}
: >"$out/runs.txt"
for r in $(seq 1 "$rounds"); do
	for j in $(seq 0 $((n - 1))); do
		config=${configs[$(((j + r) % n))]}
		name=${config%%=*}
		read -r -a vars <<<"${config#*=}"
		sleep "${SETTLE:-5}"
		/usr/bin/time -o "$out/time.txt" -f '%e %U %S %M %R' \
			env "${vars[@]}" "$bin" run --quiet --rules rulesets/payments.yaml "$data" >/dev/null
		echo "$name $r $(cat "$out/time.txt")" >>"$out/runs.txt"
	done
	echo "round $r/$rounds done"
done

# runs.txt: name round wall user sys maxrss-KiB minor-faults
names=""
for config in "${configs[@]}"; do names="$names ${config%%=*}"; done
awk -v names="$names" '
function median(list,   a, n, i, j, t) {
	n = split(substr(list, 2), a, " ")
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
	wall[$1] = wall[$1] " " $3; user[$1] = user[$1] " " $4; sys[$1] = sys[$1] " " $5
	cpu[$1] = cpu[$1] " " ($4 + $5); rss[$1] = rss[$1] " " $6 / 1024; faults[$1] = faults[$1] " " $7
	run[$1, $2] = $3 " " ($4 + $5) " " $5; rounds[$2] = 1
}
END {
	n = split(names, order, " "); first = order[1]
	printf "%-12s %7s %7s %7s %9s %9s %9s   %s\n", "config", "wall s", "user s", "sys s", "user+sys", "RSS MiB", "minflt", "vs " first " (median per round): wall, user+sys, sys"
	for (i = 1; i <= n; i++) {
		c = order[i]; dw = dc = ds = ""
		for (r in rounds) if ((c, r) in run && (first, r) in run) {
			split(run[c, r], x, " "); split(run[first, r], y, " ")
			dw = dw " " x[1] - y[1]; dc = dc " " x[2] - y[2]; ds = ds " " x[3] - y[3]
		}
		printf "%-12s %7.2f %7.2f %7.2f %9.2f %9.0f %9.0f   %+.2f %+.2f %+.2f\n", c, median(wall[c]), median(user[c]), median(sys[c]), median(cpu[c]), median(rss[c]), median(faults[c]), median(dw), median(dc), median(ds)
	}
}' "$out/runs.txt"
