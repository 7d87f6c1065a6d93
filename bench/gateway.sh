#!/usr/bin/env bash
# bench/gateway.sh: the egress gateway's explicit proxy (CONNECT tunnels),
# airlock side by side with haproxy (TCP mode), squid and tinyproxy, all
# started here in one run on 127.0.0.1; targets are bench/gwbench servers.
#
# Per round, in an order that rotates across rounds:
#   - stream: one connection reads BENCH_STREAM_MIB (1024) MiB from a TCP
#     source (sendfile of a random file) directly, through an airlock
#     CONNECT tunnel, through haproxy's plain TCP frontend (default, and
#     one with forced splicing), and through a squid CONNECT tunnel:
#     MiB/s and the proxy's CPU seconds per GiB
#     (utime+stime from /proc/PID/stat). The client splices to /dev/null.
#   - rate: BENCH_WORKERS (8) workers for BENCH_DURATION (5) seconds, each
#     repeating: connect, CONNECT localhost:ECHO, send 16 bytes, read them
#     back, close; against airlock, squid, tinyproxy, and directly to the
#     echo server (no CONNECT): tunnels/s, p50/p99 latency, and the latency
#     added over the direct connection of the same round; the CPU time of
#     the proxy and of the load tool over the run, and how busy the server
#     and the load CPUs were (from /proc/stat, softirq included), which
#     says which side bounds the rate.
# Sweep (after the rounds): closed-loop rate runs at each concurrency of
#   BENCH_SWEEP_C (1 8 32) for BENCH_SWEEP_DURATION (3) seconds against
#   direct, airlock (gateway.proxyEngine: loop, the default),
#   airlock-goroutine (the same binary with proxyEngine: goroutine), haproxy
#   (TCP frontend to the echo server), squid, tinyproxy and three Go floors
#   (bench/gwbench relay: a plain Go TCP relay, the same reading a CONNECT
#   head first, and an epoll event-loop CONNECT relay), twice: pinned (servers on
#   one core, load on the other) and unpinned (every process re-pinned to
#   all CPUs with taskset -a -p; Go re-reads its affinity, haproxy keeps the
#   one thread it started with). Per run: tunnels/s and the proxy's CPU-µs
#   per tunnel (utime+stime from /proc/PID/stat around the run / tunnels).
#   Then, per mode and proxy, an open-loop run at half that proxy's best
#   tunnels/s, and direct at the same rate right after: p50/p99 and the
#   latency added. Charts: docs/img/bench-gateway-{cpu,rate}-{pinned,unpinned}.svg
#   (BENCH_CHARTS=0: not written).
# Once, after the rounds: up to BENCH_IDLE (9900) idle tunnels to the echo
# server through airlock (CONNECT) and haproxy (TCP frontend), VmRSS and
# open descriptors once all are established (each carried one byte both
# ways). A proxy holds at least two descriptors per tunnel and the hard fd
# limit here is 20000, so 10,000 do not fit: the load tool stops before the
# proxy's descriptors reach the limit, and the report scales the measured
# growth to 10,000.
# Also: airlock at log level info logs exactly one "egress decision" per
# flow (checked on a short rate run); the measured airlock runs with
# log level warn, so decision records are not part of the measurement. An
# strace -c -f of airlock during one extra stream shows splice vs read/write;
# perf record of airlock and squid during an extra rate run shows where a
# tunnel's CPU goes (BENCH_STRACE=0 skips both).
#
# Servers (proxies and targets) are pinned to the upper half of the CPUs,
# load to the lower half (BENCH_PIN=1). Waits while another bench script
# (registry, cache, dns) runs.
#
# Prints a Markdown report (also saved to $CACHE/bench-gateway.md); raw
# JSON lines in $CACHE/bench-gateway.jsonl.
# Environment: BENCH_PARTS ("stream rate sweep idle": which parts run),
# BENCH_SWEEP_C, BENCH_SWEEP_DURATION, BENCH_CHARTS (1),
# BENCH_ROUNDS (3), BENCH_DURATION (5), BENCH_WORKERS (8),
# BENCH_STREAM_MIB (1024), BENCH_IDLE (9900), BENCH_PIN (1), BENCH_STRACE (1),
# AIRLOCK_BIN (else bin/airlock is built).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"

rounds=${BENCH_ROUNDS:-3}
dur=${BENCH_DURATION:-5}
workers=${BENCH_WORKERS:-8}
smib=${BENCH_STREAM_MIB:-1024}
nidle=${BENCH_IDLE:-9900}
pin=${BENCH_PIN:-1}
dostrace=${BENCH_STRACE:-1}
parts=${BENCH_PARTS:-stream rate sweep idle}
sweep_c=${BENCH_SWEEP_C:-1 8 32}
sweep_d=${BENCH_SWEEP_DURATION:-3}
charts=${BENCH_CHARTS:-1}
has() { [[ " $parts " == *" $1 "* ]]; }
cmdline="$0${*:+ $*}"
envline="BENCH_PARTS='$parts' BENCH_SWEEP_C='$sweep_c' BENCH_SWEEP_DURATION=$sweep_d BENCH_ROUNDS=$rounds BENCH_DURATION=$dur BENCH_WORKERS=$workers BENCH_STREAM_MIB=$smib BENCH_IDLE=$nidle BENCH_PIN=$pin"
for t in squid tinyproxy haproxy jq taskset; do
	command -v "$t" >/dev/null || die "$t not installed (scripts/deps.sh)"
done
[ "$dostrace" = 0 ] || command -v strace >/dev/null || die "strace not installed (or BENCH_STRACE=0)"

# Descriptors: a proxy holds two per tunnel, the idle client one.
ulimit -n "$(ulimit -Hn)"
nofile=$(ulimit -n)
[ $((2 * nidle + 64)) -le "$nofile" ] || die "BENCH_IDLE=$nidle needs $((2 * nidle + 64)) descriptors, ulimit -n is $nofile"

airlock=$(build_airlock)
gwb=$(build_gwbench)
clk=$(getconf CLK_TCK)
cpu_split "$pin"
f0() { awk -v x="$1" 'BEGIN { printf "%.0f", x }'; }
# CPU index ranges of the servers and of the load (all CPUs when unpinned).
srv_lo=0 srv_hi=$((ncpu - 1)) cli_lo=0 cli_hi=$((ncpu - 1))
if [ "$srv_cpus" != all ]; then
	srv_lo=${srv_cpus%-*} srv_hi=${srv_cpus#*-} cli_lo=${cli_cpus%-*} cli_hi=${cli_cpus#*-}
fi

work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do stop_pid "$p"; done
	rm -rf "$work"
}
trap cleanup EXIT
jsonl="$CACHE/bench-gateway.jsonl"
: >"$jsonl"

# start_server NAME ARGS...: a gwbench server pinned with the proxies; sets
# the variable NAME_addr from the address it prints.
start_server() {
	local name=$1 _
	shift
	"${srv[@]}" "$gwb" "$@" >"$work/$name.addr" 2>"$work/$name.log" &
	pids+=($!)
	for _ in $(seq 1 100); do
		[ -s "$work/$name.addr" ] && break
		sleep 0.1
	done
	[ -s "$work/$name.addr" ] || die "gwbench $name did not start: $(cat "$work/$name.log")"
	printf -v "${name}_addr" '%s' "$(head -1 "$work/$name.addr")"
}

source_addr="" echo_addr=""
start_server source source -bytes $((smib << 20))
start_server echo echo
sport=${source_addr##*:}
eport=${echo_addr##*:}
gorelay_addr="" goconnect_addr=""
start_server gorelay relay -to "$echo_addr"
gorelay_pid=${pids[-1]}
start_server goconnect relay -connect -to "$echo_addr"
goconnect_pid=${pids[-1]}
goepoll_addr=""
start_server goepoll relay -engine epoll -connect -to "$echo_addr"
goepoll_pid=${pids[-1]}

# airlock: one application rule allowing localhost on the two target ports.
# write_gateway_config FILE PORT LEVEL [ENGINE]
write_gateway_config() {
	cat >"$1" <<YAML
version: 1
log: { format: json, level: $3 }
gateway: { proxyListen: 127.0.0.1:$2, allowedInternalRanges: [127.0.0.0/8], proxyEngine: ${4:-loop} }
policy:
  ruleCollectionGroups:
    - name: g
      priority: 100
      ruleCollections:
        - { name: web, type: application, priority: 100, action: allow, rules: [ { name: local, sourceAddresses: ["*"], protocols: ["https:$sport", "http:$sport", "https:$eport", "http:$eport"], targetFqdns: [localhost] } ] }
YAML
}

# start_airlock LEVEL: sets airlock_port and airlock_pid.
start_airlock() {
	airlock_port=$(free_port)
	write_gateway_config "$work/airlock-$1.yaml" "$airlock_port" "$1"
	"${srv[@]}" "$airlock" serve --config "$work/airlock-$1.yaml" >"$work/airlock-$1.log" 2>&1 &
	airlock_pid=$!
	pids+=("$airlock_pid")
	wait_port "$airlock_port" "$airlock_pid" || die "airlock did not start: $(tail -5 "$work/airlock-$1.log")"
}

# The decision-record check, at log level info.
wait_other_benches
start_airlock info
j=$("${cli[@]}" "$gwb" rate -addr "127.0.0.1:$airlock_port" -connect "localhost:$eport" -c 2 -d 1s)
stop_pid "$airlock_pid"
check_tunnels=$(jq -r .tunnels <<<"$j")
check_errors=$(jq -r .errors <<<"$j")
check_records=$(grep -c '"msg":"egress decision"' "$work/airlock-info.log" || true)
check_allow=$(grep '"msg":"egress decision"' "$work/airlock-info.log" | grep -c '"verdict":"allow"' || true)
if [ "$check_errors" != 0 ] || [ "$check_records" != "$check_tunnels" ]; then
	die "decision records: $check_records for $check_tunnels tunnels ($check_errors errors)"
fi
log "decision check: $check_tunnels tunnels, $check_records decision records ($check_allow allow)"

start_airlock warn

# airlock-goroutine: the same binary and policy, the explicit proxy on its
# goroutine-per-connection engine (gateway.proxyEngine: goroutine).
agor_port=$(free_port)
write_gateway_config "$work/airlock-goroutine.yaml" "$agor_port" warn goroutine
"${srv[@]}" "$airlock" serve --config "$work/airlock-goroutine.yaml" >"$work/airlock-goroutine.log" 2>&1 &
agor_pid=$!
pids+=("$agor_pid")
wait_port "$agor_port" "$agor_pid" || die "airlock (goroutine engine) did not start: $(tail -5 "$work/airlock-goroutine.log")"

# haproxy: plain TCP frontends, one to the source, one to the echo server.
haproxy_stream_port=$(free_port)
haproxy_echo_port=$(free_port)
while [ "$haproxy_echo_port" = "$haproxy_stream_port" ]; do haproxy_echo_port=$(free_port); done
haproxy_splice_port=$(free_port)
while [ "$haproxy_splice_port" = "$haproxy_stream_port" ] || [ "$haproxy_splice_port" = "$haproxy_echo_port" ]; do haproxy_splice_port=$(free_port); done
cat >"$work/haproxy.cfg" <<CFG
global
  maxconn $((nidle + 16))
  maxpipes 32
  log stdout format raw local0 warning
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
frontend stream
  bind 127.0.0.1:$haproxy_stream_port
  default_backend source
frontend stream_splice
  bind 127.0.0.1:$haproxy_splice_port
  option splice-request
  option splice-response
  default_backend source_splice
frontend echo
  bind 127.0.0.1:$haproxy_echo_port
  default_backend echo
backend source
  server s1 $source_addr
backend source_splice
  option splice-request
  option splice-response
  server s1 $source_addr
backend echo
  server e1 $echo_addr
CFG
"${srv[@]}" haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
haproxy_pid=$!
pids+=("$haproxy_pid")
wait_port "$haproxy_stream_port" "$haproxy_pid" || die "haproxy did not start: $(tail -5 "$work/haproxy.log")"

# squid: CONNECT allowed to localhost (from its own hosts file) only.
squid_port=$(free_port)
mkdir -p "$work/squid"
echo "127.0.0.1 localhost" >"$work/squid/hosts"
cat >"$work/squid/squid.conf" <<CFG
http_port 127.0.0.1:$squid_port
acl allowlist dstdomain localhost
http_access allow allowlist
http_access deny all
hosts_file $work/squid/hosts
dns_nameservers 127.0.0.1
udp_incoming_address 127.0.0.1
udp_outgoing_address 127.0.0.1
pinger_enable off
cache deny all
cache_mem 8 MB
access_log none
cache_log $work/squid/cache.log
pid_filename $work/squid/squid.pid
coredump_dir $work/squid
cache_effective_user proxy
shutdown_lifetime 0 seconds
max_filedescriptors $nofile
CFG
chown -R proxy:proxy "$work/squid"
"${srv[@]}" squid -N -f "$work/squid/squid.conf" >"$work/squid/stdout.log" 2>&1 &
squid_pid=$!
pids+=("$squid_pid")
wait_port "$squid_port" "$squid_pid" || die "squid did not start: $(tail -5 "$work/squid/cache.log")"

# tinyproxy: CONNECT to the echo port, filter allowing localhost only.
tinyproxy_port=$(free_port)
mkdir -p "$work/tinyproxy"
echo '^localhost$' >"$work/tinyproxy/filter"
cat >"$work/tinyproxy/tinyproxy.conf" <<CFG
User nobody
Group nogroup
Port $tinyproxy_port
Listen 127.0.0.1
Timeout 600
MaxClients 1024
Allow 127.0.0.1
LogLevel Warning
LogFile "$work/tinyproxy/tinyproxy.log"
PidFile "$work/tinyproxy/tinyproxy.pid"
Filter "$work/tinyproxy/filter"
FilterType ere
FilterURLs Off
FilterDefaultDeny Yes
ConnectPort $eport
ConnectPort $sport
CFG
chown -R nobody:nogroup "$work/tinyproxy"
"${srv[@]}" tinyproxy -d -c "$work/tinyproxy/tinyproxy.conf" >"$work/tinyproxy/stdout.log" 2>&1 &
tinyproxy_pid=$!
pids+=("$tinyproxy_pid")
wait_port "$tinyproxy_port" "$tinyproxy_pid" || die "tinyproxy did not start: $(tail -5 "$work/tinyproxy/stdout.log")"

# Per target: how the load tool reaches it and which PID is the proxy.
declare -A saddr sconn raddr rconn ppid rpid
saddr[direct]=$source_addr sconn[direct]="" ppid[direct]=""
saddr[airlock]=127.0.0.1:$airlock_port sconn[airlock]=localhost:$sport ppid[airlock]=$airlock_pid
saddr[haproxy]=127.0.0.1:$haproxy_stream_port sconn[haproxy]="" ppid[haproxy]=$haproxy_pid
saddr[haproxy-splice]=127.0.0.1:$haproxy_splice_port sconn[haproxy-splice]="" ppid[haproxy-splice]=$haproxy_pid
saddr[squid]=127.0.0.1:$squid_port sconn[squid]=localhost:$sport ppid[squid]=$squid_pid
raddr[direct]=$echo_addr rconn[direct]="" rpid[direct]=""
raddr[airlock]=127.0.0.1:$airlock_port rconn[airlock]=localhost:$eport rpid[airlock]=$airlock_pid
raddr[squid]=127.0.0.1:$squid_port rconn[squid]=localhost:$eport rpid[squid]=$squid_pid
raddr[tinyproxy]=127.0.0.1:$tinyproxy_port rconn[tinyproxy]=localhost:$eport rpid[tinyproxy]=$tinyproxy_pid
raddr[haproxy]=127.0.0.1:$haproxy_echo_port rconn[haproxy]="" rpid[haproxy]=$haproxy_pid
raddr[gorelay]=$gorelay_addr rconn[gorelay]="" rpid[gorelay]=$gorelay_pid
raddr[goconnect]=$goconnect_addr rconn[goconnect]=localhost:$eport rpid[goconnect]=$goconnect_pid
raddr[goepoll]=$goepoll_addr rconn[goepoll]=localhost:$eport rpid[goepoll]=$goepoll_pid
raddr[airlock-goroutine]=127.0.0.1:$agor_port rconn[airlock-goroutine]=localhost:$eport rpid[airlock-goroutine]=$agor_pid
stargets=(direct airlock haproxy haproxy-splice squid)
rtargets=(direct airlock haproxy squid tinyproxy)
wtargets=(direct airlock airlock-goroutine haproxy squid tinyproxy gorelay goconnect goepoll)

# Every path works before measuring: a short stream is not possible (the
# source sends the full size), so check the rate path with one worker.
for t in "${wtargets[@]}"; do
	j=$("${cli[@]}" "$gwb" rate -addr "${raddr[$t]}" ${rconn[$t]:+-connect "${rconn[$t]}"} -c 1 -d 0.3s)
	if [ "$(jq -r .errors <<<"$j")" != 0 ] || [ "$(jq -r .tunnels <<<"$j")" -eq 0 ]; then
		die "$t echo path fails: $(jq -r .first_error <<<"$j")"
	fi
done

declare -A res
has stream || has rate || rounds=0
has stream || stargets=()
has rate || rtargets=(direct)
log "bench: $rounds rounds; servers on CPUs $srv_cpus, load on CPUs $cli_cpus"
for ((r = 0; r < rounds; r++)); do
	wait_other_benches
	ns=${#stargets[@]} nr=${#rtargets[@]}
	sorder=("${stargets[@]:r%ns}" "${stargets[@]:0:r%ns}")
	rorder=("${rtargets[@]:r%nr}" "${rtargets[@]:0:r%nr}")
	log "round $((r + 1)): stream ${sorder[*]}; rate ${rorder[*]}"
	for t in "${sorder[@]}"; do
		j=$("${cli[@]}" "$gwb" stream -addr "${saddr[$t]}" ${sconn[$t]:+-connect "${sconn[$t]}"} -bytes $((smib << 20)) -pids "${ppid[$t]}" -clk-tck "$clk") ||
			die "stream through $t failed"
		echo "{\"round\":$((r + 1)),\"test\":\"stream\",\"target\":\"$t\",\"result\":$j}" >>"$jsonl"
		res[$r,$t,sbps]=$(jq -r .bytes_per_sec <<<"$j")
		res[$r,$t,scpu]=$(jq -r .cpu_seconds_per_gib <<<"$j")
		log "  stream $t: $(jq -r '"\(.bytes_per_sec/1048576|floor) MiB/s, \(.cpu_seconds_per_gib*1000|round/1000) CPU-s/GiB"' <<<"$j")"
	done
	for t in "${rorder[@]}"; do
		j=$("${cli[@]}" "$gwb" rate -addr "${raddr[$t]}" ${rconn[$t]:+-connect "${rconn[$t]}"} -c "$workers" -d "${dur}s" -pids "${rpid[$t]}" -clk-tck "$clk")
		echo "{\"round\":$((r + 1)),\"test\":\"rate\",\"target\":\"$t\",\"result\":$j}" >>"$jsonl"
		errs=$(jq -r .errors <<<"$j")
		[ "$errs" = 0 ] || log "  rate $t: $errs errors: $(jq -r .first_error <<<"$j")"
		res[$r,$t,rps]=$(jq -r .per_sec <<<"$j")
		res[$r,$t,p50]=$(jq -r .p50_us <<<"$j")
		res[$r,$t,p99]=$(jq -r .p99_us <<<"$j")
		res[$r,$t,rerr]=$errs
		res[$r,$t,pcpu]=$(jq -r 'if .tunnels > 0 then .proxy_cpu_seconds * 1e6 / .tunnels else 0 end' <<<"$j")
		res[$r,$t,putil]=$(jq -r '.proxy_cpu_seconds / .seconds * 100' <<<"$j")
		res[$r,$t,cutil]=$(jq -r '.client_cpu_seconds / .seconds * 100' <<<"$j")
		res[$r,$t,sbusy]=$(jq -r --argjson lo "$srv_lo" --argjson hi "$srv_hi" '[.cpu_busy_pct[$lo:$hi+1][]] | add / length' <<<"$j")
		res[$r,$t,cbusy]=$(jq -r --argjson lo "$cli_lo" --argjson hi "$cli_hi" '[.cpu_busy_pct[$lo:$hi+1][]] | add / length' <<<"$j")
		log "  rate $t: $(jq -r '"\(.per_sec|floor) tunnels/s, p50 \(.p50_us|floor) µs, p99 \(.p99_us|floor) µs, proxy CPU \(.proxy_cpu_seconds / .seconds * 100 | floor)%, client CPU \(.client_cpu_seconds / .seconds * 100 | floor)%"' <<<"$j"), server CPUs busy $(f0 "${res[$r,$t,sbusy]}")%, load CPUs busy $(f0 "${res[$r,$t,cbusy]}")%"
	done
done

# The sweep: concurrency × target, pinned and unpinned, then latency at
# half of each proxy's best rate.
# repin MODE: every server of this run on its CPUs for MODE (pinned: the
# servers' half; unpinned: all); sets lcmd, the load tool's prefix.
repin() {
	local cpus="0-$((ncpu - 1))" p
	lcmd=()
	if [ "$1" = pinned ] && [ "$srv_cpus" != all ]; then
		cpus=$srv_cpus
		lcmd=("${cli[@]}")
	fi
	for p in "${pids[@]}"; do taskset -a -pc "$cpus" "$p" >/dev/null 2>&1 || true; done
	sleep 2 # Go re-reads its affinity (GOMAXPROCS) about once a second
}
declare -A sw
modes=()
ptargets=(airlock airlock-goroutine haproxy squid tinyproxy gorelay goconnect goepoll)
if has sweep; then
	modes=(pinned unpinned)
	[ "$srv_cpus" != all ] || modes=(unpinned)
	for mode in "${modes[@]}"; do
		wait_other_benches
		repin "$mode"
		k=0
		for c in $sweep_c; do
			nw=${#wtargets[@]}
			order=("${wtargets[@]:k%nw}" "${wtargets[@]:0:k%nw}")
			k=$((k + 1))
			for t in "${order[@]}"; do
				j=$("${lcmd[@]}" "$gwb" rate -addr "${raddr[$t]}" ${rconn[$t]:+-connect "${rconn[$t]}"} -c "$c" -d "${sweep_d}s" -pids "${rpid[$t]}" -clk-tck "$clk")
				echo "{\"test\":\"sweep\",\"mode\":\"$mode\",\"c\":$c,\"target\":\"$t\",\"result\":$j}" >>"$jsonl"
				sw[$mode,$c,$t,rps]=$(jq -r .per_sec <<<"$j")
				sw[$mode,$c,$t,us]=$(jq -r 'if .tunnels > 0 then .proxy_cpu_seconds * 1e6 / .tunnels else 0 end' <<<"$j")
				sw[$mode,$c,$t,err]=$(jq -r .errors <<<"$j")
				log "  sweep $mode c=$c $t: $(f0 "${sw[$mode,$c,$t,rps]}") tunnels/s, $(f0 "${sw[$mode,$c,$t,us]}") CPU-µs/tunnel, ${sw[$mode,$c,$t,err]} errors"
			done
		done
		for t in "${ptargets[@]}"; do
			best=0
			for c in $sweep_c; do best=$(awk -v a="$best" -v b="${sw[$mode,$c,$t,rps]}" 'BEGIN { print (b > a) ? b : a }'); done
			rate=$(awk -v b="$best" 'BEGIN { printf "%.0f", b / 2 }')
			sw[$mode,$t,lrate]=$rate
			for u in "$t" direct; do
				j=$("${lcmd[@]}" "$gwb" rate -addr "${raddr[$u]}" ${rconn[$u]:+-connect "${rconn[$u]}"} -rate "$rate" -d "${sweep_d}s" -pids "${rpid[$t]}" -clk-tck "$clk")
				echo "{\"test\":\"latency\",\"mode\":\"$mode\",\"rate\":$rate,\"target\":\"$u\",\"for\":\"$t\",\"result\":$j}" >>"$jsonl"
				sw[$mode,$t,$u,p50]=$(jq -r .p50_us <<<"$j")
				sw[$mode,$t,$u,p99]=$(jq -r .p99_us <<<"$j")
				sw[$mode,$t,$u,lerr]=$(jq -r '.errors + (.skipped // 0)' <<<"$j")
			done
			log "  latency $mode $t at $rate/s: p50 $(f0 "${sw[$mode,$t,$t,p50]}") µs, p99 $(f0 "${sw[$mode,$t,$t,p99]}") µs; direct p50 $(f0 "${sw[$mode,$t,direct,p50]}"), p99 $(f0 "${sw[$mode,$t,direct,p99]}")"
		done
	done
	repin pinned
	if [ "$charts" = 1 ]; then
		for mode in "${modes[@]}"; do
			for fig in cpu rate; do
				{
					printf 'concurrency'
					for t in "${ptargets[@]}"; do printf '\t%s' "$t"; done
					[ "$fig" = cpu ] || printf '\tdirect'
					echo
					for c in $sweep_c; do
						printf '%s' "$c"
						if [ "$fig" = cpu ]; then
							for t in "${ptargets[@]}"; do printf '\t%.1f' "${sw[$mode,$c,$t,us]}"; done
						else
							for t in "${ptargets[@]}" direct; do printf '\t%.0f' "${sw[$mode,$c,$t,rps]}"; done
						fi
						echo
					done
				} >"$work/sweep-$fig-$mode.tsv"
				if [ "$fig" = cpu ]; then
					title="Proxy CPU-µs per tunnel ($mode)" ylab="CPU-µs per tunnel"
				else
					title="New tunnels per second ($mode)" ylab="tunnels/s"
				fi
				(cd "$ROOT" && go run ./bench/chart --title "$title" --x "concurrent clients" --y "$ylab" --logx --zero \
					<"$work/sweep-$fig-$mode.tsv" >"docs/img/bench-gateway-$fig-$mode.svg") || die "chart failed"
				cp "$work/sweep-$fig-$mode.tsv" "$CACHE/bench-gateway-$fig-$mode.tsv"
			done
		done
		log "charts: docs/img/bench-gateway-{cpu,rate}-{${modes[*]// /,}}.svg"
	fi
fi

# strace of airlock during one more stream (not measured: strace slows it).
strace_summary=""
if [ "$dostrace" = 1 ]; then
	wait_other_benches
	strace -c -f -o "$work/strace.txt" -p "$airlock_pid" 2>/dev/null &
	strace_pid=$!
	sleep 0.5
	"${cli[@]}" "$gwb" stream -addr "${saddr[airlock]}" -connect "${sconn[airlock]}" -bytes $((smib << 20)) >/dev/null ||
		log "stream under strace failed"
	kill -INT "$strace_pid" 2>/dev/null || true
	wait "$strace_pid" 2>/dev/null || true
	strace_summary=$(awk '$NF ~ /^(splice|read|write|readv|writev|recvfrom|sendto|recvmsg|sendmsg|epoll_pwait|epoll_wait|pipe2|futex)$/' "$work/strace.txt" || true)
	log "strace (airlock, one ${smib} MiB stream):"
	log "$strace_summary"
fi

# Where a tunnel's CPU goes: perf of airlock and squid during an extra,
# unmeasured rate run (kernel and user symbols, self time).
declare -A perf_top
if [ "$dostrace" = 1 ] && command -v perf >/dev/null; then
	for t in airlock squid; do
		wait_other_benches
		perf record -q -F 999 -o "$work/perf-$t.data" -p "${rpid[$t]}" -- sleep 3 >/dev/null 2>&1 &
		perf_pid=$!
		"${cli[@]}" "$gwb" rate -addr "${raddr[$t]}" -connect "${rconn[$t]}" -c "$workers" -d 3s >/dev/null
		wait "$perf_pid" || true
		perf_top[$t]=$({
			echo "by object:"
			perf report -i "$work/perf-$t.data" --no-children --sort dso --stdio 2>/dev/null | grep -v '^#' | grep . | head -6
			echo "top symbols:"
			perf report -i "$work/perf-$t.data" --no-children --sort dso,sym --stdio 2>/dev/null | grep -v '^#' | grep . | head -12
		} || true)
		log "perf $t:"
		log "${perf_top[$t]}"
	done
fi

# Idle tunnels, airlock then haproxy.
wait_other_benches
declare -A idle
itargets=(airlock haproxy)
has idle || itargets=()
for t in "${itargets[@]}"; do
	if [ "$t" = airlock ]; then
		j=$("${cli[@]}" "$gwb" idle -addr "${raddr[airlock]}" -connect "${rconn[airlock]}" -n "$nidle" -pids "$airlock_pid" -fd-limit "$nofile")
	else
		j=$("${cli[@]}" "$gwb" idle -addr "127.0.0.1:$haproxy_echo_port" -n "$nidle" -pids "$haproxy_pid" -fd-limit "$nofile")
	fi || die "idle tunnels through $t failed; echo server log: $(tail -3 "$work/echo.log")"
	echo "{\"test\":\"idle\",\"target\":\"$t\",\"result\":$j}" >>"$jsonl"
	idle[$t,before]=$(jq -r .rss_before_bytes <<<"$j")
	idle[$t,after]=$(jq -r .rss_bytes <<<"$j")
	idle[$t,per]=$(jq -r .per_tunnel_bytes <<<"$j")
	idle[$t,n]=$(jq -r .tunnels <<<"$j")
	idle[$t,fdper]=$(jq -r .fds_per_tunnel <<<"$j")
	idle[$t,stopped]=$(jq -r '.stopped // ""' <<<"$j")
	[ -z "${idle[$t,stopped]}" ] || log "  idle $t: stopped at $(jq -r .tunnels <<<"$j") tunnels: ${idle[$t,stopped]}"
	log "  idle $t: $(jq -r .tunnels <<<"$j") tunnels, (fds per tunnel $(jq -r .fds_per_tunnel <<<"$j")), RSS $(jq -r '"\(.rss_before_bytes/1048576|floor) → \(.rss_bytes/1048576|floor) MiB, \(.per_tunnel_bytes/1024*10|round/10) KiB per tunnel"' <<<"$j")"
	sleep 2 # let the closed tunnels drain before the next proxy
done

# Report.
f2() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }
mibs() { awk -v x="$1" 'BEGIN { printf "%.0f", x / 1048576 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
diffus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", a - b }'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
holds() { awk -v x="$1" -v op="$2" -v y="$3" 'BEGIN { ok = (op == ">=") ? x >= y : (op == "<=") ? x <= y : x < y; print ok ? "**holds**" : "**misses**" }'; }

report="$CACHE/bench-gateway.md"
: >"$report"
if has stream && has rate && has idle; then
med_pc="" med_pcs="" med_s_sq="" med_s_dir="" med_s_cpu="" med_s_hap="" med_r_sq="" med_r_tp="" med_a50="" med_a99=""
for ((r = 0; r < rounds; r++)); do
	med_s_sq+=" $(ratio "${res[$r,airlock,sbps]}" "${res[$r,squid,sbps]}")"
	med_s_dir+=" $(ratio "${res[$r,airlock,sbps]}" "${res[$r,direct,sbps]}")"
	med_s_hap+=" $(ratio "${res[$r,airlock,sbps]}" "${res[$r,haproxy,sbps]}")"
	med_s_cpu+=" ${res[$r,airlock,scpu]}"
	med_r_sq+=" $(ratio "${res[$r,airlock,rps]}" "${res[$r,squid,rps]}")"
	med_pc+=" $(f0 "${res[$r,airlock,pcpu]}")"
	med_pcs+=" $(f0 "${res[$r,squid,pcpu]}")"
	med_r_tp+=" $(ratio "${res[$r,airlock,rps]}" "${res[$r,tinyproxy,rps]}")"
	med_a50+=" $(diffus "${res[$r,airlock,p50]}" "${res[$r,direct,p50]}")"
	med_a99+=" $(diffus "${res[$r,airlock,p99]}" "${res[$r,direct,p99]}")"
done
m_s_sq=$(median <<<"$med_s_sq")
m_s_cpu=$(median <<<"$med_s_cpu")
m_r_sq=$(median <<<"$med_r_sq")
idle10k() { awk -v b="$1" -v a="$2" -v n="$3" 'BEGIN { printf "%.1f", (b + (a - b) * 10000 / n) / 1048576 }'; }
a10k=$(idle10k "${idle[airlock,before]}" "${idle[airlock,after]}" "${idle[airlock,n]}")

{
	echo "### Gateway: CONNECT tunnels ($(date -u +%Y-%m-%d))"
	echo
	echo "Command: \`$envline $cmdline\` (from the repository root; \`make bench-gateway\`)"
	echo
	echo "Machine: $ncpu CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), Linux $(uname -r);" \
		"proxies and target servers pinned to CPUs $srv_cpus, load (bench/gwbench) to CPUs $cli_cpus." \
		"$rounds rounds, target order rotated per round; ratios are taken within a round, then the median."
	echo "Versions: $("$airlock" version 2>/dev/null | head -1 || echo airlock); $(haproxy -v | head -1 | awk '{ print "haproxy " $3 }') (TCP mode);" \
		"$(squid -v | head -1 | awk '{ print "squid " $4 }') (CONNECT, access_log none); $(tinyproxy -v | head -1) (CONNECT, filter); $(go version | awk '{ print $3 }')."
	echo "airlock runs with \`log: {level: warn}\` so the per-flow decision records (info) stay out of the measurement;" \
		"checked first at level info: $check_tunnels tunnels gave $check_records \"egress decision\" records ($check_allow allow)."
	echo
	echo "Stream: one connection reads $smib MiB (source: sendfile of a random file; client: splice to /dev/null)." \
		"Rate: $workers workers × $dur s, a new connection per request: connect, CONNECT, 16 bytes echoed, close; direct = the same without a proxy." \
		"Added latency = target's percentile − direct's percentile, same round." \
		"Proxy CPU % and load CPU %: CPU time of the proxy process and of the load tool over the run (100 % = one CPU)." \
		"Server / load CPUs busy %: all work on those CPUs over the run (/proc/stat, softirq included); the servers' CPUs hold the proxy and the echo target." \
		"haproxy-splice: a second TCP frontend/backend with \`option splice-request\` and \`option splice-response\`."
	echo
	echo "| Round | Stream target | MiB/s | vs direct | vs squid | proxy CPU-s/GiB |"
	echo "|---|---|---:|---:|---:|---:|"
	for ((r = 0; r < rounds; r++)); do
		ns=${#stargets[@]}
		for t in "${stargets[@]:r%ns}" "${stargets[@]:0:r%ns}"; do
			cpu="-"
			[ "$t" = direct ] || cpu=$(f2 "${res[$r,$t,scpu]}")
			echo "| $((r + 1)) | $t | $(mibs "${res[$r,$t,sbps]}") | $(ratio "${res[$r,$t,sbps]}" "${res[$r,direct,sbps]}") | $(ratio "${res[$r,$t,sbps]}" "${res[$r,squid,sbps]}") | $cpu |"
		done
	done
	echo
	echo "| Round | Rate target | tunnels/s | vs squid | p50 µs | p99 µs | added p50 µs | added p99 µs | proxy CPU-µs/tunnel | proxy CPU % | load CPU % | server CPUs busy % | load CPUs busy % | errors |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for ((r = 0; r < rounds; r++)); do
		nr=${#rtargets[@]}
		for t in "${rtargets[@]:r%nr}" "${rtargets[@]:0:r%nr}"; do
			a50="-" a99="-" pc="-" pu="-"
			if [ "$t" != direct ]; then
				a50=$(diffus "${res[$r,$t,p50]}" "${res[$r,direct,p50]}")
				a99=$(diffus "${res[$r,$t,p99]}" "${res[$r,direct,p99]}")
				pc=$(f0 "${res[$r,$t,pcpu]}")
				pu=$(f0 "${res[$r,$t,putil]}")
			fi
			echo "| $((r + 1)) | $t | $(f0 "${res[$r,$t,rps]}") | $(ratio "${res[$r,$t,rps]}" "${res[$r,squid,rps]}") | $(f0 "${res[$r,$t,p50]}") | $(f0 "${res[$r,$t,p99]}") | $a50 | $a99 | $pc | $pu | $(f0 "${res[$r,$t,cutil]}") | $(f0 "${res[$r,$t,sbusy]}") | $(f0 "${res[$r,$t,cbusy]}") | ${res[$r,$t,rerr]} |"
		done
	done
	echo
	dcpu=$(for ((r = 0; r < rounds; r++)); do echo "${res[$r,direct,cutil]}"; done | sort -g | tail -1)
	if awk -v x="$dcpu" 'BEGIN { exit !(x >= 90) }'; then
		echo "Note: the direct runs kept the load tool's CPU at up to $(f0 "$dcpu") %, so direct's p99 includes queueing in the load tool;" \
			"added p99 (which can come out negative) is not meaningful here, added p50 is."
		echo
	fi
	echo "| Idle tunnels | tunnels held | RSS before (MiB) | RSS with them (MiB) | per tunnel (KiB) | scaled to 10,000 (MiB) | descriptors per tunnel | descriptors for 10,000 |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|"
	for t in airlock haproxy; do
		echo "| $t | ${idle[$t,n]} | $(mibs "${idle[$t,before]}") | $(mibs "${idle[$t,after]}") | $(awk -v x="${idle[$t,per]}" 'BEGIN { printf "%.1f", x / 1024 }') |" \
			"$(idle10k "${idle[$t,before]}" "${idle[$t,after]}" "${idle[$t,n]}") | $(f2 "${idle[$t,fdper]}") | $(awk -v x="${idle[$t,fdper]}" 'BEGIN { printf "%.0f", x * 10000 }') |"
	done
	echo
	echo "Asked for $nidle tunnels each (10,000 cannot fit: the hard descriptor limit here is $nofile and a proxy holds at least two per tunnel);" \
		"the load tool stops opening tunnels when the proxy's descriptors come within a margin of the limit or a tunnel fails." \
		"\"scaled\" = RSS before + growth × 10,000 / tunnels held. haproxy's tunnels are its plain TCP frontend to the echo server (no CONNECT)."
	for t in airlock haproxy; do
		[ -z "${idle[$t,stopped]}" ] || echo "$t stopped at ${idle[$t,n]} tunnels: ${idle[$t,stopped]}."
	done
	echo
	echo "Medians of same-round figures (airlock):"
	echo
	echo "| Figure | Median | Per round |"
	echo "|---|---:|---|"
	echo "| stream vs squid | $m_s_sq | $med_s_sq |"
	echo "| stream vs haproxy | $(median <<<"$med_s_hap") | $med_s_hap |"
	echo "| stream vs direct | $(median <<<"$med_s_dir") | $med_s_dir |"
	echo "| proxy CPU-s/GiB | $m_s_cpu | $(for ((r = 0; r < rounds; r++)); do printf ' %s' "$(f2 "${res[$r,airlock,scpu]}")"; done) |"
	echo "| tunnels/s vs squid | $m_r_sq | $med_r_sq |"
	echo "| proxy CPU-µs per tunnel (squid) | $(median <<<"$med_pc") ($(median <<<"$med_pcs")) | $med_pc |"
	echo "| tunnels/s vs tinyproxy | $(median <<<"$med_r_tp") | $med_r_tp |"
	echo "| added p50 latency µs | $(median <<<"$med_a50") | $med_a50 |"
	echo "| added p99 latency µs | $(median <<<"$med_a99") | $med_a99 |"
	echo
	echo "Targets (issue 4):"
	echo
	echo "- throughput ≥ 1.5× squid's: $m_s_sq× → $(holds "$m_s_sq" ">=" 1.5)"
	echo "- ≤ 0.5 CPU-s per GiB in the proxy: $(f2 "$m_s_cpu") → $(holds "$m_s_cpu" "<=" 0.5)"
	echo "- tunnels per second ≥ 2× squid's: $m_r_sq× → $(holds "$m_r_sq" ">=" 2)"
	echo "- < 150 MiB for 10,000 idle tunnels: $a10k MiB (scaled from ${idle[airlock,n]}) → $(holds "$a10k" "<" 150);" \
		"10,000 tunnels need $(awk -v x="${idle[airlock,fdper]}" 'BEGIN { printf "%.0f", x * 10000 }') descriptors in airlock"
	if [ -n "$strace_summary" ]; then
		echo
		echo "\`strace -c -f -p <airlock>\` during one extra $smib MiB stream (not measured), selected rows:"
		echo
		echo '```'
		echo "% time     seconds  usecs/call     calls    errors syscall"
		echo "$strace_summary"
		echo '```'
	fi
	for t in airlock squid; do
		[ -n "${perf_top[$t]:-}" ] || continue
		echo
		echo "\`perf record -F 999 -p <$t>\` for 3 s during an extra, unmeasured rate run ($workers workers), self time by object and top symbols:"
		echo
		echo '```'
		echo "${perf_top[$t]}"
		echo '```'
	done
} | tee -a "$report"
fi

# The sweep's report.
if has sweep; then
	{
		echo
		echo "### Gateway: cost per tunnel, pinned and unpinned ($(date -u +%Y-%m-%d), commit $(git -C "$ROOT" rev-parse --short HEAD))"
		echo
		echo "Command: \`$envline $cmdline\`. Closed loop: C clients back to back for $sweep_d s each (connect, CONNECT unless direct/haproxy/gorelay, 16 bytes echoed, close)." \
			"CPU-µs per tunnel = the proxy's utime+stime (/proc/PID/stat, all threads) over the run / tunnels. pinned: proxies and the echo target on CPUs $srv_cpus, load on CPUs $cli_cpus; unpinned: everything on all $ncpu CPUs." \
			"gorelay: a Go TCP relay (accept, dial, two io.Copy); goconnect: the same reading a CONNECT head (http.ReadRequest) and answering 200 first;" \
			"goepoll: a Go CONNECT relay in haproxy's shape (one thread, one epoll set, non-blocking sockets, no goroutine per connection; gwbench relay -engine epoll)." \
			"airlock runs its default explicit-proxy engine (gateway.proxyEngine: loop, event loops); airlock-goroutine the same binary and policy with proxyEngine: goroutine."
		for mode in "${modes[@]}"; do
			echo
			echo "$mode: tunnels/s / proxy CPU-µs per tunnel (airlock ÷ haproxy CPU-µs in the last column)"
			echo
			printf '| concurrency |'
			for t in direct "${ptargets[@]}"; do printf ' %s |' "$t"; done
			echo ' airlock/haproxy CPU-µs |'
			printf '|---:|'
			for t in direct "${ptargets[@]}"; do printf -- '---:|'; done
			echo '---:|'
			for c in $sweep_c; do
				printf '| %s | %s |' "$c" "$(f0 "${sw[$mode,$c,direct,rps]}")"
				for t in "${ptargets[@]}"; do printf ' %s / %s |' "$(f0 "${sw[$mode,$c,$t,rps]}")" "$(f0 "${sw[$mode,$c,$t,us]}")"; done
				echo " $(ratio "${sw[$mode,$c,airlock,us]}" "${sw[$mode,$c,haproxy,us]}") |"
			done
		done
		echo
		echo "Latency under load: open loop at half of each proxy's best tunnels/s above (each tunnel timed from its scheduled start), then direct at the same rate; added = proxy − direct."
		echo
		echo "| mode | proxy | load (tunnels/s) | p50 µs | p99 µs | direct p50 µs | direct p99 µs | added p50 µs | added p99 µs | errors+skipped |"
		echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
		for mode in "${modes[@]}"; do
			for t in "${ptargets[@]}"; do
				echo "| $mode | $t | ${sw[$mode,$t,lrate]} | $(f0 "${sw[$mode,$t,$t,p50]}") | $(f0 "${sw[$mode,$t,$t,p99]}") | $(f0 "${sw[$mode,$t,direct,p50]}") | $(f0 "${sw[$mode,$t,direct,p99]}") |" \
					"$(diffus "${sw[$mode,$t,$t,p50]}" "${sw[$mode,$t,direct,p50]}") | $(diffus "${sw[$mode,$t,$t,p99]}" "${sw[$mode,$t,direct,p99]}") | $((${sw[$mode,$t,$t,lerr]} + ${sw[$mode,$t,direct,lerr]})) |"
			done
		done
		echo
		echo "Target (issue 15): proxy CPU-µs per tunnel ≤ 1.2× haproxy's:"
		for mode in "${modes[@]}"; do
			rs=""
			for c in $sweep_c; do rs+=" $(ratio "${sw[$mode,$c,airlock,us]}" "${sw[$mode,$c,haproxy,us]}")"; done
			m=$(median <<<"$rs")
			echo "- $mode: median $m× (per concurrency:$rs) → $(holds "$m" "<=" 1.2)"
		done
	} | tee -a "$report"
fi
log "report saved to $report"
