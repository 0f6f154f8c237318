"""What each host of an inventory needs on this machine, checked locally (no network).

`vfleet inventory check` reports these so that a missing driver package, known_hosts
file, key file or CA file shows up before a poll fails on it: the driver's Python
modules (its spec's `requires`), the files SSH and API hosts read, and the environment
variable an API host takes its password from.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from vfleet.core.inventory import Inventory
from vfleet.core.models import HostConfig
from vfleet.drivers import registry


@dataclass(frozen=True, slots=True)
class Problem:
    host: str
    source: str  # "file:line" where the host is defined
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.host}: {self.message}"


def local_problems(inv: Inventory) -> list[Problem]:
    checker = _Checker()
    return [problem for host in inv.hosts for problem in checker.host(host)]


class _Checker:
    def __init__(self) -> None:
        # Thousands of hosts share a few drivers and files: check each once.
        self._modules: dict[str, list[str]] = {}
        self._files: dict[Path, str | None] = {}

    def host(self, host: HostConfig) -> list[Problem]:
        spec = registry.get(host.driver)
        messages = []
        if spec.name not in self._modules:
            self._modules[spec.name] = [
                f"the {spec.name} driver needs the Python module {module!r}: {spec.install_hint}"
                for module in registry.missing_modules(spec)
            ]
        messages += self._modules[spec.name]
        uses = spec.transport.keys
        if "ssh" in uses:
            configured = host.ssh.known_hosts
            known_hosts = Path(configured or "~/.ssh/known_hosts").expanduser()
            what = "ssh.known_hosts file" if configured else "the default known_hosts file"
            messages += self.file(known_hosts, what, "host keys cannot be verified")
            if host.ssh.key_file:
                messages += self.file(Path(host.ssh.key_file).expanduser(), "ssh.key_file", "")
        if "tls" in uses and host.tls.ca_file:  # the API drivers read it as written (no ~)
            messages += self.file(Path(host.tls.ca_file), "tls.ca_file", "")
        if "password_env" in uses and host.password_env and host.password_env not in os.environ:
            messages.append(f"password_env: the environment variable {host.password_env} is not set")
        return [Problem(host.name, host.source or "<inventory>", m) for m in messages]

    def file(self, path: Path, what: str, consequence: str) -> list[str]:
        if path not in self._files:
            self._files[path] = _unreadable(path)
        problem = self._files[path]
        if problem is None:
            return []
        return [f"{what} {path}: {problem}" + (f": {consequence}" if consequence else "")]


def _unreadable(path: Path) -> str | None:
    """Why `path` cannot be read as a file, or None when it can."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # O_NONBLOCK: a FIFO must not hang the check
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return exc.strerror or str(exc)
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
    return None if regular else "not a regular file"
