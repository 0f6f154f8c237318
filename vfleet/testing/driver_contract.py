"""The driver contract as a test suite every driver runs, built-in or third-party.

As napalm's shared getter tests: subclass `DriverContract` in a test module whose name
pytest collects, and give it a `subject` fixture that yields a `Subject` for a real (or
the most real available) backend of your driver:

    from vfleet.testing.driver_contract import DriverContract, Subject

    @pytest.fixture
    async def subject(tmp_path):
        backend = await start_my_test_backend(tmp_path)
        yield Subject(HostConfig(name="h1", driver="mydriver", address=backend.address))
        await backend.stop()

    class TestMyDriver(DriverContract):
        pass

The host must have at least one running domain and no domain named `no-such-domain-4711`;
the suite leaves every domain in the state it found it. Drivers with the snapshot
capability get a create/list/revert/delete round on `Subject.snapshot_domain` (default:
the first shut-off domain, else the first one), which ends with the snapshots it had. Drivers are created through the
registry, so the driver must be registered (an entry point in the `vfleet.drivers`
group). Needs pytest and pytest-asyncio; the vfleet runtime never imports this module.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, fields

import pytest

from vfleet.core.errors import DriverError, DriverTimeout, PolicyRefused, UnsupportedAction
from vfleet.core.models import DomainCounters, DomainRef, HostConfig, PowerState, SnapshotInfo, SnapshotParams, Verb
from vfleet.drivers import registry
from vfleet.drivers.base import Capability, Driver, capability_for
from vfleet.drivers.replay import replay

MISSING_DOMAIN = "no-such-domain-4711"


@dataclass
class Subject:
    """One host of the driver under test."""

    config: HostConfig
    snapshot_domain: str | None = None  # the domain the snapshot round uses (see the module's docstring)

    def driver(self, read_only: bool = False) -> Driver:
        return registry.create_driver(self.config, read_only=read_only)


class DriverContract:
    """What every driver promises; a subclass provides the `subject` fixture."""

    def test_spec_describes_the_driver(self, subject: Subject) -> None:
        spec = registry.get(subject.config.driver)
        cls = registry.driver_class(spec.name)
        assert cls.kind == spec.name, "the driver's kind is the name it is registered under"
        assert cls.capabilities, "a driver declares what it can do"
        assert spec.summary.strip() and "\n" not in spec.summary
        for option in spec.options:
            assert not (option.required and option.default is not None), option
        for key in spec.transport.required:
            assert getattr(subject.config, key) is not None, f"the subject's config lacks required {key}"

    @pytest.mark.asyncio
    async def test_connect_poll_and_close(self, subject: Subject) -> None:
        driver = subject.driver()
        facts = await driver.connect()
        try:
            first = await driver.poll()
            second = await driver.poll()
        finally:
            await driver.close()
            await driver.close()  # twice is harmless
        assert facts.hypervisor and (facts.cpus is None or facts.cpus > 0)
        assert first.host == second.host == subject.config.name and first.domains
        keys = [d.key for d in first.domains]
        assert len(keys) == len(set(keys)), "domain keys must be unique within a host"
        for dom in first.domains:
            assert isinstance(dom.state, PowerState) and dom.raw_state.strip(), dom
            for number in (dom.vcpus, dom.memory_max_bytes, dom.memory_used_bytes, dom.uptime_s):
                assert number is None or number >= 0, dom
            assert (dom.memory_used_bytes is None) == (dom.memory_used_source is None), dom
            if dom.state is PowerState.OFF:  # nothing runs, so nothing is measured: None, never 0
                assert dom.counters is None and dom.memory_used_bytes is None, dom
        before = {d.key: d.counters for d in first.domains if d.counters}
        for dom in second.domains:  # counters are cumulative: they never go back on a running domain
            old = before.get(dom.key)
            if old is None or dom.counters is None or dom.state is not PowerState.RUNNING:
                continue
            for field in fields(DomainCounters):
                a, b = getattr(old, field.name), getattr(dom.counters, field.name)
                if field.name != "taken_at" and a is not None and b is not None:
                    assert b >= a, (dom.name, field.name, a, b)

    @pytest.mark.asyncio
    async def test_a_recording_replays_into_the_polled_domains(self, subject: Subject) -> None:
        """record_poll (`vfleet debug record`) is optional; a driver that has it hands over plain file names
        and, where vfleet can replay the recording, the domains a poll gives."""
        driver = subject.driver(read_only=True)
        await driver.connect()
        try:
            try:
                files = await driver.record_poll()
            except UnsupportedAction:
                return
            polled = await driver.poll()
        finally:
            await driver.close()
        assert files, "a recording holds at least one file"
        for name, text in files.items():
            assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name) and name != "manifest.json", name
            assert isinstance(text, str) and text, name
        try:
            replayed = await replay(subject.config, files)
        except UnsupportedAction:
            return  # a recording vfleet cannot read back yet: still useful in a bug report
        assert {d.name: d.state for d in replayed.domains} == {d.name: d.state for d in polled.domains}

    @pytest.mark.asyncio
    async def test_a_deadline_is_honoured_even_when_it_has_passed(self, subject: Subject) -> None:
        """The caller's deadline, not the host's call_timeout, bounds every call: a spent one fails at once."""
        driver = subject.driver()
        await driver.connect()
        try:
            target = (await driver.poll()).domains[-1]
            started = time.monotonic()
            with pytest.raises(DriverTimeout):
                await driver.poll(deadline=started - 1)
            with pytest.raises(DriverTimeout):
                await driver.perform(Verb.FORCE_OFF, DomainRef.of(target), deadline=started - 1)
            assert time.monotonic() - started < 1.0
            after = {d.key: d.state for d in (await driver.poll()).domains}
            assert after[target.key] is target.state  # nothing was done
        finally:
            await driver.close()
        late = subject.driver()
        with pytest.raises(DriverTimeout):
            await late.connect(deadline=time.monotonic() - 1)
        await late.close()

    @pytest.mark.asyncio
    async def test_capabilities_are_declared_and_honoured(self, subject: Subject) -> None:
        driver = subject.driver()
        await driver.connect()
        try:
            running = next(d.name for d in (await driver.poll()).domains if d.state is PowerState.RUNNING)
            for verb in Verb:
                if capability_for(verb) not in type(driver).capabilities:
                    with pytest.raises(UnsupportedAction, match=f"^{subject.config.name}: "):
                        await driver.perform(verb, DomainRef.named(running))
        finally:
            await driver.close()
        assert Capability.START in type(driver).capabilities and Capability.FORCE_OFF in type(driver).capabilities

    @pytest.mark.asyncio
    async def test_suspend_saves_a_running_domain_and_resume_runs_it_again(self, subject: Subject) -> None:
        """Drivers that declare SUSPEND: a running domain goes to SUSPENDED and RESUME brings it back."""
        driver = subject.driver()
        if Capability.SUSPEND not in type(driver).capabilities:
            pytest.skip(f"{subject.config.driver} does not suspend domains")
        await driver.connect()
        try:
            running = next(d for d in (await driver.poll()).domains if d.state is PowerState.RUNNING)
            for verb, state in ((Verb.SUSPEND, PowerState.SUSPENDED), (Verb.RESUME, PowerState.RUNNING)):
                result = await driver.perform(verb, DomainRef.of(running))
                assert result.ok and result.state_after is state, result
                polled = {d.key: d.state for d in (await driver.poll()).domains}
                assert polled[running.key] is state, verb
        finally:
            await driver.close()

    @pytest.mark.asyncio
    async def test_unknown_domain_is_a_one_line_typed_error(self, subject: Subject) -> None:
        driver = subject.driver()
        await driver.connect()
        try:
            with pytest.raises(DriverError) as caught:
                await driver.perform(Verb.FORCE_OFF, DomainRef.named(MISSING_DOMAIN))
        finally:
            await driver.close()
        message = str(caught.value)
        assert message.startswith(f"{subject.config.name}: ") and "\n" not in message

    @pytest.mark.asyncio
    async def test_read_only_driver_refuses_every_verb_and_still_polls(self, subject: Subject) -> None:
        driver = subject.driver(read_only=True)
        await driver.connect()
        try:
            domains = (await driver.poll()).domains
            running = next(d for d in domains if d.state is PowerState.RUNNING)
            for verb in Verb:
                if capability_for(verb) in type(driver).capabilities:
                    with pytest.raises(PolicyRefused, match="read-only"):
                        await driver.perform(verb, DomainRef.named(running.name))
            after = {d.key: d.state for d in (await driver.poll()).domains}
        finally:
            await driver.close()
        assert after[running.key] is PowerState.RUNNING

    @pytest.mark.asyncio
    async def test_snapshots_create_list_revert_delete(self, subject: Subject) -> None:
        """Drivers with snapshots: a round that leaves the domain with the snapshots and state it had."""
        driver = subject.driver()
        if Capability.SNAPSHOT not in type(driver).capabilities:
            pytest.skip(f"the {subject.config.driver} driver has no snapshots")
        await driver.connect()
        try:
            await self._snapshot_round(subject, driver)
        finally:
            await driver.close()
        reader = subject.driver(read_only=True)  # listing is a read: allowed on a read-only connection
        await reader.connect()
        try:
            domains = (await reader.poll()).domains
            await reader.snapshots(DomainRef.of(domains[0]))
            with pytest.raises(PolicyRefused, match="read-only"):
                await reader.perform(Verb.SNAPSHOT_CREATE, DomainRef.of(domains[0]), params=SnapshotParams("x"))
        finally:
            await reader.close()

    @staticmethod
    async def _snapshot_round(subject: Subject, driver: Driver) -> None:
        domains = (await driver.poll()).domains
        if subject.snapshot_domain is not None:
            dom = next(d for d in domains if d.name == subject.snapshot_domain)
        else:
            dom = next((d for d in domains if d.state is PowerState.OFF), domains[0])
        ref = DomainRef.of(dom)

        async def names() -> list[str]:
            found: tuple[SnapshotInfo, ...] = await driver.snapshots(ref)
            return [s.name for s in found]

        before = await names()
        first, second = f"contract-{time.time_ns()}", f"contract-{time.time_ns()}-b"
        started = time.time()
        for name in (first, second):
            result = await driver.perform(Verb.SNAPSHOT_CREATE, ref, params=SnapshotParams(name, memory=True))
            assert result.ok and result.verb is Verb.SNAPSHOT_CREATE, result
        listed = {s.name: s for s in await driver.snapshots(ref)}
        assert [n for n in await names() if n not in before] == [first, second], "listed oldest first"
        a, b = listed[first], listed[second]
        assert a.created is None or a.created >= started - 120, a  # wall time, within clock skew
        assert b.parent == first and b.current and not a.current, (a, b)
        with pytest.raises(DriverError) as duplicate:
            await driver.perform(Verb.SNAPSHOT_CREATE, ref, params=SnapshotParams(first))
        assert str(duplicate.value).startswith(f"{subject.config.name}: ") and "\n" not in str(duplicate.value)
        reverted = await driver.perform(Verb.SNAPSHOT_REVERT, ref, params=SnapshotParams(first))
        assert reverted.ok and reverted.state_after is dom.state, reverted  # taken in this state, back in it
        assert [s.name for s in await driver.snapshots(ref) if s.current] == [first]
        with pytest.raises(DriverError) as missing:
            await driver.perform(Verb.SNAPSHOT_REVERT, ref, params=SnapshotParams(MISSING_DOMAIN))
        assert str(missing.value).startswith(f"{subject.config.name}: ") and "\n" not in str(missing.value)
        for name in (second, first):
            assert (await driver.perform(Verb.SNAPSHOT_DELETE, ref, params=SnapshotParams(name))).ok
        assert await names() == before
        after = {d.key: d.state for d in (await driver.poll()).domains}
        assert after[dom.key] is dom.state
