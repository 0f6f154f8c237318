"""What curses does for htop: send the terminal only the cells that changed, and SGR only where attributes change.

Textual writes every refreshed region from its widget's left edge, each run of text as
`SGR text RESET` with the full truecolor style again. Over SSH that is most of the
bytes: 70-80 % are SGR codes, and the cells that did not change go again. ScreenDiff
sits between Textual and the terminal: it keeps a model of what the terminal shows
(character and style of every cell), reads the stream Textual writes (cursor moves,
SGR, text), and writes only the cells that differ, moving the cursor over the others
and changing attributes by their difference from the terminal's current ones.

Anything it does not model (clear screen, alternate screen, scroll regions...) passes
through unchanged and forgets the model, so the next frame is written in full.
"""

from __future__ import annotations

import re

from rich.cells import get_character_cell_size
from textual.driver import Driver

_ESCAPE = re.compile(r"\x1b(?:\[([0-9;:?<=>]*)([ -/]*[@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][0-9A-Za-z]|.)", re.S)
_CONTROL = re.compile(r"[\x00-\x1a\x1c-\x1f\x7f]")
SYNC_START, SYNC_END = "\x1b[?2026h", "\x1b[?2026l"
# SGR parameter -> (attribute, code that turns it off); bold and dim share their off code.
_ATTRIBUTES = {
    "1": ("bold", "22"),
    "2": ("dim", "22"),
    "3": ("italic", "23"),
    "4": ("underline", "24"),
    "21": ("underline", "24"),
    "5": ("blink", "25"),
    "6": ("blink", "25"),
    "7": ("reverse", "27"),
    "8": ("conceal", "28"),
    "9": ("strike", "29"),
    "53": ("overline", "55"),
}
_OFF = {"22": ("bold", "dim"), "23": ("italic",), "24": ("underline",), "25": ("blink",), "27": ("reverse",),
        "28": ("conceal",), "29": ("strike",), "55": ("overline",), "39": ("fg",), "49": ("bg",), "59": ("ulc",)}
_OFF_CODE = {"fg": "39", "bg": "49", "ulc": "59", **{name: off for name, off in _ATTRIBUTES.values()}}
# A gap of unchanged cells this short is cheaper to write again than to jump over.
_REWRITE_GAP = 4

Style = tuple[tuple[str, str], ...]  # sorted (attribute, SGR code) pairs; () is the default
Cell = tuple[str, Style]
_UNKNOWN: Cell = ("\x00", (("?", "?"),))  # never equal to a real cell: it will be written
_WIDE_TAIL = ""  # the right half of a double-width character


def parse_sgr(params: str, current: Style) -> Style:
    """The style after SGR `params` applied to `current`."""
    state = dict(current)
    codes = params.split(";")  # `4:3` (curly underline) stays one parameter: an unknown one
    i = 0
    while i < len(codes):
        code = codes[i] or "0"
        i += 1
        if code == "0":
            state.clear()
        elif code in ("38", "48", "58"):
            n = 3 if codes[i : i + 1] == ["2"] else 1
            state[{"38": "fg", "48": "bg", "58": "ulc"}[code]] = ";".join([code, *codes[i : i + 1 + n]])
            i += 1 + n
        elif code in _ATTRIBUTES:
            state[_ATTRIBUTES[code][0]] = code
        elif code in _OFF:
            for name in _OFF[code]:
                state.pop(name, None)
        elif code.isdigit() and (30 <= int(code) <= 37 or 90 <= int(code) <= 97):
            state["fg"] = code
        elif code.isdigit() and (40 <= int(code) <= 47 or 100 <= int(code) <= 107):
            state["bg"] = code
        else:
            state["x" + code] = code  # kept as is; only a reset takes it off
    return tuple(sorted(state.items()))


def sgr_transition(current: Style, wanted: Style) -> str:
    """The shortest SGR sequence that takes the terminal from `current` to `wanted` ("" if equal)."""
    if current == wanted:
        return ""
    have, want = dict(current), dict(wanted)
    reset = ["0", *want.values()]
    diff: list[str] = []
    for name in have.keys() - want.keys():
        off = _OFF_CODE.get(name)
        if off is None:  # only a reset takes an unknown attribute off
            return "\x1b[" + ";".join(reset) + "m"
        if off not in diff:
            diff.append(off)
    intensity_off = "22" in diff  # takes off bold and dim both: put back the one that stays
    diff += [code for name, code in want.items() if have.get(name) != code or (intensity_off and code in ("1", "2"))]
    codes = diff if len(";".join(diff)) < len(";".join(reset)) else reset
    return "\x1b[" + ";".join(codes) + "m"


def _set(style: Style) -> str:
    """SGR for `style` from an unknown state."""
    return "\x1b[" + ";".join(["0", *dict(style).values()]) + "m"


class ScreenDiff:
    """Rewrites a terminal stream into the minimal one for the screen it last drew."""

    def __init__(self) -> None:
        self._rows: dict[int, dict[int, Cell]] = {}  # what the terminal shows (missing: unknown)
        self._style: Style | None = ()  # the terminal's SGR state (None: unknown)
        self._want: Style = ()  # the stream's SGR state
        self._pos: tuple[int, int] | None = (0, 0)  # where the stream writes next (x, y)
        self._cursor: tuple[int, int] | None = None  # where the terminal's cursor is
        self._tail = ""  # an escape sequence cut at the end of the last write
        self._cursor_shown = True
        self._sync_at: int | None = None  # a held "begin synchronized update": where it goes in the output

    def invalidate(self) -> None:
        """Forget what the terminal shows (a resize, a redraw from scratch): the next frame goes in full."""
        self._rows.clear()
        self._style = None
        self._cursor = None

    def feed(self, data: str) -> str:
        """The bytes to send instead of `data`."""
        data, self._tail = self._tail + data, ""
        out: list[str] = []
        if self._sync_at is not None:
            self._sync_at = 0
        start = 0
        for match in _ESCAPE.finditer(data):
            if match.start() > start:
                self._text(data[start : match.start()], out)
            start = match.end()
            self._escape(match, out)
        rest = data[start:]
        cut = rest.rfind("\x1b")
        if cut >= 0:  # an escape sequence split across writes: finish it with the next one
            rest, self._tail = rest[:cut], rest[cut:]
        if rest:
            self._text(rest, out)
        if self._cursor_shown:
            self._place_cursor(out)
        if self._sync_at is not None and len(out) > self._sync_at:
            out.insert(self._sync_at, SYNC_START)
            self._sync_at = None
        return "".join(out)

    # -- the stream ------------------------------------------------------------

    def _escape(self, match: re.Match[str], out: list[str]) -> None:
        params, final = match.group(1), match.group(2)
        if final == "m" and params is not None and "?" not in params:
            self._want = parse_sgr(params, self._want)
        elif final in ("H", "f") and params is not None and "?" not in params:
            parts = [*params.split(";"), "", ""][:2]
            y, x = (int(p) if p else 1 for p in parts)
            self._pos = (x - 1, y - 1)
        elif params == "?2026" and final in ("h", "l"):
            self._synchronized(final == "h", out)
        elif params == "?25" and final in ("h", "l"):
            self._cursor_shown = final == "h"
            if self._cursor_shown:
                self._place_cursor(out)
            out.append(match.group(0))
        else:
            self._pass_through(match.group(0), out)

    def _synchronized(self, begin: bool, out: list[str]) -> None:
        """Hold a frame's begin until it has something to say: a frame with no change sends nothing."""
        if begin:
            self._sync_at = len(out)
            return
        if self._cursor_shown:
            self._place_cursor(out)
        if self._sync_at is None:
            out.append(SYNC_END)
            return
        if len(out) > self._sync_at:
            out.insert(self._sync_at, SYNC_START)
            out.append(SYNC_END)
        self._sync_at = None

    def _pass_through(self, sequence: str, out: list[str]) -> None:
        """Something not modelled: send it as is, from a known state, and forget the screen."""
        self._place_cursor(out)
        if self._style != ():
            out.append("\x1b[0m")
        out.append(sequence)
        self.invalidate()
        self._pos = None
        self._want = ()

    def _text(self, text: str, out: list[str]) -> None:
        if _CONTROL.search(text):
            for part in re.split(r"([\x00-\x1a\x1c-\x1f\x7f])", text):
                if part == "\n":
                    self._pos = None if self._pos is None else (self._pos[0], self._pos[1] + 1)
                elif part == "\r":
                    self._pos = None if self._pos is None else (0, self._pos[1])
                elif len(part) == 1 and _CONTROL.match(part):
                    self._pass_through(part, out)  # a bell, a tab: not ours to second-guess
                elif part:
                    self._cells(part, out)
            return
        self._cells(text, out)

    def _cells(self, text: str, out: list[str]) -> None:
        if self._pos is None:  # the stream writes where we cannot tell: send it as is
            self._pass_through("", out)
            out.append(_set(self._want) + text)
            self._style = self._want
            return
        x, y = self._pos
        row = self._rows.setdefault(y, {})
        style = self._want
        ascii_text = text.isascii()
        for char in text:
            width = 1 if ascii_text else get_character_cell_size(char)
            if width == 0:  # a combining mark: it belongs to the cell before, which goes again
                self._rewrite_previous(row, x, y, char, out)
                continue
            cell = (char, style)
            if row.get(x) != cell or (width == 2 and row.get(x + 1) != (_WIDE_TAIL, style)):
                self._put(row, x, y, char, width, style, out)
            x += width
        self._pos = (x, y)

    def _rewrite_previous(self, row: dict[int, Cell], x: int, y: int, mark: str, out: list[str]) -> None:
        left = x - 1
        while left > 0 and row.get(left, _UNKNOWN)[0] == _WIDE_TAIL:
            left -= 1
        char, style = row.get(left, (" ", self._want))
        row.pop(left, None)
        self._put(row, left, y, char + mark, 2 if row.get(left + 1, _UNKNOWN)[0] == _WIDE_TAIL else 1, style, out)

    def _put(self, row: dict[int, Cell], x: int, y: int, char: str, width: int, style: Style, out: list[str]) -> None:
        self._move(row, x, y, out)
        if self._style != style:
            out.append(_set(style) if self._style is None else sgr_transition(self._style, style))
            self._style = style
        out.append(char)
        # Overwriting half of a double-width character blanks its other half on the terminal.
        if row.get(x, _UNKNOWN)[0] == _WIDE_TAIL:
            row.pop(x - 1, None)
        end = x + width
        if row.get(end, _UNKNOWN)[0] == _WIDE_TAIL:
            row.pop(end, None)
        row[x] = (char, style)
        if width == 2:
            row[x + 1] = (_WIDE_TAIL, style)
        self._cursor = (end, y)

    def _move(self, row: dict[int, Cell], x: int, y: int, out: list[str]) -> None:
        cursor = self._cursor
        if cursor == (x, y):
            return
        if cursor is not None and cursor[1] == y and 0 < x - cursor[0] <= _REWRITE_GAP:
            # Write the few unchanged cells in between again if they need no style change.
            gap = [row.get(i) for i in range(cursor[0], x)]
            if all(c is not None and c[1] == self._style and c[0] and c[0].isascii() for c in gap):
                out.append("".join(c[0] for c in gap if c is not None))
                self._cursor = (x, y)
                return
        if cursor is not None and cursor[1] == y and x > cursor[0]:
            out.append(f"\x1b[{x - cursor[0]}C")
        else:
            out.append(f"\x1b[{y + 1};{x + 1}H")
        self._cursor = (x, y)

    def _place_cursor(self, out: list[str]) -> None:
        """Leave the terminal's cursor where the stream left it (an input box shows it there)."""
        if self._pos is not None and self._cursor != self._pos:
            x, y = self._pos
            out.append(f"\x1b[{y + 1};{x + 1}H")
            self._cursor = self._pos


def lean_driver(base: type[Driver]) -> type[Driver]:
    """`base` (the platform's terminal driver) with its output diffed against the screen it drew."""

    class LeanDriver(base):  # type: ignore[valid-type,misc]
        screen_diff: ScreenDiff

        def write(self, data: str) -> None:
            diff = self.__dict__.get("screen_diff")
            if diff is None:
                diff = self.screen_diff = ScreenDiff()
            if data := diff.feed(data):
                super().write(data)

    LeanDriver.__name__ = LeanDriver.__qualname__ = f"Lean{base.__name__}"
    return LeanDriver
