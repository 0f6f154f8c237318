"""A minimal client of the Prometheus HTTP API (Prometheus, VictoriaMetrics, Thanos, Mimir).

Only what the read path needs: instant queries by POST (a fleet's host regex does
not fit in a URL), answers parsed into plain series. The stdlib's urllib runs in a
thread with a timeout; TLS is verified by the default context. Credentials come
from environment variables and never appear in a message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vfleet.core.errors import UsageError, VFleetError

TOKEN_ENV = "VFLEET_PROMETHEUS_TOKEN"  # bearer token
USER_ENV = "VFLEET_PROMETHEUS_USER"  # basic auth, with VFLEET_PROMETHEUS_PASSWORD
PASSWORD_ENV = "VFLEET_PROMETHEUS_PASSWORD"
MAX_ANSWER = 512 * 1024 * 1024  # bytes: a bigger answer is refused, not buffered

_loads: Callable[[bytes], Any]
try:  # orjson parses a 20,000-domain answer several times faster; the stdlib is the fallback
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover - orjson is in the venv
    _loads = json.loads


class QueryFailed(VFleetError):
    """The server did not answer a query usefully (HTTP error, timeout, not the API's JSON)."""


@dataclass(frozen=True, slots=True)
class Series:
    labels: Mapping[str, str]
    value: float | None  # None: NaN, Inf or not a number
    timestamp: float


def parse_url(spec: str) -> str:
    """The base URL of `--source prometheus=URL`; a UsageError says what is wrong."""
    kind, sep, url = spec.partition("=")
    if not sep or kind != "prometheus":
        raise UsageError(f"--source {spec!r}: expected prometheus=URL, e.g. prometheus=http://localhost:9090")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--source: {url!r} is not an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise UsageError(f"--source: put no credentials in the URL; set ${TOKEN_ENV} or ${USER_ENV}/${PASSWORD_ENV}")
    if parts.query or parts.fragment:
        raise UsageError(f"--source: {url!r}: the URL takes no query or fragment")
    try:
        _ = parts.port
    except ValueError as exc:
        raise UsageError(f"--source: {url!r}: {exc}") from None
    return url.rstrip("/")


def regex_literal(text: str) -> str:
    """`text` as an RE2 regex matching itself, inside a PromQL double-quoted string."""
    escaped = "".join(c if c.isalnum() or c == "_" or ord(c) > 127 else "\\" + c for c in text)
    return escaped.replace("\\", "\\\\").replace('"', '\\"')


def number(raw: object) -> float | None:
    if not isinstance(raw, str):
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def vector_items(body: bytes, where: str) -> list[Any]:
    """The raw `result` items of an instant-vector answer; QueryFailed for anything else."""
    try:
        doc = _loads(body)
    except ValueError:
        raise QueryFailed(f"{where}: the answer is not JSON ({body[:60]!r})") from None
    if not isinstance(doc, dict):
        raise QueryFailed(f"{where}: the answer is not a Prometheus API object")
    if doc.get("status") != "success":
        raise QueryFailed(f"{where}: {doc.get('errorType', 'error')}: {str(doc.get('error', 'no error text'))[:200]}")
    data = doc.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
        raise QueryFailed(f"{where}: the answer is not an instant vector")
    items: list[Any] = data["result"]
    return items


def series(items: list[Any]) -> list[Series]:
    """Checked series of raw result items: malformed items are skipped, never guessed."""
    out: list[Series] = []
    for item in items:
        try:
            labels, (stamp, raw) = item["metric"], item["value"]
        except (TypeError, KeyError, ValueError):
            continue
        if type(stamp) not in (int, float) or type(labels) is not dict:
            continue
        if not all(type(v) is str for v in labels.values()):  # JSON keys are always text
            labels = {k: v for k, v in labels.items() if type(v) is str}
        out.append(Series(labels, number(raw), float(stamp)))
    return out


def parse_vector(body: bytes, where: str) -> list[Series]:
    """The series of an instant-vector answer; QueryFailed for anything else."""
    return series(vector_items(body, where))


def columns_of(items: list[Any], a: str, b: str) -> dict[tuple[str, str], object]:
    """{(labels[a], labels[b]): raw value} of the items that have both labels (values unchecked:
    see number()). The hot path of a refresh: a plain loop, no objects per item."""
    column: dict[tuple[str, str], object] = {}
    for item in items:
        try:
            labels = item["metric"]
            column[(labels[a], labels[b])] = item["value"][1]
        except (TypeError, KeyError, IndexError):  # not a sample (or an unhashable label): skip it
            continue
    return column


class PromClient:
    """Instant queries against one server; `bytes_read` counts the answers' bytes."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, env: Mapping[str, str] | None = None) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.bytes_read = 0
        self.queries = 0
        env = os.environ if env is None else env
        # gzip: a fifth of the bytes of a large answer, for a few ms of CPU per megabyte
        self._headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "Accept-Encoding": "gzip",
        }
        if token := env.get(TOKEN_ENV):
            self._headers["Authorization"] = f"Bearer {token}"
        elif user := env.get(USER_ENV):
            pair = f"{user}:{env.get(PASSWORD_ENV, '')}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        self._tls = ssl.create_default_context()

    async def query(self, promql: str, at: float, *, timeout: float | None = None) -> list[Series]:
        """One instant query evaluated at wall-clock time `at`."""
        return series(await self.query_items(promql, at, timeout=timeout))

    async def query_items(self, promql: str, at: float, *, timeout: float | None = None) -> list[Any]:
        """One instant query's raw result items (checked to be an instant vector)."""
        seconds = self.timeout if timeout is None else max(0.1, timeout)
        self.queries += 1  # counted when sent: what the server sees
        form = {"query": promql, "time": f"{at:.3f}"}
        # parsed in the worker thread too: the event loop stays free for the console
        size, items = await asyncio.to_thread(self._items, form, seconds)
        self.bytes_read += size  # counted on the loop: the workers share no counter
        return items

    def _items(self, form: dict[str, str], timeout: float) -> tuple[int, list[Any]]:
        wire, body = self._post("/api/v1/query", form, timeout)
        return wire, vector_items(body, self.base_url)

    def _post(self, path: str, form: dict[str, str], timeout: float) -> tuple[int, bytes]:
        """(bytes on the wire, the answer's body, decompressed)."""
        where = self.base_url
        data = urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(self.base_url + path, data=data, headers=self._headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self._tls) as answer:
                body: bytes = answer.read(MAX_ANSWER + 1)
                encoding = answer.headers.get("Content-Encoding", "")
        except urllib.error.HTTPError as exc:
            snippet = exc.read(4096)
            if exc.headers.get("Content-Encoding") == "gzip":
                snippet = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(snippet, 4096) if snippet else b""
            detail = _error_text(snippet)
            raise QueryFailed(f"{where}: HTTP {exc.code} {exc.reason}{': ' + detail if detail else ''}") from None
        except urllib.error.URLError as exc:
            raise QueryFailed(f"{where}: {_reason(exc.reason)}") from None
        except TimeoutError:
            raise QueryFailed(f"{where}: no answer within {timeout:g} s") from None
        except OSError as exc:  # reset mid-answer, TLS errors after the handshake ...
            raise QueryFailed(f"{where}: {exc.strerror or exc!r}") from None
        wire = len(body)
        if encoding == "gzip":
            body = _gunzip(body, where)
        elif encoding not in ("", "identity"):
            raise QueryFailed(f"{where}: the answer has an unknown Content-Encoding {encoding[:40]!r}")
        if len(body) > MAX_ANSWER:
            raise QueryFailed(f"{where}: the answer is larger than {MAX_ANSWER >> 20} MiB")
        return wire, body


def _gunzip(body: bytes, where: str) -> bytes:
    """At most MAX_ANSWER + 1 bytes of a gzip body: a bomb is cut off, then refused by the size check."""
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        return inflate.decompress(body, MAX_ANSWER + 1)
    except zlib.error:
        raise QueryFailed(f"{where}: the answer is not valid gzip") from None


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError):
        return "no answer (timed out)"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason)


def _error_text(body: bytes) -> str:
    """The API's own error text from an error answer, if it is the API's JSON."""
    try:
        doc = _loads(body)
    except ValueError:
        return ""
    return str(doc.get("error", ""))[:200] if isinstance(doc, dict) else ""
