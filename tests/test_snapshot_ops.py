"""Snapshots as operations: verbs with parameters through plan, policy, tiers and audit."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from test_tui_support import FakeDriver, FakeHost, domain

from vfleet.core.audit import AuditLog, verify
from vfleet.core.demo import demo_inventory
from vfleet.core.engine import Fleet
from vfleet.core.errors import UsageError
from vfleet.core.models import LIFECYCLE_VERBS, SnapshotParams, Verb
from vfleet.core.operations import Operations, Target, Tier, always, expand_params
from vfleet.drivers.base import Capability
from vfleet.drivers.xen.xl import XenXlDriver


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def sim_fleet(count: int = 3, **host: object) -> Fleet:
    base = demo_inventory().hosts[0]
    options = {**base.options, "latency": 0.005, "flaky": False, "domains": count}
    return Fleet([replace(base, poll_interval=3600, options=options, **host)])  # type: ignore[arg-type]


async def targets_of(fleet: Fleet) -> list[Target]:
    assert await fleet.wait_until(lambda v: all(x.health.polls >= 1 for x in v), timeout=10)
    view = fleet.views()[0]
    return [Target(view.name, r.domain.name, r.domain.key) for r in sorted(view.rows, key=lambda r: r.domain.name)]


def test_placeholders_expand_once_and_other_params_stay() -> None:
    at = datetime(2024, 5, 6, 7, 8, 9)
    got = expand_params(SnapshotParams("pre-patch-{date}-{time}", memory=True), at)
    assert got == SnapshotParams("pre-patch-2024-05-06-070809", memory=True)
    assert expand_params(None, at) is None


async def test_create_on_several_targets_records_one_expanded_name(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    async with sim_fleet(3) as fleet:
        targets = await targets_of(fleet)
        ops = Operations(fleet, AuditLog(log), face="test")
        one = ops.plan(Verb.SNAPSHOT_CREATE, targets[:1], params=SnapshotParams("pre-{date}"))
        assert one.tier is Tier.YES_NO  # one target: a yes/no
        the_plan = ops.plan(Verb.SNAPSHOT_CREATE, targets, params=SnapshotParams("pre-{date}"))
        assert the_plan.tier is Tier.TYPE_NAME and the_plan.expected_answer == "3"  # several: type the count
        name = f"pre-{datetime.now():%Y-%m-%d}"
        assert the_plan.params == SnapshotParams(name) and the_plan.action == f"snapshot-create {name}"
        operation = await ops.run(the_plan, always)
        assert [r.outcome for r in operation.results] == ["ok"] * 3
        driver = fleet.driver(targets[0].host)
        assert driver is not None
        for t in targets:
            listed = await driver.snapshots(t.ref)
            assert [s.name for s in listed] == [name] and listed[0].current
    written = records(log)
    intent = next(r for r in written if r["kind"] == "intent")
    assert intent["verb"] == "snapshot-create" and intent["params"] == {"snapshot": name, "memory": False}
    results = [r for r in written if r["kind"] == "result"]
    assert len(results) == 3 and all(r["params"] == {"snapshot": name, "memory": False} for r in results)
    assert verify(log).ok


async def test_revert_and_delete_are_destructive_and_refused_on_protected_domains(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    async with sim_fleet(2, protected_domains=("*",)) as fleet:
        targets = await targets_of(fleet)
        ops = Operations(fleet, AuditLog(log), face="test")
        params = SnapshotParams("before")
        created = await ops.run(ops.plan(Verb.SNAPSHOT_CREATE, targets[:1], params=params), always)
        assert created.results[0].ok  # create is not destructive: a protected domain allows it
        for verb in (Verb.SNAPSHOT_REVERT, Verb.SNAPSHOT_DELETE):
            refused = ops.plan(verb, targets[:1], params=params)
            assert refused.sendable == () and "protected" in (refused.decisions[0].refused or "")
            allowed = ops.plan(verb, targets[:1], params=params, override=True)
            assert allowed.tier is Tier.TYPE_NAME and allowed.expected_answer == targets[0].domain
        refused_op = await ops.run(ops.plan(Verb.SNAPSHOT_DELETE, targets[:1], params=params), always)
        assert refused_op.results[0].outcome == "refused"
        done = await ops.run(ops.plan(Verb.SNAPSHOT_DELETE, targets[:1], params=params, override=True), always)
        assert done.results[0].ok
        driver = fleet.driver(targets[0].host)
        assert driver is not None and await driver.snapshots(targets[0].ref) == ()
    results = [r for r in records(log) if r["kind"] == "result" and r["verb"] == "snapshot-delete"]
    assert [(r["result"], r["override"], r["params"]) for r in results] == [
        ("refused", False, {"snapshot": "before", "memory": False}),
        ("ok", True, {"snapshot": "before", "memory": False}),
    ]


async def test_unprotected_revert_still_needs_the_name_typed(tmp_path: Path) -> None:
    async with sim_fleet(1) as fleet:
        targets = await targets_of(fleet)
        ops = Operations(fleet, AuditLog(tmp_path / "audit.jsonl"), face="test")
        the_plan = ops.plan(Verb.SNAPSHOT_REVERT, targets, params=SnapshotParams("x"))
        assert the_plan.tier is Tier.TYPE_NAME and the_plan.expected_answer == targets[0].domain


async def test_read_only_refuses_snapshot_verbs(tmp_path: Path) -> None:
    async with sim_fleet(1, read_only=True) as fleet:
        targets = await targets_of(fleet)
        ops = Operations(fleet, AuditLog(tmp_path / "audit.jsonl"), face="test")
        for verb in (Verb.SNAPSHOT_CREATE, Verb.SNAPSHOT_REVERT, Verb.SNAPSHOT_DELETE):
            the_plan = ops.plan(verb, targets, params=SnapshotParams("x"))
            assert the_plan.sendable == () and "read-only" in (the_plan.decisions[0].refused or "")


async def test_a_snapshot_verb_needs_its_parameters_and_a_lifecycle_verb_takes_none(tmp_path: Path) -> None:
    async with sim_fleet(1) as fleet:
        targets = await targets_of(fleet)
        ops = Operations(fleet, AuditLog(tmp_path / "audit.jsonl"), face="test")
        with pytest.raises(UsageError, match="snapshot-create needs SnapshotParams"):
            ops.plan(Verb.SNAPSHOT_CREATE, targets)
        with pytest.raises(UsageError, match="needs a snapshot name"):
            ops.plan(Verb.SNAPSHOT_CREATE, targets, params=SnapshotParams(" "))
        with pytest.raises(UsageError, match="pause takes no parameters"):
            ops.plan(Verb.PAUSE, targets, params=SnapshotParams("x"))
        # the lifecycle menus offer lifecycle verbs only; snapshot verbs are asked for by name
        assert set(ops.applicable_verbs(targets)) <= set(LIFECYCLE_VERBS)
        assert ops.applicable_verbs(targets, [Verb.SNAPSHOT_CREATE]) == [Verb.SNAPSHOT_CREATE]


class XlLike(FakeDriver):
    """A driver without snapshots that says why, as xen_xl does."""

    unsupported = XenXlDriver.unsupported


async def test_a_driver_without_snapshots_refuses_them_with_its_reason(tmp_path: Path) -> None:
    world = {"xen1": FakeHost("xen1", "xen", [domain("pv1")])}
    fleet = Fleet(
        [replace(demo_inventory().hosts[0], name="xen1", driver="fake", poll_interval=3600, options={})],
        driver_factory=lambda c, ro: XlLike(c, world[c.name], read_only=ro),
    )
    async with fleet:
        assert await fleet.wait_until(lambda v: all(x.health.polls >= 1 for x in v), timeout=10)
        ops = Operations(fleet, AuditLog(tmp_path / "audit.jsonl"), face="test")
        target = [Target("xen1", "pv1", "uuid-pv1")]
        assert ops.applicable_verbs(target, [Verb.SNAPSHOT_CREATE]) == []
        why = ops.plan(Verb.SNAPSHOT_CREATE, target, params=SnapshotParams("x")).decisions[0].refused or ""
        assert "cannot snapshot-create" in why and "xl save" in why
    assert Capability.SNAPSHOT not in XenXlDriver.capabilities and Capability.SNAPSHOT in XenXlDriver.unsupported
