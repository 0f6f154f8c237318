"""Bad networks in user space, each as its own process (this kernel has no sch_netem).

    python -m faults.netfault proxy --target 127.0.0.1:P [--delay S] [--rate B/s]
                                    [--stall-prob P] [--stall-min S] [--stall-max S]
    python -m faults.netfault nobanner

`proxy` forwards TCP and, per direction, delays every segment by --delay (pipelined,
like a long link, not a slow one), caps the throughput at --rate bytes/s and, with
probability --stall-prob per segment, holds the stream for a random stall: what a lost
segment costs TCP (a retransmission timeout), since user space cannot drop bytes of a
stream. `nobanner` accepts connections and never says a word (a hung sshd or TLS
endpoint). Both print {"ev": "ready", "port": P} on stdout once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time

SEGMENT = 1460  # one Ethernet MSS: stalls and pacing apply per segment


class Link:
    def __init__(self, args: argparse.Namespace) -> None:
        self.delay, self.rate = args.delay, args.rate
        self.stall_prob, self.stall_min, self.stall_max = args.stall_prob, args.stall_min, args.stall_max
        self.rng = random.Random(args.seed)

    async def pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                arrived, data = await queue.get()
                if not data:
                    break
                if self.rng.random() < self.stall_prob:
                    await asyncio.sleep(self.rng.uniform(self.stall_min, self.stall_max))
                await asyncio.sleep(max(0.0, arrived + self.delay - time.monotonic()))
                writer.write(data)
                await writer.drain()
                if self.rate:
                    await asyncio.sleep(len(data) / self.rate)
            with contextlib.suppress(OSError):
                writer.write_eof()

        sender = asyncio.create_task(deliver())
        try:
            while data := await reader.read(SEGMENT):
                queue.put_nowait((time.monotonic(), data))
        except OSError:
            pass
        queue.put_nowait((time.monotonic(), b""))
        with contextlib.suppress(OSError):
            await sender


async def proxy(args: argparse.Namespace) -> None:
    host, _, port = args.target.rpartition(":")
    link = Link(args)

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(host, int(port))
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(link.pump(client_r, server_w), link.pump(server_r, client_w))
        finally:
            for w in (client_w, server_w):
                w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", args.port, reuse_address=True)
    await serve(server)


async def nobanner(args: argparse.Namespace) -> None:
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # keep the socket open and silent until we exit

    server = await asyncio.start_server(hold, "127.0.0.1", args.port, reuse_address=True, backlog=512)
    await serve(server)


async def serve(server: asyncio.Server) -> None:
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(json.dumps({"ev": "ready", "port": port}) + "\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("proxy")
    p.add_argument("--target", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--delay", type=float, default=0.0, help="seconds, each direction")
    p.add_argument("--rate", type=float, default=0.0, help="bytes/s, each direction (0: no cap)")
    p.add_argument("--stall-prob", type=float, default=0.0)
    p.add_argument("--stall-min", type=float, default=0.2)
    p.add_argument("--stall-max", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    n = commands.add_parser("nobanner")
    n.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(proxy(args) if args.command == "proxy" else nobanner(args))


if __name__ == "__main__":
    main()
