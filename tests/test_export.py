"""`vfleet export` without Prometheus: sharding, labels, health, textfile mode, signals, errors."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from promstack import wait_for

from vfleet.cli.export import _Snapshot
from vfleet.core.demo import demo_inventory
from vfleet.core.engine import HostView
from vfleet.core.errors import UsageError
from vfleet.core.exposition import (
    METRIC_NAMES,
    Exposition,
    in_shard,
    membership_labels,
    parse_shard,
    shard_of,
)
from vfleet.core.metrics import DomainRow
from vfleet.core.models import (
    Domain,
    DomainRates,
    HostConfig,
    HostFacts,
    HostHealth,
    HostStatus,
    NodeFacts,
    PowerState,
)

ROOT = Path(__file__).resolve().parent.parent


def view(
    name: str, status: HostStatus, domains: list[Domain], *, last_ok: float | None, tags: frozenset[str] = frozenset()
) -> HostView:
    config = HostConfig(name=name, driver="libvirt", tags=tags, groups=("prod",))
    rows = tuple(DomainRow(name, "kvm", d, DomainRates(cpu_percent=50.0), tags, 0.0) for d in domains)
    return HostView(
        config, HostHealth(status, last_ok_at=last_ok), HostFacts("kvm", "9.0", cpus=4), rows, False, frozenset(), 1
    )


def exposition_text(views: list[HostView], **kw: object) -> str:
    snapshot = _Snapshot(Exposition(monotonic=lambda: 100.0, wall=lambda: 1_000_000.0, **kw))  # type: ignore[arg-type]
    snapshot.views = views
    registry = CollectorRegistry(auto_describe=False)
    registry.register(snapshot)  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def test_shards_are_stable_across_processes_disjoint_and_complete() -> None:
    names = [f"host-{i}.example" for i in range(60)]
    code = "import sys; from vfleet.core.exposition import shard_of; print([shard_of(n, 3) for n in sys.argv[1:]])"
    runs = {
        subprocess.run(
            [sys.executable, "-c", code, *names],
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "random")
    }
    assert runs == {f"{[shard_of(n, 3) for n in names]}\n"}  # the same in every process, whatever the hash seed
    hosts = [HostConfig(name=n, driver="sim") for n in names]
    parts = [{h.name for h in in_shard(hosts, (k, 3))} for k in (1, 2, 3)]
    assert all(parts) and sum(len(p) for p in parts) == len(names) and set().union(*parts) == set(names)
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "1", "a/b", "1/0"):
        try:
            parse_shard(bad)
        except UsageError:
            continue
        raise AssertionError(f"{bad} accepted")


def test_label_values_lose_control_characters_and_label_names_are_valid() -> None:
    evil = Domain(name="web\x1b]0;owned\x07\u202e", state=PowerState.RUNNING, raw_state="running", uuid="u-1", vcpus=2)
    text = exposition_text(
        [view("h1", HostStatus.UP, [evil], last_ok=99.0, tags=frozenset({"eu-west.1"}))],
        allowed_labels=membership_labels(
            [HostConfig(name="h1", driver="libvirt", tags=frozenset({"eu-west.1"}), groups=("prod",))], 20
        ),
    )
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert (
        'domain="web\\\\x1b]0;owned\\\\x07\\\\u202e"' in text
    )  # printable()'s escapes, escaped once more by the format
    assert 'tag_eu_west_1="1"' in text and 'group_prod="1"' in text


def test_tag_labels_are_capped_groups_first() -> None:
    hosts = [
        HostConfig(name=f"h{i}", driver="sim", tags=frozenset({f"t{i:02d}"}), groups=(f"g{i % 3}",)) for i in range(30)
    ]
    capped = membership_labels(hosts, 5)
    assert capped == {"group_g0", "group_g1", "group_g2", "tag_t00", "tag_t01"}
    assert len(membership_labels(hosts, 20)) == 20
    assert membership_labels(hosts, 0) == frozenset()
    text = exposition_text(
        [view("h5", HostStatus.UP, [], last_ok=99.0, tags=frozenset({"t05"}))], allowed_labels=capped
    )
    assert "tag_t05" not in text  # over the cap: left out


def test_health_families_and_a_down_host_has_no_domain_series() -> None:
    dom = Domain(name="vm", state=PowerState.CRASHED, raw_state="crashed", uuid="k1", vcpus=2, memory_max_bytes=1024)
    text = exposition_text(
        [
            view("fresh", HostStatus.UP, [dom], last_ok=99.5),
            view("old", HostStatus.UP, [dom], last_ok=90.0),  # UP in the snapshot, but older than 2 intervals
            view("gone", HostStatus.DOWN, [dom], last_ok=50.0),
            view("never", HostStatus.CONNECTING, [], last_ok=None),
        ],
        interval=lambda _h: 2.0,
    )
    lines = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if not line.startswith("#")
    }
    base = 'driver="libvirt",host="{}",hypervisor="kvm"'
    assert lines[f"vfleet_host_up{{{base.format('fresh')}}}"] == 1.0
    assert lines[f"vfleet_host_up{{{base.format('old')}}}"] == 0.0
    assert lines[f'vfleet_host_status{{{base.format("old")},status="stale"}}'] == 1.0
    assert lines[f"vfleet_host_data_age_seconds{{{base.format('old')}}}"] == 10.0
    assert lines[f"vfleet_host_last_poll_timestamp_seconds{{{base.format('old')}}}"] == 1_000_000.0 - 10.0
    assert math.isnan(lines[f"vfleet_host_data_age_seconds{{{base.format('never')}}}"])
    info = [k for k in lines if k.startswith("vfleet_domain_info")]
    assert sorted(k.split('host="')[1].split('"')[0] for k in info) == ["fresh", "old"]
    assert all('state="crashed"' in k for k in info)
    ratio = [v for k, v in lines.items() if k.startswith("vfleet_domain_cpu_ratio{") and 'host="fresh"' in k]
    assert ratio == [0.5]  # 50 % of its vCPUs
    written = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if not line.startswith("#")}
    assert written <= METRIC_NAMES | {n + "_total" for n in METRIC_NAMES}


def test_a_pool_exports_a_node_label_on_domain_info_and_a_series_per_server() -> None:
    doms = [
        Domain(name="a", state=PowerState.RUNNING, raw_state="Running", uuid="ka", vcpus=2, node="xcp-01"),
        Domain(name="b", state=PowerState.RUNNING, raw_state="Running", uuid="kb", vcpus=2, node="xcp-01"),
        Domain(name="halted", state=PowerState.OFF, raw_state="Halted", uuid="kh", vcpus=2),  # on no server
        Domain(name="c", state=PowerState.RUNNING, raw_state="Running", uuid="kc", vcpus=2, node="odd\x1b"),
    ]
    plain = view("pool", HostStatus.UP, doms, last_ok=99.5)
    nodes = (NodeFacts("xcp-01", 16, 64 << 30), NodeFacts("xcp-02", 8, None))
    pool = replace(plain, facts=replace(plain.facts, nodes=nodes))
    text = exposition_text([pool])
    lines = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if not line.startswith("#")
    }
    base = 'driver="libvirt",host="pool",hypervisor="kvm"'
    for node, cpus, domains in (("xcp-01", 16.0, 2.0), ("xcp-02", 8.0, 0.0)):
        assert lines[f'vfleet_node_info{{{base},node="{node}"}}'] == 1.0
        assert lines[f'vfleet_node_cpus{{{base},node="{node}"}}'] == cpus
        assert lines[f'vfleet_node_domains{{{base},node="{node}"}}'] == domains
    assert lines[f'vfleet_node_memory_bytes{{{base},node="xcp-01"}}'] == float(64 << 30)
    assert not any(k.startswith("vfleet_node_memory_bytes") and "xcp-02" in k for k in lines)  # unknown: left out
    odd = 'node="odd\\\\x1b"'  # a server the facts do not list, its name escaped like every label value
    assert lines[f"vfleet_node_domains{{{base},{odd}}}"] == 1.0
    assert not any(k.startswith("vfleet_node_cpus") and "odd" in k for k in lines)
    info = {k.split('domain="')[1].split('"')[0]: k for k in lines if k.startswith("vfleet_domain_info{")}
    assert 'node="xcp-01"' in info["a"] and "node=" not in info["halted"]
    # only the info series carries it: a domain's other series keep their identity when it moves
    others = [k for k in lines if k.startswith("vfleet_domain_") and not k.startswith("vfleet_domain_info")]
    assert others and not any("node=" in k for k in others)
    single = view("single", HostStatus.UP, [doms[2]], last_ok=99.5)
    assert not any(k.startswith("vfleet_node_") for k in exposition_text([single]).splitlines())  # no pool, no nodes


def test_textfile_mode_writes_atomically_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    target = tmp_path / "vfleet.prom"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vfleet", "--demo", "export", "--textfile", str(target), "--interval", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        wait_for(
            "the textfile has every demo host up",
            lambda: (
                target.read_text().count("vfleet_host_up{") == len(demo_inventory().hosts)
                and " 0.0\n"
                not in "".join(ln for ln in target.read_text().splitlines(True) if ln.startswith("vfleet_host_up"))
            ),
            proc=proc,
        )  # type: ignore[arg-type]
        first = target.stat().st_mtime_ns
        wait_for("the textfile is rewritten", lambda: target.stat().st_mtime_ns != first, proc=proc)  # type: ignore[arg-type]
        check = subprocess.run(
            ["promtool", "check", "metrics"], input=target.read_text(), capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert "process_cpu_seconds_total" not in target.read_text()  # the writer's own metrics stay out of the file
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out == b"" and b"Traceback" not in err
    assert [p.name for p in tmp_path.iterdir()] == ["vfleet.prom"]  # write_to_textfile's temp file was renamed


def test_port_in_use_and_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cases = [
            (["export", "--listen", f"127.0.0.1:{port}"], 1, "cannot listen on 127.0.0.1"),
            (["export", "--shard", "3/2"], 2, "--shard '3/2'"),
            (["export", "--listen", "nowhere"], 2, "--listen 'nowhere'"),
            (["export", "--interval", "0"], 2, "--interval"),
        ]
        for argv, code, words in cases:
            started = time.monotonic()
            run = subprocess.run(
                [sys.executable, "-m", "vfleet", "--demo", *argv],
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                check=False,
            )
            lines = [line for line in run.stderr.splitlines() if "serving" not in line]
            assert (run.returncode, run.stdout) == (code, ""), (argv, run.stderr)
            assert len(lines) == 1 and words in lines[0] and "Traceback" not in run.stderr, (argv, run.stderr)
            assert time.monotonic() - started < 30


def test_victoria_metrics_scrapes_the_exporter_too(tmp_path: Path) -> None:
    from promstack import free_port, query, start_victoria_metrics

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vfleet", "--demo", "export", "--listen", f"127.0.0.1:{port}", "--interval", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        with start_victoria_metrics([f"127.0.0.1:{port}"]) as url:
            up = wait_for(
                "six demo hosts up in VictoriaMetrics", lambda: len(query(url, "vfleet_host_up == 1")) == 6 or None
            )
            assert up
            assert query(url, 'count(vfleet_domain_info{state="running"}) > 0')
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
