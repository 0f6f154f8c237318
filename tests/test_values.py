"""The value classes' shared equality, hash and repr mean what @dataclass would generate."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pytest

from vfleet.core import models
from vfleet.core.models import Domain, DomainCounters, DomainRef, HostConfig, HostFacts, PowerState


@dataclass(frozen=True, slots=True)
class GeneratedCounters:  # what @dataclass itself makes of DomainCounters' fields
    taken_at: float
    cpu_time_ns: int | None = None


def test_every_value_class_uses_the_shared_methods() -> None:
    classes = [c for c in vars(models).values() if isinstance(c, type) and hasattr(c, "__dataclass_fields__")]
    assert len(classes) >= 16
    for cls in classes:
        assert cls.__eq__ is models.Value.__eq__ and cls.__repr__ is models.Value.__repr__, cls


def test_equality_hash_and_repr_match_the_generated_ones() -> None:
    a, b = DomainCounters(1.0, 5), DomainCounters(1.0, 5)
    assert a == b and hash(a) == hash(b) and a is not b
    assert a != DomainCounters(1.0, 6) and a != DomainCounters(2.0, 5)
    assert a != GeneratedCounters(1.0, 5), "another class is never equal, whatever its fields"
    assert {a, b} == {a}
    expected = "DomainCounters(" + ", ".join(f"{f.name}={getattr(a, f.name)!r}" for f in fields(a)) + ")"
    assert repr(a) == expected and repr(a).startswith("DomainCounters(taken_at=1.0, cpu_time_ns=5, disk_read_bytes=None")
    d = Domain("web1", PowerState.RUNNING, "running", uuid="u1", counters=a)
    assert d == Domain("web1", PowerState.RUNNING, "running", uuid="u1", counters=b)
    assert d != Domain("web1", PowerState.PAUSED, "running", uuid="u1", counters=b)
    assert HostFacts("kvm", cpus=2) == HostFacts("kvm", cpus=2) != HostFacts("kvm", cpus=4)
    assert DomainRef.named("x") == DomainRef.named("x")
    with pytest.raises(TypeError, match="unhashable"):  # a dict field: unhashable, as with @dataclass
        hash(HostConfig(name="h", driver="sim", options={"a": 1}))
