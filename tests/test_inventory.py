"""Inventory parsing: inheritance, and one error per kind, each naming file:line and key."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from vfleet.core import inventory, yamlnodes
from vfleet.core.errors import ExitCode, InventoryError

GOOD = """\
version: 1
defaults:
  poll_interval: 3
  ssh: {known_hosts: /etc/vfleet/known_hosts}
groups:
  prod:
    description: production
    tags: [prod]
    read_only: true
    poll_interval: 5
  lab:
    tags: [lab]
hosts:
  - name: kvm1
    driver: libvirt
    uri: qemu+ssh://root@kvm1/system
    groups: [prod]
    tags: [rack1]
  - name: xen1
    driver: xen_xl
    address: xen1.example.net
    user: root
    groups: [lab, prod]
    poll_interval: 10
    options: {config_dir: /etc/xen/auto}
  - name: esx1
    driver: esxi_api
    address: esx1.example.net
    user: monitor
    password_env: ESX1_PASSWORD
    tls: {thumbprint: "AB:CD"}
    protected: true
"""


def test_good_inventory_applies_defaults_then_groups_then_host() -> None:
    inv = inventory.parse(GOOD, "fleet.yaml")
    kvm1, xen1, esx1 = inv.hosts
    assert kvm1.poll_interval == 5.0  # group beats defaults
    assert xen1.poll_interval == 10.0  # host beats groups
    assert esx1.poll_interval == 3.0  # defaults
    assert kvm1.tags == {"prod", "rack1"}
    assert xen1.tags == {"lab", "prod"}
    assert kvm1.read_only and xen1.read_only and not esx1.read_only
    assert xen1.ssh.known_hosts == "/etc/vfleet/known_hosts"
    assert xen1.options == {"config_dir": "/etc/xen/auto"}
    assert esx1.password_env == "ESX1_PASSWORD" and esx1.tls.thumbprint == "AB:CD" and not esx1.tls.insecure
    assert esx1.protected
    assert kvm1.port is None and kvm1.user is None  # connection keys of other transports do not leak
    assert kvm1.source == "fleet.yaml:14"
    assert inv.groups == {"prod": "production", "lab": ""}


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ("hosts:\n  - name: a\n    driver: libvirt\n    uri: x\n    colour: red\n", 5, "hosts[a].colour", "unknown key"),
        ("hosts:\n  - name: a\n    driver: libvirt\n    uri: x\n    poll_interval: fast\n", 5, "hosts[a].poll_interval", "expected a number"),
        ("hosts:\n  - name: a\n    driver: libvirt\n    uri: x\n    read_only: 'yes'\n", 5, "hosts[a].read_only", "expected true or false"),
        ("hosts:\n  - name: a\n    driver: xen_xl\n    address: h\n    port: 70000\n", 5, "hosts[a].port", "1-65535"),
        ("hosts:\n  - name: a\n    driver: libvirt\n    uri: x\n    tags: prod\n", 5, "hosts[a].tags", "list of strings"),
        ("hosts:\n  - name: a\n    driver: libvirt\n    uri: x\n    poll_interval: 0\n", 5, "hosts[a].poll_interval", "greater than 0"),
        ("hosts:\n  - {name: a, driver: libvirt, uri: x}\n  - {name: a, driver: libvirt, uri: y}\n", 3, "hosts[a].name", "duplicate host name"),
        ("hosts:\n  - name: a\n    driver: libvirt\n    driver: sim\n", 4, "hosts[a].driver", "duplicate key"),
        ("groups:\n  g: {}\n  g: {}\nhosts:\n  - {name: a, driver: sim}\n", 3, "groups.g", "duplicate name"),
        ("hosts:\n  - name: a\n    uri: x\n", 2, "hosts[a].driver", "missing required key"),
        ("hosts:\n  - driver: sim\n", 2, "hosts[0].name", "missing required key"),
        ("hosts:\n  - name: a\n    driver: libvirt\n", 2, "hosts[a].uri", "missing required key"),
        ("hosts:\n  - name: a\n    driver: esxi_api\n    address: h\n", 2, "hosts[a].user", "missing required key"),
        ("hosts:\n  - name: a\n    driver: kvmm\n", 3, "hosts[a].driver", "unknown driver 'kvmm'"),
        ("hosts:\n  - name: a\n    driver: sim\n    groups: [nope]\n", 4, "hosts[a].groups[0]", "unknown group"),
        ("hosts:\n  - name: a\n    driver: libvirt\n    uri: x\n    address: h\n", 5, "hosts[a].address", "not used by the libvirt driver"),
        ("hosts:\n  - name: a\n    driver: xen_xl\n    address: h\n    options: {colour: red}\n", 5, "hosts[a].options.colour", "unknown key"),
        ("hosts:\n  - name: a\n    driver: esxi_ssh\n    address: h\n    options: {a: 1}\n", 5, "hosts[a].options", "takes no options"),
        ("hosts:\n  - name: a\n    driver: libvirt\n    uri: x\n    options: {a: 1}\n", 5, "hosts[a].options.a", "unknown key"),
        ("hosts:\n  - name: a\n    driver: xen_xl\n    address: h\n    ssh: {agent: maybe}\n", 5, "hosts[a].ssh.agent", "true or false"),
        ("defaults:\n  poll_interval: -1\nhosts:\n  - {name: a, driver: sim}\n", 2, "defaults.poll_interval", "greater than 0"),
        ("version: 2\nhosts:\n  - {name: a, driver: sim}\n", 1, "version", "unsupported version"),
        ("hosts: {a: 1}\n", 1, "hosts", "non-empty list"),
        ("hosts:\n  - name: a\n    driver: sim\n  - [oops\n", 5, "", "flow sequence started on line 4"),
        ("nodes: []\n", 1, "nodes", "unknown key"),
        ("defaults: &d {poll_interval: 2}\nhosts:\n  - {<<: *d, name: a, driver: sim}\n", 3, "hosts[a].<<", "merge keys"),
        # Driver options come from the driver's spec: types, choices and bounds.
        ("hosts:\n  - name: a\n    driver: sim\n    options: {flavour: vmware}\n", 4, "hosts[a].options.flavour", "expected one of: kvm, xen, esxi, xapi"),
        ("hosts:\n  - name: a\n    driver: sim\n    options: {domains: -1}\n", 4, "hosts[a].options.domains", "must be at least 0"),
        ("hosts:\n  - name: a\n    driver: sim\n    options: {latency: fast}\n", 4, "hosts[a].options.latency", "expected a number"),
        # YAML that PyYAML accepts but an inventory must not: each a one-line error, never exit 70.
        ("hosts:\n  - name: !!python/object:os.system x\n    driver: sim\n", 2, "hosts[0].name", "unsupported YAML tag"),
        ("hosts:\n  - name: a\n    driver: sim\n    poll_interval: !!int x1\n", 4, "hosts[a].poll_interval", "bad tag:yaml.org,2002:int value"),
        ("hosts:\n  - name: a\x00b\n    driver: sim\n", 2, "", "control characters are not allowed"),
        ("hosts:\n  - {name: a, driver: sim}\n---\nhosts: []\n", 3, "", "a second YAML document"),
        ("hosts:\n  - {name: a, driver: sim, tags: *t}\n", 2, "", "YAML alias *t names no anchor"),
        ("hosts: " + "[" * 40 + "]" * 40 + "\n", 1, "", "nested deeper than 32 levels"),
    ],
)
def test_each_error_names_file_line_and_key(text: str, line: int, key: str, words: str) -> None:
    with pytest.raises(InventoryError) as caught:
        inventory.parse(text, "fleet.yaml")
    error = caught.value
    assert (error.path, error.line, error.key) == ("fleet.yaml", line, key)
    message = str(error)
    assert message.startswith(f"fleet.yaml:{line}: ")
    assert words in message
    assert "\n" not in message


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"nope.yaml: no such file"):
        inventory.load(tmp_path / "nope.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(InventoryError, match=r"empty.yaml: hosts: the inventory is empty"):
        inventory.load(empty)


def test_example_inventory_is_valid_and_mixes_hypervisors() -> None:
    example = Path(__file__).parent.parent / "inventory.example.yaml"
    inv = inventory.load(example)
    drivers = {h.driver for h in inv.hosts}
    assert {"libvirt", "xen_xl", "xapi", "esxi_api", "esxi_ssh"} <= drivers


def _run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, memory: int | None = None
) -> subprocess.CompletedProcess[str]:
    def limit() -> None:  # so that an old vfleet reading /dev/zero fails instead of eating the machine
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run([sys.executable, "-m", "vfleet", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, preexec_fn=limit, check=False)


def test_inventory_check_command(tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    good = tmp_path / "good.yaml"
    good.write_text(GOOD.replace("/etc/vfleet/known_hosts", str(known_hosts)))
    ok = _run_cli("inventory", "check", str(good), env={"ESX1_PASSWORD": "x"})
    assert ok.returncode == ExitCode.OK, ok.stderr
    assert ok.stdout.startswith(f"{good}: OK: 3 hosts (esxi_api 1, libvirt 1, xen_xl 1), 2 groups")
    assert "read-only: kvm1, xen1" in ok.stdout and ok.stderr == ""

    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts:\n  - name: a\n    driver: libvirt\n    uri: x\n    colour: red\n")
    failed = _run_cli("inventory", "check", str(bad))
    assert failed.returncode == ExitCode.USAGE == 2
    assert failed.stdout == ""
    assert failed.stderr.strip() == f"vfleet: {bad}:5: hosts[a].colour: unknown key (expected one of: " + failed.stderr.split("expected one of: ")[1].strip()
    assert "Traceback" not in failed.stderr and failed.stderr.count("\n") == 1


def test_inventory_check_reports_what_hosts_lack_here(tmp_path: Path) -> None:
    """A valid inventory whose hosts cannot work from this machine is not OK (exit 1)."""
    (tmp_path / "ca-dir").mkdir()
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "hosts:\n"
        "  - name: xen1\n    driver: xen_xl\n    address: h\n"  # line 2: the default known_hosts is missing
        f"  - name: xen2\n    driver: xen_xl\n    address: h\n    ssh: {{known_hosts: {tmp_path}/kh, key_file: {tmp_path}/id}}\n"
        f"  - name: esx1\n    driver: esxi_api\n    address: h\n    user: u\n    password_env: VFLEET_T_PW\n    tls: {{ca_file: {tmp_path}/ca-dir}}\n"
        "  - name: sim1\n    driver: sim\n"
    )
    result = _run_cli("inventory", "check", str(fleet), env={"HOME": str(tmp_path)})
    assert result.returncode == ExitCode.FAILED == 1
    assert result.stdout.startswith(f"{fleet}: 5 problems: 4 hosts") and "OK" not in result.stdout
    assert result.stderr.splitlines() == [
        f"vfleet: {fleet}:2: xen1: the default known_hosts file {tmp_path}/.ssh/known_hosts: no such file: host keys cannot be verified",
        f"vfleet: {fleet}:5: xen2: ssh.known_hosts file {tmp_path}/kh: no such file: host keys cannot be verified",
        f"vfleet: {fleet}:5: xen2: ssh.key_file {tmp_path}/id: no such file",
        f"vfleet: {fleet}:9: esx1: tls.ca_file {tmp_path}/ca-dir: not a regular file",
        f"vfleet: {fleet}:9: esx1: password_env: the environment variable VFLEET_T_PW is not set",
    ]


def test_inventory_keys_prints_every_key_of_a_driver() -> None:
    result = _run_cli("inventory", "keys", "xen_xl")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "xen_xl: Xen dom0 with the xl toolstack, over SSH",
        "  connection keys (* = required): address*, port, user, ssh",
        "  needs: nothing more",
        "  options:",
        "    OPTION      TYPE    DEFAULT   MEANING",
        "    config_dir  string  /etc/xen  where `start` finds NAME.cfg for `xl create`",
    ]
    unknown = _run_cli("inventory", "keys", "kvmm")
    assert unknown.returncode == 2 and unknown.stderr.startswith("vfleet: unknown driver 'kvmm' (known: libvirt, ")


# -- files vfleet must refuse, quickly and in one line (issue 10) ------------------------


def _refused(path: Path | str, *words: str) -> None:
    """`inventory check` refuses `path` within seconds: exit 2 and one line naming it."""
    result = _run_cli("inventory", "check", str(path), timeout=20, memory=1 << 30)
    assert result.returncode == ExitCode.USAGE, (result.returncode, result.stderr)
    assert result.stdout == "" and result.stderr.count("\n") == 1 and result.stderr.startswith(f"vfleet: {path}")
    for word in words:
        assert word in result.stderr, result.stderr


def test_deep_nesting_is_an_error_not_a_crash(tmp_path: Path) -> None:
    nested = tmp_path / "nested.yaml"
    nested.write_text("hosts: " + "[" * 10_000 + "\n")  # was exit 70 (RecursionError)
    _refused(nested, f"{nested}:1: ", "nest")


@pytest.mark.parametrize("text", ["hosts: " + "[" * 10_000, "hosts:\n" + "".join(" " * i + "- \n" for i in range(2000))])
def test_deep_nesting_without_libyaml(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlnodes, "_Loader", yaml.SafeLoader)  # PyYAML built without libyaml
    with pytest.raises(InventoryError, match=r"nested deeper than 32 levels") as caught:
        inventory.parse(text, "fleet.yaml")
    assert caught.value.line is not None and caught.value.line < 40


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "fleet.yaml"
    os.mkfifo(fifo)  # nobody ever writes: reading it used to wait forever
    _refused(fifo, "is a FIFO, not a regular file")


@pytest.mark.parametrize(("path", "kind"), [("/dev/zero", "a character device"), ("/", "a directory")])
def test_devices_and_directories_are_refused(path: str, kind: str) -> None:
    _refused(path, f"is {kind}, not a regular file")


def test_an_oversized_inventory_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * yamlnodes.MAX_BYTES + b"\n")
    _refused(big, "larger than 4 MiB")


def test_non_utf8_names_the_line_and_column(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"hosts:\n  - driver: sim\n    name: caf\xe9\n")
    with pytest.raises(InventoryError) as caught:
        inventory.load(latin1)
    assert str(caught.value) == f"{latin1}:3: not UTF-8: byte 0xe9 at column 14; save the file as UTF-8"


def test_aliases_cannot_multiply_a_small_file() -> None:
    """One anchor of 2,000 tags used by 100 hosts: a 30 KB file that would be walked as 200,000 values."""
    text = "defaults:\n  tags: &t [" + ", ".join(f"t{i}" for i in range(2000)) + "]\nhosts:\n"
    text += "".join(f"  - {{name: h{i}, driver: sim, tags: *t}}\n" for i in range(100))
    with pytest.raises(InventoryError, match=r"YAML aliases expand to more than 100000 nodes") as caught:
        inventory.parse(text, "fleet.yaml")
    assert caught.value.line == 4 + 100_000 // 2001
    small = "groups:\n  g: {tags: &t [a, b]}\nhosts:\n  - {name: h1, driver: sim, tags: *t}\n"
    assert inventory.parse(small).hosts[0].tags == {"a", "b"}  # ordinary aliases still work


def _fleet(hosts: int) -> str:
    lines = ["version: 1", "defaults: {poll_interval: 5}", "groups:", "  prod: {tags: [prod]}", "hosts:"]
    for i in range(hosts):
        lines += [f"  - name: host{i}", "    driver: xen_xl", f"    address: host{i}.example.net", "    user: root",
                  "    groups: [prod]", f"    tags: [rack{i % 40}]", "    options: {config_dir: /etc/xen}"]
    return "\n".join(lines) + "\n"


@pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="PyYAML without libyaml parses at its own pace")
def test_a_5000_host_inventory_parses_fast() -> None:
    """Measured against libyaml merely tokenising the same text, so a slow machine does not matter.
    The old pure-Python YAML path took about 25x that (3.4 s here); this parser takes about 6x (0.6 s)."""
    text = _fleet(5000)

    def cpu(work: Callable[[], object]) -> float:
        times = []
        for _ in range(2):
            start = time.process_time()
            work()
            times.append(time.process_time() - start)
        return min(times)

    hosts: list[int] = []
    tokenise = cpu(lambda: sum(1 for _ in yaml.parse(text, Loader=yaml.CSafeLoader)))
    parse = cpu(lambda: hosts.append(len(inventory.parse(text, "fleet.yaml").hosts)))
    assert hosts == [5000, 5000]
    assert parse < 15 * tokenise, f"5,000 hosts: parse {parse:.2f} s, libyaml tokenising {tokenise:.2f} s"
