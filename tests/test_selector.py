"""The filter grammar shared by the console's `/`, `status --filter`, `top --filter` and `act`."""

from __future__ import annotations

import pytest

from vfleet.core.errors import UsageError
from vfleet.core.metrics import DomainRow
from vfleet.core.models import Domain, DomainRates, HostConfig, PowerState
from vfleet.core.selector import Selector, glob_matcher

HOSTS = {
    "KVM-Ams-1": HostConfig("KVM-Ams-1", "libvirt", tags=frozenset({"Prod"}), groups=("Amsterdam",)),
    "esx-fra-1": HostConfig("esx-fra-1", "esxi_api", tags=frozenset({"lab"}), groups=("frankfurt",)),
    "xen-1": HostConfig("xen-1", "xen_xl", groups=("frankfurt",)),
}
HYPERVISOR = {"KVM-Ams-1": "kvm", "esx-fra-1": "esxi", "xen-1": "xen"}


def row(
    host: str, name: str, state: PowerState = PowerState.RUNNING, cpu: float | None = None, node: str | None = None
) -> DomainRow:
    domain = Domain(name, state, state.value, vcpus=2, node=node)
    return DomainRow(host, HYPERVISOR[host], domain, DomainRates(cpu_percent=cpu), HOSTS[host].tags, 0.0)


ROWS = [
    row("KVM-Ams-1", "Web-01", cpu=90.0),
    row("KVM-Ams-1", "web-010", cpu=10.0),
    row("KVM-Ams-1", "db-01", PowerState.OFF),
    row("esx-fra-1", "WEB-02", PowerState.PAUSED, cpu=0.0, node="esx-01"),  # a vCenter's servers
    row("esx-fra-1", "ci-01", cpu=50.0, node="ESX-02"),
    row("xen-1", "mail-01", PowerState.CRASHED),
]


def names(text: str, bare: str = "text") -> list[str]:
    selector = Selector.parse(text, bare=bare)  # type: ignore[arg-type]
    return [r.domain.name for r in ROWS if selector.matches(r, HOSTS[r.host])]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["Web-01", "web-010", "db-01", "WEB-02", "ci-01", "mail-01"]),
        ("web", ["Web-01", "web-010", "WEB-02"]),  # plain text: a substring, any case
        ("name:web-0?", ["Web-01", "WEB-02"]),  # globs ignore case
        ("NAME:WEB-*", ["Web-01", "web-010", "WEB-02"]),  # so do keys
        ("host:kvm-ams-*", ["Web-01", "web-010", "db-01"]),
        ("group:FRANK*", ["WEB-02", "ci-01", "mail-01"]),
        ("tag:prod", ["Web-01", "web-010", "db-01"]),
        ("hv:ESX*", ["WEB-02", "ci-01"]),
        ("hv:xen_xl", ["mail-01"]),  # the driver's name works too
        ("state:running|paused", ["Web-01", "web-010", "WEB-02", "ci-01"]),  # a bare alternative keeps the key
        ("web|db", ["Web-01", "web-010", "db-01", "WEB-02"]),
        ("host:xen*|state:off", ["db-01", "mail-01"]),
        ("!web", ["db-01", "ci-01", "mail-01"]),
        ("!state:off|crashed", ["Web-01", "web-010", "WEB-02", "ci-01"]),  # ! negates every alternative
        ("web !host:esx*", ["Web-01", "web-010"]),
        ("cpu>40|state:crashed", ["Web-01", "ci-01", "mail-01"]),
        ("CPU>=50", ["Web-01", "ci-01"]),
        ("re:^(web|db)-01$", ["Web-01", "db-01"]),  # a regex keeps its own `|`
        ("ci|re:^mail", ["ci-01", "mail-01"]),
        ("node:esx-0*", ["WEB-02", "ci-01"]),  # the server a domain runs on, any case
        ("node:esx-02", ["ci-01"]),
        ("node:*", ["WEB-02", "ci-01"]),  # a domain on no server never matches, not even *
        ("!node:esx-01", ["Web-01", "web-010", "db-01", "ci-01", "mail-01"]),  # ! as for every key
        ("node:esx-02|state:off", ["db-01", "ci-01"]),
        ("web node:esx*", ["WEB-02"]),
    ],
)
def test_terms(text: str, expected: list[str]) -> None:
    assert names(text) == expected


def test_act_reads_a_bare_word_as_a_name_glob_never_a_substring() -> None:
    assert names("web-01", bare="name") == ["Web-01"]  # not web-010
    assert names("web-01|ci-*", bare="name") == ["Web-01", "ci-01"]
    assert names("!web-0?", bare="name") == ["web-010", "db-01", "ci-01", "mail-01"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("state:bogus", "filter term 'state:bogus': unknown state 'bogus' (expected one of: running,"),
        ("state:running|bogus", "filter term 'state:running|bogus': unknown state 'bogus'"),
        ("re:(db", "filter term 're:(db': bad regular expression: missing ), unterminated subpattern"),
        ("cpu>>5", "filter term 'cpu>>5': bad comparison (expected FIELD>N"),
        ("colour>5", "filter term 'colour>5': unknown filter field 'colour' (numeric fields: cpu,"),
        ("size:big", "filter term 'size:big': unknown filter term 'size:' (known: name: host:"),
        ("host:", "filter term 'host:': nothing after 'host:'"),
        ("!", "filter term '!': nothing after '!'"),
        ("a||b", "filter term 'a||b': an empty alternative"),
        ("web|", "filter term 'web|': nothing after the last '|'"),
        ("a|!b", "filter term 'a|!b': '!' goes before the whole term"),
    ],
)
def test_a_bad_term_is_named_in_one_line(text: str, words: str) -> None:
    with pytest.raises(UsageError) as caught:
        Selector.parse(f"web {text} db")
    message = str(caught.value)
    assert message.startswith(words) and "\n" not in message


@pytest.mark.parametrize(
    ("text", "polled"),
    [
        ("", ["KVM-Ams-1", "esx-fra-1", "xen-1"]),
        ("host:kvm*", ["KVM-Ams-1"]),
        ("!host:kvm*", ["esx-fra-1", "xen-1"]),
        ("host:kvm*|host:xen*", ["KVM-Ams-1", "xen-1"]),
        ("host:kvm*|web", ["KVM-Ams-1"]),  # `web` keeps the key: host:web
        ("tag:LAB", ["esx-fra-1"]),
        ("group:frankfurt !tag:lab", ["xen-1"]),
        ("hv:esx*", ["KVM-Ams-1", "esx-fra-1", "xen-1"]),  # the hypervisor is known once connected
        ("web|host:kvm*", ["KVM-Ams-1", "esx-fra-1", "xen-1"]),  # a name may match anywhere
        ("!web", ["KVM-Ams-1", "esx-fra-1", "xen-1"]),
    ],
)
def test_hosts_that_cannot_match_need_no_poll(text: str, polled: list[str]) -> None:
    selector = Selector.parse(text)
    assert [name for name, host in HOSTS.items() if selector.host_may_match(host)] == polled


def test_globs_ignore_case_and_match_whole_names() -> None:
    assert glob_matcher("kvm-*")("KVM-ams-1")
    assert not glob_matcher("kvm")("kvm-1")
    assert glob_matcher("web-[0-9]")("WEB-7")
