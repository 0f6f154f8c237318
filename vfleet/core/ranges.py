"""Threshold ranges in the Monitoring Plugins syntax, as `-w`/`-c` of `vfleet check` take them.

A range is `[@]start:end`; it names the values that are fine, and a value outside it
alerts (with `@`: a value inside it alerts). Ends are inclusive. `start` may be `~`
(minus infinity) and is 0 when left out (`:5` is `0:5`, as in the plugins' C library);
`end` is infinity when left out after `:`.

    10      alert if < 0 or > 10        10:     alert if < 10
    ~:10    alert if > 10               10:20   alert if < 10 or > 20
    @10:20  alert if >= 10 and <= 20

Pure: no I/O, so it is property-tested.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from vfleet.core.errors import UsageError

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"(?P<at>@)?(?:(?P<start>~|{_NUMBER})?:)?(?P<end>{_NUMBER})?")


@dataclass(frozen=True, slots=True)
class Range:
    start: float = 0.0  # -inf for `~`
    end: float = math.inf
    inside: bool = False  # `@`: alert when the value is inside [start, end]
    text: str = ""  # as given, for perfdata and messages

    def alerts(self, value: float) -> bool:
        within = self.start <= value <= self.end
        return within if self.inside else not within

    def __str__(self) -> str:
        return self.text or render(self)


def parse(text: str) -> Range:
    """`10`, `10:`, `~:10`, `10:20`, `@10:20`; anything else is a UsageError naming the text."""
    given = text.strip()
    match = _RANGE.fullmatch(given)
    if not given or match is None or (match["end"] is None and ":" not in given):
        raise UsageError(f"bad threshold range {text!r}: use N, N:, ~:N, N:M or @N:M (numbers)")
    start_text, end_text = match["start"], match["end"]
    start = -math.inf if start_text == "~" else float(start_text) if start_text is not None else 0.0
    end = float(end_text) if end_text is not None else math.inf
    if not (math.isfinite(start) or start_text == "~") or not (math.isfinite(end) or end_text is None):
        raise UsageError(f"bad threshold range {text!r}: numbers must be finite")
    if start > end:
        raise UsageError(f"bad threshold range {text!r}: the start {start:g} is above the end {end:g}")
    return Range(start, end, match["at"] is not None, given)


def render(r: Range) -> str:
    """The shortest text that parses back to the same range."""
    at = "@" if r.inside else ""
    start = "~" if r.start == -math.inf else _number(r.start)
    if r.end == math.inf:
        return f"{at}{start}:"
    if r.start == 0.0 and not r.inside:
        return _number(r.end)
    return f"{at}{start}:{_number(r.end)}"


def above(limit: float) -> Range:
    """Alert at or above `limit`: the console's thresholds (bigger is worse) as a range."""
    return Range(-math.inf, math.nextafter(limit, -math.inf), False, f"~:{_number(limit)}")


def _number(value: float) -> str:
    return f"{value:g}" if float(f"{value:g}") == value else repr(value)
