#!/usr/bin/env bash
# Puts Prometheus and promtool from Debian's package into OUT_DIR: the tests scrape the controller with a real
# Prometheus and run the dashboard's queries and the alerts on it, and promtool checks and unit-tests the alerts.
#
# Usage: scripts/prometheus.sh OUT_DIR
#
# The package is fetched with `apt-get download` and unpacked with `dpkg-deb -x`: nothing is installed on the
# machine, and no Go build is needed. If OUT_DIR already holds both at the pinned version, nothing is done. A lock
# file in OUT_DIR keeps concurrent callers (parallel test processes) from fetching at the same time.
set -euo pipefail

# Debian 12's package (`apt-cache policy prometheus`).
PACKAGE_VERSION="2.42.0+ds-5+deb12u1"
VERSION="2.42.0"

# shellcheck source-path=SCRIPTDIR source=lib/out-dir.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/out-dir.sh"
out_dir_setup prometheus "$@"

have() {
	local bin
	for bin in prometheus promtool; do
		[[ -x $OUT_DIR/$bin ]] || return 1
		[[ $("$OUT_DIR/$bin" --version 2>&1 | head -n 1) == *"version ${VERSION}"* ]] || return 1
	done
}

out_dir_lock_unless_done "prometheus and promtool ${VERSION}"

# shellcheck source-path=SCRIPTDIR source=lib/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"
command -v apt-get >/dev/null || die "apt-get not found: set PROMETHEUS and PROMTOOL to binaries of Prometheus ${VERSION} or later"
out_dir_workdir
deb_download "$WORK" "prometheus=${PACKAGE_VERSION}" || die "cannot fetch Debian's prometheus ${PACKAGE_VERSION}"
dpkg-deb -x "$WORK"/prometheus_*.deb "$WORK/root"
for bin in prometheus promtool; do
	install -m 0755 "$WORK/root/usr/bin/$bin" "$OUT_DIR/$bin.tmp"
	mv -f "$OUT_DIR/$bin.tmp" "$OUT_DIR/$bin"
done
have || die "the unpacked binaries do not report version ${VERSION}"
log "prometheus and promtool ${VERSION} from Debian's package in ${OUT_DIR}"
