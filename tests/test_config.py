"""The console's config file: every key read, one error per kind naming file:line and key,
`vfleet config check`, and views applied by `status --view` / `top --view`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vfleet.core import config, fields
from vfleet.core.config import ConfigError, Sort
from vfleet.core.errors import ExitCode
from vfleet.core.output import table
from vfleet.core.thresholds import Level, Threshold, Thresholds

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
version: 1
theme: nord
interval: 5
sort: {column: cpu}
columns: [host, cpu, mem, cont]
thresholds:
  cpu: {warn: 70, crit: 90}
  age: {warn: 30}
keys:
  columns: C
  filter: f
views:
  busy:
    filter: "state:running cpu>50"
    sort: {column: cpu, direction: desc}
    columns: [host, cpu, spark]
  by-name:
    sort: {column: name}
"""


def test_every_key_is_read() -> None:
    c = config.parse(GOOD, "config.yaml")
    assert (c.theme, c.interval) == ("nord", 5.0)
    assert c.sort == Sort("cpu", descending=True)  # a number column starts descending
    assert c.columns == ("host", "name", "state", "cpu", "mem", "cont")  # name and state always, table order
    assert c.thresholds.cpu == Threshold(70, 90)
    assert c.thresholds.age == Threshold(30, 60)  # crit keeps its default
    assert c.thresholds.memory == Thresholds().memory
    assert c.keys == {"columns": "C", "filter": "f"}
    busy, by_name = c.views["busy"], c.views["by-name"]
    assert (busy.filter, busy.sort, busy.columns) == ("state:running cpu>50", Sort("cpu", True), ("host", "name", "state", "cpu", "spark"))
    assert by_name.sort == Sort("name", descending=False) and by_name.filter == "" and by_name.columns is None
    assert busy.source == "config.yaml:14"
    assert c.where("theme") == "config.yaml:2: theme"


def test_an_empty_file_is_every_default() -> None:
    c = config.parse("# nothing yet\n", "config.yaml")
    assert c.thresholds == Thresholds() and c.views == {} and c.sort is None and c.columns is None


@pytest.mark.parametrize(
    ("text", "line", "key", "problem"),
    [
        ("colour: red\n", 1, "colour", "unknown key (expected one of: version, theme"),
        ("version: 2\n", 1, "version", "unsupported version 2"),
        ("theme: [a]\n", 1, "theme", "expected a string, got a list"),
        ("interval: 0.05\n", 1, "interval", "must be at least 0.2"),
        ("interval: soon\n", 1, "interval", "expected a number"),
        ("sort: {direction: asc}\n", 1, "sort.column", "missing required key"),
        ("sort: {column: spark}\n", 1, "sort.column", "expected one of: host, hv, node, name"),
        ("sort:\n  column: cpu\n  direction: up\n", 3, "sort.direction", "expected one of: asc, desc"),
        ("columns: []\n", 1, "columns", "expected a non-empty list of columns"),
        ("columns:\n  - host\n  - cpuu\n", 3, "columns[1]", "unknown column 'cpuu'"),
        ("columns:\n  - host\n  - host\n", 3, "columns[1]", "column 'host' listed twice (first on line 2)"),
        ("thresholds:\n  disk: {warn: 1}\n", 2, "thresholds.disk", "unknown key (expected one of: cpu, memory, contention, age)"),
        ("thresholds:\n  cpu: {warn: 120}\n", 2, "thresholds.cpu.warn", "must be 0-100"),
        ("thresholds:\n  age: {crit: 0}\n", 2, "thresholds.age.crit", "must be greater than 0"),
        ("thresholds:\n  cpu:\n    warn: 90\n    crit: 80\n", 3, "thresholds.cpu", "crit (80) is below warn (90)"),
        ("keys:\n  zoom: z\n", 2, "keys.zoom", "unknown key (expected one of: filter, mark"),
        ("keys:\n  help: escape\n", 2, "keys.help", "'escape' is reserved"),
        ("keys:\n  help: two words\n", 2, "keys.help", "is not a key"),
        ("keys:\n  columns: q\n", 2, "keys.columns", "'q' is already the key of quit"),
        ("views: [a]\n", 1, "views", "expected a mapping of names, got a list"),
        ("views:\n  a: {}\n", 2, "views.a", "an empty view"),
        ("views:\n  my view: {filter: x}\n", 2, "views.my view", "one word"),
        ("views:\n  a:\n    filter: 're:('\n", 3, "views.a.filter", "bad regular expression"),
        ("views:\n  a:\n    colour: red\n", 3, "views.a.colour", "unknown key (expected one of: filter, sort, columns)"),
        ("views:\n  a: {filter: x}\n  a: {filter: y}\n", 3, "views.a", "duplicate name (first defined on line 2)"),
        ("theme: nord\ntheme: dracula\n", 2, "theme", "duplicate key (first set on line 1)"),
        ("views:\n  a: &v {filter: x}\n  b:\n    <<: *v\n", 4, "views.b.<<", "YAML merge keys are not supported"),
        ("theme: [\n", 2, "", "YAML syntax error"),
        ("theme: a\n---\ntheme: b\n", 2, "", "a second YAML document: a config file is one document"),
    ],
)
def test_each_mistake_is_one_error_naming_file_line_and_key(text: str, line: int, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.parse(text, "config.yaml")
    error = caught.value
    assert (error.path, error.line, error.key) == ("config.yaml", line, key), str(error)
    assert problem in error.problem, str(error)
    assert "\n" not in str(error)


def test_file_resolution_explicit_env_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config.resolve(None) == config.Config()  # no file where the default is: every default
    default = tmp_path / "xdg" / "vfleet" / "config.yaml"
    default.parent.mkdir(parents=True)
    default.write_text("theme: nord\n")
    assert config.resolve(None).theme == "nord"
    env = tmp_path / "env.yaml"
    env.write_text("theme: gruvbox\n")
    monkeypatch.setenv(config.ENV_VAR, str(env))
    assert config.resolve(None).theme == "gruvbox"
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text("theme: dracula\n")
    assert config.resolve(str(explicit)).theme == "dracula"
    with pytest.raises(ConfigError, match=r"missing\.yaml: no such file"):
        config.resolve(str(tmp_path / "missing.yaml"))  # named, so it must exist
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is a FIFO, not a regular file: a config file must be a file"):
        config.load(fifo)


def test_thresholds_levels_and_the_record_sort() -> None:
    t = Threshold(80, 95)
    assert [t.level(v) for v in (None, 79.9, 80, 94.9, 95, 100)] == [
        Level.OK, Level.OK, Level.WARN, Level.WARN, Level.CRIT, Level.CRIT]
    records = [
        {"host": "b", "name": "x", "cpu_pct": 5.0},
        {"host": "a", "name": "y", "cpu_pct": None},
        {"host": "a", "name": "z", "cpu_pct": 50.0},
    ]
    assert [r["name"] for r in fields.sort_records(records, "cpu", descending=True)] == ["z", "x", "y"]  # unknown last
    assert [r["name"] for r in fields.sort_records(records, "host", descending=False)] == ["y", "z", "x"]
    assert fields.starts_descending("cpu") and not fields.starts_descending("name")


def test_a_view_picks_the_table_columns_name_and_state_always() -> None:
    record = {"host": "h", "hypervisor": "kvm", "name": "web", "state": "running", "vcpus": 2, "cpu_pct": 12.5,
              "mem_used_bytes": 1 << 30, "mem_used_source": "guest", "mem_max_bytes": 4 << 30,
              "mem_current_bytes": 4 << 30, "tags": ["prod", "eu"], "stale": False}
    header, row = table([record], ("cpu", "mem_pct", "tags")).splitlines()
    assert header.split() == ["NAME", "STATE", "CPU%", "MEM%", "TAGS"]
    assert row.split() == ["web", "running", "12.5", "25.0", "prod,eu"]


def vfleet(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "vfleet", *args], capture_output=True, text=True, timeout=60,
                          env=environment)


def test_config_check_summarises_or_names_the_mistake(tmp_path: Path) -> None:
    good = tmp_path / "config.yaml"
    good.write_text(GOOD)
    run = vfleet("config", "check", str(good))
    assert run.returncode == ExitCode.OK, run.stderr
    assert run.stdout.startswith(f"{good}: OK\n")
    assert "  sort: cpu desc\n" in run.stdout and "  view busy: filter 'state:running cpu>50'" in run.stdout
    assert "thresholds: cpu 70/90%" in run.stdout and "changed: cpu, age" in run.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("views:\n  busy:\n    sort: {column: nope}\n")
    run = vfleet("--config", str(bad), "config", "check")
    assert run.returncode == ExitCode.USAGE and run.stdout == ""
    assert run.stderr.startswith(f"vfleet: {bad}:3: views.busy.sort.column: expected one of: host,")
    assert len(run.stderr.splitlines()) == 1


def test_status_and_top_apply_a_view_filter_sort_and_columns(tmp_path: Path) -> None:
    conf = tmp_path / "config.yaml"
    conf.write_text(GOOD)
    run = vfleet("--demo", "--config", str(conf), "status", "--view", "busy", "--interval", "0.3")
    assert run.returncode in (ExitCode.OK, ExitCode.UNREACHABLE), run.stderr  # the demo has a flaky host
    header, *rows = run.stdout.splitlines()
    assert header.split() == ["HOST", "NAME", "STATE", "CPU%"]  # the spark has no place in a snapshot
    cpus = [float(line.split()[3]) for line in rows]
    assert rows and all(line.split()[2] == "running" for line in rows)
    assert all(cpu > 50 for cpu in cpus) and cpus == sorted(cpus, reverse=True)
    # the view's filter adds to the command line's; JSON keeps every field, in the view's order
    run = vfleet("--demo", "--config", str(conf), "status", "--view", "busy", "--host", "kvm-*", "-o", "json",
                 "--interval", "0.3")
    domains = json.loads(run.stdout)["domains"]
    assert domains and all(d["host"].startswith("kvm-") and d["cpu_pct"] > 50 for d in domains)
    assert [d["cpu_pct"] for d in domains] == sorted((d["cpu_pct"] for d in domains), reverse=True)
    assert "uuid" in domains[0]
    run = vfleet("--demo", "--config", str(conf), "top", "--batch", "--view", "by-name", "-n", "1", "-d", "0.5",
                 "-o", "table")
    domain_table = run.stdout.rstrip("\n").split("\n\n")[-1]  # after the fleet and host aggregates
    header, *rows = domain_table.splitlines()
    column = header.split().index("NAME")
    names = [line.split()[column] for line in rows]
    assert names and names == sorted(names, key=str.lower)
    run = vfleet("--demo", "--config", str(conf), "status", "--view", "nope")
    assert run.returncode == ExitCode.USAGE
    assert re.fullmatch(rf"vfleet: {re.escape(str(conf))}: no view named 'nope' \(views: busy, by-name\)\n", run.stderr)


def test_a_broken_config_stops_the_console_before_it_starts(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("theme: nord\nkeys:\n  quit: escape\n")
    run = vfleet("--demo", "--config", str(bad))
    assert run.returncode == ExitCode.USAGE
    assert run.stderr == f"vfleet: {bad}:3: keys.quit: 'escape' is reserved (cursor keys, escape, tab, ctrl+c, ctrl+p keep their meaning)\n"
    # status does not read the config unless a view is asked for: a console setting never breaks cron
    run = vfleet("--demo", "--config", str(bad), "status", "--interval", "0")
    assert run.returncode in (ExitCode.OK, ExitCode.UNREACHABLE), run.stderr


def test_the_readme_documents_every_key_and_its_example_parses() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Config file"):]
    section = section[: section.index("\n## ", 1)]
    for spec in config.TOP_KEYS:
        assert f"| `{spec.name}` |" in section, spec.name
    for action in config.KEY_ACTIONS:
        assert f"`{action}`" in section, action
    for key in fields.KEYS:
        assert f"`{key}`" in section, key
    example = section[section.index("```yaml\n") + 8:]
    parsed = config.parse(example[: example.index("```")], "README.md")
    assert set(parsed.views) == {"busy", "prod-mem"} and parsed.keys == {"columns": "C"}
