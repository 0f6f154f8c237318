"""Record one poll of one host, scrubbed, into a directory: a bug report that is also a test fixture.

The driver hands over the raw answers of one poll (Driver.record_poll); everything that
identifies the site is scrubbed (core/scrub.py) with one placeholder per value across all
files; the directory (0700) gets the files (0600) and a manifest.json saying what was
recorded and what was scrubbed, by kind, never the values.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from vfleet import __version__
from vfleet.core.errors import DriverTimeout, ExitCode, UsageError, VFleetError
from vfleet.core.models import HostConfig, HostFacts
from vfleet.core.scrub import ADDRESS, DOMAIN_NAME, HOSTNAME, IP, MAC, SECRET, TOKEN, USER, Scrubber

MANIFEST = "manifest.json"
FORMAT = "vfleet.recording/1"
KINDS = (SECRET, TOKEN, ADDRESS, USER, HOSTNAME, IP, MAC, DOMAIN_NAME)
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})  # as core/sanitize.py: what a terminal obeys or hides
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class OutputExists(VFleetError):
    """The output directory holds files already: refused unless forced."""

    exit_code = ExitCode.REFUSED


@dataclass(frozen=True, slots=True)
class Recording:
    driver: str
    files: dict[str, str]  # scrubbed
    manifest: dict[str, object]
    domains: int


def find_host(hosts: Sequence[HostConfig], name: str, where: str) -> HostConfig:
    for host in hosts:
        if host.name == name:
            return host
    known = ", ".join(h.name for h in hosts[:10]) + (", ..." if len(hosts) > 10 else "")
    raise UsageError(f"{where}: no host named {name!r} (hosts: {known or 'none'})")


def check_output(directory: Path, *, force: bool) -> None:
    """Refuse a file, or a directory with something in it (unless forced), before connecting anywhere."""
    if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
        raise UsageError(f"{directory}: exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise OutputExists(f"{directory}: not empty; choose a new directory or pass --force to replace a recording")


def _env_values(config: HostConfig) -> list[str]:
    """Secrets the config refers to: password_env and any option named *_env."""
    names = [config.password_env] + [str(v) for k, v in config.options.items() if k.endswith("_env")]
    return [os.environ[n] for n in names if n and os.environ.get(n)]


def scrubber_for(
    config: HostConfig, inventory: Iterable[HostConfig], facts: HostFacts | None, domain_names: Iterable[str] = ()
) -> Scrubber:
    addresses, users, hostnames = [config.address or ""], [config.user or ""], []
    for host in inventory:
        hostnames += [host.name, host.address or ""]
        if host.uri:
            parts = urlsplit(host.uri)
            hostnames.append(parts.hostname or "")
            users.append(parts.username or "")
            if host is config or host.name == config.name:
                addresses.append(parts.hostname or "")
    if facts is not None and facts.hostname:  # the name the host gives itself, its first label and DNS domain
        label, _, domain = facts.hostname.partition(".")
        hostnames += [facts.hostname, label, domain if "." in domain else ""]
    return Scrubber(
        secrets=_env_values(config),
        addresses=addresses,
        users=users,
        hostnames=[h for h in hostnames if len(h) >= 3],  # "db" would take every "db" in every output
        domain_names=domain_names,
    )


async def record_host(
    config: HostConfig,
    inventory: Sequence[HostConfig],
    *,
    scrub_names: bool = False,
    timeout: float = 60.0,
) -> Recording:
    """Connect read-only, poll (for the names), record one poll, poll again, close; scrub it all."""
    from vfleet.drivers.registry import create_driver

    driver = create_driver(config, read_only=True)
    try:
        async with asyncio.timeout(timeout):
            facts = await driver.connect()
            before = await driver.poll()
            raw = await driver.record_poll()
            after = await driver.poll()  # a domain that left during the recording still gets scrubbed
    except TimeoutError:
        raise DriverTimeout(config.name, f"no complete recording within {timeout:g} s") from None
    finally:
        await driver.close()
    names = {d.name for d in (*before.domains, *after.domains)} if scrub_names else set()
    scrubber = scrubber_for(config, inventory, facts, names)
    files: dict[str, str] = {}
    for name, text in raw.items():
        if not _FILE_NAME.match(name) or name == MANIFEST:
            raise ValueError(f"the {config.driver} driver named a recording file {name!r}")
        files[name] = scrubber.scrub(text)
        if name.endswith(".json"):
            files[name] = json_safe(files[name])
            json.loads(files[name])  # scrubbing must never break a document: a bug if it does
    found = {kind: scrubber.found.get(kind, 0) for kind in KINDS}  # in the files, not in the manifest
    options = json.loads(scrubber.scrub(json.dumps(dict(config.options), default=str)))
    manifest: dict[str, object] = {
        "format": FORMAT,
        "vfleet_version": __version__,
        "driver": config.driver,
        "host": scrubber.scrub(config.name),
        "options": options,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "domains": len(before.domains),
        "files": [
            {"name": n, "bytes": len(t.encode()), "sha256": hashlib.sha256(t.encode()).hexdigest()}
            for n, t in sorted(files.items())
        ],
        "scrubbed": found,
        "scrub_names": scrub_names,
        "names_not_scrubbed": len(scrubber.kept_names),  # too short or too common to replace safely
    }
    return Recording(config.driver, files, manifest, len(before.domains))


_STRUCTURE = frozenset("\n\r\t")  # JSON's own whitespace; inside strings json.dumps escaped them already


def json_safe(document: str) -> str:
    """A JSON text with every control, format or invisible character written as a \\u escape, so `cat` of
    a hostile domain name cannot drive the terminal; the document still decodes to the same values."""
    if document.isascii() and document.isprintable():
        return document
    out = []
    for char in document:
        if char not in _STRUCTURE and (char in _FILLERS or unicodedata.category(char) in _HIDDEN):
            code = ord(char)
            if code > 0xFFFF:  # JSON escapes outside the BMP as a surrogate pair
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
            else:
                out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def write_recording(recording: Recording, directory: Path, *, force: bool = False) -> list[Path]:
    """The directory (0700) with the files and manifest.json (0600); with force, a previous recording goes first."""
    check_output(directory, force=force)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    if force:
        _remove_previous(directory)
    texts = {**recording.files, MANIFEST: json.dumps(recording.manifest, indent=1) + "\n"}
    written = []
    for name, text in texts.items():
        path = directory / name
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        written.append(path)
    return written


def _remove_previous(directory: Path) -> None:
    """The files an earlier manifest lists, and the manifest: nothing else of the user's."""
    manifest = directory / MANIFEST
    try:
        listed = [str(f["name"]) for f in json.loads(manifest.read_text())["files"]]
    except (OSError, ValueError, KeyError, TypeError):
        return
    for name in listed:
        if _FILE_NAME.match(name):
            (directory / name).unlink(missing_ok=True)
    manifest.unlink(missing_ok=True)


def summary(host: str, recording: Recording, directory: Path, seconds: float) -> str:
    scrubbed = recording.manifest["scrubbed"]
    assert isinstance(scrubbed, dict)
    what = ", ".join(f"{count} {kind}" for kind, count in scrubbed.items() if count) or "nothing"
    size = sum(len(t.encode()) for t in recording.files.values())
    count = len(recording.files)
    return (
        f"recorded {host} ({recording.driver}): {recording.domains} domains in {count} file"
        f"{'s' if count != 1 else ''} ({size / 1024:.1f} KiB, {seconds:.1f} s); scrubbed {what}; "
        f"read the files in {directory} before sending them"
    )
