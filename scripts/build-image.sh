#!/usr/bin/env bash
# Builds the operator's image without a container daemon: buildah (Debian's package) with chroot isolation and
# vfs storage, from scratch, holding the static release binary (scripts/build-release.sh) and its CycloneDX SBOM.
# Writes an OCI archive to OUT and the SBOM beside it (OUT's name with .cdx.json); prints OUT's path on stdout.
#
# Usage: scripts/build-image.sh [OUT]      (default: target/image/qlik-license-reclaimer-<version>.oci.tar)
#
# Needs buildah: on Debian, as root, it is installed when missing (apt-get install buildah). Storage lives under
# target/image/ so nothing outside the repository is touched.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'build-image: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
[[ -n $VERSION ]] || die "cannot read the version from Cargo.toml"
IMAGE_DIR="$PWD/target/image"
OUT=${1:-"$IMAGE_DIR/qlik-license-reclaimer-${VERSION}.oci.tar"}
mkdir -p "$(dirname "$OUT")" "$IMAGE_DIR"
OUT="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"
SBOM="${OUT%.oci.tar}"
SBOM="${SBOM%.tar}.cdx.json"

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

bin=$(scripts/build-release.sh)
target=$(basename "$(dirname "$(dirname "$bin")")")

CONTEXT=$(mktemp -d "${TMPDIR:-/tmp}/build-image.XXXXXX")
trap 'rm -rf "$CONTEXT"' EXIT
cp "$bin" "$CONTEXT/qlik-license-reclaimer"
python3 scripts/sbom.py "$target" >"$CONTEXT/sbom.cdx.json" || die "writing the SBOM failed"
cp "$CONTEXT/sbom.cdx.json" "$SBOM"

# One lock: two builds would share the storage.
exec 9>"$IMAGE_DIR/.lock"
flock 9
buildah_() {
	buildah --storage-driver vfs --root "$IMAGE_DIR/storage" --runroot "$IMAGE_DIR/run" "$@"
}
tag="localhost/qlik-license-reclaimer:${VERSION}"
log "building ${tag} with buildah (chroot isolation, vfs storage)"
buildah_ bud --isolation chroot --quiet --build-arg "VERSION=${VERSION}" \
	-f scripts/image/Containerfile -t "$tag" "$CONTEXT" >&2
rm -f "$OUT"
buildah_ push --quiet "$tag" "oci-archive:${OUT}:${tag}" >&2
log "wrote ${OUT} ($(du -h "$OUT" | cut -f1)) and ${SBOM}"
printf '%s\n' "$OUT"
