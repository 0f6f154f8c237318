"""A job as the console shows it: one operation's targets and their results as they come back.

The jobs pane shows one line per job; the job screen shows every target's result in full.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vfleet.core.models import ActionResult
from vfleet.core.operations import Target


def outcome(result: ActionResult) -> str:
    """What happened to one target, in words: `ok -> off`, `no-op: already off`, `FAILED: why`."""
    if result.noop:
        return f"no-op: {result.message}"
    if result.ok:
        return f"ok -> {result.state_after.value if result.state_after else '?'}"
    if result.refused:
        return result.message  # "refused: why"
    return f"FAILED: {result.message}"


@dataclass
class Job:
    number: int
    verb: str
    targets: tuple[Target, ...]
    results: dict[tuple[str, str], ActionResult] = field(default_factory=dict)  # (host, domain key)
    done: bool = False
    error: str = ""  # the operation as a whole failed (e.g. the audit log went away)

    def add(self, result: ActionResult) -> None:
        self.results[(result.host, result.key or result.domain)] = result

    def result_for(self, target: Target) -> ActionResult | None:
        return self.results.get((target.host, target.ref.key))

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.results.values())

    @property
    def failed(self) -> int:
        return len(self.results) - self.ok

    @property
    def pending(self) -> int:
        return max(0, len(self.targets) - len(self.results))

    def status(self) -> str:
        """The job as a whole: `running`, `done, 2 ok, 1 failed`."""
        counts = f"{self.ok} ok, {self.failed} failed"
        if self.error:
            return f"stopped, {counts}: {self.error}"
        if self.done or not self.pending:
            return f"done, {counts}"
        return f"running, {counts}, {self.pending} pending"

    def line(self) -> str:
        """One line for the pane (it cuts with an ellipsis; the job screen has the rest)."""
        if len(self.targets) == 1:
            target = self.targets[0]
            result = self.result_for(target)
            what = outcome(result) if result else (self.error or "running")
            return f"job {self.number} {self.verb} {target.host}/{target.domain}: {what}"
        line = f"job {self.number} {self.verb} on {len(self.targets)} domains: {self.status()}"
        failures = [t for t in self.targets if (r := self.result_for(t)) is not None and not r.ok]
        if failures:  # the first failure's text, as far as it fits
            first = failures[0]
            result = self.result_for(first)
            assert result is not None
            line += f" · {first.host}/{first.domain}: {outcome(result)}"
        return line
