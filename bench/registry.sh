#!/usr/bin/env bash
# bench/registry.sh: warm blob GETs and manifest GETs, airlock side by side
# with nginx (sendfile, the same file) and Debian's docker-registry (the same
# blob), all started here in one run on 127.0.0.1.
#
# Per round and target: GET of the 256 MiB blob with 1 and with 16
# concurrent keep-alive clients for BENCH_DURATION seconds each (bytes/s),
# the server's CPU seconds per GiB served (utime+stime of its processes from
# /proc), its peak RSS while the 16 clients download (VmRSS sampled every
# 50 ms), and for the registries manifest GETs per second (wrk, 16
# connections, OCI Accept header). The order of targets rotates across
# BENCH_ROUNDS rounds; ratios are taken within a round. Servers and load
# generators are pinned to different CPUs with taskset when there are two
# or more.
#
# Prints a Markdown report (also saved to $CACHE/bench-registry.md).
# Environment: BENCH_ROUNDS (3), BENCH_DURATION (5, seconds),
# BENCH_BLOB_MIB (256), BENCH_PIN (1), AIRLOCK_BIN (else bin/airlock is built),
# BENCH_TARGETS ("nginx airlock docker-registry"; a subset checks the rig),
# BENCH_SPLICE (1: the load generator splices bodies to /dev/null so the
# server is the bottleneck; 0: it reads them through net/http),
# BENCH_NGINX_HTTP (extra directives for nginx's http block, e.g.
# "sendfile_max_chunk 0;").
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"

rounds=${BENCH_ROUNDS:-3}
dur=${BENCH_DURATION:-5}
mib=${BENCH_BLOB_MIB:-256}
pin=${BENCH_PIN:-1}
splice=${BENCH_SPLICE:-1}
read -r -a targets <<<"${BENCH_TARGETS:-nginx airlock docker-registry}"
has() { [[ " ${targets[*]} " == *" $1 "* ]]; }
cmdline="$0${*:+ $*}"
envline="BENCH_ROUNDS=$rounds BENCH_DURATION=$dur BENCH_BLOB_MIB=$mib BENCH_PIN=$pin BENCH_SPLICE=$splice BENCH_TARGETS='${targets[*]}'"
for t in nginx docker-registry wrk curl jq taskset; do
	command -v "$t" >/dev/null || die "$t not installed (scripts/deps.sh)"
done

airlock=""
if has airlock; then airlock=$(build_airlock); fi
mkdir -p "$CACHE/bin"
(cd "$ROOT/bench/loadgen" && go build -o "$CACHE/bin/loadgen" .) || die "build bench/loadgen failed"
loadgen="$CACHE/bin/loadgen"
clk=$(getconf CLK_TCK)

# CPU split: servers on the upper half of the CPUs, load on the lower half.
cpu_split "$pin"
srv_n=$([ "$srv_cpus" = all ] && echo "$ncpu" || echo $((ncpu - ncpu / 2)))

work=$(mktemp -d)
chmod 755 "$work" # nginx workers run as nobody
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do stop_pid "$p"; done
	rm -rf "$work"
}
trap cleanup EXIT

# The blob: incompressible, the same bytes for every server.
mkdir -p "$work/www"
head -c $((mib << 20)) /dev/urandom >"$work/www/blob"
chmod 644 "$work/www/blob"
size=$(stat -c %s "$work/www/blob")
hex=$(sha256sum "$work/www/blob" | cut -d' ' -f1)
digest="sha256:$hex"

# push_image BASE CURL_AUTH...: the blob, a config and a manifest tagged v1
# in repository bench/big.
push_image() {
	local base=$1
	shift
	local cfg="$work/config.json" man="$work/manifest.json"
	printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}' "$digest" >"$cfg"
	local cfgd
	cfgd="sha256:$(sha256sum "$cfg" | cut -d' ' -f1)"
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}' \
		"$cfgd" "$(stat -c %s "$cfg")" "$digest" "$size" >"$man"
	local f d
	for f in "$work/www/blob" "$cfg"; do
		d="sha256:$(sha256sum "$f" | cut -d' ' -f1)"
		[ "$f" = "$work/www/blob" ] && d=$digest
		local loc
		loc=$(curl -fsS -o /dev/null -D - -X POST "$@" "$base/v2/bench/big/blobs/uploads/" |
			awk 'tolower($1) == "location:" { print $2 }' | tr -d '\r')
		[ -n "$loc" ] || die "no upload location from $base"
		case "$loc" in http*) ;; *) loc="$base$loc" ;; esac
		case "$loc" in *\?*) loc="$loc&digest=$d" ;; *) loc="$loc?digest=$d" ;; esac
		curl -fsS -o /dev/null -X PUT "$@" -H 'Expect:' -H 'Content-Type: application/octet-stream' -T "$f" "$loc" ||
			die "blob upload to $base failed"
	done
	curl -fsS -o /dev/null -X PUT "$@" -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
		--data-binary @"$man" "$base/v2/bench/big/manifests/v1" || die "manifest upload to $base failed"
}

# children PID: PIDs of the direct children (nginx workers).
children() { cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep . || true; }

declare -A url pidsof murl

# start_nginx: per research/rig.md §4, one worker per server CPU.
start_nginx() {
	local port
	port=$(free_port)
	mkdir -p "$work/nginx/tmp"
	echo ok >"$work/www/ping"
	cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes $srv_n;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  default_type application/octet-stream;
  client_body_temp_path $work/nginx/tmp/client;
  proxy_temp_path $work/nginx/tmp/proxy;
  fastcgi_temp_path $work/nginx/tmp/fastcgi;
  uwsgi_temp_path $work/nginx/tmp/uwsgi;
  scgi_temp_path $work/nginx/tmp/scgi;
  ${BENCH_NGINX_HTTP:-}
  server { listen 127.0.0.1:$port; root $work/www; }
}
NGINX
	"${srv[@]}" nginx -p "$work/nginx/" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
	local pid=$!
	pids+=("$pid")
	wait_http "http://127.0.0.1:$port/ping" "$pid" 30 || die "nginx did not start: $(tail -5 "$work/nginx/error.log")"
	url[nginx]="http://127.0.0.1:$port/blob"
	# The master and its workers.
	pidsof[nginx]=$({ echo "$pid"; children "$pid"; } | paste -sd,)
}

# start_docker_registry: no auth, access log off, warn level.
start_docker_registry() {
	local port
	port=$(free_port)
	cat >"$work/registry.yml" <<YAML
version: 0.1
log: {level: warn, formatter: text, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $work/dr-data}
  delete: {enabled: true}
  cache: {blobdescriptor: inmemory}
  maintenance: {uploadpurging: {enabled: false}}
http: {addr: 127.0.0.1:$port}
health: {storagedriver: {enabled: false}}
YAML
	"${srv[@]}" docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
	local pid=$!
	pids+=("$pid")
	wait_http "http://127.0.0.1:$port/v2/" "$pid" 30 || die "docker-registry did not start: $(tail -5 "$work/registry.log")"
	push_image "http://127.0.0.1:$port"
	url[docker-registry]="http://127.0.0.1:$port/v2/bench/big/blobs/$digest"
	murl[docker-registry]="http://127.0.0.1:$port/v2/bench/big/manifests/v1"
	pidsof[docker-registry]=$pid
}

# start_airlock: anonymous pull, one user for the push; default log settings.
start_airlock() {
	local port admin pw
	port=$(free_port)
	admin=$(free_port)
	while [ "$admin" = "$port" ]; do admin=$(free_port); done
	pw="bench-$RANDOM$RANDOM"
	write_airlock_config "$work/airlock.yaml" "$port" "$admin" "$work/airlock-data" true bench "$(bcrypt_hash "$pw")"
	"${srv[@]}" "$airlock" serve --config "$work/airlock.yaml" >"$work/airlock.log" 2>&1 &
	local pid=$!
	pids+=("$pid")
	wait_http "http://127.0.0.1:$admin/readyz" "$pid" 30 || die "airlock did not start: $(tail -5 "$work/airlock.log")"
	push_image "http://127.0.0.1:$port" -u "bench:$pw"
	url[airlock]="http://127.0.0.1:$port/v2/bench/big/blobs/$digest"
	murl[airlock]="http://127.0.0.1:$port/v2/bench/big/manifests/v1"
	pidsof[airlock]=$pid
}

for t in "${targets[@]}"; do
	case "$t" in
	nginx) start_nginx ;;
	docker-registry) start_docker_registry ;;
	airlock) start_airlock ;;
	*) die "unknown target $t in BENCH_TARGETS" ;;
	esac
done
accept='Accept: application/vnd.oci.image.manifest.v1+json'

for t in "${targets[@]}"; do
	got=$(curl -fsS "${url[$t]}" | sha256sum | cut -d' ' -f1)
	[ "$got" = "$hex" ] || die "$t serves content $got, want $hex"
	if [ -n "${murl[$t]:-}" ]; then
		curl -fsS -o /dev/null -H "$accept" "${murl[$t]}" || die "manifest GET ${murl[$t]} failed"
	fi
done

# results[round,target,metric]
declare -A res
nt=${#targets[@]}
log "bench: $rounds rounds x ${dur}s; servers on CPUs $srv_cpus, load on CPUs $cli_cpus"
for ((r = 0; r < rounds; r++)); do
	order=("${targets[@]:r%nt}" "${targets[@]:0:r%nt}")
	log "round $((r + 1)): ${order[*]}"
	for t in "${order[@]}"; do
		for c in 1 16; do
			j=$("${cli[@]}" "$loadgen" -url "${url[$t]}" -c "$c" -d "${dur}s" -size "$size" -pids "${pidsof[$t]}" -clk-tck "$clk" -splice="$([ "$splice" = 1 ] && echo true || echo false)")
			errs=$(jq -r .errors <<<"$j")
			[ "$errs" = 0 ] || log "  $t c=$c: $errs errors: $(jq -r .first_error <<<"$j")"
			res[$r,$t,bps$c]=$(jq -r .bytes_per_sec <<<"$j")
			res[$r,$t,cpu$c]=$(jq -r .cpu_seconds_per_gib <<<"$j")
			res[$r,$t,rss$c]=$(jq -r .peak_rss_bytes <<<"$j")
			log "  $t c=$c: $(jq -r '"\(.bytes_per_sec/1048576|floor) MiB/s, \(.cpu_seconds_per_gib*1000|round/1000) CPU-s/GiB, RSS \(.peak_rss_bytes/1048576|floor) MiB"' <<<"$j")"
		done
		if [ -n "${murl[$t]:-}" ]; then
			w=$("${cli[@]}" wrk -t1 -c16 -d"${dur}s" -H "$accept" "${murl[$t]}")
			rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$w")
			non2xx=$(awk '/Non-2xx/ { print $NF }' <<<"$w")
			[ -z "$non2xx" ] || log "  $t manifests: $non2xx non-2xx responses"
			res[$r,$t,mps]=$rps
			log "  $t manifests: $rps req/s"
		fi
	done
done

# Report.
f2() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }
f3() { awk -v x="$1" 'BEGIN { printf "%.3f", x }'; }
mibs() { awk -v x="$1" 'BEGIN { printf "%.0f", x / 1048576 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

report="$CACHE/bench-registry.md"
{
	echo "### Registry blob and manifest GETs ($(date -u +%Y-%m-%d))"
	echo
	echo "Command: \`$envline $cmdline\` (from the repository root; \`make bench-registry\`)"
	echo
	echo "Machine: $ncpu CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), Linux $(uname -r);" \
		"servers pinned to CPUs $srv_cpus, load generators to CPUs $cli_cpus." \
		"Blob: $mib MiB of random bytes, $digest. $rounds rounds of ${dur} s per measurement, target order rotated per round."
	echo "Versions: $([ -n "$airlock" ] && "$airlock" version 2>/dev/null | head -1 || echo "airlock (not run or no version)"); $(nginx -v 2>&1 | sed 's/.*: //') (sendfile on, $srv_n worker(s));" \
		"docker-registry $(docker-registry --version 2>/dev/null | awk '{ print $3 }') (access log off); $(go version | awk '{ print $3 }')."
	echo
	echo "| Round | Target | 1 client MiB/s | 16 clients MiB/s | ratio to nginx (1 / 16) | CPU-s/GiB (1 / 16) | peak RSS, 16 clients (MiB) | manifest GET/s |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|"
	for ((r = 0; r < rounds; r++)); do
		order=("${targets[@]:r%nt}" "${targets[@]:0:r%nt}")
		for t in "${order[@]}"; do
			echo "| $((r + 1)) | $t | $(mibs "${res[$r,$t,bps1]}") | $(mibs "${res[$r,$t,bps16]}") |" \
				"$(ratio "${res[$r,$t,bps1]}" "${res[$r,nginx,bps1]:-0}") / $(ratio "${res[$r,$t,bps16]}" "${res[$r,nginx,bps16]:-0}") |" \
				"$(f3 "${res[$r,$t,cpu1]}") / $(f3 "${res[$r,$t,cpu16]}") | $(mibs "${res[$r,$t,rss16]}") | ${res[$r,$t,mps]:--} |"
		done
	done
	echo
	echo "Medians over rounds of same-round ratios:"
	echo
	echo "| Target | blob GET vs nginx, 1 client | blob GET vs nginx, 16 clients | CPU-s/GiB, 16 clients | peak RSS MiB | manifest GET/s vs docker-registry |"
	echo "|---|---:|---:|---:|---:|---:|"
	for t in "${targets[@]}"; do
		r1="" r16="" c16="" rs="" mr=""
		for ((r = 0; r < rounds; r++)); do
			r1+=" $(ratio "${res[$r,$t,bps1]}" "${res[$r,nginx,bps1]:-0}")"
			r16+=" $(ratio "${res[$r,$t,bps16]}" "${res[$r,nginx,bps16]:-0}")"
			c16+=" ${res[$r,$t,cpu16]}"
			rs+=" $(mibs "${res[$r,$t,rss16]}")"
			[ -z "${res[$r,$t,mps]:-}" ] || mr+=" $(ratio "${res[$r,$t,mps]}" "${res[$r,docker-registry,mps]:-0}")"
		done
		echo "| $t | $(median <<<"$r1") | $(median <<<"$r16") | $(median <<<"$c16") | $(median <<<"$rs" | cut -d. -f1) | $([ -n "$mr" ] && median <<<"$mr" || echo -) |"
	done
	echo
	echo "Bars (issue 2): blob GET ≥ 0.95× nginx, ≤ 0.25 CPU-s/GiB, RSS < 100 MiB with 16 clients; manifest GET/s ≥ 2× docker-registry."
} | tee "$report"
log "report saved to $report"
