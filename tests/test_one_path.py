"""No face can act around the operations service: every call that sends a verb to a
driver, anywhere in the package, is one of the known places."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "vfleet"
# (module, called attribute): the only places allowed to send a verb or reach a live driver
ALLOWED = {
    ("core/operations.py", "perform"),  # step 4 of an operation: after plan, confirm and intent
    ("core/operations.py", "driver"),  # the connected driver of a target's host
    ("drivers/base.py", "_perform"),  # the contract's own dispatch to each driver's implementation
    ("sources/prometheus.py", "perform"),  # a relay driver: hands the operation's call to the host's real driver
}
SENDING = {"perform", "_perform", "driver"}


# vfleet/testing/ is the driver contract kit: it tests drivers themselves, and an
# import-linter contract keeps it out of the runtime.
KIT = PACKAGE / "testing"


def sends(call: ast.Call) -> str | None:
    """The attribute a call uses to reach a driver: perform/_perform on anything, driver() on a fleet."""
    func = call.func
    if not isinstance(func, ast.Attribute) or func.attr not in SENDING:
        return None
    if func.attr == "driver" and not ast.unparse(func.value).endswith("fleet"):
        return None  # e.g. the inventory parser's own driver() method
    return func.attr


def calls_that_send() -> set[tuple[str, str]]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        if KIT in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and (attr := sends(node)) is not None:
                found.add((str(path.relative_to(PACKAGE)), attr))
    return found


def test_every_path_that_sends_a_verb_goes_through_the_operations_service() -> None:
    found = calls_that_send()
    assert found - ALLOWED == set(), "a verb reaches a driver outside the operations service"
    assert found >= ALLOWED  # the scan still sees the real path (it would pass vacuously otherwise)


def test_the_scan_would_see_a_face_calling_a_driver() -> None:
    rogue = ast.parse("async def f(self, verb, ref):\n    await self.fleet.driver('h').perform(verb, ref)\n")
    assert {sends(n) for n in ast.walk(rogue) if isinstance(n, ast.Call)} >= {"driver", "perform"}
