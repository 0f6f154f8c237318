"""Bytes per second that `vfleet demo` writes to a 200x50 terminal, against htop in the same run.

Both run at once, each in its own session of a private tmux server (its own socket, so no
other tmux is touched), with the same TERM and COLORTERM (truecolor, as most operators'
terminals announce). tmux pipe-pane copies every byte each program writes to its pane into a
file; after a warm-up the files grow for --seconds, and their growth is the measure.
Target (issue 12): vfleet <= 5x htop. The breakdown says what the bytes are: SGR (colour
and attribute) codes, cursor moves, other control sequences, and the text itself.
Run: .venv/bin/python bench/terminal_bytes.py [--seconds 20] [--warmup 8]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZE = (200, 50)
TARGET = 5.0
SGR = re.compile(rb"\x1b\[[0-9;:]*m")
MOVE = re.compile(rb"\x1b\[[0-9;]*[HABCDGdf]")
OTHER = re.compile(rb"\x1b(\[[?>=]?[0-9;:]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78M])")


def breakdown(data: bytes) -> dict[str, int]:
    sgr = sum(len(m) for m in SGR.findall(data))
    moves = sum(len(m) for m in MOVE.findall(data))
    other = sum(len(m.group(0)) for m in OTHER.finditer(data)) - sgr - moves
    return {"sgr": sgr, "moves": moves, "other": other, "text": len(data) - sgr - moves - other}


class Tmux:
    """A private tmux server: its socket in a temp dir, killed at the end."""

    def __init__(self, directory: Path) -> None:
        self.socket = str(directory / "tmux.sock")

    def run(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, text=True, timeout=20)
        if done.returncode:
            raise SystemExit(f"tmux {args[0]}: {done.stderr.strip()}")
        return done.stdout

    def start(self, name: str, command: str, log: Path) -> None:
        self.run("new-session", "-d", "-s", name, "-x", str(SIZE[0]), "-y", str(SIZE[1]), command)
        self.run("pipe-pane", "-o", "-t", name, f"cat >> {log}")

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=8.0)
    args = parser.parse_args()
    for tool in ("tmux", "htop"):
        if shutil.which(tool) is None:
            raise SystemExit(f"terminal_bytes: {tool} is not installed (apt-get install {tool})")
    env = "env -u NO_COLOR TERM=xterm-256color COLORTERM=truecolor"
    commands = {
        "vfleet": f"cd {ROOT} && exec {env} PYTHONPATH={ROOT} {sys.executable} -m vfleet demo",
        # htop's default delay (1.5 s), no config file of the machine's: the same htop everywhere
        "htop": f"exec {env} HTOPRC=/dev/null htop",
    }
    with tempfile.TemporaryDirectory(prefix="vfleet-bytes-") as tmp:
        directory = Path(tmp)
        tmux = Tmux(directory)
        logs = {name: directory / f"{name}.out" for name in commands}
        try:
            for name, command in commands.items():
                logs[name].touch()
                tmux.start(name, command, logs[name])
            time.sleep(args.warmup)  # start-up and the first full screen are not the steady stream
            start = {name: log.stat().st_size for name, log in logs.items()}
            time.sleep(args.seconds)
            end = {name: log.stat().st_size for name, log in logs.items()}
            alive = tmux.run("list-sessions", "-F", "#{session_name}").split()
            if missing := [name for name in commands if name not in alive]:
                raise SystemExit(f"terminal_bytes: {', '.join(missing)} exited during the run")
        finally:
            tmux.close()
        chunks = {}
        for name, log in logs.items():
            with log.open("rb") as f:
                f.seek(start[name])
                chunks[name] = f.read(end[name] - start[name])
    rates = {name: len(chunk) / args.seconds for name, chunk in chunks.items()}
    print(f"terminal bytes at {SIZE[0]}x{SIZE[1]}, {args.seconds:.0f} s after a {args.warmup:.0f} s warm-up, same run")
    print(f"{'program':>8} {'B/s':>9} {'SGR':>6} {'moves':>6} {'other':>6} {'text':>6}")
    for name, chunk in chunks.items():
        parts = breakdown(chunk)
        total = max(1, len(chunk))
        shares = " ".join(f"{parts[k] / total:>6.0%}" for k in ("sgr", "moves", "other", "text"))
        print(f"{name:>8} {rates[name]:>9.0f} {shares}")
    if rates["htop"] <= 0:
        raise SystemExit("terminal_bytes: htop wrote nothing during the run")
    ratio = rates["vfleet"] / rates["htop"]
    verdict = "meets" if ratio <= TARGET else "misses"
    print(f"vfleet / htop = {ratio:.2f}x ({verdict} the <= {TARGET:.0f}x target)")


if __name__ == "__main__":
    os.environ.pop("TMUX", None)  # a private server even when run from inside tmux
    main()
