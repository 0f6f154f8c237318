"""pytest fixtures for the XAPI test server; in a test module or conftest:

    from xapi_server.fixture import xapi_server_fixture, xapi_server_http_fixture  # noqa: F401

and ask for `xapi_server` (a fresh TLS pool per test; starting one takes ~0.1 s) or
`xapi_server_http` (the same over plain HTTP) by argument name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from .schema import ReferenceMissing
from .server import XapiServer


def reference_missing(error: ReferenceMissing) -> NoReturn:
    """Skip without the XAPI reference, or fail where backends are required (CI)."""
    if os.environ.get("VFLEET_REQUIRE_BACKENDS") == "1":
        pytest.fail(str(error))
    pytest.skip(str(error))


def _serve(tmp_path: Path, tls: bool) -> Iterator[XapiServer]:
    try:
        server = XapiServer(tmp_path / "xapi", tls=tls)
    except ReferenceMissing as error:
        reference_missing(error)
    with server:
        yield server


@pytest.fixture(name="xapi_server")
def xapi_server_fixture(tmp_path: Path) -> Iterator[XapiServer]:
    yield from _serve(tmp_path, tls=True)


@pytest.fixture(name="xapi_server_http")
def xapi_server_http_fixture(tmp_path: Path) -> Iterator[XapiServer]:
    yield from _serve(tmp_path, tls=False)
