"""printable(): every class of character a remote host could use to drive or fool a terminal."""

from __future__ import annotations

import logging
import sys
import unicodedata

import pytest

from vfleet.core.sanitize import PrintableFormatter, display_width, pad, printable, printable_lines
from vfleet.drivers.sim import HOSTILE_NAMES

HIDDEN = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def safe(text: str) -> bool:
    """Nothing in `text` that a terminal would act on or that would not show."""
    return all(unicodedata.category(c) not in HIDDEN for c in text)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("ev\x1b]0;PWNED-TITLE\x07\x1b[31mRED", "ev\\x1b]0;PWNED-TITLE\\x07\\x1b[31mRED"),  # OSC title, SGR
        ("a\x00b\x08c\x0bd\x0ce\x1ff", "a\\x00b\\x08c\\x0bd\\x0ce\\x1ff"),  # C0
        ("two\nlines\r\ttab", "two\\nlines\\r\\ttab"),  # line breaks would split a table row
        ("del\x7f", "del\\x7f"),
        ("csi\x9b31m nel\x85 st\x9c", "csi\\x9b31m nel\\x85 st\\x9c"),  # C1: \x9b is CSI on 8-bit terminals
        ("invoice\u202egnp.exe", "invoice\\u202egnp.exe"),  # right-to-left override
        ("\u202a\u202b\u202c\u202d", "\\u202a\\u202b\\u202c\\u202d"),  # embeddings, pop
        ("\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069"),  # isolates
        ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),  # LRM, RLM, ALM
        ("zero\u200bwidth\u200c\u200d\u2060\ufeff", "zero\\u200bwidth\\u200c\\u200d\\u2060\\ufeff"),
        ("soft\u00adhyphen", "soft\\xadhyphen"),
        ("tag\U000e0041\U000e007f", "tag\\U000e0041\\U000e007f"),  # invisible tag characters
        ("line\u2028para\u2029", "line\\u2028para\\u2029"),
        ("lone\udcff", "lone\\udcff"),  # a surrogate from surrogateescape: would not even encode
        ("filler\u3164\u115f\u1160\uffa0", "filler\\u3164\\u115f\\u1160\\uffa0"),  # blank Hangul letters
    ],
)
def test_hidden_characters_are_shown_escaped(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert safe(printable(raw))


@pytest.mark.parametrize(
    "text",
    ["web-01", "[red]markup[/]", "-f", "a\\x1b literal", "Wébserver", "数据库", "сервер", "שרת", "🚀 rocket",
     "e\u0301", " spaced  out ", "", "".join(chr(c) for c in range(0x20, 0x7F))],
)
def test_printable_text_is_left_alone(text: str) -> None:
    assert printable(text) is text  # the fast path returns the very string: no copy per cell


def test_spaces_and_private_use_are_shown_as_they_are() -> None:
    # not printable for str.isprintable(), but harmless: the slow path keeps them
    for text in ("nbsp\u00a0", "ideographic\u3000space", "icon\ue0a0", "unassigned\U0010fffe"):
        assert printable(text) == text


def test_every_hidden_code_point_python_knows_is_escaped() -> None:
    hidden = "".join(chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in HIDDEN)
    assert len(hidden) > 2000  # surrogates alone are 2048: the scan did run
    shown = printable(hidden)
    assert shown.isascii() and shown.isprintable()


def test_escaping_is_idempotent() -> None:
    for name in HOSTILE_NAMES:
        once = printable(name)
        assert printable(once) == once and safe(once)


def test_printable_lines_keeps_only_the_line_breaks() -> None:
    assert printable_lines("Traceback\n  x = '\x1b[2J'\nError: \u202eboom") == (
        "Traceback\n  x = '\\x1b[2J'\nError: \\u202eboom"
    )


def test_display_width_counts_terminal_cells() -> None:
    assert display_width("web-01") == 6
    assert display_width("数据库") == 6
    assert display_width("Wébserver") == 9
    assert display_width("e\u0301") == 1  # a combining accent takes no cell
    assert pad("数据库", 8) == "数据库  "
    assert pad("7", 3, right=True) == "  7"
    assert pad("toolong", 3) == "toolong"


def test_log_formatter_escapes_messages_arguments_and_tracebacks() -> None:
    formatter = PrintableFormatter("vfleet: %(levelname)s: %(name)s: %(message)s")
    try:
        raise RuntimeError("remote said \x1b]0;PWNED\x07")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "vfleet.engine", logging.ERROR, __file__, 1, "%s: poll failed: %s", ("evil\x1b[2J", "\u202eoops"), exc_info
    )
    record.exc_text = "cached by another handler \x1b[2J"  # must not be reused unescaped
    text = formatter.format(record)
    lines = text.splitlines()
    assert lines[0] == "vfleet: ERROR: vfleet.engine: evil\\x1b[2J: poll failed: \\u202eoops"
    assert lines[1] == "Traceback (most recent call last):"  # the traceback keeps its lines
    assert lines[-1] == "RuntimeError: remote said \\x1b]0;PWNED\\x07"
    assert safe(text.replace("\n", ""))
    assert record.args == ("evil\x1b[2J", "\u202eoops")  # the record itself is left for other handlers
