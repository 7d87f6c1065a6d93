#!/usr/bin/env bash
# tools.sh installs the storage emulators the object-storage driver tests
# run against, and containerd 2 for the node e2e tests, into $AIRLOCK_TOOLS
# (default /opt/airlock-tools), each only when missing or at another version. Quiet when everything is there.
# Each tool has its own install_* function and its call below it (the Go
# ones through go_install_tool); tests
# skip when a tool is missing (AIRLOCK_REQUIRE_TOOLS=1 makes them fail).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AIRLOCK_TOOLS="${AIRLOCK_TOOLS:-/opt/airlock-tools}"

# go_install_tool NAME VERSION PKG...: go install each PKG@VERSION into
# $AIRLOCK_TOOLS/bin unless every binary (PKG's last element) is there at
# VERSION, read from its build info (go version -m). NAME is for messages.
go_install_tool() {
	local name="$1" version="$2" bin="$AIRLOCK_TOOLS/bin" have="" pkg
	shift 2
	for pkg in "$@"; do
		have=""
		if [ -x "$bin/${pkg##*/}" ]; then
			have="$(go version -m "$bin/${pkg##*/}" 2>/dev/null | awk '$1 == "mod" { print $3 }')"
		fi
		[ "$have" = "$version" ] || break
	done
	[ "$have" = "$version" ] && return 0
	command -v go >/dev/null || { echo "tools.sh: go not found; install Go to build $name" >&2; return 1; }
	echo "tools.sh: installing $name $version into $bin${have:+ (had $have)}" >&2
	mkdir -p "$bin"
	local args=()
	for pkg in "$@"; do args+=("$pkg@$version"); done
	GOBIN="$bin" go install "${args[@]}"
}

# --- azurite (Azure Blob Storage emulator; internal/storage/azblob) ------
# Installs the exact version pinned by scripts/tools/azurite/package-lock.json
# (3.35.0: 3.37 needs a newer Node than 20) with npm ci.
install_azurite() {
	local src="$ROOT/scripts/tools/azurite" dst="$AIRLOCK_TOOLS/azurite" want have=""
	want="$(node -p 'require(process.argv[1]).dependencies.azurite' "$src/package.json")"
	if [ -f "$dst/node_modules/azurite/package.json" ]; then
		have="$(node -p 'require(process.argv[1]).version' "$dst/node_modules/azurite/package.json")"
	fi
	[ "$have" = "$want" ] && [ -x "$dst/node_modules/.bin/azurite-blob" ] && return 0
	command -v npm >/dev/null || { echo "tools.sh: npm not found; install Node.js 20 (apt-get install nodejs npm)" >&2; return 1; }
	echo "tools.sh: installing azurite $want into $dst${have:+ (had $have)}" >&2
	mkdir -p "$dst"
	cp "$src/package.json" "$src/package-lock.json" "$dst/"
	(cd "$dst" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}
install_azurite
# --- end azurite ---------------------------------------------------------

# --- versitygw (S3 gateway; internal/storage/s3) -------------------------
# go install of the pinned release; the binary's --version says only "git",
# so the installed version is read from its build info (go version -m).
VERSITYGW_VERSION=v1.8.0
install_versitygw() {
	go_install_tool versitygw "$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw
}
install_versitygw
# --- end versitygw -------------------------------------------------------

# --- containerd 2 (node e2e: internal/node/e2e_containerd_test.go) --------
# go install of containerd and ctr at the pinned release (Debian ships 1.6);
# the installed version is read from the binaries' build info (go version -m).
CONTAINERD2_VERSION=v2.4.2
install_containerd2() {
	go_install_tool "containerd and ctr" "$CONTAINERD2_VERSION" \
		github.com/containerd/containerd/v2/cmd/containerd \
		github.com/containerd/containerd/v2/cmd/ctr
}
install_containerd2
# --- end containerd 2 ----------------------------------------------------

# --- helm v4 (chart tests: deploy/helm) -----------------------------------
# go install of the pinned release (helm.sh/helm/v4; the module list of the
# machines marks helm v3.22.0 as not approved); the installed version is read
# from the binary's build info (go version -m).
HELM_VERSION=v4.3.2
install_helm() {
	go_install_tool helm "$HELM_VERSION" helm.sh/helm/v4/cmd/helm
}
install_helm
# --- end helm ------------------------------------------------------------

# --- kube-apiserver (chart tests: deploy/helm/apiserver_test.go) ----------
# Built from the Go module proxy by scripts/tools/build-kube-apiserver.sh
# (k8s.io/kubernetes cannot be go installed; about 6 minutes on 2 cores the
# first time, niced); the version is stamped with -ldflags and read back.
KUBE_APISERVER_VERSION=1.34.4
install_kube_apiserver() {
	local bin="$AIRLOCK_TOOLS/bin/kube-apiserver" have=""
	if [ -x "$bin" ]; then
		have="$("$bin" --version 2>/dev/null | awk '{ print $2 }')"
	fi
	[ "$have" = "v$KUBE_APISERVER_VERSION" ] && return 0
	command -v go >/dev/null || { echo "tools.sh: go not found; install Go to build kube-apiserver" >&2; return 1; }
	echo "tools.sh: building kube-apiserver v$KUBE_APISERVER_VERSION into $AIRLOCK_TOOLS/bin${have:+ (had $have)}" >&2
	rm -f "$bin"
	nice -n 19 "$ROOT/scripts/tools/build-kube-apiserver.sh" "$AIRLOCK_TOOLS/bin" "$KUBE_APISERVER_VERSION" >/dev/null
}
install_kube_apiserver
# --- end kube-apiserver --------------------------------------------------

# --- crictl (node e2e: containerd's CRI pulls through config_path) --------
CRICTL_VERSION=v1.34.0
install_crictl() {
	go_install_tool crictl "$CRICTL_VERSION" sigs.k8s.io/cri-tools/cmd/crictl
}
install_crictl
# --- end crictl ----------------------------------------------------------
