#!/usr/bin/env bash
# bench/dns.sh: airlock's DNS server side by side with Debian's unbound, both
# started here in one run on 127.0.0.1, measured with dnsperf.
#
# One unbound (num-threads 1, module-config iterator, nothing reaches the
# real DNS: `local-zone: "." static`) serves the zone bench.test from
# local-data: BENCH_NAMES names nameN.bench.test A, and a redirect zone
# miss.bench.test that answers every name below it with one A record. It is
# both airlock's forwarder and the peer: the peer answers the same names
# directly. airlock runs with allowNames ["*.bench.test"] and
# logAllowed none (denied queries would always be logged; every query here
# is allowed, so nothing is logged per query).
#
# BENCH_ROUNDS rounds of (1) and (2), then BENCH_ROUNDS rounds of (3) (so the
# names the miss runs add to airlock's cache do not weigh on the cached
# runs); targets alternate (airlock first in odd rounds, unbound in even):
#   1. cached: the BENCH_NAMES distinct names (airlock's cache warmed by one
#      pass first), dnsperf -c BENCH_CLIENTS -T 1 -Q BENCH_QPS_CAP for
#      BENCH_DURATION s: QPS and average latency;
#   2. half: the same with -Q = half of the QPS that target reached in (1)
#      in this round, dnsperf -v (one line per query with its latency):
#      p50, p99, p99.9 and max from those lines;
#   3. miss: BENCH_MISS_NAMES names uN.rR.T.miss.bench.test never asked
#      before (each sent once, -n 1), so airlock forwards every one to
#      unbound: QPS and average latency (unbound answers them from its
#      redirect zone, for reference).
# Each server's CPU time per query (utime+stime from /proc; airlock's rows
# include its upstream unbound, idle in the cached runs) and airlock's cache hit/miss
# counters (admin /metrics) are taken around each run, and so is the CPU
# time others (this machine is shared) used on the server CPUs.
# Servers and dnsperf are pinned to different CPUs (scripts/lib.sh
# cpu_split); with two CPUs airlock and unbound share one, so airlock runs
# with GOMAXPROCS=1 (Go sizes it from the CPU affinity) against unbound's
# num-threads 1. airlock answers cached names on its UDP fast path: one
# reader goroutine, recvmmsg/sendmmsg batches of up to 32 datagrams; the
# Debian unbound is built without --enable-recvmmsg (one recvfrom and one
# sendto per query). Both are single-threaded on one CPU; the batching is
# airlock's design, not a setting of the run.
# Before each round the script waits while another bench script runs.
#
# Prints a Markdown report (also saved to $CACHE/bench-dns.md).
# Environment: BENCH_ROUNDS (3), BENCH_DURATION (5, seconds), BENCH_NAMES
# (1000), BENCH_MISS_NAMES (200000 per run), BENCH_CLIENTS (4),
# BENCH_QPS_CAP (1000000: dnsperf -Q of the maximum runs), BENCH_PIN (1),
# BENCH_CACHE_ENTRIES (empty: airlock's default cacheEntries, 100000),
# AIRLOCK_BIN (else bin/airlock is built).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"

rounds=${BENCH_ROUNDS:-3}
dur=${BENCH_DURATION:-5}
nnames=${BENCH_NAMES:-1000}
nmiss=${BENCH_MISS_NAMES:-200000}
clients=${BENCH_CLIENTS:-4}
qcap=${BENCH_QPS_CAP:-1000000}
pin=${BENCH_PIN:-1}
cache_entries=${BENCH_CACHE_ENTRIES:-}
cache_cap=${cache_entries:-100000}
targets=(airlock unbound)
cmdline="$0${*:+ $*}"
envline="BENCH_ROUNDS=$rounds BENCH_DURATION=$dur BENCH_NAMES=$nnames BENCH_MISS_NAMES=$nmiss BENCH_CLIENTS=$clients BENCH_QPS_CAP=$qcap BENCH_PIN=$pin${cache_entries:+ BENCH_CACHE_ENTRIES=$cache_entries}"
for t in unbound dnsperf dig curl taskset; do
	command -v "$t" >/dev/null || die "$t not installed (scripts/deps.sh)"
done
airlock=$(build_airlock)
clk=$(getconf CLK_TCK)
cpu_split "$pin"
srv_n=$([ "$srv_cpus" = all ] && echo "$ncpu" || echo $((ncpu - ncpu / 2)))

work=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do stop_pid "$p"; done
	rm -rf "$work"
}
trap cleanup EXIT

# --- unbound: the forwarder and the peer -----------------------------------
uport=$(free_port)
{
	cat <<EOF
server:
  interface: 127.0.0.1@$uport
  port: $uport
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$work"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  module-config: "iterator"
  num-threads: 1
  do-ip6: no
  do-not-query-localhost: no
  outgoing-interface: 127.0.0.1
  local-zone: "." static
  local-zone: "bench.test." static
  local-data: "bench.test. 3600 IN SOA ns.bench.test. hostmaster.bench.test. 1 3600 600 86400 300"
  local-zone: "miss.bench.test." redirect
  local-data: "miss.bench.test. 3600 IN A 11.2.0.1"
EOF
	# Public (never contacted) addresses: airlock refuses internal and
	# special-purpose ones (rebinding), 198.18.0.0/15 included.
	awk -v n="$nnames" 'BEGIN { for (i = 1; i <= n; i++) printf "  local-data: \"name%d.bench.test. 3600 IN A 11.1.%d.%d\"\n", i, int(i / 256) % 256, i % 256 }'
	printf 'remote-control:\n  control-enable: no\n'
} >"$work/unbound.conf"
unbound-checkconf "$work/unbound.conf" >/dev/null || die "unbound.conf rejected: $(unbound-checkconf "$work/unbound.conf" 2>&1)"

# --- airlock -----------------------------------------------------------------
aport=$(free_port)
admin=$(free_port)
while [ "$admin" = "$aport" ] || [ "$admin" = "$uport" ]; do admin=$(free_port); done
cat >"$work/airlock.yaml" <<EOF
version: 1
log: { level: warn }
admin: { listen: 127.0.0.1:$admin }
dns:
  listen: 127.0.0.1:$aport
  forwarders: [ "127.0.0.1:$uport" ]
  logAllowed: none
  allowNames: [ "*.bench.test" ]
EOF
[ -z "$cache_entries" ] || echo "  cacheEntries: $cache_entries" >>"$work/airlock.yaml"

# wait_dns PORT PID: until PORT answers name1.bench.test with NOERROR.
wait_dns() {
	local port=$1 pid=$2 _
	for _ in $(seq 1 100); do
		if dig +time=1 +tries=1 -p "$port" @127.0.0.1 name1.bench.test A 2>/dev/null | grep -q 'status: NOERROR'; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

"${srv[@]}" unbound -d -c "$work/unbound.conf" >"$work/unbound.log" 2>&1 &
upid=$!
pids+=("$upid")
wait_dns "$uport" "$upid" || die "unbound did not start: $(tail -5 "$work/unbound.log")"
"${srv[@]}" "$airlock" serve --config "$work/airlock.yaml" >"$work/airlock.log" 2>&1 &
apid=$!
pids+=("$apid")
wait_dns "$aport" "$apid" || die "airlock did not start: $(tail -5 "$work/airlock.log")"
wait_http "http://127.0.0.1:$admin/readyz" "$apid" 30 || die "airlock admin not ready"
declare -A port=([airlock]=$aport [unbound]=$uport)

# --- query files ---------------------------------------------------------------
awk -v n="$nnames" 'BEGIN { for (i = 1; i <= n; i++) printf "name%d.bench.test A\n", i }' >"$work/cached.txt"
# miss_file ROUND TARGET: names nobody asked before.
miss_file() {
	awk -v n="$nmiss" -v r="$1" -v t="$2" 'BEGIN { for (i = 1; i <= n; i++) printf "u%d.r%d.%s.miss.bench.test A\n", i, r, t }' >"$work/miss.txt"
}

# --- measurement helpers ------------------------------------------------------
# cpu_ticks PID...: utime+stime of the processes, in clock ticks.
cpu_ticks() {
	local p s=0
	for p in "$@"; do
		s=$((s + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
	done
	echo "$s"
}
# cpu_busy CPUS: user, nice, system and steal ticks of CPUS ("all" or
# "lo-hi") from /proc/stat.
cpu_busy() {
	awk -v r="$1" 'BEGIN { lo = -1; if (r != "all") { split(r, a, "-"); lo = a[1]; hi = a[2] } }
		(lo < 0 && $1 == "cpu") || (lo >= 0 && $1 ~ /^cpu[0-9]+$/ && substr($1, 4) + 0 >= lo && substr($1, 4) + 0 <= hi) {
			b += $2 + $3 + $4 + $9 } END { print b }' /proc/stat
}
# metric NAME: an airlock counter from the admin endpoint.
metric() {
	curl -fsS "http://127.0.0.1:$admin/metrics" | awk -v m="$1" '$1 == m { printf "%d", $2 }'
}
# dpstat FILE KEY: a figure of dnsperf's summary.
dpstat() {
	case "$2" in
	sent) awk '/Queries sent:/ { print $3 }' "$1" ;;
	completed) awk '/Queries completed:/ { print $3 }' "$1" ;;
	lost) awk '/Queries lost:/ { print $3 }' "$1" ;;
	qps) awk '/Queries per second:/ { print $4 }' "$1" ;;
	avg) awk '/Average Latency/ { print $4 }' "$1" ;;
	max) awk '/Average Latency/ { gsub(/\)/, "", $8); print $8 }' "$1" ;;
	sd) awk '/Latency StdDev/ { print $4 }' "$1" ;;
	rcodes) sed -n 's/^ *Response codes: *//p' "$1" ;;
	esac
}
# pct FILE P: the P-th percentile (nearest rank) of the per-query latencies
# of a dnsperf -v run, in seconds.
pct() {
	awk '/^> / && $NF ~ /^[0-9.]+$/ { print $NF }' "$1" | sort -g | awk -v p="$2" '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit } i = int(NR * p / 100 + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; print v[i] }'
}

declare -A res
# run KEY TARGET FILE DNSPERF_ARGS...: one dnsperf run; results under
# res[KEY,metric]. CPU counts the target and, for airlock's misses, unbound.
run() {
	local key=$1 t=$2 f=$3 out="$work/run.out"
	shift 3
	local procs=("$upid") h0 m0 c0 c1 b0 b1 u0 u1 t0 t1
	[ "$t" = airlock ] && procs=("$apid" "$upid")
	h0=$(metric airlock_dnsserver_cache_hits_total)
	m0=$(metric airlock_dnsserver_cache_misses_total)
	c0=$(cpu_ticks "${procs[@]}")
	b0=$(cpu_busy "$srv_cpus")
	u0=$(cpu_ticks "$apid" "$upid")
	t0=$(date +%s%N)
	"${cli[@]}" dnsperf -s 127.0.0.1 -p "${port[$t]}" -d "$f" -c "$clients" -T 1 "$@" >"$out" 2>&1 ||
		die "dnsperf against $t failed: $(tail -5 "$out")"
	c1=$(cpu_ticks "${procs[@]}")
	b1=$(cpu_busy "$srv_cpus")
	u1=$(cpu_ticks "$apid" "$upid")
	t1=$(date +%s%N)
	# Others' share of the server CPUs: busy time not spent by airlock or unbound.
	res[$key,other]=$(awk -v b=$((b1 - b0)) -v u=$((u1 - u0)) -v hz="$clk" -v ns=$((t1 - t0)) -v n="$srv_n" \
		'BEGIN { x = (b - u) / hz / (ns / 1e9) / n * 100; if (x < 0) x = 0; printf "%.0f%%", x }')
	res[$key,qps]=$(dpstat "$out" qps)
	res[$key,completed]=$(dpstat "$out" completed)
	res[$key,lost]=$(dpstat "$out" lost)
	res[$key,avg]=$(dpstat "$out" avg)
	res[$key,sd]=$(dpstat "$out" sd)
	res[$key,max]=$(dpstat "$out" max)
	res[$key,rcodes]=$(dpstat "$out" rcodes)
	res[$key,cpu]=$(awk -v d=$((c1 - c0)) -v hz="$clk" -v n="${res[$key,completed]}" 'BEGIN { if (n > 0) printf "%.1f", d / hz / n * 1e6; else print "n/a" }')
	if [ "$t" = airlock ]; then
		res[$key,hits]=$(($(metric airlock_dnsserver_cache_hits_total) - h0))
		res[$key,misses]=$(($(metric airlock_dnsserver_cache_misses_total) - m0))
	fi
	if grep -q '^> ' "$out"; then
		res[$key,p50]=$(pct "$out" 50)
		res[$key,p99]=$(pct "$out" 99)
		res[$key,p999]=$(pct "$out" 99.9)
	fi
	log "  $key: ${res[$key,qps]} qps, avg ${res[$key,avg]} s, lost ${res[$key,lost]}, ${res[$key,cpu]} CPU-µs/query${res[$key,p99]:+, p99 ${res[$key,p99]} s} [${res[$key,rcodes]}]"
}

# --- rounds ----------------------------------------------------------------------
log "bench: $rounds rounds x ${dur}s; servers on CPUs $srv_cpus, dnsperf on CPUs $cli_cpus"
# order R: the targets of round R, alternating which goes first.
order() { if (($1 % 2 == 0)); then echo airlock unbound; else echo unbound airlock; fi; }
for ((r = 0; r < rounds; r++)); do
	wait_other_benches
	read -r -a ord <<<"$(order "$r")"
	log "cached round $((r + 1)): ${ord[*]}"
	# Warm (or keep warm) airlock's cache: one pass over the names.
	run "$r,warm" airlock "$work/cached.txt" -n 1 -Q 20000
	for t in "${ord[@]}"; do
		run "$r,$t,max" "$t" "$work/cached.txt" -l "$dur" -Q "$qcap"
	done
	for t in "${ord[@]}"; do
		half=$(awk -v q="${res[$r,$t,max,qps]}" 'BEGIN { printf "%d", q / 2 }')
		res[$r,$t,half,target]=$half
		run "$r,$t,half" "$t" "$work/cached.txt" -l "$dur" -Q "$half" -v
	done
done
# The miss rounds come after every cached round, so the names they add to
# airlock's cache (and to its observations) do not weigh on the cached runs.
for ((r = 0; r < rounds; r++)); do
	wait_other_benches
	read -r -a ord <<<"$(order "$r")"
	log "miss round $((r + 1)): ${ord[*]}"
	for t in "${ord[@]}"; do
		miss_file "$r" "$t"
		if [ "$t" = airlock ]; then
			# Every answer so far was cacheable: entries ≈ misses, up to the cap.
			m=$(metric airlock_dnsserver_cache_misses_total)
			res[$r,$t,miss,entries]=$((m < cache_cap ? m : cache_cap))
		fi
		run "$r,$t,miss" "$t" "$work/miss.txt" -l "$dur" -n 1 -Q "$qcap"
	done
done

# --- report ------------------------------------------------------------------------
us() { awk -v x="$1" 'BEGIN { if (x == "" || x == "nan") print "n/a"; else printf "%.0f", x * 1e6 }'; }
k() { awk -v x="$1" 'BEGIN { if (x >= 10000) printf "%.1fk", x / 1000; else printf "%.0f", x }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
hitpct() { awk -v h="${res[$1,hits]:-0}" -v m="${res[$1,misses]:-0}" 'BEGIN { if (h + m > 0) printf "%.1f%%", 100 * h / (h + m); else print "-" }'; }

qratios="" p99s="" p99under=0
for ((r = 0; r < rounds; r++)); do
	qratios+=" $(ratio "${res[$r,airlock,max,qps]}" "${res[$r,unbound,max,qps]}")"
	p=$(us "${res[$r,airlock,half,p99]}")
	p99s+=" $p"
	if [ "$p" != n/a ] && [ "$p" -lt 1000 ]; then p99under=$((p99under + 1)); fi
done
qmed=$(median <<<"$qratios")
qpass=$(awk -v x="$qmed" 'BEGIN { print (x >= 1.0) ? 1 : 0 }')
p99med=$(median <<<"$p99s" | cut -d. -f1)

report="$CACHE/bench-dns.md"
mkdir -p "$CACHE"
{
	echo "### DNS: airlock vs unbound, dnsperf ($(date -u +%Y-%m-%d))"
	echo
	echo "Command: \`$envline $cmdline\` (from the repository root; \`make bench-dns\`)"
	echo
	echo "Machine: $ncpu CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), Linux $(uname -r);" \
		"airlock and unbound pinned to CPUs $srv_cpus, dnsperf to CPUs $cli_cpus."
	echo "Versions: $("$airlock" version 2>/dev/null | head -1 || echo airlock); unbound $(unbound -V | awk '/^Version/ { print $2 }') (num-threads 1, iterator only, local-data);" \
		"$(dnsperf -h 2>&1 | awk '/^Version/ { print "dnsperf " $2 }'); $(go version | awk '{ print $3 }')."
	echo
	echo "Setup: one unbound on loopback serves bench.test from local-data ($nnames names nameN.bench.test A, TTL 3600)" \
		"and the redirect zone miss.bench.test (any name below it → the same A record); \`local-zone: \".\" static\` keeps everything else off the real DNS." \
		"It is airlock's only forwarder and, queried directly, the peer. airlock: \`allowNames: [\"*.bench.test\"]\`, \`logAllowed: none\`" \
		"(no per-query log line: every query here is allowed, and only denied queries would be logged), \`log.level: warn\`," \
		"cacheEntries ${cache_entries:-100000 (default)}; GOMAXPROCS $srv_n (Go sizes it from the CPUs it is pinned to; unbound: one thread); cached names are answered on airlock's UDP fast path (recvmmsg/sendmmsg batches; Debian's unbound: one recvfrom and one sendto per query)." \
		"dnsperf: UDP, \`-c $clients -T 1\`, ${dur} s per run; targets alternate (airlock first in odd rounds)." \
		"The cached rounds run first, then the miss rounds."
	echo
	echo "- **cached**: the $nnames names, airlock's cache warmed by one pass each round; \`-Q $qcap\` (no cap in practice): maximum QPS, average latency (dnsperf summary)."
	echo "- **half**: the same file with \`-Q\` = half of that target's cached QPS in the same round, \`-v\`: p50/p99/p99.9 are nearest-rank percentiles of dnsperf's per-query latency lines (dnsperf 2.10 prints only avg/stddev/min/max)."
	echo "- **miss**: up to $nmiss names \`uN.rR.TARGET.miss.bench.test\` never asked before, each once (\`-n 1 -l $dur\`, no \`-Q\` cap): airlock forwards every one to unbound; unbound answers them from its redirect zone (reference)."
	echo "- CPU-µs/query: utime+stime of the server process(es) over the run ÷ completed queries; airlock's figure includes its upstream unbound (idle when airlock answers from its cache)."
	echo "- others: user+system+steal time on the server CPUs not spent by airlock or unbound (other work on this shared machine; ≈, softirq excluded)."
	echo
	echo "Cached names:"
	echo
	echo "| Round | Target | QPS | avg µs | CPU-µs/query | others | half: -Q → QPS | half p50 / p99 / p99.9 / max µs | half CPU-µs/query | half others | lost (max/half) | airlock cache hits (max/half) |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for ((r = 0; r < rounds; r++)); do
		read -r -a ord <<<"$(order "$r")"
		for t in "${ord[@]}"; do
			c="-"
			[ "$t" = airlock ] && c="$(hitpct "$r,$t,max") / $(hitpct "$r,$t,half")"
			echo "| $((r + 1)) | $t | $(k "${res[$r,$t,max,qps]}") | $(us "${res[$r,$t,max,avg]}") | ${res[$r,$t,max,cpu]} | ${res[$r,$t,max,other]} |" \
				"${res[$r,$t,half,target]} → $(k "${res[$r,$t,half,qps]}") |" \
				"$(us "${res[$r,$t,half,p50]}") / $(us "${res[$r,$t,half,p99]}") / $(us "${res[$r,$t,half,p999]}") / $(us "${res[$r,$t,half,max]}") |" \
				"${res[$r,$t,half,cpu]} | ${res[$r,$t,half,other]} | ${res[$r,$t,max,lost]} / ${res[$r,$t,half,lost]} | $c |"
		done
	done
	echo
	echo "Miss-heavy (names never asked before):"
	echo
	echo "| Round | Target | queries | QPS | avg µs | max µs | CPU-µs/query | others | lost | airlock cache entries before → misses in run |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
	for ((r = 0; r < rounds; r++)); do
		read -r -a ord <<<"$(order "$r")"
		for t in "${ord[@]}"; do
			c="-"
			[ "$t" = airlock ] && c="≈${res[$r,$t,miss,entries]} → ${res[$r,$t,miss,misses]} of ${res[$r,$t,miss,completed]}"
			echo "| $((r + 1)) | $t | ${res[$r,$t,miss,completed]} | $(k "${res[$r,$t,miss,qps]}") | $(us "${res[$r,$t,miss,avg]}") | $(us "${res[$r,$t,miss,max]}") |" \
				"${res[$r,$t,miss,cpu]} | ${res[$r,$t,miss,other]} | ${res[$r,$t,miss,lost]} | $c |"
		done
	done
	echo
	echo "Medians over rounds:"
	echo
	echo "| Target | cached QPS | cached CPU-µs/query | half p99 µs | miss QPS | miss avg µs |"
	echo "|---|---:|---:|---:|---:|---:|"
	for t in "${targets[@]}"; do
		a="" b="" c="" d="" e=""
		for ((r = 0; r < rounds; r++)); do
			a+=" ${res[$r,$t,max,qps]}"
			b+=" $(us "${res[$r,$t,half,p99]}")"
			c+=" ${res[$r,$t,miss,qps]}"
			d+=" $(us "${res[$r,$t,miss,avg]}")"
			e+=" ${res[$r,$t,max,cpu]}"
		done
		echo "| $t | $(k "$(median <<<"$a")") | $(median <<<"$e") | $(median <<<"$b" | cut -d. -f1) | $(k "$(median <<<"$c")") | $(median <<<"$d" | cut -d. -f1) |"
	done
	echo
	echo "Targets (issue 5):"
	echo
	echo "- cached QPS ≥ 1.0× unbound: airlock/unbound per round:$qratios; median $qmed → **$([ "$qpass" = 1 ] && echo holds || echo missed)**."
	echo "- p99 < 1 ms at half the maximum QPS: airlock p99 per round (µs):$p99s; median $p99med µs, $p99under of $rounds rounds under 1 ms →" \
		"**$([ "$p99med" -lt 1000 ] && echo "holds (median)" || echo "missed (median)")**."
} | tee "$report"
log "report saved to $report"
