#!/usr/bin/env bash
# Builds helm, which the chart tests (tests/k8s/chart.rs) use to lint, render and install the chart.
#
# Usage: scripts/helm.sh OUT_DIR
#
# helm comes from the Go module proxy (module helm.sh/helm/v3, package cmd/helm) through the Go toolchain on
# PATH; nothing else is downloaded. Builds use the normal GOPATH module cache and GOCACHE, so a rebuild on the same
# machine is quick. If OUT_DIR/helm already reports the version below, nothing is done. A lock file in OUT_DIR
# keeps concurrent callers (parallel test processes) from building at the same time.
# Prints nothing on stdout; progress goes to stderr.
set -euo pipefail

# Newest: `go list -m -versions helm.sh/helm/v3`.
HELM_VERSION="v3.22.0"
NICENESS="${HELM_NICENESS:-10}"

# shellcheck disable=SC2034 # read by lib/go-build.sh
TOOL=helm
# shellcheck source-path=SCRIPTDIR source=lib/go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-build.sh"

single_tool_setup "$@"

# have: OUT_DIR/helm exists, runs, and reports the pinned version.
have() { reports_version "${HELM_VERSION}*" version --short; }

build_once "helm ${HELM_VERSION}"

go_build_env

build_workspace

start=$SECONDS

module="helm.sh/helm/v3@${HELM_VERSION}"
gomod=$(download "$module")
# A wrapper module ignores its dependency's replace directives: refuse to build something helm does not release.
if grep -qE '^[[:space:]]*replace[[:space:]]' "$gomod"; then
	die "${module}'s go.mod has replace directives; this script would build other dependency versions than helm's"
fi

# Without replace directives, the selected dependency versions are exactly those of helm's release.
wrapper_module helm-build helm.sh/helm/v3 "${HELM_VERSION}" "$gomod"

# What helm's Makefile stamps: the version, and the Kubernetes version `helm template` and `helm lint` assume
# (.Capabilities.KubeVersion), derived from the client-go it is built with (v0.N.x is Kubernetes 1.N).
client_go=$(sed -n 's/^[[:space:]]*k8s\.io\/client-go[[:space:]]\{1,\}v0\.\([0-9]\{1,\}\)\..*/\1/p' "$gomod" | head -n 1)
[[ -n $client_go ]] || die "found no k8s.io/client-go requirement in ${module}'s go.mod"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
ldflags+=" -X helm.sh/helm/v3/internal/version.metadata="
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
	ldflags+=" -X ${pkg}.k8sVersionMajor=1 -X ${pkg}.k8sVersionMinor=${client_go}"
done

log "building helm ${HELM_VERSION} (nice ${NICENESS}; needs go ${required_go:-?}; a cold build takes a few minutes on 2 cores)"
heartbeat_start
(cd "$WORK" && nice -n "$NICENESS" go build -trimpath -ldflags="$ldflags" -o "$TMP_BIN" helm.sh/helm/v3/cmd/helm) ||
	die "building helm failed (go $(go env GOVERSION), helm needs go ${required_go:-?})"
heartbeat_stop
mv -f "$TMP_BIN" "$BIN"
have || die "${BIN} does not report version ${HELM_VERSION}: $("$BIN" version --short 2>&1 | head -n 1)"
log "built ${BIN} in $((SECONDS - start))s: $("$BIN" version --short 2>&1)"
