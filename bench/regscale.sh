#!/usr/bin/env bash
# bench/regscale.sh: registry metadata at scale, airlock side by side with
# Debian's docker-registry (distribution 2.8) on the same content.
#
# For each size in BENCH_REGSCALE_SIZES ("BLOBS:REPOS:TAGS" triples,
# default 1k/100/100, 10k/1k/1k and 100k/10k/10k), bench/regscale gen
# writes one content in both layouts (airlock's and docker-registry's):
# repository scale/tags with TAGS tagged manifests, REPOS−1 repositories
# teamNN/appNNNNN with one tagged manifest each, every manifest with its
# own config and layers, BLOBS blob files of 1 KiB in all, a tenth of them
# orphans. Then, per registry (the page cache is warm: the content was
# just written):
#   - startup: process start → first 200 from /readyz (airlock) or /v2/
#     (docker-registry), polled every 2 ms;
#   - the whole catalog paged with n=100 (following Link), then again, and
#     the tag list of scale/tags likewise: latency of the first page, the
#     median page and the slowest, in ms;
#   - RSS after paging (VmRSS and the peak VmHWM);
#   - GC: `airlock registry gc --grace 0s` (dry run) and `--delete`,
#     against `docker-registry garbage-collect --dry-run` and without;
#     wall time and max RSS under /usr/bin/time. Each side's report must
#     count the orphans (checked).
# Sizes run one after the other; each registry runs alone. Charts: GC time
# against blobs (docs/img/bench-registry-gc.svg), median page latency
# against repositories/tags (docs/img/bench-registry-pages.svg), with
# BENCH_CHART=1 (default).
#
# Run it under the bench lock: flock /tmp/airlock-bench.lock bench/regscale.sh
# Prints a Markdown report (also saved to $CACHE/bench-regscale.md).
# Environment: BENCH_REGSCALE_SIZES, BENCH_PAGE (100), BENCH_CHART (1),
# AIRLOCK_BIN (else bin/airlock is built).
# shellcheck disable=SC2016 # jq programs in single quotes
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"

sizes=${BENCH_REGSCALE_SIZES:-1000:100:100 10000:1000:1000 100000:10000:10000}
pagen=${BENCH_PAGE:-100}
chart=${BENCH_CHART:-1}
for t in docker-registry curl jq; do
	command -v "$t" >/dev/null || die "$t not installed (scripts/deps.sh)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time not installed (apt-get install time)"
airlock=$(build_airlock)
bench_workspace
(cd "$ROOT" && go build -o "$work/regscale" ./bench/regscale) || die "go build ./bench/regscale failed"
rs="$work/regscale"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
kib_of() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }

# timed NAME CMD...: run CMD under /usr/bin/time; record NAME's wall
# seconds and max RSS (KiB) in $work/NAME.time, its output in $work/NAME.out.
timed() {
	local name=$1
	shift
	/usr/bin/time -f '%e %M' -o "$work/$name.time" "$@" >"$work/$name.out" 2>&1 ||
		{ cat "$work/$name.out" >&2; die "$name failed: $*"; }
}

# serve_and_page TARGET READY_URL BASE CMD...: start CMD, time it to
# READY_URL, page catalog and tags twice; one JSON line into $results.
serve_and_page() {
	local target=$1 ready=$2 base=$3 size=$4
	shift 4
	local t0 t1 pid cat1 cat2 tag1 tag2
	t0=$(now_ms)
	"$@" >"$work/$target.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	"$rs" ready -url "$ready" -pid "$pid" || { tail -20 "$work/$target.log" >&2; die "$target did not start"; }
	t1=$(now_ms)
	cat1=$("$rs" page -url "$base/v2/_catalog" -n "$pagen")
	cat2=$("$rs" page -url "$base/v2/_catalog" -n "$pagen")
	tag1=$("$rs" page -url "$base/v2/scale/tags/tags/list" -n "$pagen")
	tag2=$("$rs" page -url "$base/v2/scale/tags/tags/list" -n "$pagen")
	jq -nc --arg t "$target" --arg s "$size" --argjson start $((t1 - t0)) \
		--argjson c1 "$cat1" --argjson c2 "$cat2" --argjson g1 "$tag1" --argjson g2 "$tag2" \
		--argjson rss "$(kib_of "$pid" VmRSS)" --argjson hwm "$(kib_of "$pid" VmHWM)" \
		'{target: $t, size: $s, start_ms: $start, catalog: $c1, catalog2: $c2, tags: $g1, tags2: $g2, rss_kib: $rss, hwm_kib: $hwm}' >>"$results"
	stop "$pid"
}

# gc_row TARGET SIZE KIND: one JSON line from $work/<target>-<kind>.time.
gc_row() {
	local wall rss
	read -r wall rss <"$work/$1-$3.time"
	jq -nc --arg t "$1" --arg s "$2" --arg k "$3" --argjson w "$wall" --argjson r "$rss" \
		'{target: $t, size: $s, gc: $k, wall_s: $w, maxrss_kib: $r}' >>"$results"
}

for size in $sizes; do
	IFS=: read -r nb nr nt <<<"$size"
	a="$work/airlock-$nb" d="$work/registry-$nb"
	log "size $size: generating"
	gen=$("$rs" gen -airlock "$a" -registry "$d" -blobs "$nb" -repos "$nr" -tags "$nt")
	orphans=$(jq -r .orphans <<<"$gen")
	manifests=$(jq -r .manifests <<<"$gen")
	jq -c --arg s "$size" '{size: $s, gen: .}' <<<"$gen" >>"$results"

	rport=$(other_port) aport=$(other_port) dport=$(other_port)
	write_airlock_config "$work/airlock.yaml" "$rport" "$aport" "$a" true
	write_registry_config "$work/registry.yml" "$dport" "$d"

	log "size $size: airlock serve"
	serve_and_page airlock "http://127.0.0.1:$aport/readyz" "http://127.0.0.1:$rport" "$size" \
		"$airlock" serve --config "$work/airlock.yaml"
	log "size $size: docker-registry serve"
	serve_and_page docker-registry "http://127.0.0.1:$dport/v2/" "http://127.0.0.1:$dport" "$size" \
		docker-registry serve "$work/registry.yml"
	for target in airlock docker-registry; do
		n=$(jq -r --arg t $target --arg s "$size" 'select(.target == $t and .size == $s and .catalog) | "\(.catalog.entries) \(.tags.entries)"' "$results")
		[ "$n" = "$nr $nt" ] || die "$target listed $n repositories and tags, want $nr $nt"
	done

	log "size $size: GC"
	timed airlock-dry "$airlock" registry gc --config "$work/airlock.yaml" --grace 0s
	grep -q "would delete $orphans blobs .* $nr repositories, $manifests manifests" "$work/airlock-dry.out" ||
		die "airlock gc: $(cat "$work/airlock-dry.out"), want $orphans blobs, $nr repositories, $manifests manifests"
	timed docker-registry-dry docker-registry garbage-collect --dry-run "$work/registry.yml"
	grep -q "$((nb - orphans)) blobs marked, $orphans blobs and 0 manifests eligible" "$work/docker-registry-dry.out" ||
		die "docker-registry garbage-collect: $(tail -1 "$work/docker-registry-dry.out"), want $orphans of $nb blobs"
	timed airlock-delete "$airlock" registry gc --config "$work/airlock.yaml" --grace 0s --delete
	grep -q "deleted $orphans blobs" "$work/airlock-delete.out" || die "airlock gc --delete: $(cat "$work/airlock-delete.out")"
	timed docker-registry-delete docker-registry garbage-collect "$work/registry.yml"
	left=$(find "$d/docker/registry/v2/blobs" -name data | wc -l)
	[ "$left" = $((nb - orphans)) ] || die "docker-registry garbage-collect left $left blobs, want $((nb - orphans))"
	left=$(find "$a/blobs" -type f | wc -l)
	[ "$left" = $((nb - orphans)) ] || die "airlock gc left $left blobs, want $((nb - orphans))"
	for target in airlock docker-registry; do
		for kind in dry delete; do gc_row "$target" "$size" "$kind"; done
	done
	rm -rf "$a" "$d"
done

# ---- report ----
report="$CACHE/bench-regscale.md"
mkdir -p "$CACHE"
q() { jq -r "$@" "$results"; }
{
	echo "## Registry metadata at scale ($(date -u +%Y-%m-%d), $(nproc) CPUs, commit $(cd "$ROOT" && git rev-parse --short HEAD))"
	echo
	echo "Command: \`bench/regscale.sh\` (BENCH_REGSCALE_SIZES='$sizes' BENCH_PAGE=$pagen). Pages of n=$pagen; ms."
	echo
	echo "| blobs / repos / tags | registry | startup ms | catalog: first page | median page | slowest | whole catalog s | 2nd pass median | tags: first page | median page | slowest | RSS MiB (peak) |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
	q 'select(.catalog) | "| \(.size | split(":") | join(" / ")) | \(.target) | \(.start_ms) | \(.catalog.first_ms) | \(.catalog.p50_ms) | \(.catalog.max_ms) | \(.catalog.total_s * 100 | round / 100) | \(.catalog2.p50_ms) | \(.tags.first_ms) | \(.tags.p50_ms) | \(.tags.max_ms) (\(.tags.pages) pages) | \(.rss_kib / 1024 | round) (\(.hwm_kib / 1024 | round)) |"'
	echo
	echo "| blobs / repos / tags | airlock gc dry run s | docker-registry dry run s | ratio | airlock gc --delete s | docker-registry delete s | ratio | max RSS MiB airlock / docker-registry (dry run) |"
	echo "|---|---|---|---|---|---|---|---|"
	for size in $sizes; do
		q --arg s "$size" -s 'map(select(.size == $s and .gc)) | (map({key: "\(.target)-\(.gc)", value: .}) | from_entries) as $m |
			"| \($s | split(":") | join(" / ")) | \($m["airlock-dry"].wall_s) | \($m["docker-registry-dry"].wall_s) | \(($m["airlock-dry"].wall_s / ([$m["docker-registry-dry"].wall_s, 0.01] | max)) * 100 | round / 100) | \($m["airlock-delete"].wall_s) | \($m["docker-registry-delete"].wall_s) | \(($m["airlock-delete"].wall_s / ([$m["docker-registry-delete"].wall_s, 0.01] | max)) * 100 | round / 100) | \($m["airlock-dry"].maxrss_kib / 1024 | round) / \($m["docker-registry-dry"].maxrss_kib / 1024 | round) |"'
	done
	echo
	echo "Content written per size (bench/regscale gen): $(q -s -c 'map(select(.gen) | .gen | {blobs, manifests, orphans, files, seconds: (.seconds | round)})')"
} | tee "$report"

if [ "$chart" = 1 ]; then
	{
		echo "blobs airlock-dry-run airlock-delete docker-registry-dry-run docker-registry-delete"
		for size in $sizes; do
			q --arg s "$size" -s 'map(select(.size == $s and .gc)) | (map({key: "\(.target)-\(.gc)", value: .wall_s}) | from_entries) as $m |
				"\($s | split(":")[0]) \($m["airlock-dry"]) \($m["airlock-delete"]) \($m["docker-registry-dry"]) \($m["docker-registry-delete"])"'
		done
	} | (cd "$ROOT" && go run ./bench/chart --title "Registry GC time against blobs (10% orphans)" --x "blobs" --y "seconds" --logx --logy) >"$ROOT/docs/img/bench-registry-gc.svg"
	{
		echo "repositories-or-tags airlock-catalog docker-registry-catalog airlock-tags docker-registry-tags-(one-page)"
		for size in $sizes; do
			q --arg s "$size" -s 'map(select(.size == $s and .catalog)) | (map({key: .target, value: .}) | from_entries) as $m |
				"\($s | split(":")[1]) \($m["airlock"].catalog.p50_ms) \($m["docker-registry"].catalog.p50_ms) \($m["airlock"].tags.p50_ms) \($m["docker-registry"].tags.p50_ms)"'
		done
	} | (cd "$ROOT" && go run ./bench/chart --title "Median page latency (n=$pagen) against repositories / tags" --x "repositories (catalog) or tags (tag list)" --y "ms per page" --logx --logy) >"$ROOT/docs/img/bench-registry-pages.svg"
	log "charts: docs/img/bench-registry-gc.svg, docs/img/bench-registry-pages.svg"
fi
