#!/usr/bin/env bash
# Builds the control-plane binaries the integration tests (tests/k8s) run: etcd and kube-apiserver, and the
# kubectl of the same release (the tests read the operator's resources with it, as an administrator would).
#
# Usage: scripts/envtest-assets.sh OUT_DIR
#
# Everything comes from the Go module proxy through the Go toolchain on PATH; nothing else is downloaded.
# Builds use the normal GOPATH module cache and GOCACHE, so a rebuild on the same machine is quick.
# If OUT_DIR already holds both binaries at the versions below, nothing is done.
# The result is the layout the envtest convention expects: point KUBEBUILDER_ASSETS at OUT_DIR.
set -euo pipefail

# Versions. k8s.io/kubernetes is not consumable as a library as-is: its go.mod requires every staging module
# (k8s.io/api, k8s.io/apiserver, ...) at v0.0.0 and replaces them with in-tree paths, which only work inside the
# kubernetes repository. A throwaway wrapper module replaces each with the matching published v0.<minor>.<patch>.
KUBERNETES_VERSION="v1.34.4" # newest v1.34 patch the module proxy serves (`go list -m -versions k8s.io/kubernetes`)
ETCD_VERSION="v3.6.16"       # go.etcd.io/etcd/server/v3, whose module root is etcd's main package
NICENESS="${ENVTEST_NICENESS:-10}"

# shellcheck disable=SC2034 # read by lib/go-build.sh
TOOL=envtest-assets
# shellcheck source-path=SCRIPTDIR source=lib/go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-build.sh"

[[ $# -eq 1 && -n $1 ]] || {
	echo "usage: $0 OUT_DIR" >&2
	exit 2
}
OUT_DIR=$1

k8s_minor_patch=${KUBERNETES_VERSION#v1.}
STAGING_VERSION="v0.${k8s_minor_patch}"
K8S_MAJOR=1
K8S_MINOR=${k8s_minor_patch%%.*}

# have NAME EXPECTED: OUT_DIR/NAME exists, runs, and its --version output mentions EXPECTED.
have() {
	local bin="$OUT_DIR/$1" out
	[[ -x $bin ]] || return 1
	out=$("$bin" --version 2>&1) || return 1
	[[ $out == *"$2"* ]]
}

need_etcd=1
need_apiserver=1
need_kubectl=1
if have etcd "Version: ${ETCD_VERSION#v}"; then need_etcd=0; fi
if have kube-apiserver "Kubernetes ${KUBERNETES_VERSION}"; then need_apiserver=0; fi
if [[ -x $OUT_DIR/kubectl && $("$OUT_DIR/kubectl" version --client 2>&1) == *"${KUBERNETES_VERSION}"* ]]; then need_kubectl=0; fi
if [[ $need_etcd == 0 && $need_apiserver == 0 && $need_kubectl == 0 ]]; then
	log "etcd ${ETCD_VERSION}, kube-apiserver and kubectl ${KUBERNETES_VERSION} already in ${OUT_DIR}"
	exit 0
fi

mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)

go_build_env

WORK=$(mktemp -d "${TMPDIR:-/tmp}/envtest-assets.XXXXXX")
cleanup() {
	heartbeat_stop
	rm -rf "$WORK"
	rm -f "$OUT_DIR/.etcd.tmp.$$" "$OUT_DIR/.kube-apiserver.tmp.$$" "$OUT_DIR/.kubectl.tmp.$$"
}
trap cleanup EXIT


# go_directives GOMOD: the `go` and `godebug` lines of a go.mod, so the wrapper builds with the same language
# version and GODEBUG defaults the upstream project builds with.
go_directives() {
	grep -E '^(go|godebug)[[:space:]]' "$1" || true
}

# build NAME PACKAGE WRAPPER_DIR [LDFLAGS...]: builds PACKAGE into OUT_DIR/NAME (atomically, via a temp name).
build() {
	local name=$1 pkg=$2 dir=$3 ldflags=$4 start=$SECONDS tmp="$OUT_DIR/.$1.tmp.$$"
	log "building ${name} from ${pkg} (nice ${NICENESS}; a cold build of kube-apiserver takes about 4 minutes on 2 cores)"
	heartbeat_start
	(cd "$dir" && nice -n "$NICENESS" go build -trimpath -ldflags="-s -w ${ldflags}" -o "$tmp" "$pkg") ||
		die "building ${name} failed"
	heartbeat_stop
	mv -f "$tmp" "$OUT_DIR/$name"
	local version=(--version)
	if [[ $name == kubectl ]]; then version=(version --client); fi
	log "built ${OUT_DIR}/${name} in $((SECONDS - start))s: $("$OUT_DIR/$name" "${version[@]}" 2>&1 | head -n 1)"
}

if [[ $need_etcd == 1 ]]; then
	gomod=$(download "go.etcd.io/etcd/server/v3@${ETCD_VERSION}")
	dir="$WORK/etcd"
	mkdir -p "$dir"
	{
		echo "module envtest-assets/etcd"
		echo
		go_directives "$gomod"
		echo
		echo "require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}"
	} >"$dir/go.mod"
	build etcd go.etcd.io/etcd/server/v3 "$dir" ""
fi

if [[ $need_apiserver == 1 || $need_kubectl == 1 ]]; then
	gomod=$(download "k8s.io/kubernetes@${KUBERNETES_VERSION}")
	# Staging modules: the k8s.io/* requirements at v0.0.0 (in a require block or on a single require line).
	staging=$(awk '
		$1 == "require" { $0 = substr($0, index($0, "require") + 7) }
		$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print $1 }
	' "$gomod" | sort -u)
	[[ -n $staging ]] || die "found no v0.0.0 staging requirements in k8s.io/kubernetes@${KUBERNETES_VERSION}'s go.mod"
	log "replacing $(wc -l <<<"$staging") staging modules with ${STAGING_VERSION}"
	dir="$WORK/kube-apiserver"
	mkdir -p "$dir"
	{
		echo "module envtest-assets/kube-apiserver"
		echo
		go_directives "$gomod"
		echo
		echo "require k8s.io/kubernetes ${KUBERNETES_VERSION}"
		echo
		echo "replace ("
		while read -r m; do printf '\t%s => %s %s\n' "$m" "$m" "$STAGING_VERSION"; done <<<"$staging"
		echo ")"
	} >"$dir/go.mod"
	# The version the binary reports (--version, /version), as the kubernetes release build stamps it.
	build_date=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "${gomod%.mod}.info")
	ldflags=""
	for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
		ldflags+=" -X ${pkg}.gitVersion=${KUBERNETES_VERSION}"
		ldflags+=" -X ${pkg}.gitMajor=${K8S_MAJOR} -X ${pkg}.gitMinor=${K8S_MINOR}"
		ldflags+=" -X ${pkg}.gitTreeState=clean"
		if [[ -n $build_date ]]; then ldflags+=" -X ${pkg}.buildDate=${build_date}"; fi
	done
	if [[ $need_apiserver == 1 ]]; then build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$dir" "$ldflags"; fi
	# kubectl shares most of its packages with kube-apiserver: built in the same module, it costs little more.
	if [[ $need_kubectl == 1 ]]; then build kubectl k8s.io/kubernetes/cmd/kubectl "$dir" "$ldflags"; fi
fi

log "done: KUBEBUILDER_ASSETS=${OUT_DIR}"
