#!/usr/bin/env python3
"""Checks a multi-arch OCI archive (scripts/build-image-index.sh): an image index naming linux/amd64 and linux/arm64,
each manifest's binary an ELF of that machine, statically linked (no program interpreter). Writes each binary to
OUT_DIR/<arch>/qlik-license-reclaimer and prints one line per platform.

Usage: scripts/check-image-index.py ARCHIVE OUT_DIR
"""

import io
import json
import os
import struct
import sys
import tarfile

INDEX = "application/vnd.oci.image.index.v1+json"
BINARY = "usr/local/bin/qlik-license-reclaimer"
# ELF e_machine values.
MACHINES = {"amd64": 62, "arm64": 183}
PT_INTERP = 3


def fail(message):
    sys.exit(f"check-image-index: {message}")


def elf_facts(data):
    """(e_machine, has an interpreter) of a 64-bit little-endian ELF."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        fail("the binary is not a 64-bit little-endian ELF")
    machine = struct.unpack_from("<H", data, 18)[0]
    phoff = struct.unpack_from("<Q", data, 32)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    interp = any(
        struct.unpack_from("<I", data, phoff + i * phentsize)[0] == PT_INTERP for i in range(phnum)
    )
    return machine, interp


def main():
    if len(sys.argv) != 3:
        fail("usage: check-image-index.py ARCHIVE OUT_DIR")
    archive, out_dir = sys.argv[1], sys.argv[2]
    with tarfile.open(archive) as tar:

        def blob(digest):
            algorithm, hex_digest = digest.split(":", 1)
            member = tar.extractfile(f"blobs/{algorithm}/{hex_digest}")
            if member is None:
                fail(f"blob {digest} missing")
            return member.read()

        top = json.loads(tar.extractfile("index.json").read())
        entries = top.get("manifests", [])
        # oci-archive: index.json may point at the image index, or list the platform manifests itself.
        if len(entries) == 1 and entries[0].get("mediaType") == INDEX:
            entries = json.loads(blob(entries[0]["digest"])).get("manifests", [])
        platforms = {}
        for entry in entries:
            platform = entry.get("platform", {})
            if platform.get("os") != "linux":
                fail(f"a manifest for {platform}")
            platforms[platform.get("architecture")] = entry["digest"]
        if sorted(platforms) != sorted(MACHINES):
            fail(f"the index names {sorted(platforms)}, not amd64 and arm64")
        for arch, digest in sorted(platforms.items()):
            manifest = json.loads(blob(digest))
            config = json.loads(blob(manifest["config"]["digest"]))
            if config.get("architecture") != arch:
                fail(f"{arch}: its config says {config.get('architecture')}")
            binary = None
            for layer in manifest["layers"]:
                with tarfile.open(fileobj=io.BytesIO(blob(layer["digest"]))) as files:
                    for member in files.getmembers():
                        if member.name.lstrip("./") == BINARY:
                            binary = files.extractfile(member).read()
            if binary is None:
                fail(f"{arch}: no {BINARY} in its layers")
            machine, interp = elf_facts(binary)
            if machine != MACHINES[arch]:
                fail(f"{arch}: ELF machine {machine}, expected {MACHINES[arch]}")
            if interp:
                fail(f"{arch}: the binary asks for a program interpreter: not static")
            path = os.path.join(out_dir, arch, "qlik-license-reclaimer")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(binary)
            os.chmod(path, 0o755)
            print(f"linux/{arch}: ELF machine {machine}, static, {len(binary)} bytes -> {path}")


if __name__ == "__main__":
    main()
