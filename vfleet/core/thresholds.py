"""Warn/crit thresholds on the metrics an operator watches: one definition for every face.

The console colours cells with them, and `vfleet check` reads the same values, so a
cell that looks critical is one that check would page about. Each metric is a number
where bigger is worse; a value at or above `warn` is a warning, at or above `crit` is
critical; an unknown value (None) is never either.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum

from vfleet.core.models import Domain


class Level(IntEnum):
    OK = 0
    WARN = 1
    CRIT = 2


@dataclass(frozen=True, slots=True)
class Threshold:
    warn: float
    crit: float

    def level(self, value: float | None) -> Level:
        if value is None:
            return Level.OK
        if value >= self.crit:
            return Level.CRIT
        if value >= self.warn:
            return Level.WARN
        return Level.OK


@dataclass(frozen=True, slots=True)
class Metric:
    """What a threshold measures, for the config file's docs, `config check` and the console's legend."""

    name: str  # the key in the config file
    label: str  # as the console's legend says it
    unit: str  # "%" or "s"
    maximum: float | None  # a percentage cannot exceed 100
    doc: str


METRICS = (
    Metric("cpu", "CPU%", "%", 100.0, "CPU % of the domain's vCPUs (the CPU% column)"),
    Metric("memory", "MEM", "%", 100.0, "guest memory used, % of the domain's maximum (the MEM and MEM% columns)"),
    Metric("contention", "CONT%", "%", 100.0, "% of time vCPUs waited for a physical CPU (the CONT% column)"),
    Metric("age", "HOST", "s", None, "seconds since the host's last good poll (the HOST column of its rows)"),
)


@dataclass(frozen=True, slots=True)
class Thresholds:
    cpu: Threshold = Threshold(80.0, 95.0)
    memory: Threshold = Threshold(85.0, 95.0)
    contention: Threshold = Threshold(5.0, 10.0)
    age: Threshold = Threshold(10.0, 60.0)

    def get(self, metric: str) -> Threshold:
        value: Threshold = getattr(self, metric)
        return value

    def changed(self) -> list[str]:
        """Metrics whose threshold is not the default, for summaries."""
        default = Thresholds()
        return [f.name for f in fields(self) if self.get(f.name) != default.get(f.name)]


DEFAULT_THRESHOLDS = Thresholds()


def memory_used_percent(domain: Domain) -> float | None:
    """Used memory as a % of the domain's maximum: the same number as the filter's `mem`."""
    if domain.memory_used_bytes is None or not domain.memory_max_bytes:
        return None
    return 100.0 * domain.memory_used_bytes / domain.memory_max_bytes
