"""Real Prometheus and VictoriaMetrics servers for tests (Debian's packages), on loopback.

    with start_prometheus(["127.0.0.1:9708"]) as base_url: ...
    with start_victoria_metrics(["127.0.0.1:9708"]) as base_url: ...

or the `promstack` fixture: `promstack.prometheus(targets) -> base_url`, stopped at teardown.
Each server gets a generated config (scrape_interval 1s), a temp dir and a free port; the
context returns once /api/v1/query answers and every target has been scraped up.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from conftest import need_backend

START_TIMEOUT = 60.0  # seconds: the machine is shared and loaded


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape_config(targets: Sequence[str], job: str = "vfleet", *, rules: bool = True, interval: str = "1s") -> str:
    """rules=False for VictoriaMetrics, whose scraper refuses `evaluation_interval`."""
    listed = ", ".join(json.dumps(t) for t in targets)
    return (
        f"global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n"
        + ("  evaluation_interval: 1s\n" if rules else "")
        + f"scrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: [{listed}]\n"
    )


def query(base_url: str, promql: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """An instant query's result vector (raises on an API error)."""
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        body = json.load(answer)
    if body.get("status") != "success":
        raise AssertionError(f"{promql}: {body}")
    return list(body["data"]["result"])


def wait_for(
    what: str, predicate: Any, timeout: float = START_TIMEOUT, proc: subprocess.Popen[bytes] | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the server exited with {proc.returncode}")
        try:
            result = predicate()
        except (OSError, ValueError, AssertionError) as exc:
            last, result = exc, None
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:g} s (last: {last!r})")


def _targets_up(base_url: str, count: int) -> bool:
    return len([s for s in query(base_url, "up == 1")]) >= count


@contextlib.contextmanager
def _server(binary: str, argv: Sequence[str], base_url: str, targets: Sequence[str], tmp: Path) -> Iterator[str]:
    if shutil.which(binary) is None:
        need_backend(f"{binary} (Debian package)", False)
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen([binary, *argv], stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_for(f"{binary} answers", lambda: query(base_url, "1") is not None, proc=proc)
            wait_for(f"{binary} scrapes {list(targets)} up", lambda: _targets_up(base_url, len(targets)), proc=proc)
        except AssertionError as exc:
            log.flush()
            raise AssertionError(f"{exc}\n--- {binary} log ---\n{(tmp / 'server.log').read_text()[-3000:]}") from None
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextlib.contextmanager
def start_prometheus(targets: Sequence[str], *, interval: str = "1s") -> Iterator[str]:
    """`interval`: the scrape interval (the bench uses a real deployment's 15s)."""
    with tempfile.TemporaryDirectory(prefix="vfleet-prom-") as tmp_dir:
        tmp = Path(tmp_dir)
        (tmp / "prometheus.yml").write_text(scrape_config(targets, interval=interval))
        port = free_port()
        argv = [
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with _server("prometheus", argv, f"http://127.0.0.1:{port}", targets, tmp) as url:
            yield url


@contextlib.contextmanager
def start_victoria_metrics(targets: Sequence[str], *, interval: str = "1s") -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="vfleet-vm-") as tmp_dir:
        tmp = Path(tmp_dir)
        (tmp / "scrape.yml").write_text(scrape_config(targets, rules=False, interval=interval))
        port = free_port()
        argv = [
            f"-promscrape.config={tmp / 'scrape.yml'}",
            f"-storageDataPath={tmp / 'data'}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-search.latencyOffset=0s",  # show samples at once, not 30 s late
            "-search.disableCache",  # answer from the newest samples, as Prometheus does
        ]
        with _server("victoria-metrics", argv, f"http://127.0.0.1:{port}", targets, tmp) as url:
            yield url


class PromStack:
    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()

    def prometheus(self, targets: Sequence[str]) -> str:
        return self._stack.enter_context(start_prometheus(targets))

    def victoria_metrics(self, targets: Sequence[str]) -> str:
        return self._stack.enter_context(start_victoria_metrics(targets))

    def close(self) -> None:
        self._stack.close()


@pytest.fixture
def promstack() -> Iterator[PromStack]:
    stack = PromStack()
    try:
        yield stack
    finally:
        stack.close()
