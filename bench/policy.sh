#!/usr/bin/env bash
# bench/policy.sh: the cost of a policy decision as policies grow. Runs the
# Go benchmarks of internal/policy (bench_test.go) under the bench lock
# (/tmp/airlock-bench.lock, so no other benchmark shares the CPUs) and
# prints a Markdown report: Decide, AllowsName and DNAT per call at 10 to
# 100,000 rules (and 10,000 rules holding 100,000 names), indexed (what the
# servers call) against the linear evaluator (the test oracle, which is
# what Decide did before the indexes); the slowest single flow; Compile
# time and memory at 10,000 and 100,000 rules; Decide latency while a
# 100,000-rule policy is compiled and swapped in, against none. It writes
# the chart docs/img/bench-policy.svg (bench/chart). There is no peer: no
# other program evaluates this rule model.
#
# The policies (scaleConfig) mix network rules (CIDRs, port ranges, "*"
# ports, ICMP, destination FQDNs), application rules (exact names and
# "*.suffix" wildcards, the AzureKubernetesService tag on every 50th) and
# DNAT rules, allow and deny collections, groups written out of priority
# order. "mix" flows: three in four aimed at a random rule; "miss": none
# matches (the linear evaluator's worst case).
#
# Environment: BENCH_TIME (300ms: go test -benchtime of the per-call
# benchmarks), BENCH_CHART (docs/img/bench-policy.svg; empty: no chart).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"

if [ -z "${AIRLOCK_BENCH_LOCKED:-}" ]; then
	exec env AIRLOCK_BENCH_LOCKED=1 flock /tmp/airlock-bench.lock "$0" "$@"
fi
btime=${BENCH_TIME:-300ms}
chart=${BENCH_CHART-docs/img/bench-policy.svg}
cd "$ROOT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

log "bench/policy.sh: per-call benchmarks (-benchtime=$btime)"
go test -run '^$' -bench '^BenchmarkScale$' -benchtime="$btime" -timeout 30m ./internal/policy >"$work/scale.txt" ||
	{ cat "$work/scale.txt" >&2; die "BenchmarkScale failed"; }
log "bench/policy.sh: worst flow, compile, reload (-benchtime=1x)"
go test -run '^$' -bench '^(BenchmarkWorstFlow|BenchmarkCompile|BenchmarkReload)$' -benchtime=1x -timeout 30m ./internal/policy >"$work/once.txt" ||
	{ cat "$work/once.txt" >&2; die "benchmarks failed"; }

# ns/op of BenchmarkScale/rules=R,names=N/OP/IMPL/SET, as µs.
us() {
	awk -v k="BenchmarkScale/rules=$1,names=$2/$3/$4/$5-" 'index($1, k) == 1 { printf "%.3f", $3 / 1000; f = 1 } END { if (!f) printf "-" }' "$work/scale.txt"
}
# metric UNIT of benchmark NAME (prefix of the first field).
metric() {
	awk -v k="$1" -v u="$2" 'index($1, k) == 1 { for (i = 3; i < NF; i++) if ($(i + 1) == u) { print $i; f = 1 } } END { if (!f) print "-" }' "$work/once.txt"
}

sizes="10:20 100:200 1000:2000 10000:20000 10000:100000 100000:200000"
{
	echo "# Policy at scale"
	echo
	echo "Commit $commit, $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), go test -benchtime=$btime; µs per call, mean over 1,024 flows."
	echo
	echo "| rules | names | Decide indexed mix | Decide linear mix | Decide indexed miss | Decide linear miss | AllowsName indexed mix | AllowsName linear mix | AllowsName indexed miss | AllowsName linear miss | DNAT indexed mix | DNAT linear mix | worst flow Decide | worst flow AllowsName |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for s in $sizes; do
		r=${s%:*} n=${s#*:}
		wd=$(metric "BenchmarkWorstFlow/rules=$r,names=$n-" worst-decide-ns)
		wn=$(metric "BenchmarkWorstFlow/rules=$r,names=$n-" worst-name-ns)
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$r" "$n" \
			"$(us "$r" "$n" Decide indexed mix)" "$(us "$r" "$n" Decide linear mix)" \
			"$(us "$r" "$n" Decide indexed miss)" "$(us "$r" "$n" Decide linear miss)" \
			"$(us "$r" "$n" AllowsName indexed mix)" "$(us "$r" "$n" AllowsName linear mix)" \
			"$(us "$r" "$n" AllowsName indexed miss)" "$(us "$r" "$n" AllowsName linear miss)" \
			"$(us "$r" "$n" DNAT indexed mix)" "$(us "$r" "$n" DNAT linear mix)" \
			"$(awk -v v="$wd" 'BEGIN { if (v == "-") print "-"; else printf "%.3f", v / 1000 }')" \
			"$(awk -v v="$wn" 'BEGIN { if (v == "-") print "-"; else printf "%.3f", v / 1000 }')"
	done
	echo
	echo "Compile (one run each):"
	echo
	echo "| rules | names | Compile s | allocated MB | allocations | heap kept MB |"
	echo "|---:|---:|---:|---:|---:|---:|"
	for s in 10000:20000 100000:200000; do
		r=${s%:*} n=${s#*:}
		awk -v k="BenchmarkCompile/rules=$r,names=$n-" -v r="$r" -v n="$n" 'index($1, k) == 1 {
			for (i = 3; i < NF; i++) { if ($(i + 1) == "ns/op") t = $i; if ($(i + 1) == "B/op") m = $i; if ($(i + 1) == "allocs/op") a = $i; if ($(i + 1) == "heap-MB") h = $i }
			printf "| %s | %s | %.2f | %.0f | %s | %.1f |\n", r, n, t / 1e9, m / 1048576, a, h }' "$work/once.txt"
	done
	echo
	echo "Decide latency (ns, one call timed, histogram buckets within ~6%) on the current policy of 100,000 rules, $(($(nproc) > 1 ? $(nproc) - 1 : 1)) reader goroutine(s):"
	echo
	echo "| | calls | p50 | p99 | p99.9 | max |"
	echo "|---|---:|---:|---:|---:|---:|"
	for m in steady reload; do
		printf '| %s | %s | %s | %s | %s | %s |\n' "$m" "$(metric BenchmarkReload- "$m-calls")" "$(metric BenchmarkReload- "$m-p50-ns")" \
			"$(metric BenchmarkReload- "$m-p99-ns")" "$(metric BenchmarkReload- "$m-p999-ns")" "$(metric BenchmarkReload- "$m-max-ns")"
	done
	echo
	echo "steady: 0.5 s with no reload; reload: while Compile of a 100,000-rule policy and the pointer swap ran ($(metric BenchmarkReload- reload-s) s)."
} | tee "$work/report.md"

if [ -n "$chart" ]; then
	{
		echo "rules Decide-indexed Decide-linear AllowsName-indexed AllowsName-linear DNAT-indexed DNAT-linear"
		for s in 10:20 100:200 1000:2000 10000:20000 100000:200000; do
			r=${s%:*} n=${s#*:}
			echo "$r $(us "$r" "$n" Decide indexed mix) $(us "$r" "$n" Decide linear mix) $(us "$r" "$n" AllowsName indexed mix) $(us "$r" "$n" AllowsName linear mix) $(us "$r" "$n" DNAT indexed mix) $(us "$r" "$n" DNAT linear mix)"
		done
	} >"$work/chart.tsv"
	go run ./bench/chart --title "Policy decision cost against rules (mixed flows)" --x rules --y "µs per call" --logx --logy <"$work/chart.tsv" >"$chart"
	log "bench/policy.sh: chart written to $chart"
fi
