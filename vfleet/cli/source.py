"""`--source prometheus=URL` for the console, `status` and `top`: where the metrics come from.

The inventory still says which hosts exist and how to reach them for actions;
with a source, polls read the Prometheus-API server instead of the hosts.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from vfleet.core.errors import UsageError

if TYPE_CHECKING:  # the options are on every command's parser: keep this module light
    from vfleet.core.engine import DriverFactory
    from vfleet.core.models import HostConfig


def add_options(parser: argparse.ArgumentParser, *, sub: bool = False) -> None:
    """On the top-level parser (the console) and on `status`/`top`; a subcommand's value wins."""
    default = argparse.SUPPRESS if sub else None
    parser.add_argument(
        "--source",
        metavar="prometheus=URL",
        default=default,
        help="read metrics from a Prometheus-API server (Prometheus, VictoriaMetrics, Thanos, Mimir) "
        "that scrapes `vfleet export`; actions still go to the hosts",
    )
    parser.add_argument(
        "--source-max-age",
        type=float,
        metavar="SECONDS",
        default=argparse.SUPPRESS if sub else 30.0,
        help="with --source: a host whose newest sample is older is stale (default 30)",
    )


def driver_factory(args: argparse.Namespace, hosts: Sequence[HostConfig]) -> DriverFactory | None:
    """The engine's driver factory for --source, or None to poll the hosts themselves."""
    spec = getattr(args, "source", None)
    if spec is None:
        return None
    from vfleet.sources.prometheus import PrometheusSource
    from vfleet.sources.promql import PromClient, parse_url  # only with --source

    url = parse_url(spec)
    max_age = float(args.source_max_age)
    if not max_age > 0:
        raise UsageError("--source-max-age must be greater than 0")
    interval = min((h.poll_interval for h in hosts), default=2.0)
    source = PrometheusSource(PromClient(url), [h.name for h in hosts], max_age=max_age, reuse=interval / 2)
    return source.factory
