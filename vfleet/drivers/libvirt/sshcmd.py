"""Bounded ssh children for libvirt's +ssh transports.

libvirt's ssh transport runs `ssh` (or the URI's `command=`) as a child of this
process and waits for it without a timeout of its own: a host that accepts TCP and
never sends a banner blocks libvirt.open forever, with its thread and its ssh child.
For each connect we put a small wrapper in front of that command which

- adds `-o ConnectTimeout=N` (OpenSSH applies it to the TCP connect, the banner and
  the key exchange) and ServerAlive options, so the child ends by itself;
- records its pid before exec'ing ssh, so a connect we abandon can kill its child at
  once; libvirt.open then fails and its thread returns.

A `-o` option the user's own command sets first wins (ssh keeps the first value).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import shlex
import signal
import threading
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

log = logging.getLogger(__name__)
ALIVE_INTERVAL, ALIVE_COUNT = 5, 3
_dir: Path | None = None
_dir_lock = threading.Lock()
_counter = 0


def is_ssh_uri(uri: str) -> bool:
    return urlsplit(uri).scheme.endswith("+ssh")


def _private_dir() -> Path | None:
    """A 0700 directory for the wrappers, on a file system that allows exec; None if there is none."""
    import shutil  # here: every libvirt host imports this module, few connect over ssh
    import tempfile

    global _dir
    with _dir_lock:
        if _dir is not None:
            return _dir
        for base in (os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), str(Path.home() / ".cache")):
            if not base or not os.path.isdir(base):
                continue
            with contextlib.suppress(OSError):
                if os.statvfs(base).f_flag & os.ST_NOEXEC:
                    continue
                _dir = Path(tempfile.mkdtemp(prefix="vfleet-ssh-", dir=base))
                atexit.register(shutil.rmtree, _dir, True)
                return _dir
        return None


class SshLaunch:
    """One connect attempt: the URI to open, and the means to kill its ssh child."""

    def __init__(self, uri: str, connect_timeout: float) -> None:
        self.uri = uri
        self._wrapper: Path | None = None
        self._pidfile: Path | None = None
        if not is_ssh_uri(uri):
            return
        directory = _private_dir()
        if directory is None:
            log.debug("no exec-capable private directory: %s connects without a bounded ssh", uri)
            return
        global _counter
        with _dir_lock:
            _counter += 1
            name = f"{os.getpid()}-{_counter}"
        parts = urlsplit(uri)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        inner = query.get("command") or "ssh"
        seconds = max(1, math.ceil(connect_timeout))
        self._pidfile = directory / f"{name}.pid"
        self._wrapper = directory / f"{name}.sh"
        self._wrapper.write_text(
            "#!/bin/sh\n"
            f"echo $$ > {shlex.quote(str(self._pidfile))}\n"
            f"exec {shlex.quote(inner)} -o ConnectTimeout={seconds} -o ServerAliveInterval={ALIVE_INTERVAL}"
            f' -o ServerAliveCountMax={ALIVE_COUNT} "$@"\n'
        )
        self._wrapper.chmod(0o700)
        query["command"] = str(self._wrapper)
        self.uri = urlunsplit(parts._replace(query=urlencode(query, safe="/")))

    def kill(self) -> bool:
        """Kill the ssh child of this attempt, if it still runs as our child."""
        if self._pidfile is None:
            return False
        try:
            pid = int(self._pidfile.read_text().strip() or 0)
        except (OSError, ValueError):
            return False  # not started yet: its ConnectTimeout still bounds it
        if pid <= 0 or _parent_of(pid) != os.getpid():  # gone, or the pid now belongs to someone else
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            return True
        return False

    def cleanup(self) -> None:
        """Remove the files; a running ssh does not need them any more."""
        for path in (self._wrapper, self._pidfile):
            if path is not None:
                with contextlib.suppress(OSError):
                    path.unlink()


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the command name may hold spaces and parentheses
    return int(fields[1]) if len(fields) > 1 else None
