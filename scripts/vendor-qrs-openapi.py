#!/usr/bin/env python3
"""Extracts the part of Qlik's Repository API definition this product relies on.

Usage: scripts/vendor-qrs-openapi.py Repository.json > docs/qrs-openapi/repository-subset.json

The input is the Open API (Swagger 2.0) definition a Qlik Sense Enterprise on Windows site serves at
/qrs/about/openapi/main; docs/qrs-openapi/README.md names the copy this subset came from and its licence. The output
keeps the paths under the prefixes below (every method, as the definition gives it) and every definition they
reach, so that tests/e2e/contract.rs can hold each request the client sends to it. Keys are sorted so that a new
extraction shows as a small diff.
"""

import json
import re
import sys

# The endpoints the client uses or may use: licences and their selections, users, apps and app objects (authoring
# evidence), the access type overview and the API's own description.
KEEP = re.compile(
    r"^/("
    r"about|about/api/description"
    r"|license/accesstypeoverview"
    r"|license/(professional|analyzer|user|login)access(type|group)(/.*)?"
    r"|selection/license/(professional|analyzer|user|login)access(type|group)"
    r"|selection/\{id\}"
    r"|selection/\{id\}/license/(professional|analyzer|user|login)access(type|group)(/.*)?"
    r"|user(/(count|full|table|many|\{id\}))?"
    r"|app(/(count|full|table|\{id\}))?"
    r"|app/object(/(count|full|table|\{id\}))?"
    r")$"
)


def refs(node, found):
    """Adds the definition names `node` refers to, at any depth."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            found.add(ref[len("#/definitions/"):])
        for value in node.values():
            refs(value, found)
    elif isinstance(node, list):
        for value in node:
            refs(value, found)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        full = json.load(f)
    paths = {p: ops for p, ops in full["paths"].items() if KEEP.match(p)}
    wanted = set()
    refs(paths, wanted)
    # A filter walks the entity model: a condensed reference stands for its full entity (UserCondensed -> User).
    todo = list(wanted)
    while todo:
        name = todo.pop()
        reached = set()
        refs(full["definitions"].get(name, {}), reached)
        if name.endswith("Condensed"):
            reached.add(name[: -len("Condensed")])
        for r in reached - wanted:
            if r in full["definitions"]:
                wanted.add(r)
                todo.append(r)
    subset = {
        "swagger": full["swagger"],
        "info": full["info"],
        "basePath": full["basePath"],
        "paths": paths,
        "definitions": {name: full["definitions"][name] for name in sorted(wanted) if name in full["definitions"]},
    }
    json.dump(subset, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
