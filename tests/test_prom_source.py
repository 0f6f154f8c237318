"""`--source prometheus=URL`: status, top, the engine and the console read the fleet from a real
Prometheus and a real VictoriaMetrics scraping the agreed metric families; actions go to the hosts.

The exposition comes from tests/promfake.py (prometheus_client) until `vfleet export` is on main;
the "same as polling" test fills it from a direct `status` of the real libvirt hosts.
"""

from __future__ import annotations

import asyncio
import http.server
import io
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from promfake import FakeDomain, FakeExporter, FakeHost
from promstack_source import free_port, query, start_prometheus, start_victoria_metrics, wait_for

from vfleet.cli.main import main
from vfleet.core.engine import Fleet
from vfleet.core.errors import ExitCode
from vfleet.core.models import HostConfig, HostStatus, PowerState
from vfleet.sources.prometheus import PrometheusSource
from vfleet.sources.promql import PromClient, QueryFailed, parse_url, parse_vector

EVIL = "evil\x1b[31mred\x07"
ENGINES = ("prometheus", "victoria-metrics")


def world() -> list[FakeHost]:
    return [
        FakeHost(
            "kvm-a",
            domains=[
                FakeDomain("web-1", "uuid-web-1", cpu_ratio=0.5, vcpus=4),
                FakeDomain("db-1", "uuid-db-1", state="paused", memory_used_bytes=None, cpu_ratio=0.0),
                FakeDomain(EVIL, "uuid-evil", state="crashed"),
            ],
        ),
        FakeHost("kvm.b|x", domains=[FakeDomain("mail-1", "uuid-mail-1")]),  # a host name full of regex syntax
        FakeHost("kvm-down", status="down", domains=[FakeDomain("lost-1", "uuid-lost-1")]),
        FakeHost("kvm-old", poll_age=300.0, domains=[FakeDomain("old-1", "uuid-old-1")]),
    ]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two exporters (the second is stopped by one test), scraped by a real Prometheus and VictoriaMetrics."""
    tmp = tmp_path_factory.mktemp("promstack")
    main_exporter = FakeExporter(world())
    doomed = FakeExporter([FakeHost("kvm-dies", domains=[FakeDomain("gone-1", "uuid-gone-1")])])
    mirror = FakeExporter([])  # filled by a test from a direct poll of real hosts
    targets = [main_exporter.target, doomed.target, mirror.target]
    try:
        with start_prometheus(targets, tmp / "prom") as prom, start_victoria_metrics(targets, tmp / "vm") as vm:
            for base in (prom, vm):
                wait_for(lambda b=base: len(query(b, "vfleet_domain_info")) == 7, 90, f"first scrapes at {base}")  # type: ignore[misc]
            yield {"prometheus": prom, "victoria-metrics": vm, "doomed": doomed, "mirror": mirror, "tmp": tmp}
    finally:
        main_exporter.stop()
        doomed.stop()
        mirror.stop()


def inventory(tmp: Path, names: list[str], uri: str = "test:///default") -> str:
    path = tmp / f"inv-{abs(hash(tuple(names)))}.yaml"
    hosts = [{"name": n, "driver": "libvirt", "uri": uri, "poll_interval": 1} for n in names]
    path.write_text(json.dumps({"hosts": hosts}))
    return str(path)


def status(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = main(argv, out=out)
    return code, out.getvalue()


ALL = ["kvm-a", "kvm.b|x", "kvm-down", "kvm-old", "kvm-ghost"]


@pytest.mark.parametrize("engine", ENGINES)
def test_status_reads_domains_states_values_and_stale_reasons(
    stack: dict[str, Any], engine: str, capsys: pytest.CaptureFixture[str]
) -> None:
    inv = inventory(stack["tmp"], ALL)
    code, text = status(["-i", inv, "status", "-o", "json", "--source", f"prometheus={stack[engine]}"])
    doc = json.loads(text)
    by_name = {d["name"]: d for d in doc["domains"]}
    assert sorted(by_name) == sorted(["web-1", "db-1", EVIL, "mail-1"])  # hosts with fresh data only
    web = by_name["web-1"]
    assert (web["host"], web["uuid"], web["state"], web["vcpus"]) == ("kvm-a", "uuid-web-1", "running", 4)
    assert (web["cpu_pct"], web["contention_pct"], web["mem_used_bytes"]) == (50.0, 1.0, 1 << 30)
    assert (web["disk_read_bps"], web["disk_write_bps"], web["net_rx_bps"], web["net_tx_bps"]) == (1000, 2000, 300, 400)
    assert web["cpu_host_pct"] == 25.0  # 50 % of 4 vCPUs on an 8-CPU host
    assert by_name["db-1"]["state"] == "paused" and by_name["db-1"]["mem_used_bytes"] is None
    assert by_name[EVIL]["state"] == "crashed"
    assert by_name["mail-1"]["host"] == "kvm.b|x"
    hosts = {h["name"]: h for h in doc["hosts"]}
    assert hosts["kvm-a"]["status"] == "up" and hosts["kvm-a"]["hypervisor"] == "kvm"
    assert 0.5 <= hosts["kvm-a"]["data_age_s"] < 30  # the exporter's poll age, not the query's
    assert hosts["kvm-down"]["status"] == "stale"
    assert hosts["kvm-down"]["error"] == "kvm-down: prometheus: exporter reports host down: down"
    assert hosts["kvm-old"]["status"] == "stale"
    assert "last good poll is 30" in hosts["kvm-old"]["error"] and "limit 30 s" in hosts["kvm-old"]["error"]
    assert hosts["kvm-ghost"]["error"] == "kvm-ghost: prometheus: no sample newer than 30 s"
    assert code == ExitCode.UNREACHABLE
    err = capsys.readouterr().err
    assert "kvm-ghost: prometheus: no sample newer than 30 s" in err and "Traceback" not in err


def test_status_table_escapes_hostile_label_values(stack: dict[str, Any]) -> None:
    inv = inventory(stack["tmp"], ["kvm-a"])
    code, text = status(["-i", inv, "status", "--source", f"prometheus={stack['prometheus']}"])
    assert code == ExitCode.OK
    assert "\x1b" not in text and "\x07" not in text and "evil" in text


def test_one_refresh_serves_every_host(stack: dict[str, Any]) -> None:
    """Fourteen queries per refresh for the whole fleet, never per host or per domain."""
    names = ["kvm-a", "kvm.b|x", "kvm-down", "kvm-old"]
    configs = [HostConfig(name=n, driver="libvirt", uri="test:///default", poll_interval=0.5) for n in names]
    client = PromClient(stack["prometheus"])
    source = PrometheusSource(client, names, reuse=0.25)

    async def run() -> None:
        async with Fleet(configs, driver_factory=source.factory) as fleet:
            ok = await fleet.wait_until(lambda views: all(v.health.polls >= 4 for v in views[:2]), 60)
            assert ok, [v.health for v in fleet.views()]
            views = {v.name: v for v in fleet.views()}
            assert views["kvm-down"].health.status is HostStatus.STALE
            assert views["kvm-a"].facts is not None and views["kvm-a"].facts.cpus == 8

    asyncio.run(run())
    # the refresh in flight when the fleet stopped may have sent part of its queries
    assert source.queries_per_refresh == 14
    per = source.queries_per_refresh
    assert per * source.refreshes <= client.queries <= per * (source.refreshes + 1), source.failures
    assert source.refreshes < 4 * 4  # a refresh per tick shared by the hosts, not one per host and tick


def test_a_dead_exporter_makes_its_hosts_stale_with_the_reason(stack: dict[str, Any]) -> None:
    inv = inventory(stack["tmp"], ["kvm-dies", "kvm-a"])
    for engine in ENGINES:
        code, text = status(["-i", inv, "status", "-o", "json", "--source", f"prometheus={stack[engine]}"])
        assert code == ExitCode.OK, text
    stack["doomed"].stop()
    for engine in ENGINES:

        def stale(engine: str = engine) -> bool:
            code, text = status(
                ["-i", inv, "status", "-o", "json", "--source", f"prometheus={stack[engine]}", "--source-max-age", "5"]
            )
            hosts = {h["name"]: h for h in json.loads(text)["hosts"]}
            return code == ExitCode.UNREACHABLE and hosts["kvm-dies"]["status"] == "stale"

        wait_for(stale, 60, f"kvm-dies stale in {engine}")
        code, text = status(
            ["-i", inv, "status", "-o", "json", "--source", f"prometheus={stack[engine]}", "--source-max-age", "5"]
        )
        hosts = {h["name"]: h for h in json.loads(text)["hosts"]}
        assert hosts["kvm-dies"]["error"].startswith("kvm-dies: prometheus: no sample newer than 5 s"), hosts
        assert hosts["kvm-a"]["status"] == "up"


@pytest.mark.parametrize("spec", ["prom=http://x:9090", "prometheus=ftp://x", "prometheus=http://u:p@x:9090", "x"])
def test_a_bad_source_is_a_usage_error(tmp_path: Path, spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = status(["-i", inventory(tmp_path, ["h"]), "status", "--source", spec])
    assert code == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.startswith("vfleet: --source") and err.count("\n") == 1 and "p@" not in err


# -- a server that is not a good Prometheus ------------------------------------------------


class _Bad(http.server.BaseHTTPRequestHandler):
    answers: dict[str, tuple[int, bytes]] = {
        "/html/api/v1/query": (200, b"<html>login</html>"),
        "/err/api/v1/query": (400, b'{"status":"error","errorType":"bad_data","error":"parse error"}'),
        "/boom/api/v1/query": (503, b"overloaded"),
        "/weird/api/v1/query": (200, b'{"status":"success","data":{"resultType":"matrix","result":[]}}'),
    }

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        code, body = self.answers.get(self.path, (404, b""))
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def bad_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Bad)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/html", "the answer is not JSON"),
        ("/err", "HTTP 400 Bad Request: parse error"),
        ("/boom", "HTTP 503 Service Unavailable"),
        ("/weird", "not an instant vector"),
        ("refused", "Connection refused"),
    ],
)
def test_server_errors_make_hosts_stale_with_a_one_line_reason(
    tmp_path: Path, bad_server: str, path: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}" if path == "refused" else bad_server + path
    code, text = status(["-i", inventory(tmp_path, ["h1", "h2"]), "status", "-o", "json", "--source", f"prometheus={url}"])
    assert code == ExitCode.UNREACHABLE
    hosts = json.loads(text)["hosts"]
    assert [h["status"] for h in hosts] == ["stale", "stale"]
    assert all(h["error"].startswith(f"{h['name']}: prometheus: ") and reason in h["error"] for h in hosts), hosts
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 2


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = PromClient(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=0.5)
        with pytest.raises(QueryFailed, match="no answer"):
            asyncio.run(client.query("up", 0.0))


def test_parse_vector_keeps_nan_inf_and_strings_out_of_the_numbers() -> None:
    body = json.dumps(
        {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [
                    {"metric": {"host": "a"}, "value": [1.0, "NaN"]},
                    {"metric": {"host": "b"}, "value": [1.0, "+Inf"]},
                    {"metric": {"host": "c"}, "value": [1.0, "many"]},
                    {"metric": {"host": "d", "n": 3}, "value": [1.0, "2.5"]},
                    {"metric": "x", "value": [1.0, "1"]},
                    {"metric": {"host": "e"}, "value": ["t", "1"]},
                ],
            },
        }
    ).encode()
    series = parse_vector(body, "here")
    assert [(s.labels, s.value) for s in series] == [
        ({"host": "a"}, None),
        ({"host": "b"}, None),
        ({"host": "c"}, None),
        ({"host": "d"}, 2.5),
    ]
    assert parse_url("prometheus=https://prom.example:9090/select/0/prometheus/") == (
        "https://prom.example:9090/select/0/prometheus"
    )


def test_source_snapshot_keeps_unknown_states_as_unknown(stack: dict[str, Any]) -> None:
    async def run() -> PowerState:
        source = PrometheusSource(PromClient(stack["prometheus"]), ["kvm-a"])
        snap = source.snapshot("kvm-a", await source.refresh())
        return next(d.state for d in snap.domains if d.name == "db-1")

    assert asyncio.run(run()) is PowerState.PAUSED


# -- the same fleet, polled directly and read back from Prometheus ---------------------------

COMPARED = ("host", "name", "uuid", "state", "vcpus", "mem_max_bytes", "mem_used_bytes", "uptime_s")
RATES = ("cpu_pct", "contention_pct", "disk_read_bps", "disk_write_bps", "net_rx_bps", "net_tx_bps")


def _as_fake(record: dict[str, Any]) -> FakeDomain:
    def ratio(pct: float | None) -> float | None:
        return None if pct is None else pct / 100

    return FakeDomain(
        record["name"],
        record["uuid"] or record["name"],
        state=record["state"],
        vcpus=record["vcpus"],
        memory_max_bytes=record["mem_max_bytes"],
        memory_used_bytes=record["mem_used_bytes"],
        uptime_seconds=record["uptime_s"],
        cpu_ratio=ratio(record["cpu_pct"]),  # type: ignore[arg-type]
        contention_ratio=ratio(record["contention_pct"]),  # type: ignore[arg-type]
        disk_read_bytes_per_second=record["disk_read_bps"],
        disk_write_bytes_per_second=record["disk_write_bps"],
        network_receive_bytes_per_second=record["net_rx_bps"],
        network_transmit_bytes_per_second=record["net_tx_bps"],
    )


@pytest.fixture(scope="module")
def mirrored(stack: dict[str, Any], testbed: dict[str, str]) -> dict[str, Any]:
    """A direct `status` of real libvirt hosts (QEMU guests and the test driver), published by the mirror."""
    tmp: Path = stack["tmp"]
    inv = tmp / "real.yaml"
    hosts = [
        {"name": "qemu", "driver": "libvirt", "uri": testbed["VFLEET_QEMU_URI"], "poll_interval": 1},
        {"name": "tdrv", "driver": "libvirt", "uri": "test:///default", "poll_interval": 1},
    ]
    inv.write_text(json.dumps({"hosts": hosts}))
    code, text = status(["-i", str(inv), "status", "-o", "json", "--interval", "1"])
    assert code == ExitCode.OK, text
    direct = json.loads(text)
    assert len({d["host"] for d in direct["domains"]}) == 2
    by_host: dict[str, FakeHost] = {h: FakeHost(h, hypervisor="kvm") for h in ("qemu", "tdrv")}
    for record in direct["domains"]:
        by_host[record["host"]].domains.append(_as_fake(record))
    stack["mirror"].set_hosts(list(by_host.values()))
    count = len(direct["domains"])
    for engine in ENGINES:
        wait_for(
            lambda e=engine: len(query(stack[e], 'vfleet_domain_info{host=~"qemu|tdrv"}')) == count,  # type: ignore[misc]
            60,
            f"the mirrored fleet in {engine}",
        )
    return {"inventory": str(inv), "direct": direct}


@pytest.mark.parametrize("engine", ENGINES)
def test_status_from_prometheus_matches_polling_directly(
    stack: dict[str, Any], mirrored: dict[str, Any], engine: str
) -> None:
    code, text = status(["-i", mirrored["inventory"], "status", "-o", "json", "--source", f"prometheus={stack[engine]}"])
    assert code == ExitCode.OK, text
    read = {(d["host"], d["name"]): d for d in json.loads(text)["domains"]}
    direct = {(d["host"], d["name"]): d for d in mirrored["direct"]["domains"]}
    assert sorted(read) == sorted(direct)
    for key, want in direct.items():
        got = read[key]
        assert {f: got[f] for f in COMPARED} == {f: want[f] for f in COMPARED}, key
        for f in RATES:
            assert (got[f] is None) == (want[f] is None), (key, f)
            if want[f] is not None:
                assert got[f] == pytest.approx(want[f], abs=0.05, rel=1e-6), (key, f)


async def test_actions_go_to_the_host_through_the_operations_core(
    stack: dict[str, Any], mirrored: dict[str, Any], tmp_path: Path
) -> None:
    """Metrics from Prometheus, the pause from the host's own libvirt driver (test:///default)."""
    from vfleet.core.audit import AuditLog
    from vfleet.core.inventory import load
    from vfleet.core.models import Verb
    from vfleet.core.operations import Operations, Target, always

    hosts = [h for h in load(mirrored["inventory"]).hosts if h.name == "tdrv"]
    source = PrometheusSource(PromClient(stack["prometheus"]), ["tdrv"])
    async with Fleet(hosts, driver_factory=source.factory) as fleet:
        assert await fleet.wait_until(lambda v: v[0].health.polls >= 1, 30), fleet.views()
        row = next(r for r in fleet.view("tdrv").rows if r.domain.name == "test")
        ops = Operations(fleet, AuditLog(tmp_path / "audit.jsonl"), face="test")
        operation = await ops.run(ops.plan(Verb.PAUSE, [Target("tdrv", "test", row.domain.key)]), always)
        (result,) = operation.results
        assert result.ok and result.state_after is PowerState.PAUSED, result
        assert client_queries_only(source)


def client_queries_only(source: PrometheusSource) -> bool:
    """The action made no query: reads and actions are apart."""
    return source.client.queries == source.queries_per_refresh * source.refreshes


async def test_the_console_shows_the_fleet_read_from_prometheus(stack: dict[str, Any], mirrored: dict[str, Any]) -> None:
    from test_tui_support import until

    from vfleet.app import VFleetApp
    from vfleet.core.inventory import load

    hosts = load(mirrored["inventory"]).hosts
    source = PrometheusSource(PromClient(stack["victoria-metrics"]), [h.name for h in hosts])
    app = VFleetApp(Fleet(hosts, driver_factory=source.factory))
    want = sorted((d["host"], d["name"], d["state"]) for d in mirrored["direct"]["domains"])
    async with app.run_test(size=(160, 50)) as pilot:
        table = app.fleet_screen.table

        def shown() -> list[tuple[str, str, str]]:
            rows = [table.rows_by_key[k] for k in table.shown_keys()]
            return sorted((r.host, r.domain.name, r.domain.state.value) for r in rows)

        await until(pilot, lambda: shown() == want, 30, "the mirrored fleet in the table")
        assert all(v.health.status is HostStatus.UP for v in app.fleet.views())
