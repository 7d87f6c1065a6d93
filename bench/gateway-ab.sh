#!/usr/bin/env bash
# gateway-ab.sh: proxy CPU per tunnel of airlock variants against haproxy,
# interleaved, so that a machine whose speed drifts between runs (a VM) moves
# every variant alike. Each round runs every target once for BENCH_DURATION
# seconds at BENCH_C concurrent clients (closed loop: connect, CONNECT unless
# haproxy, 16 bytes echoed, close); the result is each target's median,
# minimum and maximum CPU-µs per tunnel over BENCH_ROUNDS rounds.
#
# Targets (BENCH_TARGETS, default "haproxy name name-dns name-goroutine ip"):
#   haproxy          haproxy TCP mode straight to the echo server
#   name             airlock, CONNECT localhost:PORT (an application rule;
#                    the name is resolved)
#   name-goroutine   the same with gateway.proxyEngine: goroutine
#   name-gmp1        the same as name with GOMAXPROCS=1
#   name-dns         airlock with its DNS in the same process (as `airlock
#                    serve` wires them: the gateway resolves through it),
#                    CONNECT echo.bench.test:PORT, a name of a private zone
#   ip               airlock, CONNECT 127.0.0.1:PORT (a network rule; no
#                    resolution)
#
# BENCH_PIN=1 (default): servers on the upper half of the CPUs, load on the
# lower half; 0: everything on every CPU. AIRLOCK_BIN (else bin/airlock is
# built). Example, unpinned, 8 clients, 5 rounds:
#   BENCH_PIN=0 BENCH_C=8 BENCH_ROUNDS=5 bench/gateway-ab.sh
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"

conc=${BENCH_C:-8}
rounds=${BENCH_ROUNDS:-5}
dur=${BENCH_DURATION:-2}
pin=${BENCH_PIN:-1}
targets=${BENCH_TARGETS:-haproxy name name-dns name-goroutine ip}
for t in haproxy jq taskset; do
	command -v "$t" >/dev/null || die "$t not installed (scripts/deps.sh)"
done

airlock=$(build_airlock)
gwb=$(build_gwbench)
clk=$(getconf CLK_TCK)
cpu_split "$pin"
bench_workspace

"${srv[@]}" "$gwb" echo >"$work/echo.addr" 2>"$work/echo.log" &
pids+=("$!")
for _ in $(seq 1 50); do [ -s "$work/echo.addr" ] && break; sleep 0.1; done
echo_addr=$(head -1 "$work/echo.addr")
eport=${echo_addr##*:}
[ -n "$eport" ] || die "the echo server did not start: $(cat "$work/echo.log")"

declare -A addr conn pid
for t in $targets; do
	port=$(free_port) # each server listens before the next port is chosen
	case $t in
	haproxy)
		printf 'global\n  maxconn 4000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\nfrontend echo\n  bind 127.0.0.1:%s\n  default_backend echo\nbackend echo\n  server e1 %s\n' \
			"$port" "$echo_addr" >"$work/haproxy.cfg"
		"${srv[@]}" haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
		conn[$t]=""
		;;
	name | name-goroutine | name-gmp1 | name-dns | ip)
		engine=loop gmp=""
		[ "$t" != name-goroutine ] || engine=goroutine
		[ "$t" != name-gmp1 ] || gmp=1
		dns=""
		if [ "$t" = name-dns ]; then
			rule="{ name: web, type: application, priority: 100, action: allow, rules: [ { name: local, sourceAddresses: [\"*\"], protocols: [\"https:$eport\"], targetFqdns: [echo.bench.test] } ] }"
			conn[$t]=echo.bench.test:$eport
			dns="dns: { listen: 127.0.0.1:$(free_port), privateZones: [ { zone: bench.test, records: [ { name: echo, type: A, value: 127.0.0.1 } ] } ] }"
		elif [ "$t" = ip ]; then
			rule="{ name: web, type: network, priority: 100, action: allow, rules: [ { name: local, protocols: [TCP], sourceAddresses: [\"*\"], destinationAddresses: [127.0.0.1], destinationPorts: [\"$eport\"] } ] }"
			conn[$t]=127.0.0.1:$eport
		else
			rule="{ name: web, type: application, priority: 100, action: allow, rules: [ { name: local, sourceAddresses: [\"*\"], protocols: [\"https:$eport\"], targetFqdns: [localhost] } ] }"
			conn[$t]=localhost:$eport
		fi
		cat >"$work/$t.yaml" <<YAML
version: 1
log: { format: json, level: warn }
gateway: { proxyListen: 127.0.0.1:$port, allowedInternalRanges: [127.0.0.0/8], proxyEngine: $engine }
$dns
policy:
  ruleCollectionGroups:
    - name: g
      priority: 100
      ruleCollections:
        - $rule
YAML
		env ${gmp:+GOMAXPROCS=$gmp} "${srv[@]}" "$airlock" serve --config "$work/$t.yaml" >"$work/$t.log" 2>&1 &
		;;
	*) die "unknown target $t (haproxy name name-goroutine name-gmp1 name-dns ip)" ;;
	esac
	pid[$t]=$!
	pids+=("${pid[$t]}")
	addr[$t]=127.0.0.1:$port
	wait_port "$port" "${pid[$t]}" || die "$t did not start: $(tail -5 "$work/$t.log" 2>/dev/null)"
done

log "gateway-ab: $rounds rounds of $targets at C=$conc for ${dur}s; servers on CPUs $srv_cpus, load on CPUs $cli_cpus"
for ((r = 1; r <= rounds; r++)); do
	wait_other_benches
	for t in $targets; do
		j=$("${cli[@]}" "$gwb" rate -addr "${addr[$t]}" ${conn[$t]:+-connect "${conn[$t]}"} -c "$conc" -d "${dur}s" -pids "${pid[$t]}" -clk-tck "$clk")
		echo "$t $(jq -r 'if .tunnels > 0 then .proxy_cpu_seconds * 1e6 / .tunnels else 0 end' <<<"$j") $(jq -r .errors <<<"$j")" >>"$work/ab.txt"
	done
done

echo "gateway-ab ($(date -u +%Y-%m-%d), commit $(git -C "$ROOT" rev-parse --short HEAD)): BENCH_PIN=$pin BENCH_C=$conc BENCH_ROUNDS=$rounds BENCH_DURATION=$dur; CPU-µs per tunnel"
for t in $targets; do
	grep "^$t " "$work/ab.txt" | sort -k2 -n | awk -v t="$t" '{ v[NR] = $2; e += $3 } END { printf "%-15s median %6.1f  min %6.1f  max %6.1f  errors %d\n", t, v[int((NR + 1) / 2)], v[1], v[NR], e }'
done
