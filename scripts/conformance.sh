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
# $CACHE/conformance-TARGET[-STORAGE].
#
# STORAGE=azblob or STORAGE=s3 keeps airlock's content on object storage
# instead: a fresh Azurite or versitygw (scripts/tools.sh) started here on
# loopback, reached through registry.storage.url.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

target=${1:-airlock}
case "$target" in
airlock | docker-registry) ;;
*) echo "usage: $0 [airlock|docker-registry]" >&2; exit 2 ;;
esac

storage=${STORAGE:-file}
case "$storage" in
file | azblob | s3) ;;
*) die "STORAGE=$storage: want file, azblob or s3" ;;
esac
[ "$storage" = file ] || [ "$target" = airlock ] || die "STORAGE=$storage applies to airlock only"

suite=$(build_tool conformance.test)
junitsum=$(build_tool junitsum)

work=$(mktemp -d)
report="$CACHE/conformance-$target"
[ "$storage" = file ] || report="$report-$storage"
rm -rf "$report" && mkdir -p "$report"
pid=""
spid=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	stop_pid "$pid"
	stop_pid "$spid"
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
	where="$work/data"
	senv=()
	case "$storage" in
	azblob)
		sport=$(free_port)
		spid=$(start_azurite "$work/azurite" "$sport" "$report/azurite.log")
		wait_http "http://127.0.0.1:$sport/$AZURITE_ACCOUNT?comp=list" "$spid" 30 any || die "azurite did not start; see $report/azurite.log"
		where="azblob://conformance?endpoint=http://127.0.0.1:$sport/$AZURITE_ACCOUNT&create=true"
		senv=("AZURE_STORAGE_ACCOUNT=$AZURITE_ACCOUNT" "AZURE_STORAGE_KEY=$AZURITE_KEY")
		;;
	s3)
		sport=$(free_port)
		skey="conf$RANDOM$RANDOM" ssecret="secret-$RANDOM-$RANDOM-$$"
		spid=$(start_versitygw "$work/versitygw" "$sport" "$report/versitygw.log" "$skey" "$ssecret")
		wait_http "http://127.0.0.1:$sport/" "$spid" 30 any || die "versitygw did not start; see $report/versitygw.log"
		where="s3://conformance?region=us-east-1&endpoint=http://127.0.0.1:$sport&create=true"
		senv=("AWS_ACCESS_KEY_ID=$skey" "AWS_SECRET_ACCESS_KEY=$ssecret" AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true)
		;;
	esac
	write_airlock_config "$work/airlock.yaml" "$port" "$aport" "$where" false conformance "$(bcrypt_hash "$password")"
	env "${senv[@]}" "$bin" serve --config "$work/airlock.yaml" >"$report/server.log" 2>&1 &
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
label=$target
[ "$storage" = file ] || label="$target on $storage"
summary=$("$junitsum" -target "$label" "$report/junit.xml")
echo "$summary"
echo "report: $report"
failed=$(head -1 <<<"$summary" | sed -E 's/.* ([0-9]+) failed.*/\1/')
if [ "$target" = airlock ] && { [ "$failed" != 0 ] || [ "$rc" != 0 ]; }; then
	[ "$failed" != 0 ] || tail -30 "$report/suite.out" >&2
	exit 1
fi
exit 0
