#!/usr/bin/env bash
# Builds promtool, the Prometheus rules checker and unit-test runner the tests use on the chart's alerts.
#
# Usage: scripts/promtool.sh OUT_DIR
#
# promtool comes from the Go module proxy (module github.com/prometheus/prometheus, package cmd/promtool) through
# the Go toolchain on PATH; nothing else is downloaded. Builds use the normal GOPATH module cache and GOCACHE, so
# a rebuild on the same machine is quick. If OUT_DIR/promtool already reports the version below, nothing is done.
# A lock file in OUT_DIR keeps concurrent callers (parallel test processes) from building at the same time.
# Prints nothing on stdout; progress goes to stderr.
set -euo pipefail

# Prometheus publishes its Go module as v0.<major><minor two digits>.<patch>: v0.316.0 is Prometheus 3.16.0.
# Newest: `go list -m -versions github.com/prometheus/prometheus`.
PROMETHEUS_MODULE_VERSION="v0.316.0"
PROMETHEUS_VERSION="3.16.0"
# Service discovery plugins (AWS, Azure, GCE, ...) are only for `promtool check config` of scrape configs that use
# them; leaving them out (Prometheus' own build tag) roughly halves a cold build. Rules checks and rule unit tests
# do not need them.
BUILD_TAGS="remove_all_sd"
NICENESS="${PROMTOOL_NICENESS:-10}"

# shellcheck disable=SC2034 # read by lib/go-build.sh
TOOL=promtool
# shellcheck source-path=SCRIPTDIR source=lib/go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-build.sh"

single_tool_setup "$@"

# have: OUT_DIR/promtool exists, runs, and reports the pinned version.
have() { reports_version "*version ${PROMETHEUS_VERSION} *" --version; }

build_once "promtool ${PROMETHEUS_VERSION}"

go_build_env

build_workspace

start=$SECONDS

module="github.com/prometheus/prometheus@${PROMETHEUS_MODULE_VERSION}"
gomod=$(download "$module")

# Prometheus' go.mod has no replace directives, so the selected dependency versions are exactly those of its
# release.
wrapper_module promtool-build github.com/prometheus/prometheus "${PROMETHEUS_MODULE_VERSION}" "$gomod"
log "Prometheus ${PROMETHEUS_VERSION} needs go ${required_go:-?}"

# The version `promtool --version` reports, as Prometheus' release build (.promu.yml) stamps it.
build_date=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "${gomod%.mod}.info")
ldflags="-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION}"
ldflags+=" -X github.com/prometheus/common/version.Revision=${PROMETHEUS_MODULE_VERSION}"
ldflags+=" -X github.com/prometheus/common/version.Branch=HEAD"
if [[ -n $build_date ]]; then ldflags+=" -X github.com/prometheus/common/version.BuildDate=${build_date}"; fi

log "building promtool ${PROMETHEUS_VERSION} (nice ${NICENESS}, tags ${BUILD_TAGS}; a cold build takes a few minutes on 2 cores)"
heartbeat_start
(cd "$WORK" && nice -n "$NICENESS" go build -trimpath -tags "$BUILD_TAGS" -ldflags="$ldflags" -o "$TMP_BIN" \
	github.com/prometheus/prometheus/cmd/promtool) ||
	die "building promtool failed (go $(go env GOVERSION), Prometheus needs go ${required_go:-?})"
heartbeat_stop
mv -f "$TMP_BIN" "$BIN"
have || die "${BIN} does not report version ${PROMETHEUS_VERSION}: $("$BIN" --version 2>&1 | head -n 1)"
log "built ${BIN} in $((SECONDS - start))s: $("$BIN" --version 2>&1 | head -n 1)"
