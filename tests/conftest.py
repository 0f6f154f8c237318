"""Shared fixtures. Real backends come from testbed/up.sh (run by `make test`).

When VFLEET_REQUIRE_BACKENDS=1 (set by `make test` and CI) a missing backend
FAILS the test instead of skipping it, so CI can never go green on skips.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
ENV_FILE = Path(os.environ.get("VFLEET_TESTBED_ENV", ROOT / ".testbed" / "env"))


def testbed_env() -> dict[str, str]:
    if not ENV_FILE.exists():
        return {}
    pairs = (line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip(): v.strip().strip("'\"") for k, v in pairs}


def need_backend(what: str, available: bool) -> None:
    if available:
        return
    message = f"test backend not available: {what} (run testbed/up.sh, or `make test`)"
    if os.environ.get("VFLEET_REQUIRE_BACKENDS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def testbed() -> dict[str, str]:
    env = testbed_env()
    need_backend("testbed (.testbed/env)", bool(env))
    return env


@pytest.fixture(scope="session")
def libvirt_module() -> object:
    try:
        import libvirt
    except ImportError:
        need_backend("libvirt-python", False)
    return libvirt


@pytest.fixture(scope="session", autouse=True)
async def _release_libvirt_before_the_loop_closes() -> object:
    """libvirt frees connections (and their event-loop timers) when Python drops the
    last reference; do that while the session's loop still runs, not at exit."""
    yield None
    import gc

    gc.collect()
    libvirtaio = sys.modules.get("libvirtaio")
    impl = libvirtaio.getCurrentImpl() if libvirtaio else None
    if impl is not None:
        import asyncio
        import contextlib

        with contextlib.suppress(TimeoutError):  # a callback of a dead connection may never fire
            await asyncio.wait_for(impl.drain(), 5)
