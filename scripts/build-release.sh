#!/usr/bin/env bash
# Builds the release binary exactly as the container image does (see Dockerfile, which runs this script): a static
# binary for the musl target of this machine's architecture, `cargo auditable build --release --locked`, which embeds
# the dependency list in the binary.
#
# Usage: scripts/build-release.sh [ARCH]     (ARCH: this machine's, or aarch64 / x86_64 to cross-compile)
#
# Prints the binary's path on stdout; cargo's output and progress go to stderr. Cargo's cache under target/ makes a
# second call quick. Installs what the build needs when it is missing and can be installed: the Rust target (rustup)
# and, as root on Debian, the musl C compiler (package musl-tools) that ring's C and assembly code is built with.
#
# Why musl: a static binary needs no libc, so the image is this one file on an empty base (scripts/image/Containerfile,
# FROM scratch). Time zones need no OS files: jiff bundles the IANA database (feature tzdb-bundle-always).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'build-release: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

HOST_ARCH=$(uname -m)
ARCH=${1:-$HOST_ARCH}
case $ARCH in
x86_64 | aarch64) ;;
*) die "unknown architecture ${ARCH}: x86_64 or aarch64" ;;
esac
TARGET="${ARCH}-unknown-linux-musl"
TARGET_ENV=${TARGET//-/_} # cc-rs reads CC_<target with underscores>

# shellcheck source-path=SCRIPTDIR source=lib/apt.sh
source scripts/lib/apt.sh

# Run from a test, this script inherits what cargo sets for the test process (CARGO_MANIFEST_DIR, CARGO_PKG_*, ...).
# Build scripts track some of these (ring's reads CARGO_MANIFEST_DIR), so a build from a test and one from a shell
# would each find the other's output stale and rebuild everything: the build sees the same environment either way.
for name in $(compgen -e); do
	case $name in
	CARGO_MANIFEST_* | CARGO_PKG_* | CARGO_CRATE_NAME | CARGO_BIN_* | CARGO_TARGET_TMPDIR | CARGO_PRIMARY_PACKAGE | CARGO_RUSTC_CURRENT_DIR)
		unset "$name"
		;;
	esac
done

command -v cargo >/dev/null 2>&1 || die "cargo is not on PATH"
mkdir -p target/tools
# Tests call this script in parallel: one installs what is missing while the others wait (cargo serialises the builds).
exec 9>target/tools/.build-release.lock
flock 9
if command -v rustup >/dev/null 2>&1; then
	if ! rustup target list --installed | grep -qx "$TARGET"; then
		log "installing the Rust target ${TARGET}"
		rustup target add "$TARGET" >&2 || die "rustup target add ${TARGET} failed"
	fi
elif ! rustc --print target-libdir --target "$TARGET" >/dev/null 2>&1; then
	die "the Rust target ${TARGET} is not installed and rustup is not on PATH"
fi

# Another architecture's C compiler and linker: Debian's cross gcc (gcc-aarch64-linux-gnu, gcc-x86-64-linux-gnu).
# It builds ring's C and assembly code, and links against the Rust target's own musl (self-contained: its crt
# objects and libc.a come with the target), so the binary is static all the same.
find_cross_cc() {
	command -v "${ARCH}-linux-gnu-gcc"
}
if [[ $ARCH != "$HOST_ARCH" ]]; then
	if ! cc=$(find_cross_cc); then
		if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
			log "installing gcc-${ARCH//_/-}-linux-gnu (the C cross compiler)"
			apt_install "gcc-${ARCH//_/-}-linux-gnu" || die "apt-get install gcc-${ARCH//_/-}-linux-gnu failed"
		fi
		cc=$(find_cross_cc) || die "no C cross compiler ${ARCH}-linux-gnu-gcc: install gcc-${ARCH//_/-}-linux-gnu"
	fi
	upper=$(printf '%s' "$TARGET_ENV" | tr '[:lower:]' '[:upper:]')
	export "CC_${TARGET_ENV}=${cc}" "AR_${TARGET_ENV}=${cc%gcc}ar" "CARGO_TARGET_${upper}_LINKER=${cc}"
fi

# The musl C compiler: Debian's musl-tools provides both names.
find_cc() {
	local name
	for name in "${ARCH}-linux-musl-gcc" musl-gcc; do
		if command -v "$name" >/dev/null 2>&1; then
			printf '%s\n' "$name"
			return 0
		fi
	done
	return 1
}
if [[ $ARCH == "$HOST_ARCH" ]]; then
	if ! cc=$(find_cc); then
		if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
			log "installing musl-tools (the musl C compiler)"
			apt_install musl-tools || die "apt-get install musl-tools failed"
		fi
		cc=$(find_cc) || die "no musl C compiler (${ARCH}-linux-musl-gcc or musl-gcc): install musl-tools"
	fi
	export "CC_${TARGET_ENV}=${cc}"
fi

# cargo-auditable embeds the dependency tree in the binary (section .dep-v0, compressed JSON) for scanners that read
# binaries (Trivy, Syft, Grype, cargo audit bin). It is built once from crates.io into target/tools/.
AUDITABLE_VERSION="0.7.7"
auditable_root="$PWD/target/tools/cargo-auditable"
if ! grep -qs "\"cargo-auditable ${AUDITABLE_VERSION} " "$auditable_root/.crates.toml" ||
	[[ ! -x $auditable_root/bin/cargo-auditable ]]; then
	log "installing cargo-auditable ${AUDITABLE_VERSION} into ${auditable_root} (about half a minute)"
	cargo install --locked --quiet --version "$AUDITABLE_VERSION" --root "$auditable_root" cargo-auditable >&2 ||
		die "cargo install cargo-auditable ${AUDITABLE_VERSION} failed"
fi
export PATH="$auditable_root/bin:$PATH"
flock -u 9

start=$SECONDS
log "cargo auditable build --release --locked --target ${TARGET} (CC ${cc}; several minutes on 2 cores when cold)"
cargo auditable build --release --locked --target "$TARGET" --bin qlik-license-reclaimer >&2
target_dir=$(cargo metadata --format-version 1 --no-deps --locked | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="${target_dir:-target}/${TARGET}/release/qlik-license-reclaimer"
[[ -x $bin ]] || die "cargo reported success but ${bin} is missing"
log "built ${bin} in $((SECONDS - start))s: $(stat -c %s "$bin") bytes"
printf '%s\n' "$bin"
