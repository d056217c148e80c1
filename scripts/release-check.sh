#!/usr/bin/env bash
# The release check beside CI: the tests of the amd64 release binary and its image (QLR_RELEASE_TESTS=1: static,
# small, running alone in an empty root as uid 65532; the image's archive, SBOM and `demo` inside it), then the
# multi-arch image (scripts/build-image-index.sh), its index and both binaries (scripts/check-image-index.py:
# linux/amd64 and linux/arm64, each an ELF of its machine, static), and the arm64 binary's `demo` under qemu-user
# (Debian's qemu-user-static, installed as root when missing) against its bundled simulator. Not in .ci/run: the two
# release builds take about twenty minutes on 2 cores, and CI stays under twenty in all.
#
# Usage: scripts/release-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'release-check: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# shellcheck source-path=SCRIPTDIR source=lib/apt.sh
source scripts/lib/apt.sh
if ! command -v qemu-aarch64-static >/dev/null 2>&1; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
		log "installing qemu-user-static (Debian's package)"
		apt_install qemu-user-static || die "apt-get install qemu-user-static failed"
	else
		die "qemu-aarch64-static is not installed (Debian: apt-get install qemu-user-static)"
	fi
fi

for test in the_binary_needs_no_os_time_zone_files the_image_is_one_binary_on_scratch_run_as_65532; do
	log "QLR_RELEASE_TESTS=1: $test"
	QLR_RELEASE_TESTS=1 cargo test --locked --test k8s -- --exact "$test" >&2 ||
		die "$test failed with the release binary"
done

archive=$(scripts/build-image-index.sh)
out=$(mktemp -d "${TMPDIR:-/tmp}/release-check.XXXXXX")
trap 'rm -rf "$out"' EXIT
python3 scripts/check-image-index.py "$archive" "$out" || die "the image index is not what it should be"

log "running the arm64 binary's demo under qemu-aarch64-static"
demo="$out/demo.txt"
qemu-aarch64-static "$out/arm64/qlik-license-reclaimer" demo --users 200 >"$demo" 2>&1 ||
	die "the arm64 demo failed: $(tail -5 "$demo")"
grep -q "would be reclaimed" "$demo" || die "the arm64 demo reported no run: $(tail -5 "$demo")"
log "the arm64 demo ran: $(grep -m1 "would be reclaimed" "$demo")"
log "release check passed: ${archive}"
