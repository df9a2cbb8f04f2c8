"""``trio-sip serve [--listen [TRANSPORT:]IP:PORT ...]``: a UAS that answers every call, for
load tests.

It listens on UDP and TCP at 127.0.0.1:5060 by default (RFC 3261 §18: every element does
both), or on each ``--listen`` (``IP:PORT``: UDP and TCP on that port, or only ``--transport``;
``TLS:IP:PORT`` needs ``--tls-cert``), or on the ``--config`` file's ``listen``. One line
``serving on TRANSPORT:IP:PORT`` per listener, first. Each INVITE gets 180 Ringing and 200 OK
with an SDP answer (an RTP port of ``--media-ports`` per call); the ACK and the caller's BYE
are handled as for any call. One line per call (or, with ``--quiet``, a count every
``--report-every`` seconds); ``--calls N`` exits after N calls have ended.

``--workers N`` runs N such servers as processes sharing the listeners (SO_REUSEPORT) under a
supervisor that restarts a worker that dies; each worker prints its lines prefixed ``wN`` and
counts its own ``--calls``. The kernel picks a worker per source address and port, so a
caller's in-dialog requests must come from where its INVITE came from (docs/workers.md).

Nothing one caller sends ends the server: a call that cannot be answered (the caller cancelled,
its INVITE cannot be answered as sent, the transport failed) ends alone, counted as failed; an
unexpected error in one call is counted in the stack's faults and logged once per interval
(re-raised in strict mode, ``TRIO_SIP_STRICT=1``).
"""

from __future__ import annotations

import argparse
from collections.abc import MutableMapping
from contextlib import suppress
from typing import Any, TextIO

import attrs
import trio

from ..proto.errors import ConfigError, SipError
from ..proto.rate import TrustedSources
from ..ua import IncomingCall, UserAgent, open_user_agent
from ..ua.media_ports import media_port_range
from ..workers import current_worker
from . import _common, _workers
from ._listen import check_listeners, parse_listen, parse_media_ports
from ._view import View


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "serve", help="answer every call (a UAS for load tests)", description=__doc__
    )
    _common.add_listen_option(parser, "default: the config's, else 127.0.0.1:5060")
    _common.add_media_option(parser)
    parser.add_argument("--user", default="serve", help="the user in our Contact")
    parser.add_argument("--calls", type=int, default=None, metavar="N", help="exit after N calls")
    parser.add_argument("--quiet", action="store_true", help="no line per call, counts only")
    parser.add_argument("--report-every", type=float, default=5.0, metavar="SECONDS")
    parser.add_argument(
        "--trusted", action="append", default=[], metavar="ADDR[/BITS]",
        help="a source exempt from the per-source request rate (a front proxy relaying many "
        "callers from one address); repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="N processes sharing the port (SO_REUSEPORT), restarted when one dies",
    )
    _common.add_common_options(parser)
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace, out: TextIO) -> int:
    if args.calls is not None and args.calls < 1:
        raise ConfigError("--calls", args.calls, "an integer of at least 1")
    if not args.report_every > 0:
        raise ConfigError("--report-every", args.report_every, "seconds > 0")
    media_ports = parse_media_ports(args.media_ports)
    config = _common.endpoint_config(args)
    if not config.listen:
        default = (args.transport,) if args.transport else ("UDP", "TCP")
        config = attrs.evolve(config, listen=parse_listen(["127.0.0.1:5060"], default))
    check_listeners(config)  # a TLS listener needs a certificate
    TrustedSources().add(args.trusted, setting="--trusted")  # a bad value: before binding
    _workers.check_workers(args.workers)
    worker = current_worker()
    if worker is None and args.workers is not None:
        return await _workers.supervise(args, out, config)
    who = ""
    if worker is not None:
        who = f"w{worker.index}"
        # Each worker its own share of the RTP ports: no two calls are offered the same one.
        media_ports = media_port_range(media_ports, None)[worker.index :: worker.count]
    view = View(out)
    counts = {"answered": 0, "ended": 0, "failed": 0}
    done = trio.Event()
    first = config.listen[0].host
    bracket = f"[{first}]" if ":" in first else first
    async with (
        open_user_agent(
            [(a.transport, a.host, a.port) for a in config.listen],
            aor=f"sip:{args.user}@{bracket}", timer_config=config.timer_config(),
            incoming_queue=1024, transport_config=_common.transport_config(args, config),
            user_agent=config.user_agent, media_ports=media_ports,
            backend=worker.backend if worker is not None else None,
        ) as ua,
        trio.open_nursery() as nursery,
    ):  # fmt: skip
        ua.stack.admission.trusted.add(args.trusted, setting="--trusted")
        for transport_name, (host, port) in ua.stack.listening:
            bracket = f"[{host}]" if ":" in host else host
            where = f"{transport_name.lower()}:{bracket}:{port}"
            if worker is None:
                print(f"serving on {where}", file=out, flush=True)
            else:
                view.say(f"serving on {where} (shared)", who)

        async def report() -> None:
            while True:
                await trio.sleep(args.report_every)
                failed = f", {counts['failed']} failed" if counts["failed"] else ""
                view.say(f"{counts['answered']} answered, {counts['ended']} ended{failed}", who)

        async def answer_all() -> None:
            await answer_calls(ua, view, counts, quiet=args.quiet, calls=args.calls)
            done.set()

        nursery.start_soon(answer_all)
        if args.quiet:
            nursery.start_soon(report)
        await done.wait()
        nursery.cancel_scope.cancel()
    print(f"{counts['ended']} calls answered and ended", file=out, flush=True)
    return 0


async def answer_calls(
    ua: UserAgent,
    view: View,
    counts: MutableMapping[str, int],
    *,
    quiet: bool = False,
    calls: int | None = None,
) -> None:
    """Answer every call ``ua`` receives (180, then 200 with an SDP answer), each in its own
    task, until ``calls`` calls have ended (forever with None). ``counts`` gets "answered",
    "ended" and "failed" (a call that could not be answered) incremented."""
    async with trio.open_nursery() as nursery:

        async def serve_one(incoming: IncomingCall) -> None:
            try:
                await incoming.ring()
                call = await incoming.accept()
            except SipError as exc:
                # The caller cancelled (the stack answered 487), or its INVITE cannot be
                # answered (500 sent, or dropped): that call ends, the server goes on.
                counts["failed"] = counts.get("failed", 0) + 1
                if not quiet:
                    view.say(f"call {incoming.request.call_id!r}: {exc}")
                return
            except Exception as exc:  # a bug: counted and logged once per interval
                with suppress(SipError):
                    await incoming.reject(500)
                counts["failed"] = counts.get("failed", 0) + 1
                ua.stack.faults.record("call", exc, repr(incoming))
                return
            counts["answered"] += 1
            number = counts["answered"]
            if not quiet:
                view.say(f"#{number} from {incoming.caller.uri}: answered ({call.call_id})")
            ended = await call.wait_ended()
            counts["ended"] += 1
            if not quiet:
                view.say(f"#{number} ended ({ended.reason.value})")
            if calls is not None and counts["ended"] >= calls:
                nursery.cancel_scope.cancel()

        async for incoming in ua.incoming_calls():
            nursery.start_soon(serve_one, incoming)
