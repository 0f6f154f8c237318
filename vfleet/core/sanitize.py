"""Remote text made safe for a terminal: control and invisible characters shown escaped.

Domain names, raw states, host facts, error messages and stderr excerpts come from
hosts we do not control. Written raw to a terminal, `\\x1b]0;...\\x07` retitles the
window, `\\x1b[2J` clears it, U+202E reverses what follows and a zero-width space
makes two different names look the same. Every face (TUI, table, CSV, stderr, logs)
passes such text through `printable()`; JSON keeps the exact string (json.dumps
escapes what it must).

Escaped: every code point Unicode calls a control (Cc: C0, DEL, C1), a format
character (Cf: bidi embeddings, overrides and isolates, zero-width spaces and
joiners, soft hyphen, BOM, tag characters), a lone surrogate (Cs, from
surrogateescape decoding), a line or paragraph separator (Zl, Zp), and the Hangul
fillers (letters that draw nothing, a known spoofing trick). The categories come
from `unicodedata`, so new format characters are covered as Python learns them.
Printable non-ASCII text (`Wébserver`, `数据库`) is left as it is. Backslashes are
not doubled: a name that literally contains `\\x1b` reads the same as one with an
escape character, which is ambiguous but harmless (JSON tells them apart).
"""

from __future__ import annotations

import logging
import unicodedata

_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0")  # Hangul fillers: category Lo, yet invisible
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    short = _SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _hidden(char: str) -> bool:
    return char in _FILLERS or unicodedata.category(char) in _HIDDEN_CATEGORIES


def printable(text: str) -> str:
    """`text` with every control, format and invisible character written as an escape.

    Runs for every cell of every row of a big table: the common case (nothing to
    escape) is two C-level scans and returns `text` itself.
    """
    # str.isprintable() is False for Cc, Cf, Cs, Zl, Zp (and a few harmless ones:
    # unassigned, private use, spaces other than ' '); the slow path sorts those out.
    if text.isprintable() and (text.isascii() or _FILLERS.isdisjoint(text)):
        return text
    return "".join(_escape(c) if _hidden(c) else c for c in text)


def printable_lines(text: str) -> str:
    """Like printable(), but line breaks stay: for tracebacks and other multi-line text."""
    return "\n".join(printable(line) for line in text.split("\n"))


def display_width(text: str) -> int:
    """Terminal cells `text` takes once printable: wide (CJK) characters take two, marks none."""
    if text.isascii():
        return len(text)
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def pad(text: str, width: int, *, right: bool = False) -> str:
    """ljust/rjust by terminal cells rather than code points."""
    fill = " " * max(0, width - display_width(text))
    return fill + text if right else text + fill


class PrintableFormatter(logging.Formatter):
    """A log formatter whose output is safe for a terminal.

    The message (with its arguments) is escaped; tracebacks and stack dumps keep
    their line breaks but each line is escaped, since an exception's text often
    quotes what a remote host said.
    """

    def format(self, record: logging.LogRecord) -> str:
        safe = logging.makeLogRecord(record.__dict__)
        safe.msg, safe.args = printable(record.getMessage()), None
        # Another handler may have cached the traceback unescaped: format it afresh.
        if record.exc_info:
            safe.exc_text = None
        elif record.exc_text:
            safe.exc_text = printable_lines(record.exc_text)
        return super().format(safe)

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        return printable_lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return printable_lines(super().formatStack(stack_info))
