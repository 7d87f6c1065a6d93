#!/usr/bin/env bash
# conformance.sh [airlock|docker-registry]: run the OCI distribution-spec
# conformance suite (all four workflows) against a fresh instance of the
# target on a free loopback port with a temporary storage directory.
#
# airlock runs with anonymousPull false and a user "conformance" (bcrypt hash
# generated here), so every request of the suite is authenticated.
# docker-registry is Debian's distribution 2.8.2 with delete enabled: the
# baseline (62 passed, 12 failed, 5 skipped).
#
# Prints "conformance TARGET: N passed, N failed, N skipped" and every failed
# spec. Exits non-zero when airlock fails any spec (or the suite cannot run);
# for docker-registry only when the suite cannot run.
# The report (junit.xml, report.html, suite output, server log) stays in
# $CACHE/conformance-TARGET.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

target=${1:-airlock}
case "$target" in
airlock | docker-registry) ;;
*) echo "usage: $0 [airlock|docker-registry]" >&2; exit 2 ;;
esac

suite=$(build_tool conformance.test)
junitsum=$(build_tool junitsum)

work=$(mktemp -d)
report="$CACHE/conformance-$target"
rm -rf "$report" && mkdir -p "$report"
pid=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	stop_pid "$pid"
	rm -rf "$work"
}
trap cleanup EXIT

port=$(free_port)
creds=()
case "$target" in
airlock)
	bin=$(build_airlock)
	aport=$(free_port)
	while [ "$aport" = "$port" ]; do aport=$(free_port); done
	password="conf-$RANDOM-$RANDOM-$$"
	write_airlock_config "$work/airlock.yaml" "$port" "$aport" "$work/data" false conformance "$(bcrypt_hash "$password")"
	"$bin" serve --config "$work/airlock.yaml" >"$report/server.log" 2>&1 &
	pid=$!
	wait_http "http://127.0.0.1:$aport/readyz" "$pid" 30 || { tail -20 "$report/server.log" >&2; exit 1; }
	creds=(OCI_USERNAME=conformance "OCI_PASSWORD=$password")
	;;
docker-registry)
	write_registry_config "$work/registry.yml" "$port" "$work/data"
	docker-registry serve "$work/registry.yml" >"$report/server.log" 2>&1 &
	pid=$!
	wait_http "http://127.0.0.1:$port/v2/" "$pid" 30 || { tail -20 "$report/server.log" >&2; exit 1; }
	;;
esac

set +e
(cd "$report" && env "${creds[@]}" \
	OCI_ROOT_URL="http://127.0.0.1:$port" \
	OCI_NAMESPACE=conformance/test \
	OCI_CROSSMOUNT_NAMESPACE=conformance/other \
	OCI_TEST_PULL=1 OCI_TEST_PUSH=1 OCI_TEST_CONTENT_DISCOVERY=1 OCI_TEST_CONTENT_MANAGEMENT=1 \
	OCI_REPORT_DIR="$report" \
	"$suite" -test.timeout 5m >"$report/suite.out" 2>&1)
rc=$?
set -e

if [ ! -s "$report/junit.xml" ]; then
	tail -30 "$report/suite.out" >&2
	die "the suite wrote no junit.xml (exit $rc); see $report"
fi
summary=$("$junitsum" -target "$target" "$report/junit.xml")
echo "$summary"
echo "report: $report"
failed=$(head -1 <<<"$summary" | sed -E 's/.* ([0-9]+) failed.*/\1/')
if [ "$target" = airlock ] && { [ "$failed" != 0 ] || [ "$rc" != 0 ]; }; then
	[ "$failed" != 0 ] || tail -30 "$report/suite.out" >&2
	exit 1
fi
exit 0
