#!/usr/bin/env bash
# bench/failover.sh: issue 13, the failover gap without a virtual IP. A
# client that knows two replica addresses and tries them in order (the
# nameserver lines of resolv.conf; containerd's list of mirror hosts) probes
# every 50 ms while the first replica dies. All on 127.0.0.1:
#   - unbound (local data only, never contacting anything) is the DNS
#     replicas' forwarder; two airlock replicas each serve DNS and the
#     registry (anonymous pull, each on its own local storage: the probe
#     asks for /v2/, not for content);
#   - bench/failprobe starts a probe every 50 ms for BENCH_PROBE_SECONDS
#     (8): first replica, and on an error or after BENCH_TIMEOUT (5s, the
#     resolver's default) the second; reported: the longest gap between two
#     successful probes, probes no replica answered, the slowest probe;
#   - after 1.5 s the first replica is either killed (kill -9: on loopback
#     the kernel refuses its port at once, ICMP unreachable for UDP, RST for
#     TCP) or stopped (kill -STOP: a hung host, whose kernel still accepts
#     TCP connections and UDP datagrams nobody reads, so the client waits
#     for its timeout), then resumed and stopped after the probe.
# Prints a Markdown table (also saved to $CACHE/bench-failover.md).
# Environment: BENCH_ROUNDS (3), BENCH_PROBE_SECONDS (8), BENCH_TIMEOUT (5s),
# AIRLOCK_BIN (else bin/airlock is built).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"

rounds=${BENCH_ROUNDS:-3}
secs=${BENCH_PROBE_SECONDS:-8}
timeout=${BENCH_TIMEOUT:-5s}
cmdline="$0${*:+ $*}"
envline="BENCH_ROUNDS=$rounds BENCH_PROBE_SECONDS=$secs BENCH_TIMEOUT=$timeout"
for t in unbound dig curl jq ss; do
	command -v "$t" >/dev/null || die "$t not installed (scripts/deps.sh)"
done
airlock=$(build_airlock)
mkdir -p "$CACHE/bin"
(cd "$ROOT/bench/failprobe" && go build -o "$CACHE/bin/failprobe" .) || die "build bench/failprobe failed"
fp="$CACHE/bin/failprobe"

bench_workspace # $work, $pids, $results; stop, other_port (scripts/lib.sh)
wait_dns() {
	local _
	for _ in $(seq 1 100); do
		dig +time=1 +tries=1 -p "$1" @127.0.0.1 name1.bench.test A 2>/dev/null | grep -q 'status: NOERROR' && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# The forwarder: unbound with local data only.
uport=$(other_port)
cat >"$work/unbound.conf" <<EOF
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
  local-data: "name1.bench.test. 3600 IN A 11.1.0.1"
remote-control:
  control-enable: no
EOF
unbound -d -c "$work/unbound.conf" >"$work/unbound.log" 2>&1 &
ubpid=$!
pids+=("$ubpid")
wait_dns "$uport" "$ubpid" || die "unbound did not start: $(tail -5 "$work/unbound.log")"

# start_replica N: sets rep_pid[N], rep_dns[N], rep_reg[N].
declare -A rep_pid rep_dns rep_reg
start_replica() {
	local n=$1 dir="$work/r$1" dport rport admin
	rm -rf "$dir"
	mkdir -p "$dir"
	dport=$(other_port) rport=$(other_port) admin=$(other_port)
	cat >"$dir/airlock.yaml" <<EOF
version: 1
log: { level: warn }
admin: { listen: 127.0.0.1:$admin }
dns:
  listen: 127.0.0.1:$dport
  forwarders: [ "127.0.0.1:$uport" ]
  logAllowed: none
  allowNames: [ "*.bench.test" ]
registry:
  listen: 127.0.0.1:$rport
  storage: { path: "$dir/data" }
  anonymousPull: true
EOF
	"$airlock" serve --config "$dir/airlock.yaml" >"$dir/log" 2>&1 &
	rep_pid[$n]=$!
	pids+=("$!")
	rep_dns[$n]="127.0.0.1:$dport" rep_reg[$n]="http://127.0.0.1:$rport"
	wait_http "http://127.0.0.1:$admin/readyz" "$!" 30 || die "airlock r$n did not start: $(tail -5 "$dir/log")"
	wait_dns "$dport" "$!" || die "airlock r$n DNS not answering"
}

# measure ROUND KIND SIGNAL
measure() {
	local round=$1 kind=$2 sig=$3 servers j
	start_replica 1
	start_replica 2
	if [ "$kind" = dns ]; then
		servers="${rep_dns[1]},${rep_dns[2]}"
	else
		servers="${rep_reg[1]},${rep_reg[2]}"
	fi
	"$fp" -kind "$kind" -servers "$servers" -name name1.bench.test -path /v2/ -timeout "$timeout" \
		-duration "${secs}s" >"$work/probe.json" &
	local ppid=$!
	sleep 1.5
	kill "-$sig" "${rep_pid[1]}"
	wait "$ppid" || die "failprobe failed"
	j=$(cat "$work/probe.json")
	stop "${rep_pid[1]}"
	stop "${rep_pid[2]}"
	printf '%s\n' "$(jq -c --argjson r "$round" --arg sig "$sig" '. + {round: $r, signal: $sig}' <<<"$j")" >>"$results"
	log "  $kind $sig: $(jq -r '"longest gap \(.max_gap_ms|round) ms (at \(.max_gap_start_ms|round) ms), \(.failed)/\(.probes) probes unanswered, slowest \(.slowest_probe_ms|round) ms, per replica \(.per_server)"' <<<"$j")"
}

log "failover: $rounds rounds; probe every 50 ms for ${secs}s, timeout $timeout per replica; the first replica killed or stopped at 1.5 s"
for ((r = 1; r <= rounds; r++)); do
	log "round $r"
	for kind in dns http; do
		for sig in KILL STOP; do measure "$r" "$kind" "$sig"; done
	done
done

report="$CACHE/bench-failover.md"
cp "$results" "$CACHE/bench-failover.jsonl"
# shellcheck disable=SC2016 # the single-quoted $ are jq's
{
	echo "### Run: failover gap without a VIP ($(date -u +%Y-%m-%d))"
	echo
	echo "Command: \`$envline $cmdline\`. Machine: $(nproc) CPUs, Linux $(uname -r). Replicas: $("$airlock" version 2>/dev/null | head -1)."
	echo
	echo "| Service | First replica | longest gap (ms), median (range) | probes unanswered (all rounds) | slowest probe (ms), max | answered by the second replica (median) |"
	echo "|---|---|---:|---:|---:|---:|"
	jq -rs 'def med: sort | .[length / 2 | floor];
	  group_by([.kind, .signal])[] | . as $g
	  | "| \(if $g[0].kind == "dns" then "DNS (UDP)" else "registry (GET /v2/)" end) | \(if $g[0].signal == "KILL" then "kill -9" else "kill -STOP (hung)" end) | \($g | map(.max_gap_ms) | med | round) (\($g | map(.max_gap_ms) | min | round)–\($g | map(.max_gap_ms) | max | round)) | \($g | map(.failed) | add)/\($g | map(.probes) | add) | \($g | map(.slowest_probe_ms) | max | round) | \($g | map(.per_server[1]) | med) |"' "$results"
} | tee "$report"
log "report saved to $report"
