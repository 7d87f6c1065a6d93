#!/usr/bin/env bash
# bench/failover-vip.sh: issue 13, the failover gap behind a virtual IP.
# Runs the cluster e2e (test/e2e TestE2EClusterFailover: node → {gw1, gw2}
# in network namespaces, keepalived holding the VIP with the shipped
# example's check, Redis, Azurite, containerd) BENCH_ROUNDS times and
# collects, per service, the longest time without a successful probe (one
# every 50 ms from the node) around gw1's kill -9: DNS at the VIP, a new
# CONNECT through the explicit proxy at the VIP, a new transparent TLS flow
# (the node's default route is the VIP), GET /v2/ at the VIP, and DNS in
# resolv.conf order (gw1 then gw2, 250 ms each); plus when the VIP moved
# and how long containerd's 240 MiB pull took across the kill.
# Needs root (network namespaces). Prints a Markdown table (also saved to
# $CACHE/bench-failover-vip.md). Environment: BENCH_ROUNDS (3).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"

rounds=${BENCH_ROUNDS:-3}
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
bench_workspace
cd "$ROOT"
for r in $(seq 1 "$rounds"); do
	log "round $r/$rounds: go test -tags e2e -run TestE2EClusterFailover ./test/e2e/"
	go test -tags e2e -count=1 -v -run TestE2EClusterFailover ./test/e2e/ >"$work/run$r.log" 2>&1 ||
		{ tail -40 "$work/run$r.log" >&2; die "round $r: the cluster e2e failed"; }
	# "NAME: N probes, … longest gap without an answer around the kill: 3.754s"
	sed -n 's/.*cluster_test.go:[0-9]*: \(.*\): [0-9]* probes, .*longest gap without an answer around the kill: \([0-9.]*\)\(m\?s\).*/\1|\2|\3/p' "$work/run$r.log" |
		while IFS='|' read -r name v unit; do
			[ "$unit" = ms ] || v=$(awk -v x="$v" 'BEGIN { printf "%.0f", x * 1000 }')
			printf '%s\t%s\n' "$name" "$v"
		done >>"$work/gaps.tsv"
	sed -n 's/.*VIP [0-9.]* on gw2 \([0-9.]*\)s after the kill.*/VIP moved to gw2 (after the kill)\t\1/p' "$work/run$r.log" |
		awk -F'\t' '{ printf "%s\t%.0f\n", $1, $2 * 1000 }' >>"$work/gaps.tsv"
	sed -n 's/.*pull of .* complete \([0-9.]*\)s after it started.*/containerd pull of 240 MiB across the kill (whole pull)\t\1/p' "$work/run$r.log" |
		awk -F'\t' '{ printf "%s\t%.0f\n", $1, $2 * 1000 }' >>"$work/gaps.tsv"
done
{
	printf '### Run: failover gap behind a virtual IP (%s)\n\n' "$(date -u +%F)"
	printf 'Command: `BENCH_ROUNDS=%s bench/failover-vip.sh`. Machine: %s CPUs, Linux %s.\n\n' "$rounds" "$(nproc)" "$(uname -r)"
	printf '| What (probe every 50 ms from the node) | longest gap (ms), median (range) over %s rounds |\n|---|---:|\n' "$rounds"
	cut -f1 "$work/gaps.tsv" | awk '!seen[$0]++' | while IFS= read -r name; do
		awk -F'\t' -v n="$name" '$1 == n { print $2 }' "$work/gaps.tsv" | sort -n |
			awk -v n="$name" '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "| %s | %.0f (%d–%d) |\n", n, m, v[1], v[NR] }'
	done
} | tee "$CACHE/bench-failover-vip.md"
log "report saved to $CACHE/bench-failover-vip.md"
