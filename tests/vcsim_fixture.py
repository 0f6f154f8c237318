"""Start and stop vcsim (built by testbed/vcsim.sh) from tests.

Each Vcsim is one simulator process on 127.0.0.1 with a fresh self-signed
certificate; it reports its URL and fingerprints as one JSON line on stdout.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
TESTBED_DIR = Path(os.environ.get("VFLEET_TESTBED_DIR", ROOT / ".testbed"))
VCSIM_BIN = Path(os.environ.get("VFLEET_VCSIM_BIN", TESTBED_DIR / "vcsim" / "bin" / "vcsim"))
USER, PASSWORD = "vfleet", "vcsim-Pa55-word"


@dataclass
class Vcsim:
    proc: subprocess.Popen[str]
    info: dict[str, object]
    cert: Path
    started_in_s: float
    address: str = field(init=False)
    port: int = field(init=False)

    def __post_init__(self) -> None:
        url = urlsplit(str(self.info["url"]))
        assert url.hostname and url.port
        self.address, self.port = url.hostname, url.port

    @property
    def sha256(self) -> str:
        return str(self.info["sha256"])

    @property
    def sha1(self) -> str:
        return str(self.info["sha1"])

    @property
    def vms(self) -> int:
        return int(str(self.info["vms"]))

    @property
    def hosts(self) -> int:
        return int(str(self.info["hosts"]))

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_vcsim(workdir: Path, *args: str, timeout: float = 15.0) -> Vcsim:
    """Run the simulator (`-model esx|vpx -vm N -fault ...`) and wait for its JSON line."""
    workdir.mkdir(parents=True, exist_ok=True)
    cert = workdir / "cert.pem"
    command = [str(VCSIM_BIN), "-listen", "127.0.0.1:0", "-user", USER, "-pass", PASSWORD, "-cert", str(cert), *args]
    started = time.monotonic()
    with open(workdir / "vcsim.log", "w") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            proc.kill()
            raise RuntimeError(f"vcsim gave no URL within {timeout} s (see {workdir / 'vcsim.log'})")
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"vcsim exited with {proc.wait()} (see {workdir / 'vcsim.log'})")
    return Vcsim(proc, json.loads(line), cert, time.monotonic() - started)
