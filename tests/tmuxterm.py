"""A terminal for end-to-end tests: a tmux pane running a command, read back as text or with its
styles, and fed keys."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Callable


class TmuxPane:
    patience = 20.0  # seconds wait_for waits by default

    def __init__(self, prefix: str = "vfleet-test") -> None:
        self.session = f"{prefix}-{uuid.uuid4().hex[:8]}"

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True, timeout=10).stdout

    def screen(self, escapes: bool = False) -> str:
        return self.run("capture-pane", "-p", *(["-e"] if escapes else []), "-t", self.session)

    def cursor_on(self, name: str, *others: str) -> bool:
        """The table's cursor row is NAME's: the background where NAME is written differs from the
        one shared by the OTHERS. The text capture cannot show the cursor; the styled one can, but
        tmux writes a style only where it changes, so the background is followed across lines."""
        styled = self.screen(escapes=True)
        where: dict[str, str] = {}
        background, at = "default", 0
        for sgr in [*re.finditer(r"\x1b\[([0-9;:]*)m", styled), None]:
            text = styled[at : sgr.start() if sgr else len(styled)]
            where.update({word: background for word in (name, *others) if word in text})
            if sgr is None:
                break
            at, codes = sgr.end(), sgr.group(1)
            if codes in ("", "0") or codes.endswith(";49") or codes == "49":
                background = "default"
            if "48;" in codes:
                background = codes[codes.index("48;") :]
        theirs = {where.get(w) for w in others}
        return None not in theirs and len(theirs) == 1 and where.get(name) not in (None, *theirs)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def text(self, text: str) -> None:
        self.run("send-keys", "-t", self.session, "-l", text)

    def wait_for(self, check: Callable[[str], bool], what: str, timeout: float | None = None) -> str:
        """Poll the pane until check(screen) holds; fail with the screen after the deadline."""
        deadline = time.monotonic() + (self.patience if timeout is None else timeout)
        while True:
            screen = self.screen()
            if check(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen was:\n{screen}")
            time.sleep(0.1)  # the pane is another process's output: there is nothing to await

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.session], check=False, capture_output=True, timeout=10)
