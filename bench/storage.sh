#!/usr/bin/env bash
# bench/storage.sh: the registry on object storage, airlock side by side
# with distribution v3.1.2 on the same storage servers, all started here in
# one run on 127.0.0.1:
#   - Azurite 3.35 (Azure Blob emulator, --inMemoryPersistence), and
#   - versitygw v1.8.0 (S3 gateway, posix backend in a directory under
#     $TMPDIR on disk);
# airlock on local disk (storage.url file://) is the baseline.
#
# Every registry on object storage reaches its storage through its own
# bench/reqcount, a transparent reverse proxy that counts the storage
# requests by method and by coarse operation (get, head, put-part, …).
#
# Measurements, per round, in an order that rotates across rounds:
#   - warm blob GET: BENCH_CLIENTS (16) keep-alive clients download one
#     BENCH_BLOB_MIB (64) MiB blob for BENCH_DURATION (5) seconds
#     (bench/loadgen): throughput, the registry's CPU seconds per GiB
#     served, the storage server's CPU seconds per GiB, and storage
#     requests per blob served = requests the counter saw during the
#     window / (bytes served / blob size). Counts are reset after a
#     warm-up GET;
#   - cold pull through the cache: a fresh registry on a fresh container,
#     bucket or directory, in front of a Debian docker-registry upstream on
#     local disk, pulls an image of BENCH_COLD_BLOBS (16) × BENCH_COLD_MIB
#     (4) MiB random layers + config once (bench/cachebench pull, one
#     client, sha256 verified): time, registry CPU-s per GiB, storage
#     requests per blob (counted until BENCH_SETTLE (1) s after the pull,
#     so writes finishing after the last byte count), bytes written to
#     the storage.
# distribution runs with storage.redirect.disable (blob GETs stream through
# the registry, as airlock's do), cache.blobdescriptor inmemory (as its
# shipped config.yml) and OTEL_TRACES_EXPORTER=none (no collector here).
#
# Prints a Markdown report (also saved to $CACHE/bench-storage.md); the raw
# measurements stay in $CACHE/bench-storage.jsonl.
# Environment: BENCH_ROUNDS (3), BENCH_DURATION (5), BENCH_CLIENTS (16),
# BENCH_BLOB_MIB (64), BENCH_COLD_BLOBS (16), BENCH_COLD_MIB (4),
# BENCH_LOCALCACHE (empty: airlock streams every GET from the storage;
# e.g. 2GiB: registry.storage.localCache.maxSize, hot blobs served from a
# local copy), BENCH_SETTLE (1), BENCH_PIN (1: registries on the upper half of the CPUs,
# storage servers, counters, upstream and clients on the lower half),
# BENCH_STORES ("file azurite versitygw"; a subset checks the rig),
# AIRLOCK_BIN (else bin/airlock is built), AIRLOCK_TOOLS
# (/opt/airlock-tools: Azurite and versitygw from scripts/tools.sh;
# distribution v3.1.2 is go-installed into its bin/ when missing).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"

rounds=${BENCH_ROUNDS:-3}
dur=${BENCH_DURATION:-5}
localcache=${BENCH_LOCALCACHE:-}
nclients=${BENCH_CLIENTS:-16}
mib=${BENCH_BLOB_MIB:-64}
cold_blobs=${BENCH_COLD_BLOBS:-16}
cold_mib=${BENCH_COLD_MIB:-4}
settle=${BENCH_SETTLE:-1}
pin=${BENCH_PIN:-1}
read -r -a stores <<<"${BENCH_STORES:-file azurite versitygw}"
tools=${AIRLOCK_TOOLS:-/opt/airlock-tools}
cmdline="$0${*:+ $*}"
envline="BENCH_ROUNDS=$rounds BENCH_DURATION=$dur BENCH_CLIENTS=$nclients BENCH_BLOB_MIB=$mib BENCH_COLD_BLOBS=$cold_blobs BENCH_COLD_MIB=$cold_mib BENCH_PIN=$pin BENCH_STORES='${stores[*]}'${localcache:+ BENCH_LOCALCACHE=$localcache}"
has_store() { [[ " ${stores[*]} " == *" $1 "* ]]; }
for t in docker-registry curl jq taskset ss; do
	command -v "$t" >/dev/null || die "$t not installed (scripts/deps.sh)"
done

# Tools: the two storage servers and distribution.
azurite_bin="$tools/azurite/node_modules/.bin/azurite-blob"
vgw_bin="$tools/bin/versitygw"
dist_bin="$tools/bin/registry"
dist_version=v3.1.2
if has_store azurite; then [ -x "$azurite_bin" ] || die "azurite not installed: run scripts/tools.sh"; fi
if has_store versitygw; then [ -x "$vgw_bin" ] || die "versitygw not installed: run scripts/tools.sh"; fi
if has_store azurite || has_store versitygw; then
	if [ "$(go version -m "$dist_bin" 2>/dev/null | awk '$1 == "mod" { print $3 }')" != "$dist_version" ]; then
		log "installing distribution $dist_version into $tools/bin (go install)"
		GOBIN="$tools/bin" go install "github.com/distribution/distribution/v3/cmd/registry@$dist_version" ||
			die "go install of distribution $dist_version failed"
	fi
fi

airlock=$(build_airlock)
mkdir -p "$CACHE/bin"
for p in loadgen cachebench reqcount; do
	(cd "$ROOT/bench/$p" && go build -o "$CACHE/bin/$p" .) || die "build bench/$p failed"
done
loadgen="$CACHE/bin/loadgen" cb="$CACHE/bin/cachebench" rc="$CACHE/bin/reqcount"
clk=$(getconf CLK_TCK)
wait_other_benches

# CPU split: registries on the upper half; everything else on the lower.
cpu_split "$pin"

bench_workspace # $work, $pids, $results; stop, other_port, wait_answer, cpu_of (scripts/lib.sh)

# The storage servers, one of each for the whole run.
az_account=devstoreaccount1
az_key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
vgw_access=airlock-bench vgw_secret=airlock-bench-secret
declare -A store_pid store_url
if has_store azurite; then
	port=$(other_port)
	mkdir -p "$work/azurite"
	(cd "$work/azurite" && exec "${cli[@]}" "$azurite_bin" --blobHost 127.0.0.1 --blobPort "$port" \
		--disableTelemetry --skipApiVersionCheck --loose --inMemoryPersistence) >"$work/azurite.log" 2>&1 &
	store_pid[azurite]=$!
	pids+=("${store_pid[azurite]}")
	store_url[azurite]="http://127.0.0.1:$port"
	wait_answer "${store_url[azurite]}/$az_account?comp=list" "${store_pid[azurite]}" ||
		die "azurite did not start: $(tail -5 "$work/azurite.log")"
fi
if has_store versitygw; then
	port=$(other_port)
	mkdir -p "$work/versitygw"
	ROOT_ACCESS_KEY_ID=$vgw_access ROOT_SECRET_ACCESS_KEY=$vgw_secret VGW_REGION=us-east-1 \
		"${cli[@]}" "$vgw_bin" --port "127.0.0.1:$port" --quiet posix "$work/versitygw" >"$work/versitygw.log" 2>&1 &
	store_pid[versitygw]=$!
	pids+=("${store_pid[versitygw]}")
	store_url[versitygw]="http://127.0.0.1:$port"
	wait_answer "${store_url[versitygw]}/" "${store_pid[versitygw]}" ||
		die "versitygw did not start: $(tail -5 "$work/versitygw.log")"
fi

# One counting proxy per registry kind and storage server, for the whole
# run: counter[KIND:STORE] is its base URL.
declare -A counter
for s in azurite versitygw; do
	has_store "$s" || continue
	for k in airlock distribution; do
		port=$(other_port)
		"${cli[@]}" "$rc" proxy -listen "127.0.0.1:$port" -target "${store_url[$s]}" >"$work/reqcount-$k-$s.log" 2>&1 &
		pids+=("$!")
		counter[$k:$s]="http://127.0.0.1:$port"
		wait_http "${counter[$k:$s]}/__counts" "$!" 10 || die "reqcount did not start: $(tail -5 "$work/reqcount-$k-$s.log")"
	done
done

# new_space KIND STORE NAME: creates container or bucket NAME for
# distribution (airlock creates its own: create=true). Through the
# counter, before its counts are reset.
new_space() {
	[ "$1" = distribution ] || return 0
	case "$2" in
	azurite)
		"$rc" mkcontainer -endpoint "${counter[$1:$2]}/$az_account" -account "$az_account" -key "$az_key" -name "$3" ||
			die "creating container $3 failed"
		;;
	versitygw)
		curl -fsS -o /dev/null -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" -u "$vgw_access:$vgw_secret" \
			-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "${counter[$1:$2]}/$3" || die "creating bucket $3 failed"
		;;
	esac
}

# start_registry KIND STORE NAME [UPSTREAM]: a registry (airlock or
# distribution) on container, bucket or directory NAME; a pull-through
# cache of UPSTREAM when given. Sets reg_pid, reg_base, reg_prefix (the
# repository prefix clients use) and reg_user (credentials for a push).
reg_pid="" reg_base="" reg_prefix="" reg_user=""
nreg=0
start_registry() {
	local kind=$1 s=$2 name=$3 up=${4:-} port admin dir url pw env=() proxy=""
	nreg=$((nreg + 1))
	dir="$work/reg-$nreg"
	mkdir -p "$dir/scratch"
	port=$(other_port)
	reg_base="http://127.0.0.1:$port" reg_prefix="" reg_user=""
	case "$kind:$s" in
	airlock:file) url="file://$dir/data" ;;
	airlock:azurite)
		url="azblob://$name?endpoint=$(jq -rn --arg e "${counter[$kind:$s]}/$az_account" '$e | @uri')&create=true"
		env=(AZURE_STORAGE_CONNECTION_STRING= "AZURE_STORAGE_ACCOUNT=$az_account" "AZURE_STORAGE_KEY=$az_key")
		;;
	airlock:versitygw)
		url="s3://$name?region=us-east-1&endpoint=${counter[$kind:$s]}&create=true"
		env=("AWS_ACCESS_KEY_ID=$vgw_access" "AWS_SECRET_ACCESS_KEY=$vgw_secret" AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true)
		;;
	esac
	case "$kind" in
	airlock)
		admin=$(other_port)
		{
			echo "version: 1"
			echo "log: { format: json }"
			echo "admin: { listen: 127.0.0.1:$admin }"
			echo "registry:"
			echo "  listen: 127.0.0.1:$port"
			if [ -n "$localcache" ] && [ "$s" != file ]; then
				echo "  storage: { url: \"$url\", scratch: \"$dir/scratch\", localCache: { maxSize: \"$localcache\" } }"
			else
				echo "  storage: { url: \"$url\", scratch: \"$dir/scratch\" }"
			fi
			echo "  anonymousPull: true"
			if [ -n "$up" ]; then
				echo "  cacheRules:"
				echo "    - { name: mcr, sourceRepo: \"mcr.microsoft.com/*\", targetRepo: \"aks-managed-repository/*\" }"
				echo "  upstreams: { mcr.microsoft.com: { url: \"$up\" } }"
			else
				pw="bench-$RANDOM$RANDOM"
				echo "  users: [ { name: bench, passwordHash: \"$(bcrypt_hash "$pw")\" } ]"
				reg_user="bench:$pw"
			fi
		} >"$dir/airlock.yaml"
		env "${env[@]}" "${srv[@]}" "$airlock" serve --config "$dir/airlock.yaml" >"$dir/log" 2>&1 &
		reg_pid=$!
		pids+=("$reg_pid")
		wait_http "http://127.0.0.1:$admin/readyz" "$reg_pid" 30 || die "airlock on $s did not start: $(tail -5 "$dir/log")"
		[ -z "$up" ] || reg_prefix="aks-managed-repository/"
		;;
	distribution)
		local tmpl=azure
		[ "$s" = versitygw ] && tmpl=s3
		[ -z "$up" ] || proxy="proxy: {remoteurl: $up}"
		sed -e "s|@ACCOUNT@|$az_account|; s|@KEY@|$az_key|; s|@CONTAINER@|$name|; s|@BUCKET@|$name|" \
			-e "s|@ENDPOINT@|${counter[$kind:$s]}$([ "$s" = azurite ] && echo "/$az_account")|" \
			-e "s|@ACCESS_KEY@|$vgw_access|; s|@SECRET_KEY@|$vgw_secret|; s|@ROOT@|/registry|; s|@PORT@|$port|" \
			-e "s|@PROXY@|$proxy|" \
			"$ROOT/bench/distribution/$tmpl.yml" >"$dir/config.yml"
		OTEL_TRACES_EXPORTER=none "${srv[@]}" "$dist_bin" serve "$dir/config.yml" >"$dir/log" 2>&1 &
		reg_pid=$!
		pids+=("$reg_pid")
		wait_http "$reg_base/v2/" "$reg_pid" 30 || die "distribution on $s did not start: $(tail -5 "$dir/log")"
		;;
	esac
}

# Targets: airlock on each store; distribution on each object store.
targets=()
for s in "${stores[@]}"; do
	case "$s" in
	file) targets+=("airlock:file") ;;
	azurite | versitygw) targets+=("airlock:$s" "distribution:$s") ;;
	*) die "unknown store $s in BENCH_STORES (file, azurite, versitygw)" ;;
	esac
done
nt=${#targets[@]}

# record JSON: one measurement to the results.
record() { printf '%s\n' "$1" >>"$results"; }
# counts T: the counter's counts of target T, zeroed; null without one.
counts() {
	if [ -n "${counter[$1]:-}" ]; then curl -fsS "${counter[$1]}/__counts?reset=1"; else echo null; fi
}
reset_counts() { [ -z "${counter[$1]:-}" ] || curl -fsS -o /dev/null -X POST "${counter[$1]}/__reset"; }
store_cpu() { if [ -n "${store_pid[${1#*:}]:-}" ]; then cpu_of "${store_pid[${1#*:}]}"; else echo 0; fi; }

# --- Warm blob GETs ------------------------------------------------------
t_start=$(date +%s)
declare -A wpid wurl
digest="" size=""
for t in "${targets[@]}"; do
	new_space "${t%%:*}" "${t#*:}" "${t%%:*}-warm"
	start_registry "${t%%:*}" "${t#*:}" "${t%%:*}-warm"
	base=$reg_base
	[ -z "$reg_user" ] || base="http://$reg_user@${reg_base#http://}"
	seed=$("$cb" seed -registry "$base" -layers 1 -layer-mib 1 -big-mib "$mib") || die "pushing the test image to $t failed"
	d=$(jq -r '.big.blobs[-1].digest' <<<"$seed")
	[ -z "$digest" ] || [ "$d" = "$digest" ] || die "$t got blob $d, the others $digest"
	digest=$d size=$(jq -r '.big.blobs[-1].size' <<<"$seed")
	wpid[$t]=$reg_pid
	wurl[$t]="$reg_base/v2/bench/blob/blobs/$digest"
	got=$(curl -fsS "${wurl[$t]}" | sha256sum | cut -d' ' -f1)
	[ "sha256:$got" = "$digest" ] || die "$t serves content sha256:$got, want $digest"
done
log "warm: $rounds rounds × ${dur}s, $nclients clients, $mib MiB blob; registries on CPUs $srv_cpus, the rest on CPUs $cli_cpus"
for ((r = 1; r <= rounds; r++)); do
	order=("${targets[@]:(r - 1) % nt}" "${targets[@]:0:(r - 1) % nt}")
	log "round $r: ${order[*]}"
	for t in "${order[@]}"; do
		curl -fsS -o /dev/null "${wurl[$t]}" || die "warm-up GET from $t failed"
		reset_counts "$t"
		s0=$(store_cpu "$t")
		j=$("${cli[@]}" "$loadgen" -url "${wurl[$t]}" -c "$nclients" -d "${dur}s" -size "$size" -pids "${wpid[$t]}" -clk-tck "$clk" -warm 0)
		c=$(counts "$t")
		s1=$(store_cpu "$t")
		errs=$(jq -r .errors <<<"$j")
		[ "$errs" = 0 ] || log "  $t: $errs errors: $(jq -r .first_error <<<"$j")"
		rec=$(jq -c -n --argjson r "$r" --arg t "$t" --argjson j "$j" --argjson c "$c" \
			--argjson scpu "$(awk -v a="$s0" -v b="$s1" 'BEGIN { print b - a }')" \
			'{phase: "warm", round: $r, target: $t, mibps: ($j.bytes_per_sec / 1048576),
			  cpu_gib: $j.cpu_seconds_per_gib, bytes: $j.bytes, requests: $j.requests, errors: $j.errors,
			  blobs: ($j.requests + $j.errors + $j.clients), store_cpu_gib: (if $j.bytes > 0 then $scpu / ($j.bytes / 1073741824) else 0 end),
			  counts: $c}')
		record "$rec"
		log "  $t: $(jq -r '"\(.mibps|floor) MiB/s, \(.cpu_gib*1000|round/1000) CPU-s/GiB, storage \(.store_cpu_gib*1000|round/1000) CPU-s/GiB" + (if .counts then ", \(.counts.requests / .blobs * 100 | round / 100) storage requests/blob \(.counts.by_op)" else "" end)' <<<"$rec")"
	done
done
for t in "${targets[@]}"; do stop "${wpid[$t]}"; done
t_warm=$(($(date +%s) - t_start))

# --- Cold pulls through the cache -----------------------------------------
uport=$(other_port)
ubase="http://127.0.0.1:$uport"
cat >"$work/upstream.yml" <<YAML
version: 0.1
log: {level: warn, formatter: text, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $work/upstream-data}
  cache: {blobdescriptor: inmemory}
  maintenance: {uploadpurging: {enabled: false}}
http: {addr: 127.0.0.1:$uport}
health: {storagedriver: {enabled: false}}
YAML
"${cli[@]}" docker-registry serve "$work/upstream.yml" >"$work/upstream.log" 2>&1 &
upid=$!
pids+=("$upid")
wait_http "$ubase/v2/" "$upid" 30 || die "upstream docker-registry did not start: $(tail -5 "$work/upstream.log")"
seed=$("$cb" seed -registry "$ubase" -layers "$cold_blobs" -layer-mib "$cold_mib" -big-mib 1 -seed 2) || die "seeding the upstream failed"
img_digest=$(jq -r .image.manifest_digest <<<"$seed")
img_nblobs=$(jq -r '.image.blobs | length' <<<"$seed")
img_bytes=$(jq -r .image.bytes <<<"$seed")
log "cold: $rounds rounds, bench/img:v1 = $cold_blobs × $cold_mib MiB + config through each target, one client"
ncold=0
for ((r = 1; r <= rounds; r++)); do
	order=("${targets[@]:(r - 1) % nt}" "${targets[@]:0:(r - 1) % nt}")
	log "round $r: ${order[*]}"
	for t in "${order[@]}"; do
		ncold=$((ncold + 1))
		name="cold-$ncold"
		new_space "${t%%:*}" "${t#*:}" "$name"
		start_registry "${t%%:*}" "${t#*:}" "$name" "$ubase"
		reset_counts "$t"
		c0=$(cpu_of "$reg_pid") s0=$(store_cpu "$t")
		j=$("${cli[@]}" "$cb" pull -base "$reg_base" -repo "${reg_prefix}bench/img" -ref v1 -manifest-digest "$img_digest" -c 1) ||
			die "cold pull through $t failed"
		sleep "$settle"
		c=$(counts "$t")
		c1=$(cpu_of "$reg_pid") s1=$(store_cpu "$t")
		rec=$(jq -c -n --argjson r "$r" --arg t "$t" --argjson j "$j" --argjson c "$c" --argjson bytes "$img_bytes" \
			--argjson cpu "$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" \
			--argjson scpu "$(awk -v a="$s0" -v b="$s1" 'BEGIN { print b - a }')" \
			'{phase: "cold", round: $r, target: $t, seconds: $j.wall_seconds, errors: $j.errors, first_error: $j.first_error,
			  blobs: $j.blobs, cpu_gib: ($cpu / ($bytes / 1073741824)), store_cpu_gib: ($scpu / ($bytes / 1073741824)),
			  counts: $c}')
		record "$rec"
		[ "$(jq -r .errors <<<"$rec")" = 0 ] || log "  $t: errors: $(jq -r .first_error <<<"$rec")"
		log "  $t: $(jq -r '"\(.seconds*1000|round) ms, \(.cpu_gib*1000|round/1000) CPU-s/GiB" + (if .counts then ", \(.counts.requests / .blobs * 100 | round / 100) storage requests/blob, \(.counts.bytes_in/1048576|round) MiB written \(.counts.by_op)" else "" end)' <<<"$rec")"
		stop "$reg_pid"
	done
done
elapsed=$(($(date +%s) - t_start))

# --- Report ---------------------------------------------------------------
report="$CACHE/bench-storage.md"
cp "$results" "$CACHE/bench-storage.jsonl"
# q JQ: a jq program over all results (slurped), with the helpers below.
q() {
	jq -rs "
	def med: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
	def f(n): if . == null then \"-\" elif n == 0 then (round | tostring)
	  else (. * pow(10; n) | round | tostring) as \$i | ([range(n + 1 - (\$i | length))] | map(\"0\") | join(\"\") + \$i) as \$p
	    | \$p[:-n] + \".\" + \$p[-n:] end;
	def per_blob: if .counts then .counts.requests / .blobs else null end;
	def peer: if (.target | startswith(\"airlock:\")) then \"distribution:\" + (.target | ltrimstr(\"airlock:\")) else null end;
	$1" "$results"
}
vgw_v=$(go version -m "$vgw_bin" 2>/dev/null | awk '$1 == "mod" { print $3 }')
az_v=$(node -p 'require(process.argv[1]).version' "$tools/azurite/node_modules/azurite/package.json" 2>/dev/null || echo "?")
# shellcheck disable=SC2016 # the single-quoted $ are jq's
{
	echo "### Registry on object storage: airlock vs distribution $dist_version ($(date -u +%Y-%m-%d))"
	echo
	echo "Command: \`$envline $cmdline\` (from the repository root; \`make bench-storage\`); measurements took ${elapsed} s (warm ${t_warm} s)."
	echo
	echo "Machine: $ncpu CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), Linux $(uname -r);" \
		"registries pinned to CPUs $srv_cpus; storage servers, request counters, the upstream and the clients to CPUs $cli_cpus. $rounds rounds, target order rotated per round."
	echo "Storage: Azurite $az_v (\`--inMemoryPersistence --disableTelemetry --skipApiVersionCheck --loose\`), versitygw $vgw_v (posix backend on $(df --output=fstype "$work" | tail -1) under $(dirname "$work")), airlock on local disk (\`storage.url: file://…\`)." \
		"Each registry reaches its storage server through its own \`bench/reqcount\` counting proxy (also in the warm and cold paths of both registries)."
	echo "Registries: $("$airlock" version 2>/dev/null | head -1) (default log level); distribution $dist_version (\`storage.redirect.disable: true\`: blob GETs stream through the registry as airlock's do;" \
		"\`cache.blobdescriptor: inmemory\`; access log off; \`OTEL_TRACES_EXPORTER=none\`; configs from bench/distribution/)."
	echo
	echo "#### Warm blob GET ($nclients clients, one $mib MiB blob, ${dur} s per measurement)"
	echo
	echo "Storage requests per blob = requests the counter saw in the window / blob GETs the clients started in it (completed, plus the one per client cut by the deadline, whose storage requests were made too); counts reset after a warm-up GET."
	echo
	echo "| Round | Target | MiB/s | vs distribution, same storage | CPU-s/GiB | storage server CPU-s/GiB | storage requests/blob |"
	echo "|---|---|---:|---:|---:|---:|---:|"
	q '(map(select(.phase == "warm"))) as $w | $w[] | . as $x
	  | ($w | map(select(.round == $x.round and .target == ($x | peer))) | .[0]) as $p
	  | "| \(.round) | \(.target) | \(.mibps | f(0)) | \(if $p then (.mibps / $p.mibps | f(2)) else "-" end) | \(.cpu_gib | f(3)) | \(if .target == "airlock:file" then "-" else (.store_cpu_gib | f(3)) end) | \(per_blob | f(2)) |"'
	echo
	echo "#### Cold pull through the cache ($cold_blobs × $cold_mib MiB layers + config, one client, sha256 verified; fresh registry and container/bucket/directory each time)"
	echo
	echo "Storage requests per blob = requests the counter saw from the first request until ${settle} s after the last byte / $img_nblobs blobs (the manifest's requests included)."
	echo
	echo "| Round | Target | time (ms) | vs distribution, same storage | CPU-s/GiB | storage server CPU-s/GiB | storage requests/blob | MiB written to storage |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|"
	q '(map(select(.phase == "cold"))) as $w | $w[] | . as $x
	  | ($w | map(select(.round == $x.round and .target == ($x | peer))) | .[0]) as $p
	  | "| \(.round) | \(.target) | \(.seconds * 1000 | f(0)) | \(if $p then (.seconds / $p.seconds | f(2)) else "-" end) | \(.cpu_gib | f(3)) | \(if .target == "airlock:file" then "-" else (.store_cpu_gib | f(3)) end) | \(per_blob | f(2)) | \(if .counts then (.counts.bytes_in / 1048576 | f(0)) else "-" end) |"'
	echo
	echo "#### Storage requests by operation, per blob served (all rounds: operation count / blobs served)"
	echo
	echo "| Phase | Target | total | by operation |"
	echo "|---|---|---:|---|"
	q 'map(select(.counts)) | group_by([.phase, .target])[] | . as $g
	  | (map(.blobs) | add) as $b
	  | (map(.counts.by_op | to_entries[]) | group_by(.key) | map({key: .[0].key, value: (map(.value) | add)}) | sort_by(-.value)) as $ops
	  | "| \($g[0].phase) | \($g[0].target) | \((map(.counts.requests) | add) / $b | f(2)) | \($ops | map("\(.key) \(.value / $b | f(2))") | join(", ")) |"'
	echo
	echo "#### Medians over rounds (ratios within a round)"
	echo
	echo "| Storage | warm MiB/s airlock / distribution | warm CPU-s/GiB airlock / distribution | warm storage req/blob airlock / distribution | cold time airlock / distribution | cold CPU-s/GiB airlock / distribution | cold storage req/blob airlock / distribution | targets: throughput, CPU, requests |"
	echo "|---|---:|---:|---:|---:|---:|---:|---|"
	q '. as $all | ["file", "azurite", "versitygw"][] as $s
	  | ($all | map(select(.target == "airlock:" + $s))) as $a | select($a | length > 0)
	  | ($all | map(select(.target == "distribution:" + $s))) as $d
	  | def m(ph; k): map(select(.phase == ph) | k) | med;
	    def ratio(ph; k): [$a[] | select(.phase == ph) | . as $x | ($d | map(select(.phase == ph and .round == $x.round)) | .[0]) as $p | select($p) | ($x | k) / ($p | k)] | med;
	    def pair(ph; k; n): "\($a | m(ph; k) | f(n)) / \($d | m(ph; k) | f(n))";
	  "| \($s) | \($a | m("warm"; .mibps) | f(0)) / \($d | m("warm"; .mibps) | f(0)) (\(ratio("warm"; .mibps) | f(2))×) | \(pair("warm"; .cpu_gib; 3)) | \(pair("warm"; per_blob; 2)) | \($a | m("cold"; .seconds * 1000) | f(0)) / \($d | m("cold"; .seconds * 1000) | f(0)) ms (\(ratio("cold"; .seconds) | f(2))×) | \(pair("cold"; .cpu_gib; 3)) | \(pair("cold"; per_blob; 2)) | \(
	    if ($d | length) == 0 then "-" else
	    def yn(c): if c then "yes" else "no" end;
	    "\(yn(ratio("warm"; .mibps) >= 1)), \(yn(($a | m("warm"; .cpu_gib)) < ($d | m("warm"; .cpu_gib)))), \(yn(($a | m("warm"; per_blob)) <= 0.5 * ($d | m("warm"; per_blob))))" end) |"'
	echo
	echo "Targets (issue 12), on the same storage server: airlock warm throughput ≥ 1.0× distribution's at lower CPU-s per GiB, and at most half its storage requests per blob served."
} | tee "$report"
log "report saved to $report (raw measurements: $CACHE/bench-storage.jsonl)"
