"""Run the test pool by hand: `PYTHONPATH=tests python -m xapi_server [--http] [--dir DIR]`.

Prints the URLs, credentials and certificate, then serves until Ctrl-C (for trying a
driver or `vfleet status` against it)."""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import threading
from pathlib import Path

from .server import XapiServer


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m xapi_server", description=__doc__.splitlines()[0])
    parser.add_argument("--http", action="store_true", help="plain HTTP instead of TLS")
    parser.add_argument("--dir", type=Path, help="where the certificate goes (default: a temporary folder)")
    args = parser.parse_args()
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="xapi-server-"))
    with XapiServer(workdir, tls=not args.http) as server:
        print(f"master   {server.url(0)}\nslave    {server.url(1)}")
        print(f"user     {server.pool.user}\npassword {server.pool.password}")
        if server.cert:
            print(f"ca_file  {server.cert.cert}\nsha256   {server.cert.thumbprint}")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
