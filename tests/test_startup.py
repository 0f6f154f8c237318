"""Start-up for cron: a command imports what it uses and nothing else (bench/startup.py times it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vfleet.cli import args as cli_args
from vfleet.core import config, inventory
from vfleet.core.audit import chain
from vfleet.core.errors import ExitCode
from vfleet.core.models import LIFECYCLE_VERBS, Verb

CLI_MODULES = {"vfleet.cli", "vfleet.cli.main", "vfleet.cli.args"}  # the parser and its light arguments
MACHINERY = (
    "textual",
    "vfleet.app",
    "vfleet.core.operations",
    "vfleet.core.policy",
    "vfleet.core.audit",
    "vfleet.core.config",
    "vfleet.core.preflight",
    "vfleet.core.keyref",
    "vfleet.core.demo",
    "vfleet.core.thresholds",  # `check` and the console colour by thresholds; a status row sorts without them
    "vfleet.core.console",  # serial consoles: `console` and the TUI open them, polls never do
    "vfleet.drivers.libvirt.console",
    "vfleet.drivers.sim",
    "vfleet.drivers.esxi",
    "vfleet.drivers.xen",
    "vfleet.drivers.ssh",
    "asyncssh",
    "pyVmomi",
)


def loaded_after(code: str) -> tuple[int, list[str], str]:
    """Run `code` in a fresh interpreter; its exit code, the modules it ended with, its stdout."""
    probe = (
        "import sys, json, io\n"
        f"{code}\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    lines = run.stderr.strip().splitlines()
    assert lines, f"no module list: {run.stderr}"
    return run.returncode, json.loads(lines[-1]), run.stdout


def test_status_imports_no_other_command_and_no_action_machinery(tmp_path: Path) -> None:
    pytest.importorskip("libvirt")
    inv = tmp_path / "one.yaml"
    inv.write_text("hosts:\n  - {name: t1, driver: libvirt, uri: 'test:///default'}\n")
    rc, modules, stdout = loaded_after(
        "from vfleet.cli import main\n"
        f"rc = main(['-i', {str(inv)!r}, 'status', '--interval', '0', '-o', 'json'])"
    )
    assert rc == ExitCode.OK
    assert [d["name"] for d in json.loads(stdout)["domains"]] == ["test"]  # it did the work it was asked
    assert "vfleet.drivers.libvirt.driver" in modules  # ...with the driver it needs
    assert [m for m in modules if m.startswith(MACHINERY)] == []
    other_commands = [m for m in modules if m.startswith("vfleet.cli.") and m not in CLI_MODULES]
    assert other_commands == [], "a command's handler module loads only when that command runs"


def test_the_parser_alone_loads_no_engine_backend_or_yaml() -> None:
    rc, modules, _ = loaded_after("from vfleet.cli.main import build_parser\nbuild_parser(); rc = 0")
    assert rc == 0
    heavy = ("asyncio", "yaml", "libvirt", "dataclasses", "vfleet.core.engine", "vfleet.core.models", "vfleet.core.selector")
    assert [m for m in heavy if m in modules] == []


def test_act_still_loads_its_machinery_when_it_runs(tmp_path: Path) -> None:
    """The other side of the coin: the lazy handler is found and run (a dry run, nothing is sent)."""
    pytest.importorskip("libvirt")
    inv = tmp_path / "one.yaml"
    inv.write_text("hosts:\n  - {name: t1, driver: libvirt, uri: 'test:///default'}\n")
    rc, modules, stdout = loaded_after(
        "from vfleet.cli import main\n"
        f"rc = main(['-i', {str(inv)!r}, 'act', 'pause', 'test', '--dry-run', '-o', 'json',"
        f" '--audit-log', {str(tmp_path / 'audit.jsonl')!r}])"
    )
    assert rc == ExitCode.OK
    assert json.loads(stdout)["plan"][0]["would"] == "run"
    assert {"vfleet.cli.act", "vfleet.core.operations", "vfleet.core.audit"} <= set(modules)


def test_the_light_copies_of_names_match_their_owners() -> None:
    """args.py spells a few names out rather than import their heavy owners: they must not drift."""
    assert tuple(v.value for v in LIFECYCLE_VERBS) == cli_args.VERBS
    assert tuple(v.value for v in Verb) == cli_args.ALL_VERBS
    assert cli_args.INVENTORY_ENV == inventory.ENV_VAR
    assert cli_args.CONFIG_ENV == config.ENV_VAR
    assert (cli_args.AUDIT_LOG_ENV, cli_args.AUDIT_KEY_ENV) == (chain.ENV_VAR, chain.KEY_ENV_VAR)
