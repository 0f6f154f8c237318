#!/usr/bin/env python3
"""Vendor the XAPI reference the test server is checked against into tests/fixtures/xapi/.

xapi's API definition (xenapi.json) is kept as its shape only: classes, field names, types,
defaults, qualifiers and lifecycle states, message signatures and error names, enum values;
its prose (descriptions, docs) is left out. xapi's SDK component-test pairs are copied as they
are. Usage: testbed/xapi-reference.py [SOURCE] (default ../shared/reference/xapi).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "tests" / "fixtures" / "xapi"
SPEC = Path("sdk-component-test", "spec", "xapi-24")


def shape(definition: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the test server and its conformance checks read of the definition, nothing more."""
    return [
        {
            "name": cls["name"],
            "fields": [
                {"name": f["name"], "type": f["type"], "qualifier": f["qualifier"],
                 "lifecycle": {"state": f["lifecycle"]["state"]},
                 **({"default": f["default"]} if "default" in f else {})}
                for f in cls["fields"]
            ],
            "messages": [
                {"name": m["name"], "params": [{"name": p["name"], "type": p["type"]} for p in m["params"]],
                 "result": m["result"][:1], "errors": [{"name": e["name"]} for e in m["errors"]],
                 "implicit": m["implicit"]}
                for m in cls["messages"]
            ],
            "enums": [{"name": e["name"], "values": [{"name": v["name"]} for v in e["values"]]} for e in cls["enums"]],
        }
        for cls in definition
    ]


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "reference" / "xapi"
    definition = json.loads((source / "xenapi.json").read_text())
    DEST.mkdir(parents=True, exist_ok=True)
    (DEST / "xenapi.json").write_text(json.dumps(shape(definition), separators=(",", ":"), sort_keys=True) + "\n")
    if (DEST / SPEC).exists():
        shutil.rmtree(DEST / SPEC)
    shutil.copytree(source / SPEC, DEST / SPEC)
    print(f"vendored {source} -> {DEST.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
