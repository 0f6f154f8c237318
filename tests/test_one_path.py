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
}
SENDING = {"perform", "_perform", "driver"}


def calls_that_send() -> set[tuple[str, str]]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SENDING:
                found.add((str(path.relative_to(PACKAGE)), node.func.attr))
    return found


def test_every_path_that_sends_a_verb_goes_through_the_operations_service() -> None:
    found = calls_that_send()
    assert found - ALLOWED == set(), "a verb reaches a driver outside the operations service"
    assert found >= ALLOWED  # the scan still sees the real path (it would pass vacuously otherwise)


def test_the_scan_would_see_a_face_calling_a_driver(tmp_path: Path) -> None:
    rogue = ast.parse("async def f(fleet, verb, ref):\n    await fleet.driver('h').perform(verb, ref)\n")
    attrs = {n.func.attr for n in ast.walk(rogue) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert {"driver", "perform"} <= attrs & SENDING
