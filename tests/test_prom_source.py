"""`--source prometheus=URL`: status, top, the engine and the console read the fleet from a real
Prometheus and a real VictoriaMetrics; actions go to the hosts.

The "same as polling" tests read two real `vfleet export --shard` processes over libvirt
test-driver hosts and the real QEMU guests. tests/promfake.py (prometheus_client) serves
only what the exporter cannot produce: hostile label values, hosts down or stale, a dying exporter.
"""

from __future__ import annotations

import asyncio
import gzip
import http.server
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from promfake import FakeDomain, FakeExporter, FakeHost
from promstack import free_port, query, start_prometheus, start_victoria_metrics, wait_for
from test_export_prometheus import exporter, running_guests  # noqa: F401 - a fixture, used by name

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
    """Two stand-in exporters (the second is stopped by one test), scraped by a real Prometheus and VictoriaMetrics."""
    tmp = tmp_path_factory.mktemp("promstack")
    main_exporter = FakeExporter(world())
    doomed = FakeExporter([FakeHost("kvm-dies", domains=[FakeDomain("gone-1", "uuid-gone-1")])])
    changing = FakeExporter([FakeHost("kvm-moves", domains=[FakeDomain("first-1", "uuid-first-1")])])
    targets = [main_exporter.target, doomed.target, changing.target]
    try:
        with start_prometheus(targets) as prom, start_victoria_metrics(targets) as vm:
            for base in (prom, vm):
                wait_for(f"first scrapes at {base}", lambda b=base: len(query(b, "vfleet_domain_info")) == 8, 90)  # type: ignore[misc]
            yield {"prometheus": prom, "victoria-metrics": vm, "doomed": doomed, "changing": changing, "tmp": tmp}
    finally:
        main_exporter.stop()
        doomed.stop()
        changing.stop()


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
    """At most fourteen queries per refresh for the whole fleet, never per host or per domain."""
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
    assert source.queries_per_refresh == 14
    # the refresh in flight when the fleet stopped may have sent part of its queries
    assert client.queries == source.queries <= 14 * (source.refreshes + 1), source.failures
    assert source.refreshes < 4 * 4  # a refresh per tick shared by the hosts, not one per host and tick


def test_answers_travel_gzipped_and_bytes_count_the_wire(stack: dict[str, Any]) -> None:
    client = PromClient(stack["prometheus"])
    items = asyncio.run(client.query_items('{__name__=~"vfleet_.*"}', time.time()))
    plain = len(json.dumps({"status": "success", "data": {"resultType": "vector", "result": items}}))
    assert len(items) > 40 and 0 < client.bytes_read < plain / 3, (client.bytes_read, plain)


def test_a_refresh_reads_domains_only_of_hosts_scraped_since_the_last(stack: dict[str, Any]) -> None:
    """Two refreshes evaluated before the next scrape: the second sends only the three host
    queries and keeps the domains; once a scrape landed, the domains are read again."""
    prom = stack["prometheus"]

    def scraped() -> float:
        return float(query(prom, 'timestamp(vfleet_host_up{host="kvm-moves"})')[0]["value"][1])

    clock = [scraped() + 0.001]  # evaluated just after that scrape, before the next one
    client = PromClient(prom)
    source = PrometheusSource(client, ["kvm-moves", "kvm-a"], reuse=0.0, max_age=3600, wall=lambda: clock[0])

    async def two() -> tuple[Any, Any]:
        return await source.refresh(), await source.refresh()

    first, second = asyncio.run(two())
    assert sorted(first.fetched) == ["kvm-a", "kvm-moves"] and second.fetched == ()
    assert client.queries == 14 + 3
    assert second.parts["kvm-moves"].domains is first.parts["kvm-moves"].domains
    assert [d.name for d in second.parts["kvm-moves"].domains] == ["first-1"]
    # change the exposition, then evaluate after the scrape that carries it
    stack["changing"].set_hosts([FakeHost("kvm-moves", domains=[FakeDomain("next-1", "uuid-next-1")])])
    wait_for("the new scrape", lambda: query(prom, 'vfleet_domain_info{domain="next-1"}'), 30)
    clock[0] = scraped() + 0.001
    third = asyncio.run(source.refresh())
    assert "kvm-moves" in third.fetched
    assert [d.name for d in third.parts["kvm-moves"].domains] == ["next-1"]


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

        wait_for(f"kvm-dies stale in {engine}", stale, 60)
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
        "/notgzip/api/v1/query": (200, b'{"status":"success"}'),  # labelled gzip below, but plain
        "/gzerr/api/v1/query": (422, gzip.compress(b'{"status":"error","errorType":"execution","error":"too many"}')),
    }

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        code, body = self.answers.get(self.path, (404, b""))
        self.send_response(code)
        if self.path.startswith(("/notgzip/", "/gzerr/")):
            self.send_header("Content-Encoding", "gzip")
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
        ("/notgzip", "the answer is not valid gzip"),
        ("/gzerr", "HTTP 422 Unprocessable Entity: too many"),
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


# -- the same fleet, polled directly and read back through two real exporters ----------------

LAB = ["lab-a", "lab-b", "lab-c", "lab-d"]  # test-driver hosts: their values are the same in every process
COMPARED = ("host", "name", "uuid", "state", "vcpus", "mem_max_bytes", "mem_used_bytes", "mem_used_source", "uptime_s")
RATES = ("cpu_pct", "contention_pct", "disk_read_bps", "disk_write_bps", "net_rx_bps", "net_tx_bps")


@pytest.fixture(scope="module")
def exported(
    tmp_path_factory: pytest.TempPathFactory, testbed: dict[str, str], request: pytest.FixtureRequest
) -> Iterator[dict[str, Any]]:
    """`vfleet export --shard 1/2` and `2/2` over LAB and the QEMU guests, scraped by Prometheus and VictoriaMetrics."""
    guests: list[str] = request.getfixturevalue("running_guests")  # started if another test stopped them
    from nodexml import PAUSED, RUNNING, SHUTOFF, write_node
    from vfleet.core.exposition import shard_of

    tmp = tmp_path_factory.mktemp("exported")
    hosts = [{"name": "qemu", "driver": "libvirt", "uri": testbed["VFLEET_QEMU_URI"], "poll_interval": 1}]
    for name in LAB:
        node = write_node(tmp / f"{name}.xml", [(f"{name}-run", RUNNING), (f"{name}-off", SHUTOFF), (f"{name}-p", PAUSED)])
        hosts.append({"name": name, "driver": "libvirt", "uri": f"test://{node}", "poll_interval": 1})
    assert {shard_of(h["name"], 2) for h in hosts} == {1, 2}, "both shards must hold hosts"
    inv = tmp / "fleet.yaml"
    inv.write_text(json.dumps({"hosts": hosts}))
    with exporter(inv, "1/2", tmp) as port1, exporter(inv, "2/2", tmp) as port2:
        targets = [f"127.0.0.1:{port1}", f"127.0.0.1:{port2}"]
        with start_prometheus(targets) as prom, start_victoria_metrics(targets) as vm:
            for base in (prom, vm):
                wait_for(
                    f"every host up at {base}",
                    lambda b=base: len(query(b, "vfleet_host_up == 1")) == len(hosts),  # type: ignore[misc]
                    90,
                )
            yield {"inventory": str(inv), "prometheus": prom, "victoria-metrics": vm, "guests": guests}


def _direct(inventory: str) -> dict[tuple[str, str], dict[str, Any]]:
    code, text = status(["-i", inventory, "status", "-o", "json", "--interval", "1"])
    assert code == ExitCode.OK, text
    return {(d["host"], d["name"]): d for d in json.loads(text)["domains"]}


@pytest.mark.parametrize("engine", ENGINES)
def test_status_from_prometheus_matches_polling_directly(exported: dict[str, Any], engine: str) -> None:
    """Test-driver hosts field by field; the shared QEMU guests by identity and size (their load
    and, when another test acts on them, their state move between the two reads)."""
    direct = _direct(exported["inventory"])
    assert {h for h, _ in direct} == {"qemu", *LAB}
    args = ["-i", exported["inventory"], "status", "-o", "json", "--source", f"prometheus={exported[engine]}"]
    code, text = status(args)
    assert code == ExitCode.OK, text
    read = {(d["host"], d["name"]): d for d in json.loads(text)["domains"]}
    lab = sorted(k for k in direct if k[0] != "qemu")
    assert sorted(k for k in read if k[0] != "qemu") == lab and len(lab) == 3 * len(LAB)
    for key in lab:
        got, want = read[key], direct[key]
        assert {f: got[f] for f in COMPARED} == {f: want[f] for f in COMPARED}, key
        for f in RATES:
            assert (got[f] is None) == (want[f] is None), (key, f, got[f], want[f])
    qemu = {k for k in direct if k[0] == "qemu" and k[1] in exported["guests"] and direct[k]["state"] == "running"}
    assert qemu <= set(read), "the running guests are read back"
    for key in qemu:
        got, want = read[key], direct[key]
        identity = ("uuid", "vcpus", "mem_max_bytes")
        assert {f: got[f] for f in identity} == {f: want[f] for f in identity}, key
        # libvirt says guest or host-rss: the label carries it (without it the reader would say hypervisor)
        assert (got["mem_used_bytes"] is None) == (got["mem_used_source"] is None), got
        assert got["mem_used_source"] in (None, "guest", "host-rss"), got
        if got["cpu_pct"] is not None:  # None for a poll after another test resumed the guest
            assert 0.0 <= got["cpu_pct"] <= 100.0 * got["vcpus"], got
    assert not qemu or any(read[k]["mem_used_source"] for k in qemu), "memory_source read for a running guest"


async def test_actions_go_to_the_host_through_the_operations_core(exported: dict[str, Any], tmp_path: Path) -> None:
    """Metrics from Prometheus, the pause from the host's own libvirt driver (its own test:// copy)."""
    from vfleet.core.audit import AuditLog
    from vfleet.core.inventory import load
    from vfleet.core.models import Verb
    from vfleet.core.operations import Operations, Target, always

    hosts = [h for h in load(exported["inventory"]).hosts if h.name == "lab-a"]
    source = PrometheusSource(PromClient(exported["prometheus"]), ["lab-a"])
    async with Fleet(hosts, driver_factory=source.factory) as fleet:
        assert await fleet.wait_until(lambda v: v[0].health.polls >= 1, 30), fleet.views()
        row = next(r for r in fleet.view("lab-a").rows if r.domain.name == "lab-a-run")
        ops = Operations(fleet, AuditLog(tmp_path / "audit.jsonl"), face="test")
        operation = await ops.run(ops.plan(Verb.PAUSE, [Target("lab-a", "lab-a-run", row.domain.key)]), always)
        (result,) = operation.results
        assert result.ok and result.state_after is PowerState.PAUSED, result
        assert source.client.queries == source.queries  # the action made no query: reads and actions are apart


async def test_the_console_shows_the_fleet_read_from_prometheus(exported: dict[str, Any]) -> None:
    from test_tui_support import until

    from vfleet.app import VFleetApp
    from vfleet.core.inventory import load

    hosts = load(exported["inventory"]).hosts
    direct = await asyncio.to_thread(_direct, exported["inventory"])  # status runs its own event loop
    want = sorted((h, n, d["state"]) for (h, n), d in direct.items() if h != "qemu")
    guests = set(exported["guests"])
    source = PrometheusSource(PromClient(exported["victoria-metrics"]), [h.name for h in hosts])
    app = VFleetApp(Fleet(hosts, driver_factory=source.factory))
    async with app.run_test(size=(160, 50)) as pilot:
        table = app.fleet_screen.table

        def shown() -> tuple[list[tuple[str, str, str]], set[str]]:
            rows = [table.rows_by_key[k] for k in table.shown_keys()]
            lab = sorted((r.host, r.domain.name, r.domain.state.value) for r in rows if r.host != "qemu")
            return lab, {r.domain.name for r in rows if r.host == "qemu"}

        await until(pilot, lambda: shown()[0] == want and shown()[1] >= guests, 30, "the exported fleet in the table")
        assert all(v.health.status is HostStatus.UP for v in app.fleet.views())
