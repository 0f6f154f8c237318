"""Start-up for cron: what a headless command costs before it does any work.

Medians of interleaved runs (each round runs every command once, so load on a shared
machine hits them alike) of:
  python -c pass                                       the anchor
  python -c "import vfleet.cli.main"                   the parser module alone
  vfleet --version
  vfleet -i ONE_HOST status --interval 0 -o json       one libvirt test-driver host (no network)
  virsh -c test:///default list                        reference: the C tool for the same answer
each printed as wall and CPU (user+sys of the child) time and a ratio to the anchor, with
PASS/FAIL for `status` against the target of issue 12 (<= 6x the anchor, wall time).
Run: .venv/bin/python bench/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 6.0
INVENTORY = "hosts:\n  - name: test1\n    driver: libvirt\n    uri: test:///default\n"


def vfleet_command() -> list[str]:
    """The installed console script users run, else `python -m vfleet`."""
    script = Path(sys.executable).parent / "vfleet"
    return [str(script)] if script.exists() else [sys.executable, "-m", "vfleet"]


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run; the command must succeed."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"startup: {' '.join(argv)} exited {proc.returncode}: {stderr.strip()}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="runs of each command (at least 10)")
    args = parser.parse_args()
    runs = max(10, args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        # As installed: compiled modules (in a private cache, so the tree stays clean), whatever
        # this shell says about bytecode.
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONPYCACHEPREFIX=str(Path(tmp) / "pycache"))
        for name in ("PYTHONDONTWRITEBYTECODE", "VFLEET_READ_ONLY", "PYTHONSTARTUP"):
            env.pop(name, None)
        inv = Path(tmp) / "one-host.yaml"
        inv.write_text(INVENTORY)
        vfleet = vfleet_command()
        commands: dict[str, list[str]] = {
            "python -c pass (anchor)": [sys.executable, "-c", "pass"],
            "import vfleet.cli.main": [sys.executable, "-c", "import vfleet.cli.main"],
            "vfleet --version": [*vfleet, "--version"],
            "vfleet status --interval 0 -o json": [*vfleet, "-i", str(inv), "status", "--interval", "0", "-o", "json"],
        }
        if virsh := shutil.which("virsh"):
            commands["virsh -c test:///default list"] = [virsh, "-c", "test:///default", "list"]
        else:
            print("startup: virsh not installed: no reference figure", file=sys.stderr)
        for argv in commands.values():  # warm the page cache and write the .pyc files
            run_once(argv, env)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, argv in commands.items():
                samples[name].append(run_once(argv, env))
    wall = {name: statistics.median(w for w, _ in s) for name, s in samples.items()}
    cpu = {name: statistics.median(c for _, c in s) for name, s in samples.items()}
    anchor = "python -c pass (anchor)"
    print(f"startup: medians of {runs} interleaved runs; ratios against `python -c pass` in this run")
    print(f"  {'command':<38} {'wall ms':>8} {'ratio':>6} {'cpu ms':>8} {'ratio':>6}")
    for name in commands:
        print(
            f"  {name:<38} {wall[name] * 1000:8.1f} {wall[name] / wall[anchor]:5.2f}x"
            f" {cpu[name] * 1000:8.1f} {cpu[name] / cpu[anchor]:5.2f}x"
        )
    ratio = wall["vfleet status --interval 0 -o json"] / wall[anchor]
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(f"status --interval 0 (1 host): {ratio:.2f}x python -c pass (target <= {TARGET:g}x): {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
