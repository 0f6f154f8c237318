"""Recorded SSH commands as text, and a transport that answers from such a recording.

The format is the one of tests/fixtures/xen/*.txt, with stdout and stderr kept apart:

    ### host$ COMMAND LINE
    stdout, verbatim
    [stderr]
    stderr, verbatim (this part only when there was some)
    [rc=0]

A blank line ends each block. Output is text the host chose, so it is quoted the way mbox
quotes "From ": an output line that starts with a backslash or could be read as one of
the markers gets a backslash in front; `[no newline at end]` after an output says its last
line had none. Reading it back gives the exact strings the driver's parsers saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from vfleet.core.errors import GarbledOutput
from vfleet.core.models import HostConfig
from vfleet.drivers.ssh.transport import CommandResult, SshTransport

COMMANDS_FILE = "commands.txt"  # what the SSH drivers' recordings are called
HEADER = "### host$ "
STDERR = "[stderr]"
NO_NEWLINE = "[no newline at end]"
_RC = "[rc="
_MARKERS = ("\\", "###", STDERR, _RC, NO_NEWLINE)


def _quoted(text: str) -> list[str]:
    if not text:
        return []
    lines = text.split("\n")  # never splitlines(): \r, \f and \x1c are output, not line ends
    ended = lines[-1] == ""
    if ended:
        lines.pop()
    out = ["\\" + line if line.startswith(_MARKERS) else line for line in lines]
    return out if ended else [*out, NO_NEWLINE]


def write_blocks(results: Iterable[CommandResult]) -> str:
    blocks = []
    for result in results:
        if "\n" in result.command:
            raise ValueError(f"cannot record a command line that spans lines: {result.command[:60]!r}")
        lines = [HEADER + result.command, *_quoted(result.stdout)]
        if result.stderr:
            lines += [STDERR, *_quoted(result.stderr)]
        lines.append(f"{_RC}{result.exit_status}]")
        blocks.append("\n".join(lines) + "\n\n")
    return "".join(blocks)


def _unquoted(lines: list[str]) -> str:
    if lines and lines[-1] == NO_NEWLINE:
        body = [line[1:] if line.startswith("\\") else line for line in lines[:-1]]
        return "\n".join(body)
    return "".join((line[1:] if line.startswith("\\") else line) + "\n" for line in lines)


def read_blocks(text: str, where: str = "recording") -> list[CommandResult]:
    """The commands of write_blocks() output; GarbledOutput names the line that does not fit."""
    results: list[CommandResult] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if lines[i] == "":
            i += 1
            continue
        if not lines[i].startswith(HEADER):
            raise GarbledOutput(where, f"line {i + 1}: expected `{HEADER}COMMAND`, found {lines[i][:60]!r}")
        command, start = lines[i][len(HEADER) :], i + 1
        streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
        current = "stdout"
        i = start
        while i < len(lines) and not lines[i].startswith(_RC):
            if lines[i] == STDERR:
                current = "stderr"
            else:
                streams[current].append(lines[i])
            i += 1
        if i == len(lines):
            raise GarbledOutput(where, f"line {start}: the block of `{command[:60]}` has no [rc=N] line")
        rc = lines[i][len(_RC) :].removesuffix("]")
        if not rc.lstrip("-").isdigit():
            raise GarbledOutput(where, f"line {i + 1}: bad exit status {lines[i]!r}")
        results.append(CommandResult(command, int(rc), _unquoted(streams["stdout"]), _unquoted(streams["stderr"])))
        i += 1
    return results


class ReplayTransport(SshTransport):
    """Answers each command line with the next recorded result of the same line: a recording as a host."""

    def __init__(self, config: HostConfig, results: Iterable[CommandResult]) -> None:
        super().__init__(config)
        self.unused = list(results)

    async def connect(self, *, deadline: float | None = None) -> None:
        return None

    async def close(self) -> None:
        return None

    async def run(
        self,
        command: str,
        *,
        deadline: float | None = None,
        timeout: float | None = None,
        max_output: int | None = None,
    ) -> CommandResult:
        await asyncio.sleep(0)  # a real run() yields too
        for index, result in enumerate(self.unused):
            if result.command == command:
                return self.unused.pop(index)
        raise GarbledOutput(self.host, f"the recording has no answer for `{command[:120]}`")
