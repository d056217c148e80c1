#!/usr/bin/env bash
# Builds the operator's image for linux/amd64 and linux/arm64 as one OCI image index (a multi-arch image), without a
# container daemon: for each architecture the static release binary (scripts/build-release.sh, cross-compiled for
# the one this machine is not) and its SBOM on an empty base, as scripts/build-image.sh builds the single image.
# The Containerfile only copies files, so nothing runs under emulation while building.
#
# Usage: scripts/build-image-index.sh [OUT]
#        (default: target/image/qlik-license-reclaimer-<version>-multiarch.oci.tar; prints OUT's path)
#
# Not part of CI: the second architecture's release build takes about ten minutes on 2 cores. scripts/release-check.sh
# builds the index and checks both binaries (README, "Releasing").
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'build-image-index: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
[[ -n $VERSION ]] || die "cannot read the version from Cargo.toml"
IMAGE_DIR="$PWD/target/image"
OUT=${1:-"$IMAGE_DIR/qlik-license-reclaimer-${VERSION}-multiarch.oci.tar"}
mkdir -p "$(dirname "$OUT")" "$IMAGE_DIR"
OUT="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"

# shellcheck source-path=SCRIPTDIR source=lib/apt.sh
source scripts/lib/apt.sh
if ! command -v buildah >/dev/null 2>&1; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
		log "installing buildah (Debian's package)"
		apt_install buildah || die "apt-get install buildah failed"
	else
		die "buildah is not installed (Debian: apt-get install buildah)"
	fi
fi

exec 9>"$IMAGE_DIR/.lock"
flock 9
buildah_() {
	buildah --storage-driver vfs --root "$IMAGE_DIR/storage" --runroot "$IMAGE_DIR/run" "$@"
}
tag="localhost/qlik-license-reclaimer:${VERSION}"
list="localhost/qlik-license-reclaimer-index:${VERSION}"
buildah_ manifest rm "$list" >/dev/null 2>&1 || true
buildah_ manifest create "$list" >/dev/null

for arch in x86_64 aarch64; do
	case $arch in
	x86_64) platform=amd64 ;;
	aarch64) platform=arm64 ;;
	esac
	flock -u 9
	bin=$(scripts/build-release.sh "$arch")
	flock 9
	context=$(mktemp -d "${TMPDIR:-/tmp}/build-image-index.XXXXXX")
	cp "$bin" "$context/qlik-license-reclaimer"
	python3 scripts/sbom.py "${arch}-unknown-linux-musl" >"$context/sbom.cdx.json" || die "writing the SBOM failed"
	log "building ${tag} for linux/${platform}"
	buildah_ bud --isolation chroot --quiet --platform "linux/${platform}" --build-arg "VERSION=${VERSION}" \
		--manifest "$list" -f scripts/image/Containerfile -t "${tag}-${platform}" "$context" >&2
	rm -rf "$context"
done
rm -f "$OUT"
buildah_ manifest push --all --quiet "$list" "oci-archive:${OUT}:${tag}" >&2
log "wrote ${OUT} ($(du -h "$OUT" | cut -f1)): linux/amd64 and linux/arm64"
printf '%s\n' "$OUT"
