"""Per-domain history of what the console draws, in compact typed ring buffers.

Ten minutes of four series (CPU %, memory used, disk bytes/s, net bytes/s) per
domain, as 32-bit floats in one `array` per domain: 16 bytes a sample, about
4.8 KiB a domain at a 2 s interval and 9.4 KiB at 1 s, against ~130 KiB as
Python objects. Unknown (None) is stored as NaN, so it stays apart from 0.

Only the TUI keeps history (Fleet(history=True) / Fleet.keep_history()):
commands that never draw a sparkline must not pay for one.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Sequence

from vfleet.core.metrics import DomainRow

HISTORY_SECONDS = 600.0  # ten minutes of sparkline
SERIES = ("cpu_percent", "memory_used_bytes", "disk_bps", "net_bps")  # disk: read + write, net: rx + tx
_WIDTH = len(SERIES)
_INDEX = {name: i for i, name in enumerate(SERIES)}
_NAN = float("nan")


def capacity_for(poll_interval: float) -> int:
    """Samples in ten minutes at this interval (at least 2)."""
    return max(2, math.ceil(HISTORY_SECONDS / poll_interval))


def _sum(a: float | None, b: float | None) -> float | None:
    return None if a is None and b is None else (a or 0.0) + (b or 0.0)


def _clamped(value: float | None) -> float:
    """A value as a float32 can hold it: None -> NaN, beyond the range -> +/-inf."""
    if value is None:
        return _NAN
    try:
        return float(value)
    except OverflowError:  # an int past a double's range
        return math.inf if value > 0 else -math.inf


class History:
    """One domain's ring buffer: `capacity` samples of every series in SERIES.

    Samples are interleaved in one float32 array (sample i at [i*4, i*4+4)). It grows
    by appending until full, then is copied once to its exact size and overwritten
    in place, oldest first.
    """

    __slots__ = ("_capacity", "_data", "_next")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"history capacity must be 1 or more, got {capacity}")
        self._capacity = capacity
        self._data = array("f")
        self._next = 0  # once full: the slot the next sample overwrites (the oldest)

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return len(self._data) // _WIDTH

    def record(
        self, cpu_percent: float | None, memory_used_bytes: float | None, disk_bps: float | None, net_bps: float | None
    ) -> None:
        """Append one sample (None = unknown), dropping the oldest when full."""
        raw = (cpu_percent, memory_used_bytes, disk_bps, net_bps)
        try:
            sample = array("f", [_NAN if v is None else v for v in raw])
        except OverflowError:
            sample = array("f", map(_clamped, raw))
        data = self._data
        if len(data) < self._capacity * _WIDTH:
            data.extend(sample)
            if len(data) == self._capacity * _WIDTH:
                self._data = array("f", data)  # exact size: drop the growth slack for good
            return
        start = self._next * _WIDTH
        data[start : start + _WIDTH] = sample
        self._next = (self._next + 1) % self._capacity

    def series(self, name: str, last: int | None = None) -> list[float | None]:
        """One series, oldest first (the newest `last` samples if given); None where unknown."""
        values = self._column(_INDEX[name], len(self) if last is None else max(0, min(last, len(self))))
        return [None if v != v else v for v in values]  # NaN is the only value unequal to itself

    def _column(self, column: int, count: int) -> array[float]:
        """The newest `count` values of one column, oldest first: slices, no Python loop (a table row per tick)."""
        held = len(self)
        first = (self._next + held - count) % self._capacity if held == self._capacity else held - count
        end = first + count
        if end <= held:
            return self._data[first * _WIDTH + column : end * _WIDTH : _WIDTH]
        return self._data[first * _WIDTH + column :: _WIDTH] + self._data[column : (end - held) * _WIDTH : _WIDTH]

    def resized(self, capacity: int) -> History:
        """A copy holding `capacity` samples: the newest ones of this history."""
        copy = History(capacity)
        keep = min(len(self), capacity) * _WIDTH
        ordered = self._data[self._next * _WIDTH :] + self._data[: self._next * _WIDTH]
        copy._data = array("f", ordered[len(ordered) - keep :])  # a whole copy: exact size when full
        return copy

    @property
    def nbytes(self) -> int:
        """Memory held by this history (object and buffer)."""
        return sys.getsizeof(self) + sys.getsizeof(self._data)


class HostHistory:
    """Every domain's history on one host; domains that leave the host leave it too."""

    __slots__ = ("capacity", "rings")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.rings: dict[str, History] = {}

    def get(self, key: str) -> History | None:
        return self.rings.get(key)

    def record(self, rows: Sequence[DomainRow]) -> None:
        """Take in one poll's rows (one sample per domain)."""
        rings = self.rings
        for row in rows:
            domain, rates = row.domain, row.rates
            ring = rings.get(domain.key)
            if ring is None:
                ring = rings[domain.key] = History(self.capacity)
            ring.record(
                rates.cpu_percent,
                domain.memory_used_bytes,
                _sum(rates.disk_read_bps, rates.disk_write_bps),
                _sum(rates.net_rx_bps, rates.net_tx_bps),
            )
        if len(rings) > len(rows):
            seen = {row.domain.key for row in rows}
            for gone in set(rings) - seen:
                del rings[gone]

    def resize(self, capacity: int) -> None:
        """A new poll interval: keep ten minutes at it, newest samples first."""
        if capacity != self.capacity:
            self.capacity = capacity
            self.rings = {key: ring.resized(capacity) for key, ring in self.rings.items()}
