"""The README's inventory key reference is generated from the specs and never drifts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vfleet.core import inventory, keyref
from vfleet.core.inventory import key_sections
from vfleet.drivers import registry

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_key_reference_is_the_generated_one() -> None:
    text = README.read_text()
    assert text.count(keyref.README_BEGIN) == 1 and text.count(keyref.README_END) == 1
    start = text.index(keyref.README_BEGIN)
    block = text[start : text.index(keyref.README_END) + len(keyref.README_END)] + "\n"
    assert block == keyref.markdown(), (
        "README.md's key reference is stale: replace it with `vfleet inventory keys --markdown`"
    )


def test_the_reference_names_every_key_the_parser_accepts() -> None:
    markdown = keyref.markdown()
    for _where, keys in key_sections():
        for key in keys:
            assert f"| `{key.name}` |" in markdown
            for sub in key.keys:
                assert f"| `{key.name}.{sub.name}` |" in markdown
    for name in registry.BUILTIN:
        spec = registry.get(name)
        assert f"| `{name}` | {spec.summary} |" in markdown
        for option in spec.options:
            assert f"| `{name}` | `{option.name}` |" in markdown


def test_inventory_keys_markdown_prints_it() -> None:
    result = subprocess.run([sys.executable, "-m", "vfleet", "inventory", "keys", "--markdown"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and result.stdout == keyref.markdown(), result.stderr


def test_documented_defaults_are_the_ones_a_host_gets() -> None:
    host = inventory.parse("hosts:\n  - {name: a, driver: xen_xl, address: h}\n").hosts[0]
    for _where, keys in key_sections():
        for key in keys:
            if key.default is not None and hasattr(host, key.name):
                assert getattr(host, key.name) == key.default, key.name
            for sub in key.keys:
                assert getattr(getattr(host, key.name), sub.name) == sub.default, f"{key.name}.{sub.name}"
    for option in registry.get("xen_xl").options:
        assert host.options[option.name] == option.default
