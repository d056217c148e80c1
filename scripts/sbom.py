#!/usr/bin/env python3
"""Writes a CycloneDX 1.5 SBOM (JSON) of the release binary's dependencies, offline, from `cargo metadata`: every
crate compiled for the binary for the target given (normal dependencies of the package, transitively), with its
version, licence and package URL. Crates that only proc-macros use have scope "excluded": they generate code at
build time and are not linked. Build-script and dev-dependencies are left out. The list is the one cargo auditable
embeds in the binary; a test compares the two.

Usage: scripts/sbom.py TARGET_TRIPLE > sbom.cdx.json
"""

import json
import subprocess
import sys
import uuid

PACKAGE = "qlik-license-reclaimer"


def main():
    target = sys.argv[1]
    metadata = json.loads(
        subprocess.check_output(
            ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", target],
        )
    )
    packages = {p["id"]: p for p in metadata["packages"]}
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
    root = next(p["id"] for p in metadata["packages"] if p["name"] == PACKAGE)

    # Crates compiled for the binary: normal dependencies, transitively. Those reached only through a proc-macro
    # generate code at build time and are not linked: CycloneDX scope "excluded" (cargo auditable, which scanners
    # read from the binary, lists them too).
    def walk(through_proc_macros):
        seen, todo = set(), [root]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            for dep in nodes[current]["deps"]:
                if None not in {k["kind"] for k in dep["dep_kinds"]}:
                    continue
                package = packages[dep["pkg"]]
                if not through_proc_macros and any("proc-macro" in t["kind"] for t in package["targets"]):
                    continue
                todo.append(dep["pkg"])
        return seen

    compiled, linked = walk(True), walk(False)

    def ref(pkg):
        return f"pkg:cargo/{pkg['name']}@{pkg['version']}"

    def component(pkg, kind="library"):
        c = {"type": kind, "bom-ref": ref(pkg), "name": pkg["name"], "version": pkg["version"], "purl": ref(pkg)}
        if pkg.get("license"):
            c["licenses"] = [{"expression": pkg["license"]}]
        if pkg.get("description"):
            c["description"] = pkg["description"].strip()
        return c

    main_package = packages[root]
    components = []
    for i in compiled - {root}:
        c = component(packages[i])
        c["scope"] = "required" if i in linked else "excluded"
        components.append(c)
    components.sort(key=lambda c: c["bom-ref"])
    dependencies = []
    for i in sorted(compiled, key=lambda i: ref(packages[i])):
        depends = sorted(
            ref(packages[d["pkg"]])
            for d in nodes[i]["deps"]
            if d["pkg"] in compiled and None in {k["kind"] for k in d["dep_kinds"]}
        )
        dependencies.append({"ref": ref(packages[i]), "dependsOn": depends})
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        # The same inputs give the same document.
        "serialNumber": "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, ref(main_package) + "#" + target)),
        "version": 1,
        "metadata": {"component": component(main_package, "application")},
        "components": components,
        "dependencies": dependencies,
    }
    json.dump(bom, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
