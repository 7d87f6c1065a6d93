#!/usr/bin/env bash
# deps.sh installs the Debian packages that the conformance, e2e and bench
# suites need, only when some are missing. Quiet when everything is there.
# Runs as root on Debian bookworm; apt-get update runs at most once, and only
# when an install is needed.
set -euo pipefail

pkgs=(
	docker-registry skopeo podman containerd runc
	nftables iptables iproute2 conntrack
	nginx-light haproxy squid tinyproxy unbound
	bind9-dnsutils knot-dnsutils dnsperf
	wrk hyperfine jq openssl curl ca-certificates util-linux procps
	redis-server keepalived
	etcd-server
	chromium
)

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing packages: ${missing[*]}; run as root to install them" >&2
	exit 1
fi

echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d on the test machines keeps daemons from starting on install;
# every suite starts its daemons itself on loopback with a private config.
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
