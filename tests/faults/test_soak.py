"""A soak: an esxi_api host whose TLS endpoint never answers and a qemu+ssh host whose
sshd never answers, retried for ~40 s beside healthy hosts. vfleet's threads, sockets and
child processes must stay flat (3-minute figures: bench/faults.py)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import need_backend
from faults.harness import HEALTHY, POLL, Keyring, NetFault, Vfleet, sample, stale_healthy, write_inventory

SOAK = 40  # frames of `top --batch -d 1`
# The baseline: the fewest resources seen once the first connection attempts (2 s timeout)
# have failed, so every pool, lazy import and healthy connection exists; the end: the most
# seen in the last 8 s.
BASE = (2.5, 6.0)
END = 8.0
PASSWORD_ENV = "VFLEET_FAULTS_ESX_PASSWORD"


def unreachable_hosts(keys: Keyring, nets: Callable[..., NetFault], tmp: Path) -> list[dict[str, Any]]:
    esx = nets("nobanner")  # accepts TCP, never starts TLS
    sshd = nets("nobanner")  # accepts TCP, never sends the SSH banner
    # ssh as most users run it: no ConnectTimeout, so a silent sshd holds it until someone ends it
    wrapper = tmp / "ssh-no-timeout"
    wrapper.write_text(
        "#!/bin/sh\nexec ssh -F none -o UserKnownHostsFile=/dev/null -o GlobalKnownHostsFile=/dev/null"
        f" -o StrictHostKeyChecking=yes -o BatchMode=yes -o IdentitiesOnly=yes -i {keys.client_key} \"$@\"\n"
    )
    wrapper.chmod(0o755)
    return [
        {"name": "esx-dead", "driver": "esxi_api", "address": "127.0.0.1", "port": esx.port, "user": "root",
         "password_env": PASSWORD_ENV, "tls": {"thumbprint": ":".join(["AB"] * 32)}},
        {"name": "qemu-hung", "driver": "libvirt",
         "uri": f"qemu+ssh://root@127.0.0.1:{sshd.port}/system?keyfile={keys.client_key}&command={wrapper}"},
    ]


def test_unreachable_esxi_api_and_hung_qemu_ssh_hosts_leak_nothing(
    keys: Keyring, healthy: list[dict[str, Any]], nets: Callable[..., NetFault], tmp_path: Path
) -> None:
    need_backend("ssh (openssh-client)", shutil.which("ssh") is not None)
    faulty = unreachable_hosts(keys, nets, tmp_path)
    path = write_inventory(tmp_path / "fleet.yaml", [*healthy, *faulty], connect_timeout=2, call_timeout=3)
    top = Vfleet("-i", str(path), "top", "--batch", "-d", str(POLL), "-n", str(SOAK), stderr_file=tmp_path / "top.err",
                 env={PASSWORD_ENV: "not-a-secret"})
    started = time.monotonic()
    samples: list[tuple[float, dict[str, int]]] = []
    while top.running() and time.monotonic() - started < SOAK + 30:
        try:
            samples.append((time.monotonic() - started, sample(top.pid)))
        except OSError:  # it exited between poll() and the read
            break
        time.sleep(1)  # sampling another process: there is nothing to await
    top.finish(30)
    frames = top.frames()
    assert len(frames) == SOAK, top.stderr()
    kinds = ("threads", "sockets", "children")
    base = {k: min(s[k] for t, s in samples if BASE[0] <= t <= BASE[1]) for k in kinds}
    peak = {k: max(s[k] for t, s in samples if t >= samples[-1][0] - END) for k in kinds}
    growth = {k: peak[k] - base[k] for k in kinds}
    # A retry in progress may hold a thread, a socket and an ssh child per faulty host; none may stay.
    samples_text = " ".join(f"{t:.0f}s:{s['threads']}/{s['sockets']}/{s['children']}" for t, s in samples)
    assert growth["threads"] <= 2 and growth["sockets"] <= 2 and growth["children"] <= 1, (
        f"threads/sockets/children: {samples_text}")
    last = {h["name"]: h for h in frames[-1]["hosts"]}
    for name in ("esx-dead", "qemu-hung"):
        assert last[name]["status"] in ("down", "connecting") and last[name]["error"], last[name]
    assert stale_healthy(frames, HEALTHY) == []
