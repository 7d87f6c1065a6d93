#!/usr/bin/env bash
# bench/dns.sh: airlock's DNS server side by side with Debian's unbound, all
# started here in one run on 127.0.0.1, measured with dnsperf.
#
# One unbound, the upstream (module-config iterator, nothing reaches the
# real DNS: `local-zone: "." static`), serves the zone bench.test from
# local-data: BENCH_NAMES names nameN.bench.test A, and a redirect zone
# miss.bench.test that answers every name below it with one A record. It is
# the forwarder of airlock and of a second unbound, unbound-fwd
# (`forward-zone: "."` to it): the peer of airlock's miss path ("unbound
# configured as a forwarder to the same upstream"). Queried directly, the
# upstream is the peer "unbound" of the cached path. Every unbound runs
# num-threads = BENCH_CORES; airlock runs with GOMAXPROCS = BENCH_CORES (Go
# sizes it from the CPU affinity) and dns.readers at its default
# (GOMAXPROCS UDP sockets with SO_REUSEPORT). airlock: allowNames
# ["*.bench.test"] or, with BENCH_POLICY_RULES=N, a generated policy of N
# application rules whose last one allows *.bench.test; logAllowed none.
#
# BENCH_ROUNDS rounds of (1) and (2), then BENCH_ROUNDS rounds of (3) and
# (4), so the names the miss runs add to the caches do not weigh on the
# cached runs; the order of the targets rotates each round:
#   1. cached: the BENCH_NAMES names (airlock's and unbound-fwd's caches
#      warmed by one pass first), dnsperf -c BENCH_CLIENTS -T BENCH_CORES,
#      no rate cap, BENCH_DURATION s: QPS and average latency;
#   2. half: the same at -Q = half of that target's QPS in (1), dnsperf -v:
#      p50, p99, p99.9 and max from the per-query lines;
#   3. miss: names never asked before (each once, -n 1): airlock and
#      unbound-fwd forward every one to the upstream: QPS;
#   4. miss at a fixed load: new names again at -Q = half of unbound-fwd's
#      miss QPS of the round (the same offered load for every target),
#      dnsperf -v: p50 and p99 of the miss path.
# CPU time per query (utime+stime from /proc; airlock's and unbound-fwd's
# rows include the upstream unbound), dnsperf's own CPU time per query (the
# shell's children times around the run: the load generator's cost d, for
# the cores arithmetic of bench/dns-cores.sh), airlock's cache hit/miss
# counters and others' CPU time on the server CPUs are taken around each run.
#
# CPUs (BENCH_PIN=1): the servers run on the last BENCH_CORES CPUs, dnsperf
# on the others; with BENCH_CORES = every CPU (2 on this machine) dnsperf
# shares them with the servers, so compare ratios against unbound under the
# same conditions, and CPU-µs per query. airlock answers cached names on its
# UDP fast path (recvmmsg/sendmmsg batches per reader); the Debian unbound
# is built without --enable-recvmmsg.
# Before each round the script waits while another bench script runs.
#
# Prints a Markdown report (also $CACHE/bench-dns.md) and writes the medians
# per target to $CACHE/bench-dns-c<CORES>-p<RULES>.tsv (bench/dns-cores.sh).
# Environment: BENCH_ROUNDS (3), BENCH_DURATION (5, seconds), BENCH_NAMES
# (1000), BENCH_MISS_NAMES (200000 per run), BENCH_CLIENTS (4),
# BENCH_QPS_CAP (1000000), BENCH_PIN (1), BENCH_CORES (1),
# BENCH_POLICY_RULES (0: allowNames only), BENCH_TARGETS ("airlock
# unbound-fwd unbound"), BENCH_MISS (1: run the miss rounds),
# BENCH_CACHE_ENTRIES (empty: airlock's default), BENCH_UPSTREAM_CPUS
# (empty: the servers' CPUs; e.g. 0: the upstream unbound, which is also
# the target "unbound", runs there instead, with dnsperf, so that airlock
# and unbound-fwd have their CPUs to themselves as against a remote
# upstream), AIRLOCK_BIN (else bin/airlock is built).
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
up_cpus=${BENCH_UPSTREAM_CPUS:-}
cache_entries=${BENCH_CACHE_ENTRIES:-}
cores=${BENCH_CORES:-1}
rules=${BENCH_POLICY_RULES:-0}
do_miss=${BENCH_MISS:-1}
read -r -a targets <<<"${BENCH_TARGETS:-airlock unbound-fwd unbound}"
cmdline="$0${*:+ $*}"
envline="BENCH_ROUNDS=$rounds BENCH_DURATION=$dur BENCH_NAMES=$nnames BENCH_MISS_NAMES=$nmiss BENCH_CLIENTS=$clients BENCH_QPS_CAP=$qcap BENCH_PIN=$pin BENCH_CORES=$cores BENCH_POLICY_RULES=$rules BENCH_MISS=$do_miss BENCH_TARGETS='${targets[*]}'${cache_entries:+ BENCH_CACHE_ENTRIES=$cache_entries}${up_cpus:+ BENCH_UPSTREAM_CPUS=$up_cpus}"
for t in unbound dnsperf dig curl taskset; do
	command -v "$t" >/dev/null || die "$t not installed (scripts/deps.sh)"
done
airlock=$(build_airlock)
clk=$(getconf CLK_TCK)
# Servers on the last $cores CPUs, dnsperf on the others (on all of them
# when the servers take every CPU).
ncpu=$(nproc)
{ [ "$cores" -ge 1 ] && [ "$cores" -le "$ncpu" ]; } || die "BENCH_CORES=$cores: want 1..$ncpu"
srv=() cli=() srv_cpus=all cli_cpus=all srv_n=$ncpu
if [ "$pin" = 1 ]; then
	srv_cpus="$((ncpu - cores))-$((ncpu - 1))"
	srv=(taskset -c "$srv_cpus")
	srv_n=$cores
	cli_cpus=$srv_cpus
	[ "$cores" -lt "$ncpu" ] && cli_cpus="0-$((ncpu - cores - 1))"
	cli=(taskset -c "$cli_cpus")
	[ "$cores" -lt "$ncpu" ] || [ -z "$up_cpus" ] || die "BENCH_UPSTREAM_CPUS needs BENCH_CORES < $ncpu"
elif [ "$cores" != "$ncpu" ]; then
	die "BENCH_CORES=$cores needs BENCH_PIN=1"
fi

[ -z "$up_cpus" ] || [ "$pin" = 1 ] || die "BENCH_UPSTREAM_CPUS needs BENCH_PIN=1"
upsrv=("${srv[@]}")
[ -z "$up_cpus" ] || upsrv=(taskset -c "$up_cpus")

work=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do stop_pid "$p"; done
	rm -rf "$work"
}
trap cleanup EXIT

# unbound_server_common prints the server: settings both unbounds share
# (foreground, no chroot or logs, iterator only, $cores threads, loopback).
unbound_server_common() {
	cat <<EOF
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$work"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  module-config: "iterator"
  num-threads: $cores
  so-reuseport: yes
  do-ip6: no
  do-not-query-localhost: no
  outgoing-interface: 127.0.0.1
EOF
}

# --- unbound: the forwarder and the peer -----------------------------------
uport=$(free_port)
{
	cat <<EOF
server:
  interface: 127.0.0.1@$uport
  port: $uport
$(unbound_server_common)
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

# --- unbound-fwd: a forwarder to the upstream ----------------------------------
fport=$(free_port)
while [ "$fport" = "$uport" ]; do fport=$(free_port); done
cat >"$work/unbound-fwd.conf" <<EOF
server:
  interface: 127.0.0.1@$fport
  port: $fport
$(unbound_server_common)
  # test. is one of unbound's default local zones (RFC 6761): forward it.
  local-zone: "test." nodefault
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@$uport
remote-control:
  control-enable: no
EOF
unbound-checkconf "$work/unbound-fwd.conf" >/dev/null || die "unbound-fwd.conf rejected: $(unbound-checkconf "$work/unbound-fwd.conf" 2>&1)"

# --- airlock -----------------------------------------------------------------
aport=$(free_port)
while [ "$aport" = "$uport" ] || [ "$aport" = "$fport" ]; do aport=$(free_port); done
admin=$(free_port)
while [ "$admin" = "$aport" ] || [ "$admin" = "$uport" ] || [ "$admin" = "$fport" ]; do admin=$(free_port); done
cat >"$work/airlock.yaml" <<EOF
version: 1
log: { level: warn }
admin: { listen: 127.0.0.1:$admin }
dns:
  listen: 127.0.0.1:$aport
  forwarders: [ "127.0.0.1:$uport" ]
  logAllowed: none
EOF
[ -z "$cache_entries" ] || echo "  cacheEntries: $cache_entries" >>"$work/airlock.yaml"
if [ "$rules" = 0 ]; then
	echo '  allowNames: [ "*.bench.test" ]' >>"$work/airlock.yaml"
else
	# $rules application rules in collections of 1000, each one name of
	# other.test (every 10th a wildcard); the last allows *.bench.test, so
	# every bench query is decided by the last rule.
	awk -v n="$rules" 'BEGIN {
		print "policy:\n  ruleCollectionGroups:\n    - name: g\n      priority: 100\n      ruleCollections:"
		for (i = 1; i <= n; i++) {
			if ((i - 1) % 1000 == 0)
				printf "        - { name: c%d, type: application, priority: %d, action: allow, rules: [] }\n", i, 100 + int((i - 1) / 1000)
			if (i == n) t = "\"*.bench.test\""
			else if (i % 10 == 0) t = "\"*.w" i ".other.test\""
			else t = "h" i ".other.test"
			printf "            - { name: r%d, sourceAddresses: [\"*\"], protocols: [\"https:443\"], targetFqdns: [%s] }\n", i, t
		}
	}' | sed 's/rules: \[\] }$/rules:/; s/^        - { name: \(c[0-9]*\), type: application, priority: \([0-9]*\), action: allow, rules:$/        - name: \1\n          type: application\n          priority: \2\n          action: allow\n          rules:/' >>"$work/airlock.yaml"
fi

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

"${upsrv[@]}" unbound -d -c "$work/unbound.conf" >"$work/unbound.log" 2>&1 &
upid=$!
pids+=("$upid")
wait_dns "$uport" "$upid" || die "unbound did not start: $(tail -5 "$work/unbound.log")"
"${srv[@]}" unbound -d -c "$work/unbound-fwd.conf" >"$work/unbound-fwd.log" 2>&1 &
fpid=$!
pids+=("$fpid")
wait_dns "$fport" "$fpid" || die "unbound-fwd did not start: $(tail -5 "$work/unbound-fwd.log")"
"${srv[@]}" "$airlock" serve --config "$work/airlock.yaml" >"$work/airlock.log" 2>&1 &
apid=$!
pids+=("$apid")
wait_dns "$aport" "$apid" || die "airlock did not start: $(tail -5 "$work/airlock.log")"
wait_http "http://127.0.0.1:$admin/readyz" "$apid" 30 || die "airlock admin not ready"
# Our processes on the server CPUs (the "others" figure is the rest).
ours=("$apid" "$fpid")
[ -n "$up_cpus" ] || ours+=("$upid")
declare -A port=([airlock]=$aport [unbound]=$uport [unbound-fwd]=$fport)

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
	[ "$t" = unbound-fwd ] && procs=("$fpid" "$upid")
	h0=$(metric airlock_dnsserver_cache_hits_total)
	m0=$(metric airlock_dnsserver_cache_misses_total)
	c0=$(cpu_ticks "${procs[@]}")
	b0=$(cpu_busy "$srv_cpus")
	u0=$(cpu_ticks "${ours[@]}")
	t0=$(date +%s%N)
	times >"$work/times0" # the shell's children so far (builtin: no fork)
	"${cli[@]}" dnsperf -s 127.0.0.1 -p "${port[$t]}" -d "$f" -c "$clients" -T "$cores" "$@" >"$out" 2>&1 ||
		die "dnsperf against $t failed: $(tail -5 "$out")"
	times >"$work/times1"
	c1=$(cpu_ticks "${procs[@]}")
	b1=$(cpu_busy "$srv_cpus")
	u1=$(cpu_ticks "${ours[@]}")
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
	# dnsperf's user+system time: line 2 of `times` (children), e.g. "0m1.250s 0m2.010s".
	res[$key,dcpu]=$(awk -v n="${res[$key,completed]}" 'function s(x) { split(x, a, /[ms]/); return a[1] * 60 + a[2] }
		FNR == 2 { v[FILENAME == ARGV[1]] = s($1) + s($2) } END { if (n > 0) printf "%.1f", (v[0] - v[1]) / n * 1e6; else print "n/a" }' "$work/times0" "$work/times1")
	if [ "$t" = airlock ]; then
		res[$key,hits]=$(($(metric airlock_dnsserver_cache_hits_total) - h0))
		res[$key,misses]=$(($(metric airlock_dnsserver_cache_misses_total) - m0))
	fi
	if grep -q '^> ' "$out"; then
		res[$key,p50]=$(pct "$out" 50)
		res[$key,p99]=$(pct "$out" 99)
		res[$key,p999]=$(pct "$out" 99.9)
	fi
	log "  $key: ${res[$key,qps]} qps, avg ${res[$key,avg]} s, lost ${res[$key,lost]}, ${res[$key,cpu]} CPU-µs/query (dnsperf ${res[$key,dcpu]})${res[$key,p99]:+, p99 ${res[$key,p99]} s} [${res[$key,rcodes]}]"
}

# --- rounds ----------------------------------------------------------------------
log "bench: $rounds rounds x ${dur}s; servers on CPUs $srv_cpus ($cores cores), dnsperf on CPUs $cli_cpus${up_cpus:+, upstream on CPUs $up_cpus}; policy rules $rules"
has() { [[ " ${targets[*]} " == *" $1 "* ]]; }
# order R: the targets rotated by R.
order() {
	local n=${#targets[@]} i out=()
	for ((i = 0; i < n; i++)); do out+=("${targets[$(((i + $1) % n))]}"); done
	echo "${out[*]}"
}
for ((r = 0; r < rounds; r++)); do
	wait_other_benches
	read -r -a ord <<<"$(order "$r")"
	log "cached round $((r + 1)): ${ord[*]}"
	# Warm (or keep warm) the forwarders' caches: one pass over the names.
	for t in airlock unbound-fwd; do
		has "$t" && run "$r,$t,warm" "$t" "$work/cached.txt" -n 1 -Q 20000
	done
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
# the caches (and to airlock's observations) do not weigh on the cached runs.
mtargets=()
for t in airlock unbound-fwd; do has "$t" && mtargets+=("$t"); done
[ "$do_miss" = 1 ] || mtargets=()
for ((r = 0; r < rounds && ${#mtargets[@]} > 0; r++)); do
	wait_other_benches
	ord=("${mtargets[@]}")
	((r % 2)) && mapfile -t ord < <(printf '%s\n' "${mtargets[@]}" | tac)
	log "miss round $((r + 1)): ${ord[*]}"
	for t in "${ord[@]}"; do
		miss_file "$r" "$t"
		run "$r,$t,miss" "$t" "$work/miss.txt" -l "$dur" -n 1 -Q "$qcap"
	done
	# The same offered load for every target: half of unbound-fwd's rate.
	ref=${mtargets[-1]}
	fixed=$(awk -v q="${res[$r,$ref,miss,qps]}" 'BEGIN { printf "%d", q / 2 }')
	for t in "${ord[@]}"; do
		miss_file "$r" "$t-fixed"
		res[$r,$t,mfix,target]=$fixed
		run "$r,$t,mfix" "$t" "$work/miss.txt" -l "$dur" -n 1 -Q "$fixed" -v
	done
done

# --- report ------------------------------------------------------------------------
us() { awk -v x="$1" 'BEGIN { if (x == "" || x == "nan") print "n/a"; else printf "%.0f", x * 1e6 }'; }
k() { awk -v x="$1" 'BEGIN { if (x == "" || x == "-") print "-"; else if (x >= 10000) printf "%.1fk", x / 1000; else printf "%.0f", x }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
median() { tr ' ' '\n' | grep -v '^$' | grep -v -e n/a -e '^-$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# med T KEY FIELD [us]: the median over rounds of res[r,T,KEY,FIELD].
med() {
	local r l=""
	for ((r = 0; r < rounds; r++)); do
		if [ "${4:-}" = us ]; then l+=" $(us "${res[$r,$1,$2,$3]:-}")"; else l+=" ${res[$r,$1,$2,$3]:-}"; fi
	done
	median <<<"$l"
}

report="$CACHE/bench-dns.md"
tsv="$CACHE/bench-dns-c$cores-p$rules.tsv"
mkdir -p "$CACHE"
{
	printf 'target\tcores\trules\tcached_qps\tcached_cpu_us\thalf_p99_us\tmiss_qps\tmiss_cpu_us\tmiss_fixed_qps\tmiss_fixed_p50_us\tmiss_fixed_p99_us\tcached_dnsperf_cpu_us\tcached_others\tmiss_fixed_others\n'
	for t in "${targets[@]}"; do
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$cores" "$rules" \
			"$(med "$t" max qps)" "$(med "$t" max cpu)" "$(med "$t" half p99 us)" \
			"$(med "$t" miss qps)" "$(med "$t" miss cpu)" "$(med "$t" mfix qps)" "$(med "$t" mfix p50 us)" "$(med "$t" mfix p99 us)" \
			"$(med "$t" max dcpu)" "$(med "$t" max other)" "$(med "$t" mfix other)"
	done
} >"$tsv"
{
	echo "### DNS: airlock vs unbound, dnsperf, $cores core(s), policy rules $rules ($(date -u +%Y-%m-%d))"
	echo
	echo "Command: \`$envline $cmdline\`"
	echo
	echo "Machine: $ncpu CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), Linux $(uname -r); servers pinned to CPUs $srv_cpus, dnsperf to CPUs $cli_cpus${up_cpus:+, the upstream unbound to CPUs $up_cpus}." \
		"Versions: $("$airlock" version 2>/dev/null | head -1 || echo airlock); unbound $(unbound -V | awk '/^Version/ { print $2 }') (num-threads $cores); $(dnsperf -h 2>&1 | awk '/^Version/ { print "dnsperf " $2 }'); $(go version | awk '{ print $3 }')."
	echo
	echo "| Round | Target | cached QPS | CPU-µs/q | dnsperf CPU-µs/q | others | half p99 µs | miss QPS | miss CPU-µs/q | miss others | fixed-load miss: -Q → QPS | p50 / p99 µs | lost (cached/miss/fixed) | airlock hits/misses (cached) |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	for ((r = 0; r < rounds; r++)); do
		for t in "${targets[@]}"; do
			c="-"
			[ "$t" = airlock ] && c="${res[$r,$t,max,hits]:-}/${res[$r,$t,max,misses]:-}"
			echo "| $((r + 1)) | $t | $(k "${res[$r,$t,max,qps]:-}") | ${res[$r,$t,max,cpu]:-} | ${res[$r,$t,max,dcpu]:-} | ${res[$r,$t,max,other]:-} | $(us "${res[$r,$t,half,p99]:-}") |" \
				"$(k "${res[$r,$t,miss,qps]:--}") | ${res[$r,$t,miss,cpu]:--} | ${res[$r,$t,miss,other]:--} |" \
				"${res[$r,$t,mfix,target]:--} → $(k "${res[$r,$t,mfix,qps]:--}") | $(us "${res[$r,$t,mfix,p50]:-}") / $(us "${res[$r,$t,mfix,p99]:-}") |" \
				"${res[$r,$t,max,lost]:-}/${res[$r,$t,miss,lost]:--}/${res[$r,$t,mfix,lost]:--} | $c |"
		done
	done
	echo
	echo "Medians over $rounds round(s) (also in \`$(basename "$tsv")\`):"
	echo
	echo "| Target | cached QPS | cached CPU-µs/q | half p99 µs | miss QPS | miss CPU-µs/q | fixed-load miss p50 / p99 µs |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	for t in "${targets[@]}"; do
		echo "| $t | $(k "$(med "$t" max qps)") | $(med "$t" max cpu) | $(med "$t" half p99 us | cut -d. -f1) | $(k "$(med "$t" miss qps)") | $(med "$t" miss cpu) | $(med "$t" mfix p50 us | cut -d. -f1) / $(med "$t" mfix p99 us | cut -d. -f1) |"
	done
	if has airlock && has unbound-fwd && [ "$do_miss" = 1 ]; then
		echo
		echo "Miss path (issue 15): airlock/unbound-fwd QPS per round:$(for ((r = 0; r < rounds; r++)); do printf ' %s' "$(ratio "${res[$r,airlock,miss,qps]}" "${res[$r,unbound-fwd,miss,qps]}")"; done);" \
			"CPU-µs per miss airlock/unbound-fwd: $(ratio "$(med airlock miss cpu)" "$(med unbound-fwd miss cpu)") (both include the upstream's)."
	fi
} | tee "$report"
log "report saved to $report, medians to $tsv"
