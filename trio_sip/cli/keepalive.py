"""``trio-sip keepalive HOST PORT --period SECONDS [--count N]``: NULL CRLF keep-alives."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import trio

from ..keepalive import KeepAlives
from ..transports import open_transport_layer
from . import _common


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "keepalive",
        help="send a bare CRLF to HOST:PORT every --period seconds",
        description="Send NULL SIP keep-alives (a bare CRLF) from a local UDP SIP port.",
    )
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--period", type=float, required=True, metavar="SECONDS")
    parser.add_argument("--count", type=int, default=None, help="stop after N keep-alives")
    parser.add_argument("--listen", default="0.0.0.0:0", metavar="ADDR:PORT")
    _common.add_common_options(parser)
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace, out: TextIO) -> int:
    host, _, port = args.listen.rpartition(":")
    async with open_transport_layer() as layer, trio.open_nursery() as nursery:
        local = await nursery.start(layer.listen, "UDP", host or "0.0.0.0", int(port or 0))
        keepalives = KeepAlives(layer, nursery)
        await keepalives.send_sip_keepalive(args.host, args.port, True, args.period)
        print(
            f"keep-alive: CRLF from {local[0]}:{local[1]} to {args.host}:{args.port} "
            f"every {args.period:g} s",
            file=out,
            flush=True,
        )
        seen = 0
        start = trio.current_time()
        while args.count is None or seen < args.count:
            stats = keepalives.statistics()
            total = stats.sent + stats.failed_sends
            elapsed = trio.current_time() - start
            for number in range(seen + 1, total + 1):
                state = "sent" if stats.failed_sends == 0 else f"{stats.failed_sends} failed"
                print(f"  #{number} by +{elapsed:.3f} s ({state})", file=out, flush=True)
            seen = total
            await trio.sleep(min(args.period / 4, 0.05))
        nursery.cancel_scope.cancel()
    return 0
