#!/usr/bin/env bash
# Puts a Lua 5.4 interpreter from Debian's packages into OUT_DIR: the tests run the Argo CD health checks and
# actions (deploy/argocd/) with a real Lua, as Argo CD's own tests do.
#
# Usage: scripts/lua.sh OUT_DIR
#
# The packages (the interpreter and its shared library) are fetched with `apt-get download` and unpacked with
# `dpkg-deb -x`: nothing is installed on the machine. OUT_DIR/lua runs the interpreter with its library beside it.
# If OUT_DIR already holds it at the pinned version, nothing is done. A lock file keeps concurrent callers apart.
set -euo pipefail

# Debian 12's packages (`apt-cache policy lua5.4`).
PACKAGE_VERSION="5.4.4-3+deb12u1"
VERSION="5.4"

# shellcheck source-path=SCRIPTDIR source=lib/out-dir.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/out-dir.sh"
out_dir_setup lua "$@"

have() { [[ -x $OUT_DIR/lua ]] && [[ $("$OUT_DIR/lua" -v 2>&1) == "Lua ${VERSION}"* ]]; }

out_dir_lock_unless_done "lua ${VERSION}"

# shellcheck source-path=SCRIPTDIR source=lib/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"
command -v apt-get >/dev/null || die "apt-get not found: set QLR_LUA to a Lua ${VERSION} interpreter"
out_dir_workdir
deb_download "$WORK" "lua5.4=${PACKAGE_VERSION}" "liblua5.4-0=${PACKAGE_VERSION}" ||
	die "cannot fetch Debian's lua5.4 ${PACKAGE_VERSION}"
for deb in "$WORK"/*.deb; do
	dpkg-deb -x "$deb" "$WORK/root"
done
mkdir -p "$OUT_DIR/lua-root"
cp -a "$WORK/root/." "$OUT_DIR/lua-root/"
libdir=$(dirname "$(find "$OUT_DIR/lua-root" -name 'liblua5.4.so.0*' | head -n 1)")
cat >"$OUT_DIR/lua.tmp" <<WRAPPER
#!/bin/sh
LD_LIBRARY_PATH="${libdir}\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "${OUT_DIR}/lua-root/usr/bin/lua5.4" "\$@"
WRAPPER
chmod 0755 "$OUT_DIR/lua.tmp"
mv -f "$OUT_DIR/lua.tmp" "$OUT_DIR/lua"
have || die "the unpacked interpreter does not report Lua ${VERSION}"
log "lua ${VERSION} from Debian's packages in ${OUT_DIR}"
