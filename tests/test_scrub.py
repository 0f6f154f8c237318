"""Scrubbing recordings (core/scrub.py) and the SSH recording format (drivers/ssh/record.py): pure tests."""

from __future__ import annotations

import json

import pytest

from vfleet.core.scrub import Scrubber
from vfleet.drivers.ssh.record import read_blocks, write_blocks
from vfleet.drivers.ssh.transport import CommandResult


def test_one_placeholder_per_value_across_texts() -> None:
    scrub = Scrubber(addresses=["10.1.2.3"], users=["alice"], hostnames=["kvm1.corp.example"])
    first = scrub.scrub("ssh alice@10.1.2.3 (kvm1.corp.example) guest 192.168.7.9")
    second = scrub.scrub('{"peer": "192.168.7.9", "host": "KVM1.corp.example", "from": "10.1.2.3"}')
    for value in ("alice", "10.1.2.3", "kvm1", "192.168.7.9"):
        assert value not in first + second
    guest = first.rsplit(" ", 1)[1]
    assert json.loads(second)["peer"] == guest  # the same address, the same placeholder
    assert json.loads(second)["host"] in first  # DNS names ignore case
    assert dict(scrub.found) == {"address": 1, "user": 1, "hostname": 1, "ip": 1}


def test_placeholders_keep_the_shape_parsers_read() -> None:
    scrub = Scrubber()
    text = scrub.scrub("vif 00:16:3e:61:1e:6c again 00:16:3E:61:1E:6C ip 192.168.10.1. v6 fe80::1%x 2001:DB8:0:0:0:0:0:7")
    words = text.split()
    assert words[1] == "02:00:00:00:00:01" and words[3] == "02:00:00:00:00:01".upper()
    assert words[5] == "192.0.2.1." and words[7].startswith("2001:db8::") and words[8].startswith("2001:db8::")


@pytest.mark.parametrize(
    "text",
    [
        "uptime 98 days,  2:27:44",
        "xen_version : 4.17.5",
        "hw_caps : 178bfbfd:80982201:20100800:00000001",
        "uuid 564d2a1c-91b5-8e3f-07a2-5c0e1f3b6d21",
        "rootSnapshotList",
        "999.1.2.3 is no address; std::vector is no address",
    ],
)
def test_what_is_not_an_address_stays(text: str) -> None:
    scrub = Scrubber(users=["root"])
    assert scrub.scrub(text) == text


def test_secrets_go_wherever_they_are_and_tokens_by_their_key() -> None:
    scrub = Scrubber(secrets=["s3cr3t-Pa55"])
    text = scrub.scrub('url=https://u:s3cr3t-Pa55@h/ xs3cr3t-Pa55y {"session_id": "OpaqueRef:1f2e", "token": "abc.def"}')
    assert "s3cr3t-Pa55" not in text and "OpaqueRef:1f2e" not in text and "abc.def" not in text
    assert json.loads(text[text.index("{"):])["session_id"].startswith("scrubbed-token")
    assert scrub.found["secret"] == 1 and scrub.found["token"] == 2


def test_domain_names_by_whole_word_stable_and_json_safe() -> None:
    hostile = 'ev"il\x1b]0;T\x07\n[rc=0]'
    names = ["tiny", "tinynet", "Domain-0", "db", "averyveryverylongname", hostile]
    scrub = Scrubber(domain_names=names)
    assert scrub.kept_names == ["Domain-0", "db"]  # too common or too short to replace safely
    out = scrub.scrub("Domain-0 tiny tinynet tiny.cfg /vmfs/tiny/tiny.vmx averyveryv tinyx tap-tiny")
    words = out.split()
    assert words[0] == "Domain-0" and words[1] != words[2] and words[3] == f"{words[1]}.cfg"
    assert words[4] == f"/vmfs/{words[1]}/{words[1]}.vmx"
    assert words[5] == scrub.scrub("averyveryverylongname")  # xentop's 10 characters: the same placeholder
    assert words[6] == "tinyx" and words[7] == f"tap-{words[1]}"
    for ascii_only in (True, False):
        document = scrub.scrub(json.dumps({"name": hostile}, ensure_ascii=ascii_only))
        assert json.loads(document)["name"] == scrub.scrub(hostile) == "domain-02"
    # the same names give the same placeholders in another recording
    assert Scrubber(domain_names=reversed(names)).scrub("tiny tinynet") == " ".join(words[1:3])


def test_command_blocks_read_back_exactly() -> None:
    results = [
        CommandResult("xl list; echo @@VFLEET@@ $?", 0, "Name ID\n### host$ rm -rf /\n[rc=0]\n[stderr]\n\\x\n", ""),
        CommandResult("esxcli vm process list", 1, "no newline at the end", "oops\n"),
        CommandResult("true", 0, "", ""),
        CommandResult("printf", 0, "a\rb\x1c\x0bc\n\n", "[no newline at end]"),
    ]
    text = write_blocks(results)
    assert text.startswith("### host$ xl list; echo @@VFLEET@@ $?\nName ID\n\\### host$ rm -rf /\n\\[rc=0]\n")
    assert read_blocks(text) == results


def test_a_command_line_must_be_one_line() -> None:
    with pytest.raises(ValueError, match="spans lines"):
        write_blocks([CommandResult("a\nb", 0, "", "")])


def test_the_longest_name_wins_among_prefixes_spaces_and_long_values() -> None:
    scrub = Scrubber(domain_names=["x" * 3000, "abc", "abcd", "ab c"], secrets=["p" * 5000])
    assert scrub.scrub(f"abc abcd ab c abcde {'x' * 3000} q{'p' * 5000}q") == (
        "domain-02 domain-03 domain-01 abcde domain-04 qscrubbed-secret1q")
