"""Every recorded Xen output parses: the shared capture and the one `make xen-fixtures`
re-records from the real dom0 (tests/fixtures/xen), so a refresh is checked at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from sshhost import load_session, split_stderr
from vfleet.drivers.xen.parse import parse_xentop, parse_xl_info, parse_xl_list, parse_xl_uptime

FIXTURES = Path(__file__).parent / "fixtures"
SESSIONS = [FIXTURES / "xen-recorded" / "dom0-session.txt", FIXTURES / "xen" / "dom0-session.txt",
            FIXTURES / "xen-recorded" / "identity-session.txt"]


@pytest.mark.parametrize("session", SESSIONS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_recorded_xl_and_xentop_output_parses(session: Path) -> None:
    blocks = [b for b in load_session(session) if b.rc == 0]
    lists = [b for b in blocks if b.command in ("xl list", "xl list -v")]
    tops = [b for b in blocks if b.command.startswith("xentop -b")]
    infos = [b for b in blocks if b.command == "xl info"]
    assert lists and tops and (infos or "identity" in session.stem), f"{session} lacks xl list / xentop / xl info"
    for block in lists:
        rows = parse_xl_list(block.output, "dom0")
        assert any(r.name == "Domain-0" and r.domid == 0 for r in rows)
        assert all(r.vcpus >= 0 and r.mem_mib >= 0 for r in rows)
    for block in tops:
        iterations = 2 if "-i 2" in block.command else 1
        rows = parse_xentop(block.output, "dom0", iterations=iterations)
        assert any(r.name.startswith("Domain-0") for r in rows)
    for block in (b for b in blocks if b.command == "xl uptime"):
        uptimes = parse_xl_uptime(split_stderr(block.output)[0], "dom0")  # libxl's errors go to stderr
        assert uptimes[0][0] == "Domain-0" and all(seconds >= 0 for _, seconds in uptimes.values())
    verbose = [r for b in lists if b.command == "xl list -v" for r in parse_xl_list(b.output, "dom0")]
    assert verbose and all(r.uuid is not None for r in verbose)
    for block in infos:
        facts = parse_xl_info(block.output, "dom0")
        assert facts.hypervisor == "xen" and facts.version and facts.version.startswith("4.")
        assert facts.cpus and facts.cpus > 0 and facts.memory_bytes and facts.memory_bytes > 0
