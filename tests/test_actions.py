"""The operations service: plan by key, confirm by the core's tier, intent before sending,
results as they come, a closing record whatever happens."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest
from test_tui_support import FakeDriver, FakeHost, domain

from vfleet.core.audit import AuditLog, verify
from vfleet.core.demo import demo_inventory
from vfleet.core.engine import Fleet
from vfleet.core.errors import AuditUnavailable, PolicyRefused
from vfleet.core.models import ActionResult, DomainRef, HostConfig, PowerState, Verb
from vfleet.core.operations import Operations, Plan, Target, Tier, allowed_verbs, always, confirmation_tier


def test_confirmation_tiers() -> None:
    assert confirmation_tier(Verb.RESUME, 1) is Tier.NONE
    assert confirmation_tier(Verb.SHUTDOWN, 1) is Tier.YES_NO
    assert confirmation_tier(Verb.START, 1) is Tier.YES_NO
    assert confirmation_tier(Verb.FORCE_OFF, 1) is Tier.TYPE_NAME
    assert confirmation_tier(Verb.RESET, 1) is Tier.TYPE_NAME
    assert confirmation_tier(Verb.RESUME, 2) is Tier.TYPE_NAME
    assert confirmation_tier(Verb.FORCE_OFF, 0) is Tier.NONE  # nothing would be sent
    assert confirmation_tier(Verb.START, 1, overridden=True) is Tier.TYPE_NAME
    assert confirmation_tier(Verb.RESUME, 1, hidden=1) is Tier.YES_NO  # a hidden target is never silent


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def fake_fleet(world: dict[str, FakeHost], driver: type[FakeDriver] = FakeDriver, **host: object) -> Fleet:
    configs = [HostConfig(name=name, driver="fake", poll_interval=3600, call_timeout=5, **host) for name in world]  # type: ignore[arg-type]
    return Fleet(configs, driver_factory=lambda c, ro: driver(c, world[c.name], read_only=ro))


async def polled(fleet: Fleet) -> None:
    assert await fleet.wait_until(lambda v: all(x.health.polls >= 1 for x in v), timeout=5)


def _fleet(read_only_host: str | None = None) -> Fleet:
    hosts = [replace(h, poll_interval=0.2, options={**h.options, "latency": 0.01, "flaky": False})
             for h in demo_inventory().hosts[:2]]
    hosts = [replace(h, read_only=h.name == read_only_host) for h in hosts]
    return Fleet(hosts)


async def test_results_refusals_and_no_ops_on_the_demo_fleet(tmp_path: Path) -> None:
    fleet = _fleet(read_only_host="kvm-ams-2")
    async with fleet:
        await polled(fleet)
        ops = Operations(fleet, AuditLog(tmp_path / "audit.jsonl"), face="test")
        a, b = fleet.views()
        running_a = next(r.domain for r in a.rows if r.domain.state is PowerState.RUNNING)
        running_b = next(r.domain for r in b.rows if r.domain.state is PowerState.RUNNING)
        assert Verb.PAUSE in allowed_verbs(a) and allowed_verbs(b) == frozenset()
        seen: list[ActionResult] = []
        targets = [Target("kvm-ams-1", running_a.name, running_a.key), Target("kvm-ams-2", running_b.name, running_b.key),
                   Target("nowhere", "x")]
        operation = await ops.run(ops.plan(Verb.PAUSE, targets), always, on_result=seen.append)
        results = sorted(operation.results, key=lambda r: r.host)
        assert [r.ok for r in results] == [True, False, False]
        assert results[0].state_after is PowerState.PAUSED and results[0].key == running_a.key
        assert "read-only" in results[1].message and "no such host" in results[2].message
        assert len(seen) == 3
        resume = [Target("kvm-ams-1", running_a.name, running_a.key)]
        again = await ops.run(ops.plan(Verb.RESUME, resume), always, wait=5)
        assert again.results[0].ok and again.results[0].state_after is PowerState.RUNNING
        noop = await ops.run(ops.plan(Verb.RESUME, resume), always)
        assert noop.results[0].noop and noop.results[0].message == "already running"
    assert verify(tmp_path / "audit.jsonl").ok


async def test_verbs_that_cannot_apply_in_the_state_are_refused_and_never_offered(tmp_path: Path) -> None:
    world = {"kvm1": FakeHost("kvm1", "kvm", [domain("on"), domain("off", PowerState.OFF), domain("zz", PowerState.PAUSED)])}
    async with fake_fleet(world) as fleet:
        await polled(fleet)
        ops = Operations(fleet, AuditLog(tmp_path / "audit.jsonl"), face="test")
        on, off, paused = (Target("kvm1", n, f"uuid-{n}") for n in ("on", "off", "zz"))
        assert ops.applicable_verbs([off]) == [Verb.START]
        assert ops.applicable_verbs([on]) == [Verb.SHUTDOWN, Verb.REBOOT, Verb.PAUSE, Verb.FORCE_OFF, Verb.RESET]
        assert ops.applicable_verbs([paused]) == [Verb.RESUME, Verb.FORCE_OFF, Verb.RESET]
        the_plan = ops.plan(Verb.PAUSE, [off])
        assert the_plan.sendable == () and the_plan.decisions[0].refused == "cannot pause a domain that is off"
        assert the_plan.tier is Tier.NONE  # nothing to confirm: nothing will be sent
        operation = await ops.run(the_plan, always)
        assert operation.results[0].outcome == "refused"
        assert world["kvm1"].performed == []


async def test_two_domains_with_the_same_name_are_aimed_at_by_key(tmp_path: Path) -> None:
    twins = [replace(domain("app"), uuid="uuid-a"), replace(domain("app"), uuid="uuid-b")]
    world = {"vc": FakeHost("vc", "esxi", twins)}
    async with fake_fleet(world) as fleet:
        await polled(fleet)
        ops = Operations(fleet, AuditLog(tmp_path / "audit.jsonl"), face="test")
        operation = await ops.run(ops.plan(Verb.PAUSE, [Target("vc", "app", "uuid-b")]), always)
        assert operation.results[0].ok and operation.results[0].key == "uuid-b"
        assert {d.key: d.state for d in world["vc"].domains} == {"uuid-a": PowerState.RUNNING, "uuid-b": PowerState.PAUSED}
    intent = next(r for r in records(tmp_path / "audit.jsonl") if r["kind"] == "intent")
    assert intent["targets"] == [{"host": "vc", "domain": "app", "key": "uuid-b", "plan": "send", "why": None,
                                  "override": False, "state": "running"}]


class WatchingDriver(FakeDriver):
    """Looks at the audit log at the moment a verb reaches the driver."""

    log_path: Path
    seen_at_send: list[list[str]] = []

    async def _perform(self, verb: Verb, target: DomainRef, deadline: float | None) -> ActionResult:
        self.seen_at_send.append([str(r["kind"]) for r in records(self.log_path)])
        return await super()._perform(verb, target, deadline)


async def test_the_intent_is_on_disk_before_the_driver_is_called_and_results_follow(tmp_path: Path) -> None:
    world = {"kvm1": FakeHost("kvm1", "kvm", [domain("web-1"), domain("web-2")])}
    WatchingDriver.log_path = tmp_path / "audit.jsonl"
    WatchingDriver.seen_at_send = []
    async with fake_fleet(world, WatchingDriver) as fleet:
        await polled(fleet)
        ops = Operations(fleet, AuditLog(tmp_path / "audit.jsonl"), face="tui")
        targets = [Target("kvm1", n, f"uuid-{n}") for n in ("web-1", "web-2")]
        await ops.run(ops.plan(Verb.PAUSE, targets), always)
    assert WatchingDriver.seen_at_send and all(kinds[0] == "intent" for kinds in WatchingDriver.seen_at_send)
    kinds = [r["kind"] for r in records(tmp_path / "audit.jsonl")]
    assert kinds == ["intent", "result", "result", "close"]
    assert len({r["op"] for r in records(tmp_path / "audit.jsonl")}) == 1


async def test_an_unwritable_audit_log_refuses_before_anything_is_sent(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    world = {"kvm1": FakeHost("kvm1", "kvm", [domain("web-1")])}
    async with fake_fleet(world) as fleet:
        await polled(fleet)
        ops = Operations(fleet, AuditLog(tmp_path / "not-a-dir" / "audit.jsonl"), face="cli")
        with pytest.raises(AuditUnavailable, match="audit"):
            await ops.run(ops.plan(Verb.PAUSE, [Target("kvm1", "web-1", "uuid-web-1")]), always)
    assert world["kvm1"].performed == []


class SlowDriver(FakeDriver):
    """Each verb waits until the test releases it: the moment to interrupt a bulk action."""

    release: asyncio.Event
    started: list[str] = []

    async def _perform(self, verb: Verb, target: DomainRef, deadline: float | None) -> ActionResult:
        self.started.append(target.name)
        if target.name != "d0":
            await self.release.wait()
        return await super()._perform(verb, target, deadline)


async def test_interrupting_a_bulk_action_leaves_intent_sent_targets_and_a_closing_record(tmp_path: Path) -> None:
    world = {"xen1": FakeHost("xen1", "xen", [domain(f"d{i}") for i in range(12)])}
    SlowDriver.release, SlowDriver.started = asyncio.Event(), []
    path = tmp_path / "audit.jsonl"
    async with fake_fleet(world, SlowDriver) as fleet:
        await polled(fleet)
        ops = Operations(fleet, AuditLog(path), face="cli")
        targets = [Target("xen1", f"d{i}", f"uuid-d{i}") for i in range(12)]
        run = asyncio.create_task(ops.run(ops.plan(Verb.FORCE_OFF, targets), always))

        # 4 per host in flight: d0 answers at once, which lets d4 go; d1..d4 then hang.
        async with asyncio.timeout(10):
            while len(SlowDriver.started) < 5:  # noqa: ASYNC110 - the driver's calls are the thing observed
                await asyncio.sleep(0.01)
        run.cancel()  # what asyncio.run does with the main task on Ctrl-C
        with pytest.raises(asyncio.CancelledError):
            await run
    log = records(path)
    assert [r["kind"] for r in log[:1]] == ["intent"] and len(log[0]["targets"]) == 12  # type: ignore[arg-type]
    results = {str(r["domain"]): r["result"] for r in log if r["kind"] == "result"}
    assert results == {"d0": "ok", **{f"d{i}": "interrupted" for i in range(1, 5)}}
    close = log[-1]
    assert close["kind"] == "close" and close["outcome"] == "interrupted"
    assert close["counts"] == {"ok": 1, "interrupted": 4, "not-sent": 7}
    assert verify(path).ok


async def test_the_interlock_refuses_several_targets_without_multiple_and_records_it(tmp_path: Path) -> None:
    world = {"kvm1": FakeHost("kvm1", "kvm", [domain("web-1"), domain("web-2")])}
    async with fake_fleet(world) as fleet:
        await polled(fleet)
        ops = Operations(fleet, AuditLog(tmp_path / "audit.jsonl"), face="cli")
        targets = [Target("kvm1", n, f"uuid-{n}") for n in ("web-1", "web-2")]
        with pytest.raises(PolicyRefused, match="--multiple"):
            await ops.run(ops.plan(Verb.PAUSE, targets, multiple=False), always)
        declined: list[Plan] = []

        async def no(plan: Plan) -> bool:
            declined.append(plan)
            return False

        operation = await ops.run(ops.plan(Verb.PAUSE, targets), no)
        assert operation.status == "not-confirmed" and declined[0].tier is Tier.TYPE_NAME
    assert [r["kind"] for r in records(tmp_path / "audit.jsonl")] == ["refused", "refused"]
    assert world["kvm1"].performed == []


async def test_a_plan_right_after_an_action_sees_the_state_the_driver_read_back(tmp_path: Path) -> None:
    world = {"kvm1": FakeHost("kvm1", "kvm", [domain("web-1")])}
    async with fake_fleet(world) as fleet:  # polls once an hour: the view will not catch up by itself
        await polled(fleet)
        ops = Operations(fleet, AuditLog(tmp_path / "audit.jsonl"), face="cli")
        web1 = [Target("kvm1", "web-1", "uuid-web-1")]
        await ops.run(ops.plan(Verb.PAUSE, web1), always)  # no --wait
        resume = ops.plan(Verb.RESUME, web1)
        assert resume.decisions[0].state is PowerState.PAUSED and resume.decisions[0].dispatch
        assert ops.applicable_verbs(web1) == [Verb.RESUME, Verb.FORCE_OFF, Verb.RESET]
        await ops.run(resume, always)
        assert ops.plan(Verb.RESUME, web1).decisions[0].noop == "already running"
    assert world["kvm1"].performed == [(Verb.PAUSE, "web-1"), (Verb.RESUME, "web-1")]
