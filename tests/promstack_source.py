"""Real Prometheus and VictoriaMetrics servers for the read-path tests (`--source prometheus=`).

Each server runs on loopback with a free port and a temp dir, scrapes the given
targets every second, and is stopped by the context manager. A minimal stand-in
for the export branch's tests/promstack.py until both are on main.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

SCRAPE_INTERVAL = "1s"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(path: Path, targets: Sequence[str], interval: str = SCRAPE_INTERVAL) -> Path:
    # JSON is valid YAML: no YAML writer needed
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval},
        "scrape_configs": [{"job_name": "vfleet", "static_configs": [{"targets": list(targets)}]}],
    }
    path.write_text(json.dumps(config))
    return path


def query(base: str, promql: str) -> list[dict[str, Any]]:
    data = urllib.parse.urlencode({"query": promql}).encode()
    with urllib.request.urlopen(base + "/api/v1/query", data=data, timeout=10) as answer:
        doc = json.loads(answer.read())
    result: list[dict[str, Any]] = doc["data"]["result"]
    return result


def wait_for(condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll `condition` until it holds; the machine is loaded, so the deadline is generous."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)


@contextlib.contextmanager
def _server(argv: list[str], base: str, log: Path) -> Iterator[str]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: proc.poll() is not None or _ready(base), 60, f"{argv[0]} at {base}")
        if proc.poll() is not None:
            raise AssertionError(f"{argv[0]} exited {proc.returncode}: {log.read_text()[-2000:]}")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _ready(base: str) -> bool:
    try:
        query(base, "1")
    except (OSError, ValueError, KeyError):
        return False
    return True


@contextlib.contextmanager
def start_prometheus(targets: Sequence[str], tmp: Path, interval: str = SCRAPE_INTERVAL) -> Iterator[str]:
    """A Prometheus scraping `targets` (host:port) every second; yields its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise AssertionError("prometheus is not installed (Debian package prometheus)")
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        binary,
        f"--config.file={_config(tmp / 'prometheus.yml', targets, interval)}",
        f"--storage.tsdb.path={tmp / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with _server(argv, f"http://127.0.0.1:{port}", tmp / "prometheus.log") as base:
        yield base


@contextlib.contextmanager
def start_victoria_metrics(targets: Sequence[str], tmp: Path) -> Iterator[str]:
    """A VictoriaMetrics single node scraping `targets` every second; yields its base URL."""
    binary = shutil.which("victoria-metrics")
    if binary is None:
        raise AssertionError("victoria-metrics is not installed (Debian package victoria-metrics)")
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        binary,
        f"-promscrape.config={_config(tmp / 'scrape.yml', targets)}",
        f"-storageDataPath={tmp / 'data'}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-search.latencyOffset=0s",  # answer with the newest samples, as Prometheus does
        "-search.disableCache",
    ]
    with _server(argv, f"http://127.0.0.1:{port}", tmp / "vm.log") as base:
        yield base
