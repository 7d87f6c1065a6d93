# shellcheck shell=bash
# lib.sh: shell helpers shared by scripts/*.sh and bench/*.sh. Source it;
# it defines functions and the variables ROOT and CACHE, nothing else runs.
#
# Every server these helpers start listens on 127.0.0.1 on a port picked at
# run time, and is stopped by the PID recorded when it was started.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# CACHE holds built tools and the last reports; outside the repo on purpose.
CACHE="${AIRLOCK_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/airlock-test}"

log() { printf '%s\n' "$*" >&2; }
die() { log "$(basename "$0"): $*"; exit 1; }

# free_port prints a TCP port on 127.0.0.1 that nothing listens on, chosen at
# random below the ephemeral range so outgoing connections never hold it.
free_port() {
	local p _
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 12000))
		if ! ss -Htln "( sport = :$p )" | grep -q .; then
			echo "$p"
			return 0
		fi
	done
	die "no free port found"
}

# wait_port PORT PID: wait up to 30 s until something listens on TCP PORT,
# failing early when PID exits.
wait_port() {
	local _
	for _ in $(seq 1 300); do
		ss -Htln "( sport = :$1 )" | grep -q . && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# wait_http URL PID [SECONDS [any]]: wait until URL answers 2xx (with
# "any": any HTTP status), failing early when PID exits.
wait_http() {
	local url=$1 pid=$2 secs=${3:-30} f=-f _
	[ "${4:-}" = any ] && f=""
	for _ in $(seq 1 $((secs * 10))); do
		if curl $f -sS -o /dev/null --max-time 1 "$url" 2>/dev/null; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || { log "process $pid exited before $url was ready"; return 1; }
		sleep 0.1
	done
	log "$url not ready after ${secs}s"
	return 1
}

# stop_pid PID: SIGTERM, then SIGKILL after 10 s; reaps the child when it is ours.
stop_pid() {
	local pid=$1 _
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid ignored SIGTERM for 10s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

# build_tool NAME: build a command of the test/conformance tools module into
# $CACHE/bin when its sources or go.sum changed; prints the binary's path.
# NAME is conformance.test (the OCI suite), bcrypthash or junitsum.
build_tool() {
	local name=$1 mod="$ROOT/test/conformance" out="$CACHE/bin/$1"
	mkdir -p "$CACHE/bin"
	if [ -x "$out" ] && [ -z "$(find "$mod" -newer "$out" -type f -print -quit)" ]; then
		echo "$out"
		return 0
	fi
	case "$name" in
	conformance.test)
		(cd "$mod" && go test -c -o "$out.tmp" github.com/opencontainers/distribution-spec/conformance) ;;
	*)
		(cd "$mod" && go build -o "$out.tmp" "./$name") ;;
	esac || die "build $name failed"
	mv "$out.tmp" "$out"
	echo "$out"
}

# build_airlock: go build ./cmd/airlock into bin/airlock unless AIRLOCK_BIN
# names a binary already; prints the path.
build_airlock() {
	if [ -n "${AIRLOCK_BIN:-}" ]; then
		[ -x "$AIRLOCK_BIN" ] || die "AIRLOCK_BIN=$AIRLOCK_BIN is not executable"
		echo "$AIRLOCK_BIN"
		return 0
	fi
	(cd "$ROOT" && go build -o bin/airlock ./cmd/airlock) || die "go build ./cmd/airlock failed"
	echo "$ROOT/bin/airlock"
}

# build_gwbench: builds bench/gwbench (its own module) into $CACHE/bin and
# prints its path.
build_gwbench() {
	mkdir -p "$CACHE/bin"
	(cd "$ROOT/bench/gwbench" && go build -o "$CACHE/bin/gwbench" .) || die "build bench/gwbench failed"
	echo "$CACHE/bin/gwbench"
}

# bcrypt_hash PASSWORD: prints a bcrypt hash of PASSWORD.
bcrypt_hash() {
	printf '%s\n' "$1" | "$(build_tool bcrypthash)"
}

# write_airlock_config FILE REGISTRY_PORT ADMIN_PORT STORAGE ANON_PULL [USER HASH]
# STORAGE is a directory, or a storage URL (azblob://…, s3://…).
write_airlock_config() {
	local f=$1 rport=$2 aport=$3 dir=$4 anon=$5 user=${6:-} hash=${7:-}
	{
		echo "version: 1"
		echo "log: { format: json }"
		echo "admin: { listen: 127.0.0.1:$aport }"
		echo "registry:"
		echo "  listen: 127.0.0.1:$rport"
		case "$dir" in
		*://*) echo "  storage: { url: \"$dir\" }" ;;
		*) echo "  storage: { path: \"$dir\" }" ;;
		esac
		echo "  anonymousPull: $anon"
		if [ -n "$user" ]; then
			echo "  users: [ { name: $user, passwordHash: \"$hash\" } ]"
		fi
	} >"$f"
}

# write_registry_config FILE PORT STORAGE_DIR: Debian docker-registry
# (distribution 2.8) with delete enabled, as in research/rig.md §2.
write_registry_config() {
	cat >"$1" <<YAML
version: 0.1
log: {level: warn, formatter: text}
storage:
  filesystem: {rootdirectory: $3}
  delete: {enabled: true}
  cache: {blobdescriptor: inmemory}
  maintenance: {uploadpurging: {enabled: false}}
http: {addr: 127.0.0.1:$2, headers: {X-Content-Type-Options: [nosniff]}}
health: {storagedriver: {enabled: false}}
YAML
}

# cpu_split PIN: with PIN=1 and at least 2 CPUs, servers go on the upper half
# of the CPUs and load generators on the lower half. Sets ncpu, srv_cpus,
# cli_cpus and the command prefixes srv=(taskset …) and cli=(taskset …)
# (empty without pinning).
cpu_split() {
	ncpu=$(nproc)
	srv=() cli=()
	srv_cpus="all" cli_cpus="all"
	if [ "$1" = 1 ] && [ "$ncpu" -ge 2 ]; then
		local half=$((ncpu / 2))
		cli_cpus="0-$((half - 1))"
		srv_cpus="$half-$((ncpu - 1))"
		srv=(taskset -c "$srv_cpus")
		cli=(taskset -c "$cli_cpus")
	fi
}

# wait_other_benches: sleep while another bench script runs on this machine:
# it would share the CPUs and skew both sides of both. A flock or timeout
# that is only waiting to start one does not count (it may be waiting for
# the lock this run holds), nor does this script's own process tree.
wait_other_benches() {
	local self p busy
	self="bench/$(basename "$0")"
	while :; do
		busy=
		for p in $(pgrep -f 'bench/(registry|cache|gateway|dns|storage|cluster)\.sh'); do
			tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF "$self" && continue
			case "$(cat "/proc/$p/comm" 2>/dev/null)" in
			flock | timeout | "") ;;
			*) busy=1 ;;
			esac
		done
		[ -z "$busy" ] && return 0
		log "another bench script is running; waiting 10 s"
		sleep 10
	done
}

# Object storage servers for the suites and benchmarks, from scripts/tools.sh
# (under $AIRLOCK_TOOLS), on loopback. Each prints the PID of the server.
AIRLOCK_TOOLS=${AIRLOCK_TOOLS:-/opt/airlock-tools}
AZURITE_ACCOUNT=devstoreaccount1
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

# start_azurite DIR PORT LOG: Azurite's blob service, telemetry off (always:
# without --disableTelemetry it tries to reach the internet).
start_azurite() {
	local bin="$AIRLOCK_TOOLS/azurite/node_modules/.bin/azurite-blob"
	[ -x "$bin" ] || die "azurite not installed: run scripts/tools.sh"
	mkdir -p "$1"
	"$bin" --blobHost 127.0.0.1 --blobPort "$2" --location "$1" \
		--disableTelemetry --skipApiVersionCheck --loose >"$3" 2>&1 &
	echo $!
}

# start_versitygw DIR PORT LOG ACCESS SECRET: versitygw's S3 gateway on a
# posix directory.
start_versitygw() {
	local bin="$AIRLOCK_TOOLS/bin/versitygw"
	[ -x "$bin" ] || die "versitygw not installed: run scripts/tools.sh"
	mkdir -p "$1"
	ROOT_ACCESS_KEY_ID=$4 ROOT_SECRET_ACCESS_KEY=$5 VGW_REGION=us-east-1 \
		"$bin" --port "127.0.0.1:$2" --quiet posix "$1" >"$3" 2>&1 &
	echo $!
}

# bench_workspace: what a bench script run owns. $work is a temp directory,
# $pids the processes the run started (every one is stopped on exit, resumed
# first if the run froze it), $results a JSON-lines file in $work. Use stop
# PID to stop one early, other_port for a port no server of this run was
# given yet.
bench_workspace() {
	work=$(mktemp -d)
	pids=()
	results="$work/results.jsonl"
	: >"$results"
	used_ports=" "
	trap bench_cleanup EXIT
}

bench_cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill -CONT "$p" 2>/dev/null || true
		stop_pid "$p"
	done
	rm -rf "$work"
}

# stop PID: stop_pid (resuming PID first if frozen), and forget PID so the
# exit trap never signals a number the system may have handed to another
# process since.
stop() {
	local p keep=()
	kill -CONT "$1" 2>/dev/null || true
	stop_pid "$1"
	for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	pids=("${keep[@]}")
}

# other_port: a free port no server of this run was given yet.
other_port() {
	local p
	p=$(free_port)
	while [[ "$used_ports" == *" $p "* ]]; do p=$(free_port); done
	used_ports+="$p "
	echo "$p"
}

# wait_answer URL PID: wait until URL answers any HTTP status (storage
# servers answer an unauthenticated request with 4xx), or PID is gone.
wait_answer() {
	local _
	for _ in $(seq 1 300); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" || true)" != 000 ] && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# cpu_of PID: utime+stime of PID (all threads) in seconds.
cpu_of() { awk -v clk="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f\n", ($12 + $13) / clk }' "/proc/$1/stat"; }
