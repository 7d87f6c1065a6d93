#!/usr/bin/env bash
# bench/cluster.sh: issue 13, a cold pull of one image by BENCH_CLIENTS (20)
# concurrent clients through the pull-through cache, spread over two airlock
# replicas coordinating in Redis, against the same pull through one replica.
# Everything runs here on 127.0.0.1, on ports picked at run time:
#   - the upstream: Debian's docker-registry on local disk holding bench/img:v1
#     = BENCH_LAYERS (6) × BENCH_LAYER_MIB (32) MiB random layers + config,
#     access log on (it is what counts the upstream GETs per blob); with
#     BENCH_UPSTREAM_RATE (e.g. 1Gbit) behind `cachebench throttle`, one
#     token bucket per direction shared by every connection (a node's link);
#   - Redis: redis-server with a private config (no disk: --save "" and
#     --appendonly no), one for the run, FLUSHALL before each measurement;
#   - the storage: Azurite (--inMemoryPersistence --disableTelemetry),
#     started fresh for each measurement (so each starts on an empty
#     container), behind bench/reqcount (storage requests and bytes).
#
# Targets (BENCH_TARGETS, each measured once per round, order rotated):
#   one        one replica, cluster.redis set (the same code path as two);
#   two        two replicas on the same container, both with cluster.redis
#              and cluster.advertise (a waiting replica streams the holder's fill);
#              the clients round-robin over them (client i → replica i mod 2);
#   two-local  two replicas, no cluster section: each coordinates its fills
#              in-process only (what two replicas did before issue 13);
#   one-local  (not by default) one replica without a cluster section.
# Each client (bench/cachebench pull, one connection) GETs the manifest, then
# every blob, sha256 verified. Measured per pull: wall time (first request to
# last byte of the last client), each replica's CPU seconds (utime+stime
# from /proc), upstream requests from its access log (blob GETs total and
# the most GETs of any one blob), storage requests and bytes written (the
# counter), Redis commands (INFO commandstats). Counts and CPU are read
# BENCH_SETTLE (1) s after the last byte, so work finishing after it counts.
#
# Prints a Markdown report (also saved to $CACHE/bench-cluster.md); the raw
# measurements stay in $CACHE/bench-cluster.jsonl.
# Environment: BENCH_ROUNDS (3), BENCH_CLIENTS (20), BENCH_LAYERS (6),
# BENCH_LAYER_MIB (32), BENCH_UPSTREAM_RATE (empty: loopback unthrottled),
# BENCH_TARGETS ("one two two-local"), BENCH_SETTLE (1), BENCH_PIN (1:
# replicas on the upper half of the CPUs; upstream, Redis, Azurite, counter
# and clients on the lower half), AIRLOCK_BIN (else bin/airlock is built),
# AIRLOCK_TOOLS (/opt/airlock-tools: Azurite from scripts/tools.sh).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"

rounds=${BENCH_ROUNDS:-3}
nclients=${BENCH_CLIENTS:-20}
layers=${BENCH_LAYERS:-6}
layer_mib=${BENCH_LAYER_MIB:-32}
rate=${BENCH_UPSTREAM_RATE:-}
settle=${BENCH_SETTLE:-1}
pin=${BENCH_PIN:-1}
read -r -a targets <<<"${BENCH_TARGETS:-one two two-local}"
upstream_timeout=30
cmdline="$0${*:+ $*}"
envline="BENCH_ROUNDS=$rounds BENCH_CLIENTS=$nclients BENCH_LAYERS=$layers BENCH_LAYER_MIB=$layer_mib BENCH_PIN=$pin BENCH_TARGETS='${targets[*]}'${rate:+ BENCH_UPSTREAM_RATE=$rate}"
for t in docker-registry redis-server redis-cli curl jq taskset ss; do
	command -v "$t" >/dev/null || die "$t not installed (scripts/deps.sh)"
done
for t in "${targets[@]}"; do
	case "$t" in
	one | one-local | two | two-local) ;;
	*) die "unknown target $t in BENCH_TARGETS (one, one-local, two, two-local)" ;;
	esac
done
azurite_bin="$AIRLOCK_TOOLS/azurite/node_modules/.bin/azurite-blob"
[ -x "$azurite_bin" ] || die "azurite not installed: run scripts/tools.sh"

airlock=$(build_airlock)
mkdir -p "$CACHE/bin"
for p in cachebench reqcount; do
	(cd "$ROOT/bench/$p" && go build -o "$CACHE/bin/$p" .) || die "build bench/$p failed"
done
cb="$CACHE/bin/cachebench" rc="$CACHE/bin/reqcount"
clk=$(getconf CLK_TCK)
wait_other_benches

# CPU split: replicas on the upper half; everything else on the lower.
cpu_split "$pin"

bench_workspace # $work, $pids, $results; stop, other_port, wait_answer, cpu_of (scripts/lib.sh)

# --- Redis -----------------------------------------------------------------
rport=$(other_port)
mkdir -p "$work/redis"
"${cli[@]}" redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work/redis" \
	--daemonize no --protected-mode yes >"$work/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
rcli=(redis-cli -h 127.0.0.1 -p "$rport")
for _ in $(seq 1 100); do
	[ "$("${rcli[@]}" ping 2>/dev/null)" = PONG ] && break
	kill -0 "$redis_pid" 2>/dev/null || die "redis-server did not start: $(tail -5 "$work/redis.log")"
	sleep 0.1
done
[ "$("${rcli[@]}" ping 2>/dev/null)" = PONG ] || die "redis-server not answering on $rport"
# redis_calls: commands Redis executed since the last CONFIG RESETSTAT.
redis_calls() {
	"${rcli[@]}" info commandstats | awk -F'[:=,]' '/^cmdstat_/ && $1 !~ /^cmdstat_(info|config)/ { n += $3 } END { print n + 0 }'
}

# --- The upstream ------------------------------------------------------------
uport=$(other_port)
regbase="http://127.0.0.1:$uport"
ubase=$regbase tpid="" tstats="$work/throttle.jsonl"
ulog="$work/upstream.access"
cat >"$work/upstream.yml" <<YAML
version: 0.1
log: {level: warn, formatter: text}
storage:
  filesystem: {rootdirectory: $work/upstream-data}
  cache: {blobdescriptor: inmemory}
  maintenance: {uploadpurging: {enabled: false}}
http: {addr: 127.0.0.1:$uport}
health: {storagedriver: {enabled: false}}
YAML
"${cli[@]}" docker-registry serve "$work/upstream.yml" >>"$ulog" 2>>"$work/upstream.err" &
upid=$!
pids+=("$upid")
wait_http "$regbase/v2/" "$upid" 30 || die "upstream docker-registry did not start: $(tail -5 "$work/upstream.err")"
if [ -n "$rate" ]; then
	"$cb" throttle -rate "$rate" -check >/dev/null || die "BENCH_UPSTREAM_RATE=$rate is not a rate (100MiB, 1GiB, 800Mbit, …)"
	tport=$(other_port)
	ubase="http://127.0.0.1:$tport"
	"${cli[@]}" "$cb" throttle -listen "127.0.0.1:$tport" -target "127.0.0.1:$uport" -rate "$rate" >>"$tstats" 2>>"$work/throttle.err" &
	tpid=$!
	pids+=("$tpid")
	wait_http "$ubase/v2/" "$tpid" 30 || die "upstream throttle did not start: $(tail -5 "$work/throttle.err")"
fi
log "seeding the upstream ($layers × $layer_mib MiB image)"
seed=$("$cb" seed -registry "$regbase" -layers "$layers" -layer-mib "$layer_mib" -big-mib 1 -seed 3) || die "seeding the upstream failed"
img_digest=$(jq -r .image.manifest_digest <<<"$seed")
img_nblobs=$(jq -r '.image.blobs | length' <<<"$seed")
img_bytes=$(jq -r .image.bytes <<<"$seed")
log_size() { stat -c %s "$ulog"; }

# --- Storage: a fresh Azurite and its counter per measurement -----------------
az_account=$AZURITE_ACCOUNT az_key=$AZURITE_KEY
az_pid="" rc_pid="" counter=""
start_storage() {
	local port cport
	port=$(other_port)
	mkdir -p "$work/azurite"
	(cd "$work/azurite" && exec "${cli[@]}" "$azurite_bin" --blobHost 127.0.0.1 --blobPort "$port" \
		--disableTelemetry --skipApiVersionCheck --loose --inMemoryPersistence) >"$work/azurite.log" 2>&1 &
	az_pid=$!
	pids+=("$az_pid")
	wait_answer "http://127.0.0.1:$port/$az_account?comp=list" "$az_pid" ||
		die "azurite did not start: $(tail -5 "$work/azurite.log")"
	cport=$(other_port)
	"${cli[@]}" "$rc" proxy -listen "127.0.0.1:$cport" -target "http://127.0.0.1:$port" >"$work/reqcount.log" 2>&1 &
	rc_pid=$!
	pids+=("$rc_pid")
	counter="http://127.0.0.1:$cport"
	wait_http "$counter/__counts" "$rc_pid" 10 || die "reqcount did not start: $(tail -5 "$work/reqcount.log")"
}
stop_storage() {
	stop "$rc_pid"
	stop "$az_pid"
	rc_pid="" az_pid=""
}

# --- Replicas ------------------------------------------------------------------
# start_replica N CLUSTER: replica N (r1, r2) on container "cold"; with
# CLUSTER=1 it coordinates through Redis. Appends to rep_pids, rep_bases.
rep_pids=() rep_bases=() rep_dirs=()
start_replica() {
	local n=$1 withredis=$2 port admin dir url
	dir="$work/r$n"
	rm -rf "$dir"
	mkdir -p "$dir/scratch"
	port=$(other_port)
	admin=$(other_port)
	url="azblob://cold?endpoint=$(jq -rn --arg e "$counter/$az_account" '$e | @uri')&create=true"
	{
		echo "version: 1"
		echo "log: { format: json }"
		echo "admin: { listen: 127.0.0.1:$admin }"
		if [ "$withredis" = 1 ]; then
			echo "cluster:"
			echo "  name: r$n"
			echo "  advertise: http://127.0.0.1:$port"
			echo "  redis: { addresses: [\"127.0.0.1:$rport\"] }"
		fi
		echo "registry:"
		echo "  listen: 127.0.0.1:$port"
		echo "  storage: { url: \"$url\", scratch: \"$dir/scratch\" }"
		echo "  anonymousPull: true"
		echo "  cacheRules:"
		echo "    - { name: mcr, sourceRepo: \"mcr.microsoft.com/*\", targetRepo: \"aks-managed-repository/*\" }"
		echo "  upstreams: { mcr.microsoft.com: { url: \"$ubase\" } }"
		echo "  upstreamTimeout: ${upstream_timeout}s"
	} >"$dir/airlock.yaml"
	AZURE_STORAGE_CONNECTION_STRING='' AZURE_STORAGE_ACCOUNT=$az_account AZURE_STORAGE_KEY=$az_key \
		"${srv[@]}" "$airlock" serve --config "$dir/airlock.yaml" >"$dir/log" 2>&1 &
	rep_pids+=("$!")
	rep_bases+=("http://127.0.0.1:$port")
	rep_dirs+=("$dir")
	wait_http "http://127.0.0.1:$admin/readyz" "$!" 30 || die "airlock r$n did not start: $(tail -5 "$dir/log")"
}
stop_replicas() {
	local p
	for p in "${rep_pids[@]}"; do stop "$p"; done
	rep_pids=() rep_bases=() rep_dirs=()
}

# measure ROUND TARGET: one cold pull by every client, fresh storage and
# replicas, Redis flushed.
measure() {
	local round=$1 t=$2 n withredis=1 bases off j u c calls cpu0=() cpu1=() i cpus rerr s0 s1 k0 k1
	case "$t" in
	one) n=1 ;;
	one-local) n=1 withredis=0 ;;
	two) n=2 ;;
	two-local) n=2 withredis=0 ;;
	esac
	"${rcli[@]}" flushall >/dev/null
	start_storage
	for ((i = 1; i <= n; i++)); do start_replica "$i" "$withredis"; done
	bases=$(
		IFS=,
		echo "${rep_bases[*]}"
	)
	curl -fsS -o /dev/null -X POST "$counter/__reset"
	"${rcli[@]}" config resetstat >/dev/null
	off=$(log_size)
	for i in "${!rep_pids[@]}"; do cpu0+=("$(cpu_of "${rep_pids[$i]}")"); done
	s0=$(cpu_of "$az_pid") k0=$(cpu_of "$redis_pid")
	j=$("${cli[@]}" "$cb" pull -base "$bases" -repo "aks-managed-repository/bench/img" -ref v1 -manifest-digest "$img_digest" \
		-c "$nclients" -upstream-pids "$upid" -clk-tck "$clk" -timeout 10m) || die "cold pull ($t) failed"
	sleep "$settle"
	for i in "${!rep_pids[@]}"; do cpu1+=("$(cpu_of "${rep_pids[$i]}")"); done
	s1=$(cpu_of "$az_pid") k1=$(cpu_of "$redis_pid")
	u=$("$cb" accesslog -file "$ulog" -offset "$off")
	c=$(curl -fsS "$counter/__counts")
	calls=$(redis_calls)
	cpus=$(for i in "${!cpu0[@]}"; do awk -v a="${cpu0[$i]}" -v b="${cpu1[$i]}" 'BEGIN { printf "%.2f\n", b - a }'; done | jq -sc .)
	rerr=0
	for i in "${!rep_dirs[@]}"; do
		rerr=$((rerr + $(grep -c '"level":"ERROR"' "${rep_dirs[$i]}/log" || true)))
	done
	record=$(jq -c -n --argjson r "$round" --arg t "$t" --argjson n "$n" --argjson redis "$withredis" \
		--argjson j "$j" --argjson u "$u" --argjson c "$c" --argjson calls "$calls" --argjson cpus "$cpus" --argjson rerr "$rerr" \
		--argjson scpu "$(awk -v a="$s0" -v b="$s1" 'BEGIN { print b - a }')" --argjson kcpu "$(awk -v a="$k0" -v b="$k1" 'BEGIN { print b - a }')" \
		'{round: $r, target: $t, replicas: $n, redis: ($redis == 1), seconds: $j.wall_seconds,
		  client_seconds_max: ($j.client_seconds | max), errors: $j.errors, first_error: $j.first_error,
		  client_bytes: $j.bytes, blobs: $j.blobs, cpu: $cpus, cpu_total: ($cpus | add),
		  upstream_cpu: $j.upstream_cpu_seconds, client_cpu: $j.client_cpu_seconds, storage_cpu: $scpu, redis_cpu: $kcpu,
		  up: {blob_gets: $u.blob_gets, max_gets_per_blob: $u.max_gets_per_blob, manifest_gets: $u.manifest_gets,
		       manifest_heads: $u.manifest_heads, blob_heads: $u.blob_heads, requests: $u.requests, blob_bytes: $u.blob_bytes,
		       statuses: $u.statuses},
		  storage: {requests: $c.requests, bytes_in: $c.bytes_in, bytes_out: $c.bytes_out, by_op: $c.by_op},
		  redis_calls: $calls, replica_error_lines: $rerr}')
	printf '%s\n' "$record" >>"$results"
	log "  $t: $(jq -r '"\(.seconds*1000|round) ms, \(.errors) client errors\(if .first_error then " (" + .first_error + ")" else "" end), CPU-s per replica \(.cpu), upstream \(.up.blob_gets) blob GETs (max \(.up.max_gets_per_blob)/blob), \(.up.blob_bytes/1048576|round) MiB, storage \(.storage.requests) requests, \(.storage.bytes_in/1048576|round) MiB written, \(.redis_calls) Redis commands, \(.replica_error_lines) replica ERROR lines; CPU-s: clients \(.client_cpu*100|round/100), Azurite \(.storage_cpu), upstream \(.upstream_cpu*100|round/100), Redis \(.redis_cpu)"' <<<"$record")"
	stop_replicas
	stop_storage
}

nt=${#targets[@]}
log "bench: $rounds rounds of ${targets[*]}; $nclients clients, bench/img:v1 = $layers × $layer_mib MiB + config; replicas on CPUs $srv_cpus, the rest on CPUs $cli_cpus; upstream link: ${rate:-loopback, unthrottled}"
t_start=$(date +%s)
for ((r = 1; r <= rounds; r++)); do
	order=("${targets[@]:(r - 1) % nt}" "${targets[@]:0:(r - 1) % nt}")
	log "round $r: ${order[*]}"
	for t in "${order[@]}"; do measure "$r" "$t"; done
done
elapsed=$(($(date +%s) - t_start))
link="loopback, unthrottled"
if [ -n "$tpid" ]; then
	stop "$tpid" # its totals
	tpid=""
	link=$(jq -rs --arg rate "$rate" 'map(select(.conns != null))
		| "throttled to \($rate)/s per direction (\(.[0].rate_bytes_per_second / 1048576 * 10 | round / 10) MiB/s), one token bucket per direction shared by all connections (`cachebench throttle`, pinned with the clients)"' "$tstats")
fi

# --- Report ---------------------------------------------------------------------
report="$CACHE/bench-cluster.md"
cp "$results" "$CACHE/bench-cluster.jsonl"
# q JQ: a jq program over all results (slurped), with the helpers below.
q() {
	jq -rs "
	def med: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
	def f(n): if . == null then \"-\" elif n == 0 then (round | tostring)
	  else (. * pow(10; n) | round | tostring) as \$i | ([range(n + 1 - (\$i | length))] | map(\"0\") | join(\"\") + \$i) as \$p
	    | \$p[:-n] + \".\" + \$p[-n:] end;
	def mib: . / 1048576;
	$1" "$results"
}
az_v=$(node -p 'require(process.argv[1]).version' "$AIRLOCK_TOOLS/azurite/node_modules/azurite/package.json" 2>/dev/null || echo "?")
# shellcheck disable=SC2016 # the single-quoted $ are jq's
{
	echo "### Run: cold pull over replicas ($(date -u +%Y-%m-%d))"
	echo
	echo "Command: \`$envline $cmdline\` (from the repository root; \`make bench-cluster\`); measurements took ${elapsed} s."
	echo
	echo "Machine: $ncpu CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), Linux $(uname -r);" \
		"replicas pinned to CPUs $srv_cpus; upstream, Redis, Azurite, the request counter and the clients to CPUs $cli_cpus. $rounds rounds, target order rotated per round."
	echo "Upstream: docker-registry $(docker-registry --version 2>/dev/null | awk '{ print $3 }') on local disk, bench/img:v1 = $layers × $layer_mib MiB random layers + config ($img_nblobs blobs, $img_bytes bytes); link: $link."
	echo "Storage: Azurite $az_v (\`--inMemoryPersistence\`), a fresh process and container per measurement, behind \`bench/reqcount\`. Redis: $(redis-server --version | awk '{ print $3 }' | tr -d 'v=') (no persistence), FLUSHALL per measurement."
	echo "Replicas: $("$airlock" version 2>/dev/null | head -1), rule \`mcr.microsoft.com/*\` → \`aks-managed-repository/*\`, upstreamTimeout ${upstream_timeout}s. Clients: $nclients × bench/cachebench pull (one connection each: manifest, then every blob, sha256 verified), client i on replica i mod N."
	echo
	echo "| Round | Target | wall (ms) | client errors | upstream blob GETs (max per blob) | upstream MiB | CPU-s per replica | CPU-s all replicas | storage requests | MiB written to storage | Redis commands | CPU-s clients / Azurite / upstream / Redis |"
	echo "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"
	q '.[] | "| \(.round) | \(.target) | \(.seconds * 1000 | f(0)) | \(.errors) | \(.up.blob_gets) (\(.up.max_gets_per_blob)) | \(.up.blob_bytes | mib | f(0)) | \(.cpu | map(f(2)) | join(" + ")) | \(.cpu_total | f(2)) | \(.storage.requests) | \(.storage.bytes_in | mib | f(0)) | \(.redis_calls) | \(.client_cpu | f(2)) / \(.storage_cpu | f(2)) / \(.upstream_cpu | f(2)) / \(.redis_cpu | f(2)) |"'
	echo
	echo "#### Medians over rounds; ratios against \`one\` are medians of same-round ratios"
	echo
	echo "| Target | wall (ms) | wall vs one | upstream blob GETs, total (max per blob) | upstream GETs vs one | CPU-s, busiest replica | CPU-s, all replicas | CPU all vs one | storage requests | MiB written to storage | Redis commands |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	q '. as $all | ($all | map(.target) | unique) as $ts | ["one", "one-local", "two", "two-local"][] as $t | select($ts | index($t))
	  | ($all | map(select(.target == $t))) as $x
	  | def ratio(k): [$x[] | . as $y | ($all | map(select(.target == "one" and .round == $y.round)) | .[0]) as $o
	      | select($o != null) | ($y | k) / ($o | k)] | med;
	  "| \($t) | \($x | map(.seconds * 1000) | med | f(0)) | \(if $t == "one" then "1" else ratio(.seconds) | f(2) end) | \($x | map(.up.blob_gets) | med | f(0)) (\($x | map(.up.max_gets_per_blob) | max)) | \(if $t == "one" then "1" else ratio(.up.blob_gets) | f(2) end) | \($x | map(.cpu | max) | med | f(2)) | \($x | map(.cpu_total) | med | f(2)) | \(if $t == "one" then "1" else ratio(.cpu_total) | f(2) end) | \($x | map(.storage.requests) | med | f(0)) | \($x | map(.storage.bytes_in | mib) | med | f(0)) | \($x | map(.redis_calls) | med | f(0)) |"'
	echo
	echo "Client errors: $(q 'map(.errors) | add') in all; replica log lines at level ERROR: $(q 'map(.replica_error_lines) | add'). Upstream statuses (all measurements): $(q 'map(.up.statuses | to_entries[]) | group_by(.key) | map("\(.[0].key) × \(map(.value) | add)") | join(", ")')."
} | tee "$report"
log "report saved to $report (raw measurements: $CACHE/bench-cluster.jsonl)"
