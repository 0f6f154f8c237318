"""Ask the operator a question without blocking the event loop.

`input()` on the loop would stop every host's polling (and leave remote libvirt
keepalives unanswered) while the operator reads; in a thread it makes Ctrl-C need
two presses, because the interpreter waits for the thread at exit. Instead the
loop watches stdin and reads the line when it is there, so the wait is an ordinary
awaitable that one Ctrl-C cancels.
"""

from __future__ import annotations

import asyncio
import os
import sys

MAX_ANSWER = 4096


async def ask(question: str) -> str:
    """Print `question` on stderr and return the line the operator types (without the newline)."""
    sys.stderr.write(question)
    sys.stderr.flush()
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()
    answer = bytearray()
    line: asyncio.Future[bytes] = loop.create_future()

    def readable() -> None:
        try:
            chunk = os.read(fd, 1024)
        except BlockingIOError:
            return
        if not chunk or b"\n" in chunk or len(answer) + len(chunk) > MAX_ANSWER:
            answer.extend(chunk.split(b"\n", 1)[0])
            if not line.done():
                line.set_result(bytes(answer))
            return
        answer.extend(chunk)

    loop.add_reader(fd, readable)
    try:
        raw = await line
    finally:
        loop.remove_reader(fd)
    return raw.decode("utf-8", "replace").strip()
