"""The action core on the simulated fleet: policy below the faces, one result per target."""

from __future__ import annotations

from dataclasses import replace

from vfleet.core.demo import demo_inventory
from vfleet.core.engine import Fleet
from vfleet.core.models import PowerState, Verb
from vfleet.core.operations import Target, Tier, allowed_verbs, confirmation_tier, run_action


def test_confirmation_tiers() -> None:
    assert confirmation_tier(Verb.RESUME, 1) is Tier.NONE
    assert confirmation_tier(Verb.SHUTDOWN, 1) is Tier.YES_NO
    assert confirmation_tier(Verb.START, 1) is Tier.YES_NO
    assert confirmation_tier(Verb.FORCE_OFF, 1) is Tier.TYPE_NAME
    assert confirmation_tier(Verb.RESET, 1) is Tier.TYPE_NAME
    assert confirmation_tier(Verb.RESUME, 2) is Tier.TYPE_NAME


def _fleet(read_only_host: str | None = None) -> Fleet:
    hosts = [replace(h, poll_interval=0.2, options={**h.options, "latency": 0.01, "flaky": False})
             for h in demo_inventory().hosts[:2]]
    hosts = [replace(h, read_only=h.name == read_only_host) for h in hosts]
    return Fleet(hosts)


async def test_actions_run_report_and_refuse_read_only_in_the_core() -> None:
    fleet = _fleet(read_only_host="kvm-ams-2")
    async with fleet:
        assert await fleet.wait_until(lambda v: all(x.health.polls >= 1 for x in v), timeout=5)
        a, b = fleet.views()
        running_a = next(r.domain.name for r in a.rows if r.domain.state is PowerState.RUNNING)
        running_b = next(r.domain.name for r in b.rows if r.domain.state is PowerState.RUNNING)
        assert Verb.PAUSE in allowed_verbs(a) and allowed_verbs(b) == frozenset()
        seen = []
        results = await run_action(
            fleet, Verb.PAUSE,
            [Target("kvm-ams-1", running_a), Target("kvm-ams-2", running_b), Target("nowhere", "x")],
            on_result=seen.append,
        )
        assert [r.ok for r in results] == [True, False, False]
        assert results[0].state_after is PowerState.PAUSED
        assert "read-only" in results[1].message and "no such host" in results[2].message
        assert len(seen) == 3
        again = await run_action(fleet, Verb.RESUME, [Target("kvm-ams-1", running_a)])
        assert again[0].ok and again[0].state_after is PowerState.RUNNING
        assert await fleet.wait_until(
            lambda v: any(r.domain.name == running_a and r.domain.state is PowerState.RUNNING for r in v[0].rows), 5)
        noop = await run_action(fleet, Verb.RESUME, [Target("kvm-ams-1", running_a)])
        assert noop[0].ok and noop[0].noop and noop[0].message == "already running"
