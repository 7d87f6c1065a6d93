#!/usr/bin/env bash
# bench/cache.sh: the pull-through cache, airlock side by side with Debian's
# docker-registry in proxy mode, both in front of one docker-registry
# upstream, all started here in one run on 127.0.0.1.
#
# The upstream holds bench/img:v1 (3 × 64 MiB random layers and a config)
# and bench/blob:v1 (one 256 MiB random layer), pushed by bench/cachebench.
# Its access log counts what each peer fetched. Per round, in an order that
# rotates across rounds (airlock, docker-registry, direct = the upstream
# itself), each on a freshly started peer with empty storage:
#   - cold pull of bench/img:v1 by 1 client and by BENCH_CLIENTS clients
#     (manifest, then every blob, sha256 verified): wall time, upstream
#     requests and bytes; the peer's CPU seconds and peak RSS;
#   - time to first byte of the cold 256 MiB blob, by digest and through
#     the manifest, BENCH_TTFB_SAMPLES samples each, against the upstream's;
#   - upstream stopped by PID: warm pulls (vs the same pull with it up),
#     one while airlock's tag is within tagTTL and one after, when airlock
#     must try to revalidate it (docker-registry's proxy always does), and a
#     cold miss of a tag and of a blob (status, time, body); then the
#     upstream is started again.
# airlock runs with tagTTL 3s and upstreamTimeout 10s; its
# airlock_cache_stale_serves_total shows which warm pulls were served stale.
#
# With BENCH_UPSTREAM_RATE (e.g. 100MiB, 1GiB, 800Mbit: per second, per
# direction) everything that reaches the upstream during the measurements
# (direct pulls, airlock via upstreams.url, docker-registry via remoteurl)
# goes through `cachebench throttle`, a TCP proxy whose token bucket is
# shared by all connections: one link of that rate, as a node's link to
# mcr.microsoft.com is shared by every pull on it, so that the network and
# not loopback CPU sets the pace. The throttle runs with the servers and is
# stopped and started with the upstream (a down upstream still refuses
# connections). Seeding goes to the upstream directly. Empty (the default):
# no throttle, loopback.
#
# Prints a Markdown report (also saved to $CACHE/bench-cache.md); the raw
# measurements stay in $CACHE/bench-cache.jsonl.
# Environment: BENCH_ROUNDS (3), BENCH_CLIENTS (20), BENCH_TTFB_SAMPLES (5
# per round), BENCH_PIN (1: servers on the upper half of the CPUs, clients on
# the lower half), BENCH_LAYERS (3), BENCH_LAYER_MIB (64), BENCH_BIG_MIB
# (256), BENCH_UPSTREAM_RATE (empty), AIRLOCK_BIN (else bin/airlock is built).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"

rounds=${BENCH_ROUNDS:-3}
nclients=${BENCH_CLIENTS:-20}
samples=${BENCH_TTFB_SAMPLES:-5}
pin=${BENCH_PIN:-1}
layers=${BENCH_LAYERS:-3}
layer_mib=${BENCH_LAYER_MIB:-64}
big_mib=${BENCH_BIG_MIB:-256}
rate=${BENCH_UPSTREAM_RATE:-}
upstream_timeout=10
tag_ttl=3
cmdline="$0${*:+ $*}"
envline="BENCH_ROUNDS=$rounds BENCH_CLIENTS=$nclients BENCH_TTFB_SAMPLES=$samples BENCH_PIN=$pin${rate:+ BENCH_UPSTREAM_RATE=$rate}"
for t in docker-registry curl jq taskset ss; do
	command -v "$t" >/dev/null || die "$t not installed (scripts/deps.sh)"
done

airlock=$(build_airlock)
mkdir -p "$CACHE/bin"
(cd "$ROOT/bench/cachebench" && go build -o "$CACHE/bin/cachebench" .) || die "build bench/cachebench failed"
cb="$CACHE/bin/cachebench"
clk=$(getconf CLK_TCK)

# CPU split: servers (upstream and peer) on the upper half, clients on the lower.
cpu_split "$pin"

work=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do stop_pid "$p"; done
	rm -rf "$work"
}
trap cleanup EXIT
# stop PID: stop_pid, and forget PID so the exit trap never signals a
# number the system may have handed to another process since.
stop() {
	local p keep=()
	stop_pid "$1"
	for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	pids=("${keep[@]}")
}
results="$work/results.jsonl"
: >"$results"

# other_port PORT...: a free port different from those given.
other_port() {
	local p
	p=$(free_port)
	while [[ " $* " == *" $p "* ]]; do p=$(free_port); done
	echo "$p"
}

# The upstream: plain docker-registry, access log on (stdout, appended
# across restarts), same port and storage for the whole run. ubase is where
# clients and peers reach it: the registry itself, or with
# BENCH_UPSTREAM_RATE the throttle in front of it (same port all run long;
# each instance appends its totals to $tstats when stopped).
uport=$(free_port)
regbase="http://127.0.0.1:$uport"
ubase=$regbase tport="" tpid="" tstats="$work/throttle.jsonl"
if [ -n "$rate" ]; then
	"$cb" throttle -rate "$rate" -check >/dev/null || die "BENCH_UPSTREAM_RATE=$rate is not a rate (100MiB, 1GiB, 800Mbit, …)"
	tport=$(other_port "$uport")
	ubase="http://127.0.0.1:$tport"
fi
ulog="$work/upstream.access"
upid=""
cat >"$work/upstream.yml" <<YAML
version: 0.1
log: {level: warn, formatter: text}
storage:
  filesystem: {rootdirectory: $work/upstream-data}
  delete: {enabled: true}
  cache: {blobdescriptor: inmemory}
  maintenance: {uploadpurging: {enabled: false}}
http: {addr: 127.0.0.1:$uport}
health: {storagedriver: {enabled: false}}
YAML
start_upstream() {
	"${srv[@]}" docker-registry serve "$work/upstream.yml" >>"$ulog" 2>>"$work/upstream.err" &
	upid=$!
	pids+=("$upid")
	wait_http "$regbase/v2/" "$upid" 30 || die "upstream docker-registry did not start: $(tail -5 "$work/upstream.err")"
	[ -n "$rate" ] || return 0
	"${srv[@]}" "$cb" throttle -listen "127.0.0.1:$tport" -target "127.0.0.1:$uport" -rate "$rate" >>"$tstats" 2>>"$work/throttle.err" &
	tpid=$!
	pids+=("$tpid")
	wait_http "$ubase/v2/" "$tpid" 30 || die "upstream throttle did not start: $(tail -5 "$work/throttle.err")"
}
stop_upstream() {
	if [ -n "$tpid" ]; then
		stop "$tpid"
		tpid=""
	fi
	stop "$upid"
	upid=""
}
start_upstream
log "seeding the upstream ($layers × $layer_mib MiB image, $big_mib MiB blob)"
seed=$("$cb" seed -registry "$regbase" -layers "$layers" -layer-mib "$layer_mib" -big-mib "$big_mib") || die "seeding the upstream failed"
img_digest=$(jq -r .image.manifest_digest <<<"$seed")
img_blobs=$(jq -r '.image.blobs | length' <<<"$seed")
img_bytes=$(jq -r .image.bytes <<<"$seed")
big_digest=$(jq -r '.big.blobs[-1].digest' <<<"$seed")
big_size=$(jq -r '.big.blobs[-1].size' <<<"$seed")

# Peers. start_peer TARGET: a fresh instance on empty storage; sets
# peer_pid, peer_base, peer_prefix (the repository prefix clients use),
# peer_admin (airlock's admin URL, else empty) and peer_dir.
peer_pid="" peer_base="" peer_prefix="" peer_dir="" peer_admin=""
npeer=0
start_peer() {
	local t=$1 port admin
	npeer=$((npeer + 1))
	peer_dir="$work/peer-$npeer"
	mkdir -p "$peer_dir"
	port=$(other_port "$uport" ${tport:+"$tport"})
	peer_base="http://127.0.0.1:$port"
	peer_admin=""
	case "$t" in
	airlock)
		admin=$(other_port "$uport" ${tport:+"$tport"} "$port")
		cat >"$peer_dir/airlock.yaml" <<YAML
version: 1
log: { format: json }
admin: { listen: 127.0.0.1:$admin }
registry:
  listen: 127.0.0.1:$port
  storage: { path: "$peer_dir/data" }
  anonymousPull: true
  cacheRules:
    - { name: mcr, sourceRepo: "mcr.microsoft.com/*", targetRepo: "aks-managed-repository/*" }
  upstreams: { mcr.microsoft.com: { url: "$ubase" } }
  upstreamTimeout: ${upstream_timeout}s
  tagTTL: ${tag_ttl}s
YAML
		"${srv[@]}" "$airlock" serve --config "$peer_dir/airlock.yaml" >"$peer_dir/log" 2>&1 &
		peer_pid=$!
		pids+=("$peer_pid")
		wait_http "http://127.0.0.1:$admin/readyz" "$peer_pid" 30 || die "airlock did not start: $(tail -5 "$peer_dir/log")"
		peer_prefix="aks-managed-repository/"
		peer_admin="http://127.0.0.1:$admin"
		;;
	docker-registry)
		cat >"$peer_dir/registry.yml" <<YAML
version: 0.1
log: {level: warn, formatter: text, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $peer_dir/data}
  delete: {enabled: true}
  cache: {blobdescriptor: inmemory}
  maintenance: {uploadpurging: {enabled: false}}
http: {addr: 127.0.0.1:$port}
health: {storagedriver: {enabled: false}}
proxy: {remoteurl: $ubase}
YAML
		"${srv[@]}" docker-registry serve "$peer_dir/registry.yml" >"$peer_dir/log" 2>&1 &
		peer_pid=$!
		pids+=("$peer_pid")
		wait_http "$peer_base/v2/" "$peer_pid" 30 || die "docker-registry proxy did not start: $(tail -5 "$peer_dir/log")"
		peer_prefix=""
		;;
	*) die "unknown peer $t" ;;
	esac
}
# stop_peer PID DIR
stop_peer() {
	stop "$1"
	rm -rf "$2"
}

# upstream_load OFFSET: the upstream's requests since OFFSET of its log,
# once in-flight requests are logged.
log_size() { stat -c %s "$ulog"; }
upstream_load() {
	sleep 0.2
	"$cb" accesslog -file "$ulog" -offset "$1"
}

# record ROUND PHASE TARGET MODE DATA [UPSTREAM] [ERROR] [STALE]
record() {
	jq -c -n --argjson round "$1" --arg phase "$2" --arg target "$3" --arg mode "$4" \
		--argjson data "${5:-null}" --argjson up "${6:-null}" --arg err "${7:-}" --argjson stale "${8:-null}" \
		'{round: $round, phase: $phase, target: $target, data: $data, upstream: $up}
		 + (if $mode == "" then {} else {mode: $mode} end)
		 + (if $err == "" then {} else {error: $err} end)
		 + (if $stale == null then {} else {stale_serves: $stale} end)' >>"$results"
}

# stale_serves ADMIN_URL: airlock_cache_stale_serves_total, or null.
stale_serves() {
	[ -n "$1" ] || { echo null; return; }
	curl -fsS --max-time 5 "$1/metrics" | awk '$1 == "airlock_cache_stale_serves_total" { print $2; f = 1 } END { if (!f) print "null" }'
}

# warm_down ROUND PHASE TARGET: a warm pull with the upstream down, with the
# peer's stale serves during it.
warm_down() {
	local t=$3 j s0 s1 stale=null
	s0=$(stale_serves "${kept_admin[$t]}")
	j=$(pull "${kept_base[$t]}" "${kept_prefix[$t]}" 1) || die "warm pull through $t failed"
	s1=$(stale_serves "${kept_admin[$t]}")
	[ "$s0" = null ] || [ "$s1" = null ] || stale=$((s1 - s0))
	record "$1" "$2" "$t" "" "$j" "" "" "$stale"
	say_pull "$t $2 (stale serves: $stale)" "$j"
}

# pull BASE PREFIX CLIENTS [PIDS]: the JSON result of a verified pull, with
# the CPU time of PIDS and of the upstream.
pull() {
	"${cli[@]}" "$cb" pull -base "$1" -repo "${2}bench/img" -ref v1 -manifest-digest "$img_digest" \
		-c "$3" -pids "${4:-}" -upstream-pids "$upid" -clk-tck "$clk"
}

say_pull() { # LABEL JSON [UPSTREAM]
	log "  $1: $(jq -r '"\(.wall_seconds*1000|round) ms, \(.errors) errors\(if .first_error then " (" + .first_error + ")" else "" end)"' <<<"$2")$([ -z "${3:-}" ] || jq -r '", upstream: \(.blob_gets) blob GETs (max \(.max_gets_per_blob)/blob), \(.requests) requests, \(.bytes/1048576|floor) MiB"' <<<"$3")"
}

# cold_pull ROUND PHASE TARGET CLIENTS [keep]: a pull on a fresh peer (or
# direct); with keep, the peer stays up and its PID/dir go to kept_*.
declare -A kept_pid kept_dir kept_base kept_prefix kept_admin
cold_pull() {
	local round=$1 phase=$2 t=$3 c=$4 stay=${5:-} j u off
	if [ "$t" = direct ]; then
		off=$(log_size)
		j=$(pull "$ubase" "" "$c") || die "direct pull failed"
		u=$(upstream_load "$off")
		record "$round" "$phase" direct "" "$j" "$u"
		say_pull "direct c=$c" "$j"
		return
	fi
	start_peer "$t"
	off=$(log_size)
	j=$(pull "$peer_base" "$peer_prefix" "$c" "$peer_pid") || die "pull through $t failed"
	u=$(upstream_load "$off")
	record "$round" "$phase" "$t" "" "$j" "$u"
	say_pull "$t c=$c" "$j" "$u"
	if [ -n "$stay" ]; then
		kept_pid[$t]=$peer_pid kept_dir[$t]=$peer_dir kept_base[$t]=$peer_base kept_prefix[$t]=$peer_prefix kept_admin[$t]=$peer_admin
	else
		stop_peer "$peer_pid" "$peer_dir"
	fi
}

# ttfb_sample ROUND TARGET MODE
ttfb_sample() {
	local round=$1 t=$2 mode=$3 base prefix j u="" off err=""
	if [ "$t" = direct ]; then
		base=$ubase prefix=""
	else
		start_peer "$t"
		base=$peer_base prefix=$peer_prefix
	fi
	off=$(log_size)
	if ! j=$("${cli[@]}" "$cb" ttfb -base "$base" -repo "${prefix}bench/blob" -ref v1 -digest "$big_digest" -size "$big_size" -mode "$mode" 2>"$work/ttfb.err"); then
		err=$(tail -1 "$work/ttfb.err") j=null
	fi
	[ "$t" = direct ] || u=$(upstream_load "$off")
	record "$round" ttfb "$t" "$mode" "$j" "${u:-null}" "$err"
	if [ -n "$err" ]; then
		log "  ttfb $t $mode: $err"
	else
		log "  ttfb $t $mode: $(jq -r '"\(.ttfb_ms) ms to first byte, \(.total_ms) ms from the first request, last byte \(.last_byte_ms|round) ms"' <<<"$j")"
	fi
	[ "$t" = direct ] || stop_peer "$peer_pid" "$peer_dir"
}

# probe ROUND PHASE TARGET URL ACCEPT
probe() {
	local j
	j=$("${cli[@]}" "$cb" probe -url "$4" -accept "$5" -timeout 60s) || die "probe $4 failed"
	record "$1" "$2" "$3" "" "$j"
	log "  $3 $2: $(jq -r '"\(.status) in \(.seconds*1000|round) ms: \(.body // .error)"' <<<"$j" | cut -c1-200)"
}

targets=(airlock docker-registry direct)
nt=${#targets[@]}
log "bench: $rounds rounds, $nclients clients, $samples TTFB samples per round; servers on CPUs $srv_cpus, clients on CPUs $cli_cpus; upstream link: ${rate:-loopback, unthrottled}"
t_start=$(date +%s)
for ((r = 1; r <= rounds; r++)); do
	order=("${targets[@]:(r - 1) % nt}" "${targets[@]:0:(r - 1) % nt}")
	porder=()
	for t in "${order[@]}"; do [ "$t" = direct ] || porder+=("$t"); done
	log "round $r: ${order[*]}"
	for t in "${order[@]}"; do cold_pull "$r" pull1 "$t" 1; done
	for t in "${order[@]}"; do cold_pull "$r" pullN "$t" "$nclients" keep; done
	for ((s = 0; s < samples; s++)); do
		for t in "${order[@]}"; do
			for mode in digest manifest; do ttfb_sample "$r" "$t" "$mode"; done
		done
	done

	# Upstream down, on the peers kept from the concurrent pull. Their tags
	# were fetched longer than tagTTL ago (the first-byte samples ran since):
	# the warm pull with the upstream up revalidates them; the first pull
	# with it down comes within tagTTL of that, the second after.
	[ "$samples" -gt 0 ] || sleep "$tag_ttl"
	t_up=$(date +%s.%N)
	for t in "${porder[@]}"; do
		off=$(log_size)
		j=$(pull "${kept_base[$t]}" "${kept_prefix[$t]}" 1) || die "warm pull through $t failed"
		record "$r" warm_up "$t" "" "$j" "$(upstream_load "$off")"
		say_pull "$t warm, upstream up" "$j"
	done
	stop_upstream
	for t in "${porder[@]}"; do warm_down "$r" warm_down_fresh "$t"; done
	sleep "$(awk -v t0="$t_up" -v now="$(date +%s.%N)" -v ttl="$tag_ttl" 'BEGIN { d = t0 + ttl + 1 - now; print (d > 0 ? d : 0) }')"
	for t in "${porder[@]}"; do
		warm_down "$r" warm_down "$t"
		probe "$r" miss_tag "$t" "${kept_base[$t]}/v2/${kept_prefix[$t]}bench/blob/manifests/v1" \
			"application/vnd.oci.image.manifest.v1+json"
		probe "$r" miss_blob "$t" "${kept_base[$t]}/v2/${kept_prefix[$t]}bench/blob/blobs/$big_digest" "*/*"
	done
	start_upstream
	for t in "${porder[@]}"; do stop_peer "${kept_pid[$t]}" "${kept_dir[$t]}"; done
done
elapsed=$(($(date +%s) - t_start))
link="loopback, unthrottled."
if [ -n "$rate" ]; then
	stop_upstream # the throttle's totals for the last round
	link=$(jq -rs --arg rate "$rate" 'map(select(.conns != null))
		| "throttled to \($rate)/s per direction (\(.[0].rate_bytes_per_second / 1048576 * 10 | round / 10) MiB/s), one token bucket per direction shared by all connections"
		  + " (\u0060cachebench throttle\u0060, a TCP proxy pinned with the servers, restarted with the upstream);"
		  + " direct pulls, airlock (upstreams.url) and docker-registry (remoteurl) all reach the upstream through it."
		  + " It carried \(map(.bytes_down) | add / 1048576 | round) MiB down and \(map(.bytes_up) | add / 1048576 | round) MiB up"
		  + " over \(map(.conns) | add) connections using \(map(.cpu_seconds) | add * 100 | round / 100) CPU-s."' "$tstats")
fi

report="$CACHE/bench-cache.md"
cp "$results" "$CACHE/bench-cache.jsonl"
{
	echo "### Pull-through cache: airlock vs docker-registry proxy${rate:+, upstream link $rate/s} ($(date -u +%Y-%m-%d))"
	echo
	echo "Command: \`$envline $cmdline\` (from the repository root; \`make bench-cache\`); measurements took ${elapsed} s."
	echo
	echo "Machine: $ncpu CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), Linux $(uname -r), storage on $(df --output=fstype "$work" | tail -1);" \
		"servers (upstream and peer) pinned to CPUs $srv_cpus, clients to CPUs $cli_cpus. $rounds rounds, target order rotated per round."
	echo "Upstream: docker-registry $(docker-registry --version 2>/dev/null | awk '{ print $3 }') on loopback holding bench/img:v1 ($layers × $layer_mib MiB random layers + config, $img_bytes bytes, $img_digest)" \
		"and bench/blob:v1 (one $big_mib MiB random layer, $big_digest)."
	echo "Upstream link: $link"
	echo "Peers: $("$airlock" version 2>/dev/null | head -1) (rule \`mcr.microsoft.com/*\` → \`aks-managed-repository/*\`, path-style pulls, tagTTL ${tag_ttl}s, upstreamTimeout ${upstream_timeout}s, log level info);" \
		"docker-registry in proxy mode (\`proxy: {remoteurl: …}\`, access log off); each started on empty storage for each cold measurement. Clients: bench/cachebench, $(go version | awk '{ print $3 }')."
	echo
	"$cb" report -in "$results" -clients "$nclients" -blobs "$img_blobs" -upstream-timeout "$upstream_timeout" \
		-image "$layers × $layer_mib MiB layers + config" -big "$big_mib MiB" -tag-ttl "$tag_ttl"
} | tee "$report"
log "report saved to $report (raw measurements: $CACHE/bench-cache.jsonl)"
