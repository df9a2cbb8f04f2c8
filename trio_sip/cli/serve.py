"""``trio-sip serve --listen ADDR:PORT``: a UAS that answers every call, for load tests.

Each INVITE gets 180 Ringing and 200 OK with an SDP answer; the ACK and the caller's BYE are
handled as for any call. One line per call (or, with ``--quiet``, a count every
``--report-every`` seconds); ``--calls N`` exits after N calls have ended.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import trio

from ..config import ListenAddress
from ..proto.errors import ConfigError
from ..ua import IncomingCall, open_user_agent
from . import _common
from ._view import View


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "serve", help="answer every call (a UAS for load tests)", description=__doc__
    )
    parser.add_argument("--listen", required=True, metavar="ADDR:PORT")
    parser.add_argument("--user", default="serve", help="the user in our Contact")
    parser.add_argument("--calls", type=int, default=None, metavar="N", help="exit after N calls")
    parser.add_argument("--quiet", action="store_true", help="no line per call, counts only")
    parser.add_argument("--report-every", type=float, default=5.0, metavar="SECONDS")
    _common.add_common_options(parser)
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace, out: TextIO) -> int:
    transport = args.transport or "UDP"
    listen = ListenAddress.parse(f"{transport}:{args.listen}")
    if args.calls is not None and args.calls < 1:
        raise ConfigError("--calls", args.calls, "an integer of at least 1")
    config = _common.endpoint_config(args)
    view = View(out)
    counts = {"answered": 0, "ended": 0}
    done = trio.Event()
    bracket = f"[{listen.host}]" if ":" in listen.host else listen.host
    async with (
        open_user_agent(
            [(listen.transport, listen.host, listen.port)], aor=f"sip:{args.user}@{bracket}",
            timer_config=config.timer_config(), incoming_queue=1024,
        ) as ua,
        trio.open_nursery() as nursery,
    ):  # fmt: skip
        transport_name, (host, port) = ua.stack.listening[0]
        print(f"serving on {transport_name.lower()}:{host}:{port}", file=out, flush=True)

        async def serve_one(incoming: IncomingCall) -> None:
            await incoming.ring()
            call = await incoming.accept()
            counts["answered"] += 1
            number = counts["answered"]
            if not args.quiet:
                view.say(f"#{number} from {incoming.caller.uri}: answered ({call.call_id})")
            ended = await call.wait_ended()
            counts["ended"] += 1
            if not args.quiet:
                view.say(f"#{number} ended ({ended.reason.value})")
            if args.calls is not None and counts["ended"] >= args.calls:
                done.set()

        async def report() -> None:
            while True:
                await trio.sleep(args.report_every)
                view.say(f"{counts['answered']} answered, {counts['ended']} ended")

        async def accept_all() -> None:
            async for incoming in ua.incoming_calls():
                nursery.start_soon(serve_one, incoming)

        nursery.start_soon(accept_all)
        if args.quiet:
            nursery.start_soon(report)
        await done.wait()
        nursery.cancel_scope.cancel()
    print(f"{counts['ended']} calls answered and ended", file=out, flush=True)
    return 0
