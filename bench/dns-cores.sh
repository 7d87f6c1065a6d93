#!/usr/bin/env bash
# bench/dns-cores.sh: the DNS scaling runs of issue 15, each one run of
# bench/dns.sh (see there for the setup and the figures):
#   - BENCH_CORES=1 and BENCH_CORES=2 (every target: airlock, unbound-fwd,
#     unbound; unbound with num-threads matched): QPS against cores, cached
#     and miss, as a table and the chart docs/img/bench-dns-cores.svg;
#   - BENCH_CORES=1 with a generated policy of 10 and of 10,000 rules
#     (airlock only, cached path), BENCH_RULE_ROUNDS alternating runs of one
#     round each (10, 10000, then 10000, 10, …): cached QPS with 10k rules
#     ÷ with 10 per pair, the median and the spread;
#   - the ceiling of the cores ratio on this machine from measured CPU per
#     query: the server's s and dnsperf's own d (bench/dns.sh measures both).
#     With dnsperf on its own CPU (1 core) QPS ≤ 1 / max(s, d); with the
#     servers on every CPU dnsperf shares them, QPS ≤ CPUs / (s + d).
# Hold the bench lock: flock /tmp/airlock-bench.lock bench/dns-cores.sh
# (make bench-dns-cores).
# Environment: as bench/dns.sh (BENCH_ROUNDS, BENCH_DURATION, … are passed
# on), BENCH_CORE_LIST ("1 2"), BENCH_RULE_LIST ("10 10000"),
# BENCH_RULE_ROUNDS (3), BENCH_CHART (docs/img/bench-dns-cores.svg).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"

read -r -a core_list <<<"${BENCH_CORE_LIST:-1 2}"
read -r -a rule_list <<<"${BENCH_RULE_LIST:-10 10000}"
rule_rounds=${BENCH_RULE_ROUNDS:-3}
chart=${BENCH_CHART:-$ROOT/docs/img/bench-dns-cores.svg}
AIRLOCK_BIN=$(build_airlock)
export AIRLOCK_BIN
dir=$(dirname "$0")

for c in "${core_list[@]}"; do
	BENCH_CORES=$c BENCH_POLICY_RULES=0 "$dir/dns.sh" >"$CACHE/bench-dns-c$c.md"
done
for ((r = 1; r <= rule_rounds; r++)); do
	ord=("${rule_list[@]}")
	((r % 2)) || mapfile -t ord < <(printf '%s\n' "${rule_list[@]}" | tac)
	for n in "${ord[@]}"; do
		BENCH_ROUNDS=1 BENCH_CORES=1 BENCH_POLICY_RULES=$n BENCH_TARGETS=airlock BENCH_MISS=0 "$dir/dns.sh" >"$CACHE/bench-dns-c1-rules$n-r$r.md"
		cp "$CACHE/bench-dns-c1-p$n.tsv" "$CACHE/bench-dns-c1-p$n-r$r.tsv"
	done
done

# field FILE TARGET COLUMN: a median from a dns.sh TSV.
field() {
	awk -F'\t' -v t="$2" -v col="$3" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next } $1 == t { print $c }' "$1"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b != "-" && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# fmt KIND VALUE: a TSV median for the report: q (QPS: 12.3k), us (whole
# µs), c (CPU-µs, one decimal), pct (whole percent).
fmt() {
	awk -v k="$1" -v x="$2" 'BEGIN { if (x == "" || x == "-") { print "–"; exit }
		if (k == "q") printf "%.1fk", x / 1000; else if (k == "us") printf "%\047d", x + 0.5; else if (k == "c") printf "%.1f", x; else printf "%.0f%%", x }'
}
# fv FILE TARGET COLUMN KIND: field, formatted.
fv() { fmt "$4" "$(field "$1" "$2" "$3")"; }

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
	echo "| cores | target | cached QPS | cached CPU-µs/q (s) | dnsperf CPU-µs/q (d) | others (cached) | miss QPS | miss CPU-µs/q | fixed-load miss p50 / p99 µs | others (fixed load) |"
	echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for c in "${core_list[@]}"; do
		tf="$CACHE/bench-dns-c$c-p0.tsv"
		for t in airlock unbound-fwd unbound; do
			echo "| $c | $t | $(fv "$tf" "$t" cached_qps q) | $(fv "$tf" "$t" cached_cpu_us c) | $(fv "$tf" "$t" cached_dnsperf_cpu_us c) | $(fv "$tf" "$t" cached_others pct) |" \
				"$(fv "$tf" "$t" miss_qps q) | $(fv "$tf" "$t" miss_cpu_us c) | $(fv "$tf" "$t" miss_fixed_p50_us us) / $(fv "$tf" "$t" miss_fixed_p99_us us) | $(fv "$tf" "$t" miss_fixed_others pct) |"
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
	ncpu=$(nproc)
	for t in airlock unbound-fwd unbound; do
		s1=$(field "$c1" "$t" cached_cpu_us) d1=$(field "$c1" "$t" cached_dnsperf_cpu_us)
		sN=$(field "$cN" "$t" cached_cpu_us) dN=$(field "$cN" "$t" cached_dnsperf_cpu_us)
		# Bound on QPS with the servers on c of n CPUs: dnsperf has the other
		# n - c, or shares all n when c = n.
		ceil=$(awk -v s1="$s1" -v d1="$d1" -v sn="$sN" -v dn="$dN" -v c1="${core_list[0]}" -v c="${core_list[-1]}" -v n="$ncpu" '
			function bound(c, s, d) { if (c >= n) return n / (s + d); return (c / s < (n - c) / d) ? c / s : (n - c) / d }
			BEGIN { if (s1 + 0 <= 0 || d1 + 0 <= 0 || sn + 0 <= 0 || dn + 0 <= 0) { print "n/a"; exit }
				printf "%.2f", bound(c, sn, dn) / bound(c1, s1, d1) }')
		echo "- ${core_list[-1]} ÷ ${core_list[0]} cores, $t: cached $(ratio "$(field "$cN" "$t" cached_qps)" "$(field "$c1" "$t" cached_qps)")×, miss $(ratio "$(field "$cN" "$t" miss_qps)" "$(field "$c1" "$t" miss_qps)")×;" \
			"ceiling from measured CPU per query (s=$s1, d=$d1 µs at ${core_list[0]}; s=$sN, d=$dN µs at ${core_list[-1]}): ${ceil}×."
	done
	echo
	echo "Cached QPS, 1 core, airlock, ${rule_list[-1]} rules against ${rule_list[0]} ($rule_rounds alternating pairs):"
	echo
	echo "| pair | ${rule_list[0]} rules QPS | ${rule_list[-1]} rules QPS | ratio | CPU-µs/q ${rule_list[0]} / ${rule_list[-1]} | others ${rule_list[0]} / ${rule_list[-1]} |"
	echo "|---:|---:|---:|---:|---:|---:|"
	ratios=""
	for ((r = 1; r <= rule_rounds; r++)); do
		lo="$CACHE/bench-dns-c1-p${rule_list[0]}-r$r.tsv" hi="$CACHE/bench-dns-c1-p${rule_list[-1]}-r$r.tsv"
		x=$(ratio "$(field "$hi" airlock cached_qps)" "$(field "$lo" airlock cached_qps)")
		ratios+=" $x"
		echo "| $r | $(fv "$lo" airlock cached_qps q) | $(fv "$hi" airlock cached_qps q) | $x | $(fv "$lo" airlock cached_cpu_us c) / $(fv "$hi" airlock cached_cpu_us c) | $(fv "$lo" airlock cached_others pct) / $(fv "$hi" airlock cached_others pct) |"
	done
	echo
	echo "- cached QPS ${rule_list[-1]} ÷ ${rule_list[0]} rules: median $(tr ' ' '\n' <<<"$ratios" | grep -v -e '^$' -e n/a | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')×, spread$(tr ' ' '\n' <<<"$ratios" | grep -v -e '^$' -e n/a | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf " %s–%s", lo, hi }')× (per pair:$ratios)."
} | tee "$CACHE/bench-dns-cores.md"
