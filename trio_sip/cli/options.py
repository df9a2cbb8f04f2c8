"""``trio-sip options URI [--count N] [--interval SECONDS]``: a SIP ping.

Each OPTIONS is one client transaction sent through the failover client: a host name with
several addresses is tried address by address, and an address that refuses (ICMP port
unreachable) or times out is blacklisted for the following pings. One line per request: the
status, the address that answered and the round-trip time.

``--config`` gives the timers (``sip_transaction_timeout``, T1/T2/T4), ``dns_server``, the TLS
files and ``user_agent``; no listener is opened (the answers come back on the request's own
socket or connection).
"""

from __future__ import annotations

import argparse
import random
from typing import Any, TextIO

import trio

from .._inputs import request_uri_arg
from ..failover import FailoverClient
from ..proto.errors import ConfigError, TransactionError
from ..proto.ids import new_call_id, new_tag
from ..proto.message import Request
from ..proto.retry import RequestKind
from ..proto.uri import SipUri
from ..stack import open_stack
from . import _common


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "options", help="SIP ping: send OPTIONS to URI", description=__doc__
    )
    parser.add_argument("uri", help="e.g. sip:proxy.example.com or sip:127.0.0.1:5060")
    parser.add_argument("--count", type=int, default=1, metavar="N")
    parser.add_argument("--interval", type=float, default=1.0, metavar="SECONDS")
    parser.add_argument("--user", default="trio-sip", help="the From user (default trio-sip)")
    _common.add_common_options(parser)
    parser.set_defaults(run=run)


def build_options(
    uri: SipUri, user: str, seq: int, rng: random.Random, *, user_agent: str = "trio-sip"
) -> Request:
    host = uri.host or "invalid"
    return Request(
        "OPTIONS",
        uri,
        [
            ("Max-Forwards", "70"),
            ("To", f"<{uri}>"),
            ("From", f"<sip:{user}@{host}>;tag={new_tag(rng)}"),
            ("Call-ID", new_call_id(rng, "trio-sip")),
            ("CSeq", f"{seq} OPTIONS"),
            ("Accept", "application/sdp"),
            ("User-Agent", user_agent),
        ],
    )


async def run(args: argparse.Namespace, out: TextIO) -> int:
    uri = request_uri_arg("URI", args.uri)
    if not isinstance(uri, SipUri):
        raise ConfigError("URI", args.uri, "a sip: or sips: URI")
    if args.count < 1:
        raise ConfigError("--count", args.count, "an integer of at least 1")
    if not args.interval >= 0:
        raise ConfigError("--interval", args.interval, "seconds >= 0")
    config = _common.endpoint_config(args)
    rng = random.Random()
    failures = 0
    async with open_stack(
        timer_config=config.timer_config(), transport_config=_common.transport_config(args, config)
    ) as stack:
        client = FailoverClient(stack, resolver=_common.resolver(args, config), rng=rng)
        for number in range(1, args.count + 1):
            request = build_options(uri, args.user, number, rng, user_agent=config.user_agent)
            started = trio.current_time()
            try:
                # The transport option applies to every address the URI resolves to.
                destination = (
                    await client.targets(uri, transport=args.transport) if args.transport else uri
                )
                result = await client.request(request, destination, kind=RequestKind.OTHER)
            except TransactionError as exc:
                failures += 1
                print(f"#{number} no answer: {exc}", file=out, flush=True)
            else:
                rtt = (trio.current_time() - result.attempts[-1].started) * 1000
                total = (trio.current_time() - started) * 1000
                tried = len(result.attempts)
                extra = f" after {tried} attempts, {total:.1f} ms in all" if tried > 1 else ""
                print(
                    f"#{number} {result.response.status_code} {result.response.reason} "
                    f"from {result.target} in {rtt:.1f} ms{extra}",
                    file=out,
                    flush=True,
                )
            if number < args.count:
                await trio.sleep(args.interval)
    if failures:
        print(f"{failures} of {args.count} OPTIONS got no answer", file=out)
        return 1
    return 0
