#!/usr/bin/env bash
# bench/dns-cores.sh: the DNS scaling runs of issue 15, each one run of
# bench/dns.sh (see there for the setup and the figures):
#   - BENCH_CORES=1 and BENCH_CORES=2 (every target: airlock, unbound-fwd,
#     unbound; unbound with num-threads matched): QPS against cores, cached
#     and miss, as a table and the chart docs/img/bench-dns-cores.svg;
#   - BENCH_CORES=1 with a generated policy of 10 and of 10,000 rules
#     (airlock only, cached path): cached QPS with 10k rules ÷ with 10.
# Hold the bench lock: flock /tmp/airlock-bench.lock bench/dns-cores.sh.
# Environment: as bench/dns.sh (BENCH_ROUNDS, BENCH_DURATION, … are passed
# on), BENCH_CORE_LIST ("1 2"), BENCH_RULE_LIST ("10 10000"),
# BENCH_CHART (docs/img/bench-dns-cores.svg).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"

read -r -a core_list <<<"${BENCH_CORE_LIST:-1 2}"
read -r -a rule_list <<<"${BENCH_RULE_LIST:-10 10000}"
chart=${BENCH_CHART:-$ROOT/docs/img/bench-dns-cores.svg}
AIRLOCK_BIN=$(build_airlock)
export AIRLOCK_BIN
dir=$(dirname "$0")

for c in "${core_list[@]}"; do
	BENCH_CORES=$c BENCH_POLICY_RULES=0 "$dir/dns.sh" >"$CACHE/bench-dns-c$c.md"
done
for n in "${rule_list[@]}"; do
	BENCH_CORES=1 BENCH_POLICY_RULES=$n BENCH_TARGETS=airlock BENCH_MISS=0 "$dir/dns.sh" >"$CACHE/bench-dns-c1-rules$n.md"
done

# field FILE TARGET COLUMN: a median from a dns.sh TSV.
field() {
	awk -F'\t' -v t="$2" -v col="$3" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next } $1 == t { print $c }' "$1"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b != "-" && b > 0) printf "%.2f", a / b; else print "n/a" }'; }

tsv="$CACHE/bench-dns-cores.tsv"
printf 'cores\tairlock cached\tunbound cached\tunbound-fwd cached\tairlock miss\tunbound-fwd miss\n' >"$tsv"
for c in "${core_list[@]}"; do
	f="$CACHE/bench-dns-c$c-p0.tsv"
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$(field "$f" airlock cached_qps)" "$(field "$f" unbound cached_qps)" \
		"$(field "$f" unbound-fwd cached_qps)" "$(field "$f" airlock miss_qps)" "$(field "$f" unbound-fwd miss_qps)" >>"$tsv"
done
(cd "$ROOT" && go run ./bench/chart --title "DNS QPS against cores (dnsperf on the same 2-CPU machine)" --x cores --y "queries/s" --zero) <"$tsv" >"$chart"

c1="$CACHE/bench-dns-c${core_list[0]}-p0.tsv"
cN="$CACHE/bench-dns-c${core_list[-1]}-p0.tsv"
{
	echo "### DNS scaling ($(date -u +%Y-%m-%d), $(git -C "$ROOT" rev-parse --short HEAD))"
	echo
	echo "Command: \`flock /tmp/airlock-bench.lock env BENCH_ROUNDS=${BENCH_ROUNDS:-3} BENCH_DURATION=${BENCH_DURATION:-5} bench/dns-cores.sh\`; chart: \`$(basename "$chart")\`."
	echo
	echo "| cores | target | cached QPS | cached CPU-µs/q | miss QPS | miss CPU-µs/q | fixed-load miss p50 / p99 µs |"
	echo "|---:|---|---:|---:|---:|---:|---:|"
	for c in "${core_list[@]}"; do
		f="$CACHE/bench-dns-c$c-p0.tsv"
		for t in airlock unbound-fwd unbound; do
			echo "| $c | $t | $(field "$f" "$t" cached_qps) | $(field "$f" "$t" cached_cpu_us) | $(field "$f" "$t" miss_qps) | $(field "$f" "$t" miss_cpu_us) | $(field "$f" "$t" miss_fixed_p50_us) / $(field "$f" "$t" miss_fixed_p99_us) |"
		done
	done
	echo
	for c in "${core_list[@]}"; do
		f="$CACHE/bench-dns-c$c-p0.tsv"
		echo "- $c core(s): miss QPS airlock/unbound-fwd $(ratio "$(field "$f" airlock miss_qps)" "$(field "$f" unbound-fwd miss_qps)");" \
			"fixed-load miss p99 airlock/unbound-fwd $(ratio "$(field "$f" airlock miss_fixed_p99_us)" "$(field "$f" unbound-fwd miss_fixed_p99_us)");" \
			"miss CPU-µs airlock/unbound-fwd $(ratio "$(field "$f" airlock miss_cpu_us)" "$(field "$f" unbound-fwd miss_cpu_us)");" \
			"cached QPS airlock/unbound $(ratio "$(field "$f" airlock cached_qps)" "$(field "$f" unbound cached_qps)")."
	done
	for t in airlock unbound-fwd unbound; do
		echo "- ${core_list[-1]} ÷ ${core_list[0]} cores, $t: cached $(ratio "$(field "$cN" "$t" cached_qps)" "$(field "$c1" "$t" cached_qps)")×, miss $(ratio "$(field "$cN" "$t" miss_qps)" "$(field "$c1" "$t" miss_qps)")×."
	done
	lo="$CACHE/bench-dns-c1-p${rule_list[0]}.tsv" hi="$CACHE/bench-dns-c1-p${rule_list[-1]}.tsv"
	echo "- cached QPS with ${rule_list[-1]} rules ÷ with ${rule_list[0]} (1 core, airlock): $(field "$hi" airlock cached_qps) / $(field "$lo" airlock cached_qps) = $(ratio "$(field "$hi" airlock cached_qps)" "$(field "$lo" airlock cached_qps)")×."
} | tee "$CACHE/bench-dns-cores.md"
