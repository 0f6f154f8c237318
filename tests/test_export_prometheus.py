"""`vfleet export` scraped by a real Prometheus: two shards over libvirt test-driver hosts
and the real QEMU guests, checked against `vfleet status -o json`, libvirt itself and promtool."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from promstack import free_port, query, start_prometheus, wait_for
from test_export_examples import DASHBOARD, dashboard_exprs, metric_names

from nodexml import PAUSED, RUNNING, SHUTOFF, write_node
from vfleet.core.exposition import shard_of

pytestmark = pytest.mark.timeout(240)
TEST_HOSTS = [f"lab-{i}" for i in range(6)]


def write_inventory(tmp: Path, qemu_uri: str) -> Path:
    lines = ["hosts:"]
    for i, name in enumerate(TEST_HOSTS):
        node = write_node(
            tmp / f"{name}.xml", [(f"{name}-run", RUNNING), (f"{name}-off", SHUTOFF), (f"{name}-p{i}", PAUSED)]
        )
        group = "even" if i % 2 == 0 else "odd"
        lines.append(
            f"  - {{name: {name}, driver: libvirt, uri: 'test://{node}', groups: [{group}], tags: [lab, t{i}]}}"
        )
    lines.append(f"  - {{name: qemu, driver: libvirt, uri: '{qemu_uri}', tags: [real]}}")
    lines.append("groups:\n  even: {}\n  odd: {}")
    path = tmp / "inventory.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def vfleet(*argv: str) -> list[str]:
    return [sys.executable, "-m", "vfleet", *argv]


def scrape(port: int, accept: str = "text/plain") -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(answer.read().decode())


@contextlib.contextmanager
def exporter(inventory: Path, shard: str, tmp: Path) -> Iterator[int]:
    port = free_port()
    log = (tmp / f"export-{shard.replace('/', '-')}.log").open("wb")
    proc = subprocess.Popen(
        vfleet("-i", str(inventory), "export", "--listen", f"127.0.0.1:{port}", "--shard", shard, "--interval", "1"),
        stdout=subprocess.PIPE,
        stderr=log,
    )
    try:
        wait_for(f"export {shard} serves", lambda: "vfleet_host_up" in scrape(port), proc=proc)  # type: ignore[arg-type]
        yield port
    finally:
        proc.terminate()  # SIGTERM: a clean exit, nothing on stdout
        rc = proc.wait(timeout=20)
        stdout = proc.stdout.read() if proc.stdout else b""
        log.close()
        assert rc == 0, (tmp / f"export-{shard.replace('/', '-')}.log").read_text()
        assert stdout == b""


@pytest.fixture(scope="module")
def running_guests(testbed: dict[str, str], libvirt_module: object) -> list[str]:
    import libvirt

    names = testbed["VFLEET_GUESTS"].split(",")
    conn = libvirt.open(testbed["VFLEET_QEMU_URI"])
    try:
        for name in names:
            dom = conn.lookupByName(name)
            if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
                dom.resume()
            elif dom.state()[0] != libvirt.VIR_DOMAIN_RUNNING:
                dom.create()
    finally:
        conn.close()
    return names


def by_key(results: list[dict[str, object]], *labels: str) -> dict[tuple[str, ...], float]:
    out = {}
    for r in results:
        metric = r["metric"]
        assert isinstance(metric, dict)
        value = r["value"]
        assert isinstance(value, list)
        out[tuple(str(metric.get(label, "")) for label in labels)] = float(value[1])
    return out


def test_two_shards_scraped_by_prometheus_match_status_and_libvirt(
    tmp_path: Path, testbed: dict[str, str], running_guests: list[str]
) -> None:
    import libvirt

    uri = testbed["VFLEET_QEMU_URI"]
    inventory = write_inventory(tmp_path, uri)
    every = [*TEST_HOSTS, "qemu"]
    shards = {k: {h for h in every if shard_of(h, 2) == k} for k in (1, 2)}
    assert shards[1] and shards[2], "the test inventory must put hosts in both shards"

    with (
        exporter(inventory, "1/2", tmp_path) as port1,
        exporter(inventory, "2/2", tmp_path) as port2,
        start_prometheus([f"127.0.0.1:{port1}", f"127.0.0.1:{port2}"]) as prom,
    ):
        # every host is up, in exactly one shard, the one its name hashes to
        up = wait_for(
            "every host up in Prometheus",
            lambda: (r := query(prom, "vfleet_host_up == 1")) and len(r) == len(every) and r,
        )
        instance_of = {r["metric"]["host"]: r["metric"]["instance"] for r in up}
        assert set(instance_of) == set(every)
        shard_label = by_key(query(prom, "vfleet_exporter_shard_info"), "instance", "shard")
        shard_at = {instance: shard for instance, shard in shard_label}
        for host, instance in instance_of.items():
            assert shard_at[instance] == f"{shard_of(host, 2)}/2", host
        assert {shard_at[f"127.0.0.1:{port1}"], shard_at[f"127.0.0.1:{port2}"]} == {"1/2", "2/2"}

        # the same domains, keys, states and sizes as `vfleet status -o json`
        status = subprocess.run(
            vfleet("-i", str(inventory), "status", "-o", "json"),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        document = json.loads(status.stdout)
        # the shared guests' states are left out: another test may suspend one at any moment
        expected = {
            (d["host"], d["name"], d["uuid"], d["state"] if d["host"] != "qemu" else "")
            for d in document["domains"]
            if d["host"] != "qemu" or d["name"] in running_guests
        }
        info = by_key(query(prom, "vfleet_domain_info"), "host", "domain", "domain_key", "state")
        got = {(*k[:3], k[3] if k[0] != "qemu" else "") for k in info if k[0] != "qemu" or k[1] in running_guests}
        assert got == expected
        for d in document["domains"]:
            if d["host"] == "qemu" and d["name"] not in running_guests:
                continue
            labels = f'host="{d["host"]}",domain="{d["name"]}"'
            for metric, field in (
                ("vfleet_domain_vcpus", "vcpus"),
                ("vfleet_domain_memory_max_bytes", "mem_max_bytes"),
            ):
                values = query(prom, f"{metric}{{{labels}}}")
                if d[field] is None:
                    assert values == [], (metric, d)
                else:
                    assert [float(v["value"][1]) for v in values] == [float(d[field])], (metric, d)

        # groups and tags as labels of the info series only
        lab0 = query(prom, 'vfleet_host_info{host="lab-0"}')[0]["metric"]
        assert (lab0["group_even"], lab0["tag_lab"], lab0["tag_t0"]) == ("1", "1", "1")
        assert "group_odd" not in lab0
        assert "tag_lab" not in query(prom, 'vfleet_host_up{host="lab-0"}')[0]["metric"]
        assert len(query(prom, 'vfleet_host_info{tag_real="1"}')) == 1

        # counters stay counters: Prometheus' metadata says so, rate() works and matches vfleet's own ratio
        with urllib.request.urlopen(f"{prom}/api/v1/metadata", timeout=10) as a:
            metadata = json.load(a)["data"]
        # Prometheus asked for OpenMetrics, where a counter's family has no _total
        assert metadata["vfleet_domain_cpu_seconds"][0]["type"] == "counter"
        assert metadata["vfleet_domain_cpu_ratio"][0]["type"] == "gauge"
        guests = "|".join(running_guests)
        rate_q = f'rate(vfleet_domain_cpu_seconds_total{{host="qemu",domain=~"{guests}"}}[10s]) / on(host,domain) vfleet_domain_vcpus'
        ratio_q = f'avg_over_time(vfleet_domain_cpu_ratio{{host="qemu",domain=~"{guests}"}}[10s])'
        agreed: dict[str, tuple[float, float]] = {}

        def rate_matches_ratio() -> bool:
            # the guests' load changes from second to second, and vfleet's ratio lags the
            # counter by a poll: wait for a window where both agree, as they must
            rates, ratios = by_key(query(prom, rate_q), "domain"), by_key(query(prom, ratio_q), "domain")
            agreed.clear()  # a guest another test stopped just now drops out of both
            agreed.update({g: (rates[(g,)], ratios[(g,)]) for g in running_guests if (g,) in rates and (g,) in ratios})
            return bool(agreed) and all(0.0 <= r <= 1.0 and abs(r - q) < 0.1 for r, q in agreed.values())

        try:
            wait_for("rate() of the counter matches vfleet_domain_cpu_ratio", rate_matches_ratio, timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: (rate, ratio) {agreed}") from None
        rates = {guest: r for guest, (r, _q) in agreed.items()}

        # a counter in Prometheus is libvirt's own counter, at most a few polls old
        conn = libvirt.open(uri)
        checked = 0
        try:
            for guest in rates:
                cpu = query(prom, f'vfleet_domain_cpu_seconds_total{{host="qemu",domain="{guest}"}}')
                dom = conn.lookupByName(guest)
                if not cpu or dom.state()[0] != libvirt.VIR_DOMAIN_RUNNING:
                    continue  # stopped by another test since
                exported = float(cpu[0]["value"][1])
                now = dom.getCPUStats(True)[0]["cpu_time"] / 1e9
                assert exported <= now + 1e-6, (guest, exported, now)
                assert now - exported <= max(0.5, rates[guest] * dom.info()[3] * 6), (guest, exported, now)
                checked += 1
        finally:
            conn.close()
        if not checked:
            pytest.skip("every guest was stopped by another test during this one")

        # every query of the example dashboard runs, and each finds data in this fleet
        # (libvirt has no uptime, these hosts are no pools: a panel of what this fleet lacks only has to run)
        present = {r["metric"]["__name__"] for r in query(prom, 'group by (__name__) ({__name__=~"vfleet_.*"})')}
        pools = bool(query(prom, 'vfleet_domain_info{node!=""}'))
        with_data = 0
        for expr in dashboard_exprs(json.loads(DASHBOARD.read_text())):
            names = metric_names(expr)
            expr = re.sub(r"label_values\((.*),\s*\w+\s*\)", r"\1", expr)
            expr = expr.replace("$__rate_interval", "8s").replace("$host", ".*").replace("$domain", ".*")
            found = query(prom, expr)
            if names <= present and (pools or 'node!=""' not in expr):
                assert found, expr
                with_data += 1
        assert with_data >= 20

        # promtool accepts the exposition as it is served (text and OpenMetrics)
        for port in (port1, port2):
            text = scrape(port)
            check = subprocess.run(
                ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
            )
            assert check.returncode == 0, check.stdout + check.stderr
            openmetrics = scrape(port, "application/openmetrics-text; version=1.0.0")
            assert openmetrics.rstrip().endswith("# EOF")
            if port == int(instance_of["qemu"].rsplit(":", 1)[1]):
                assert "# TYPE vfleet_domain_cpu_seconds counter" in openmetrics
