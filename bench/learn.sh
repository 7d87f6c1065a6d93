#!/usr/bin/env bash
# bench/learn.sh: `airlock policy learn` on synthetic decision logs of
# BENCH_LEARN_SIZES records (100,000 and 1,000,000 by default), written by
# bench/learngen (a cluster of 50 nodes and 2,000 pods in report mode: 70%
# allowed, AKS tag names, SaaS siblings, storage accounts under a public
# suffix, NTP/SSH/ICMP flows without a name, 30% DNS questions, 1% other
# lines). Each size runs BENCH_ROUNDS times under /usr/bin/time -v; the
# report gives the median wall time, records per second and the largest
# maximum RSS. A last run on 1,000,000 records with BENCH_LEARN_WIDE
# distinct extra names (default 400: ~160,000 distinct names, beyond the key
# limit) shows memory bounded by --max-keys (100,000) rather than by the
# input. There is no peer: no other tool turns airlock's records into a
# policy.
#
# Prints a Markdown report. Environment: BENCH_LEARN_SIZES ("100000
# 1000000"), BENCH_ROUNDS (3), BENCH_LEARN_WIDE (400), AIRLOCK_BIN (else
# bin/airlock is built).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"

sizes=${BENCH_LEARN_SIZES:-100000 1000000}
rounds=${BENCH_ROUNDS:-3}
wide=${BENCH_LEARN_WIDE:-400}
[ -x /usr/bin/time ] || die "/usr/bin/time not installed (apt-get install time)"
airlock=$(build_airlock)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$ROOT" && go build -o "$work/learngen" ./bench/learngen) || die "go build ./bench/learngen failed"
sources='nodes=10.224.0.0/16;pods=10.244.0.0/16'

# run FILE: one learn run; prints "wall_seconds max_rss_kib rules".
run() {
	/usr/bin/time -v -o "$work/time" "$airlock" policy learn --from "$1" --sources "$sources" \
		--output "$work/learned.yaml" 2>"$work/stderr" || { cat "$work/stderr" >&2; die "policy learn failed"; }
	"$airlock" policy check "$work/learned.yaml" >/dev/null || die "the learned policy fails policy check"
	local wall rss rules
	wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$work/time")
	rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/time")
	rules=$(sed -n 's/.*; \([0-9]*\) rules proposed.*/\1/p' "$work/stderr")
	echo "$wall $rss $rules"
}

# bench LABEL FILE RECORDS: BENCH_ROUNDS runs; prints a table row.
bench() {
	local label=$1 file=$2 n=$3 walls=() rssmax=0 rules wall rss
	for _ in $(seq "$rounds"); do
		read -r wall rss rules < <(run "$file")
		walls+=("$wall")
		[ "$rss" -gt "$rssmax" ] && rssmax=$rss
	done
	wall=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	printf '| %s | %s | %s MB | %.2f s | %.0f | %.0f MiB | %s |\n' "$label" "$n" \
		"$(du -m "$file" | cut -f1)" "$wall" "$(echo "$n / $wall" | bc -l)" "$(echo "$rssmax / 1024" | bc -l)" "$rules"
}

echo "## policy learn ($(date -u +%Y-%m-%d), $(nproc) CPUs, $rounds rounds, median wall time, largest max RSS)"
echo
echo "Command: \`airlock policy learn --from FILE --sources '$sources' --output learned.yaml\` under \`/usr/bin/time -v\`."
echo
echo "| log | lines | size | wall | lines/s | max RSS | rules |"
echo "|---|---|---|---|---|---|---|"
for n in $sizes; do
	"$work/learngen" -n "$n" >"$work/log-$n.jsonl"
	bench "cluster log" "$work/log-$n.jsonl" "$n"
	rm -f "$work/log-$n.jsonl"
done
"$work/learngen" -n 1000000 -names "$wide" >"$work/wide.jsonl"
bench "cluster log + ${wide}² wide names" "$work/wide.jsonl" 1000000
grep -h 'key limit' "$work/stderr" | sed 's/^/> /' || true
