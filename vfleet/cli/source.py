"""`--source prometheus=URL` (options in cli/args.py): where the metrics come from.

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
