#!/usr/bin/env bash
# bench/fill.sh: one cold cache fill against a direct pull and against the
# floor. A Debian docker-registry upstream on 127.0.0.1 holds one random
# single-layer blob per size in BENCH_FILL_MIB (pushed by bench/cachebench
# seed). The client of every pull is bench/fillref, which does only what
# any fill must do (read the socket, sha256, write the file, fsync, close)
# and measures its own CPU with getrusage: its CPU per GiB is the floor.
# Per mode, round and size:
#   - direct: fillref straight from the upstream;
#   - cold:   fillref through a freshly started airlock (empty storage, a
#             cache rule whose upstream is that registry): one client, the
#             fill streaming the blob while it arrives; airlock's CPU is
#             read from /proc (utime+stime, all threads) once the fill has
#             committed (fsync and rename included);
#   - warm:   the same pull again, from airlock's storage.
# Modes: unpinned (every process may use every CPU), and pinned: airlock
# alone on the last CPU, the upstream and the client on the others.
#
# Page priming (BENCH_FILL_PRIME=1, the default): right before each pull,
# a file as large as what the pull will write (client and airlock, plus
# 64 MiB) is written and removed. On a VM with free page reporting
# (virtio-balloon) memory freed for more than ~2 s goes back to the host,
# and the guest's next page-cache write into it costs about 2 CPU-s/GiB
# of kernel time in the writing process (measured with dd: 0.04 s of
# system time for 256 MiB right after a removal, 0.5 s five seconds
# later), which lands on whichever of airlock and the client happens to
# get those pages. Priming hands both recently freed pages, as a host
# whose page cache is full (the steady state) would. BENCH_FILL_PRIME=0
# measures without it.
#
# Reports wall time to the body's end (throughput) and CPU-s per GiB of the
# client (fillref: the floor), of airlock and of the upstream; medians over
# the rounds. Prints a Markdown report (also $CACHE/bench-fill.md), keeps the
# raw lines in $CACHE/bench-fill.jsonl and, with BENCH_CHART=1 (make
# bench-fill), redraws docs/img/bench-fill.svg (throughput) and
# docs/img/bench-fill-cpu.svg (CPU-s per GiB).
# Environment: BENCH_ROUNDS (3), BENCH_FILL_MIB ("64 256 1024"), BENCH_PINS
# ("0 1"), BENCH_FILL_PRIME (1), BENCH_CHART (0), AIRLOCK_BIN (else
# bin/airlock is built).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"

rounds=${BENCH_ROUNDS:-3}
sizes=${BENCH_FILL_MIB:-64 256 1024}
pins=${BENCH_PINS:-0 1}
prime=${BENCH_FILL_PRIME:-1}
chart=${BENCH_CHART:-0}
cmdline="$0${*:+ $*}"
for t in docker-registry curl jq taskset ss; do
	command -v "$t" >/dev/null || die "$t not installed (scripts/deps.sh)"
done
ncpu=$(nproc)

airlock=$(build_airlock)
mkdir -p "$CACHE/bin"
(cd "$ROOT/bench/cachebench" && go build -o "$CACHE/bin/cachebench" .) || die "build bench/cachebench failed"
(cd "$ROOT" && go build -o "$CACHE/bin/fillref" ./bench/fillref) || die "build bench/fillref failed"
cb="$CACHE/bin/cachebench" ref="$CACHE/bin/fillref"

bench_workspace
wait_other_benches

# Placement per mode: srv for airlock, up for the upstream and the client.
place() {
	srv=() up=()
	if [ "$1" = 1 ] && [ "$ncpu" -ge 2 ]; then
		srv=(taskset -c "$((ncpu - 1))")
		up=(taskset -c "0-$((ncpu - 2))")
	fi
}

uport=$(other_port)
ubase="http://127.0.0.1:$uport"
write_registry_config "$work/upstream.yml" "$uport" "$work/upstream-data"
upid=""
start_upstream() {
	"${up[@]}" docker-registry serve "$work/upstream.yml" >>"$work/upstream.log" 2>&1 &
	upid=$!
	pids+=("$upid")
	wait_http "$ubase/v2/" "$upid" 30 || die "upstream docker-registry did not start: $(tail -5 "$work/upstream.log")"
}

place 0
start_upstream
declare -A digest
seedn=0
for mib in $sizes; do
	seedn=$((seedn + 1))
	log "seeding a $mib MiB blob"
	out=$("$cb" seed -registry "$ubase" -layers 1 -layer-mib 1 -big-mib "$mib" -seed $((700 + seedn))) || die "seeding failed"
	digest[$mib]=$(jq -r '.big.blobs[-1].digest' <<<"$out")
done
stop "$upid"

apid="" abase="" adir=""
start_airlock() {
	local port admin
	adir="$work/airlock-$1"
	mkdir -p "$adir"
	port=$(other_port)
	admin=$(other_port)
	abase="http://127.0.0.1:$port"
	cat >"$adir/airlock.yaml" <<YAML
version: 1
log: { format: json }
admin: { listen: 127.0.0.1:$admin }
registry:
  listen: 127.0.0.1:$port
  storage: { path: "$adir/data" }
  anonymousPull: true
  cacheRules:
    - { name: mcr, sourceRepo: "mcr.microsoft.com/*", targetRepo: "aks-managed-repository/*" }
  upstreams: { mcr.microsoft.com: { url: "$ubase" } }
YAML
	"${srv[@]}" "$airlock" serve --config "$adir/airlock.yaml" >"$adir/log" 2>&1 &
	apid=$!
	pids+=("$apid")
	wait_http "http://127.0.0.1:$admin/readyz" "$apid" 30 || die "airlock did not start: $(tail -5 "$adir/log")"
}

# settle PID: wait until PID's CPU time stops moving (the fill's commit,
# fsync included, is over), then print it.
settle() {
	local a b
	a=$(cpu_of "$1")
	while :; do
		sleep 0.3
		b=$(cpu_of "$1")
		[ "$a" = "$b" ] && break
		a=$b
	done
	echo "$b"
}

# prime_pages MIB: write MIB MiB to a file and remove it, so that the next
# page-cache writes get recently freed pages (see the top of this file).
prime_pages() {
	[ "$prime" = 1 ] || return 0
	dd if=/dev/zero of="$work/prime" bs=1M count="$1" status=none
	rm -f "$work/prime"
}

# pull KIND MODE ROUND MIB URL: one fillref pull; appends a result line.
pull() {
	local kind=$1 mode=$2 round=$3 mib=$4 url=$5 a0 u0 r a1 u1
	if [ "$kind" = cold ]; then
		prime_pages $((2 * mib + 64)) # airlock's copy and the client's
	else
		prime_pages $((mib + 64))
	fi
	a0=0
	[ "$kind" = direct ] || a0=$(cpu_of "$apid")
	u0=$(cpu_of "$upid")
	r=$("${up[@]}" "$ref" -url "$url" -o "$work/client.out" -digest "${digest[$mib]}") || die "$kind pull of $mib MiB failed"
	rm -f "$work/client.out"
	a1=0
	if [ "$kind" = cold ]; then
		local hex=${digest[$mib]#sha256:}
		for _ in $(seq 1 600); do
			[ -e "$adir/data/blobs/sha256/${hex:0:2}/$hex" ] && break
			sleep 0.1
		done
		[ -e "$adir/data/blobs/sha256/${hex:0:2}/$hex" ] || die "airlock did not commit the $mib MiB blob"
	fi
	[ "$kind" = direct ] || a1=$(settle "$apid")
	u1=$(cpu_of "$upid")
	jq -c --arg kind "$kind" --argjson pin "$mode" --argjson round "$round" --argjson mib "$mib" \
		--argjson acpu "$(echo "$a1 - $a0" | bc)" --argjson ucpu "$(echo "$u1 - $u0" | bc)" \
		'{kind: $kind, pin: $pin, round: $round, mib: $mib, recv_s, seconds, client_cpu: .cpu_s, airlock_cpu: $acpu, upstream_cpu: $ucpu}' \
		<<<"$r" >>"$results"
}

n=0
for mode in $pins; do
	place "$mode"
	start_upstream
	for round in $(seq 1 "$rounds"); do
		for mib in $sizes; do
			log "pin=$mode round $round/$rounds: $mib MiB"
			n=$((n + 1))
			pull direct "$mode" "$round" "$mib" "$ubase/v2/bench/blob/blobs/${digest[$mib]}"
			start_airlock "$n"
			pull cold "$mode" "$round" "$mib" "$abase/v2/aks-managed-repository/bench/blob/blobs/${digest[$mib]}"
			pull warm "$mode" "$round" "$mib" "$abase/v2/aks-managed-repository/bench/blob/blobs/${digest[$mib]}"
			stop "$apid"
			rm -rf "$adir"
		done
	done
	stop "$upid"
done
cp "$results" "$CACHE/bench-fill.jsonl"

# Medians per (pin, size, kind): throughput (MiB/s to the body's end) and
# CPU-s per GiB of the client (the floor), airlock and the upstream.
summary=$(jq -s '
	def med: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
	group_by([.pin, .mib, .kind]) | map({
		pin: .[0].pin, mib: .[0].mib, kind: .[0].kind, n: length,
		mibps: (map(.mib / .recv_s) | med),
		recv_s: (map(.recv_s) | med),
		client: (map(.client_cpu / (.mib / 1024)) | med),
		airlock: (map(.airlock_cpu / (.mib / 1024)) | med),
		upstream: (map(.upstream_cpu / (.mib / 1024)) | med)})' "$results")
get() { jq -r --argjson pin "$1" --argjson mib "$2" --arg kind "$3" --arg f "$4" \
	'.[] | select(.pin == $pin and .mib == $mib and .kind == $kind) | .[$f]' <<<"$summary"; }
f2() { printf '%.2f' "$1"; }

{
	echo "## Cache fill against the floor"
	echo
	echo "\`$cmdline\` (BENCH_ROUNDS=$rounds BENCH_FILL_MIB=\"$sizes\" BENCH_PINS=\"$pins\" BENCH_FILL_PRIME=$prime), commit $(cd "$ROOT" && git rev-parse --short HEAD), $ncpu CPUs, $(date -u +%Y-%m-%d). Medians of $rounds rounds. Throughput: MiB/s to the body's last byte at the client. CPU-s/GiB: floor = fillref (read, sha256, write, fsync); airlock = the airlock process over the whole fill (commit included); upstream = docker-registry."
	echo
	echo "| pin | MiB | direct MiB/s | cold MiB/s | warm MiB/s | cold/direct | floor CPU-s/GiB | airlock cold CPU-s/GiB | cold/floor | airlock warm CPU-s/GiB | upstream CPU-s/GiB |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
	for mode in $pins; do
		for mib in $sizes; do
			d=$(get "$mode" "$mib" direct mibps) c=$(get "$mode" "$mib" cold mibps) w=$(get "$mode" "$mib" warm mibps)
			fl=$(get "$mode" "$mib" direct client) ac=$(get "$mode" "$mib" cold airlock) aw=$(get "$mode" "$mib" warm airlock)
			uc=$(get "$mode" "$mib" direct upstream)
			echo "| $([ "$mode" = 1 ] && echo pinned || echo unpinned) | $mib | $(printf %.0f "$d") | $(printf %.0f "$c") | $(printf %.0f "$w") | $(f2 "$(echo "$c / $d" | bc -l)") | $(f2 "$fl") | $(f2 "$ac") | $(f2 "$(echo "$ac / $fl" | bc -l)") | $(f2 "$aw") | $(f2 "$uc") |"
		done
	done
} | tee "$CACHE/bench-fill.md"

if [ "$chart" = 1 ]; then
	mode=$(echo "$pins" | awk '{print $1}')
	{
		echo "MiB direct airlock-cold airlock-warm"
		for mib in $sizes; do
			echo "$mib $(get "$mode" "$mib" direct mibps) $(get "$mode" "$mib" cold mibps) $(get "$mode" "$mib" warm mibps)"
		done
	} | (cd "$ROOT" && go run ./bench/chart --title "Single-client pull, $([ "$mode" = 1 ] && echo pinned || echo unpinned), $ncpu CPUs" --x "blob size, MiB" --y "MiB/s to last byte" --logx --zero) >"$ROOT/docs/img/bench-fill.svg"
	{
		echo "MiB floor airlock-cold airlock-warm upstream"
		for mib in $sizes; do
			echo "$mib $(get "$mode" "$mib" direct client) $(get "$mode" "$mib" cold airlock) $(get "$mode" "$mib" warm airlock) $(get "$mode" "$mib" direct upstream)"
		done
	} | (cd "$ROOT" && go run ./bench/chart --title "CPU-s per GiB pulled, $([ "$mode" = 1 ] && echo pinned || echo unpinned)" --x "blob size, MiB" --y "CPU-s per GiB" --logx --zero) >"$ROOT/docs/img/bench-fill-cpu.svg"
	log "charts: docs/img/bench-fill.svg, docs/img/bench-fill-cpu.svg"
fi
