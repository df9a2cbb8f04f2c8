"""``trio-sip keepalive HOST PORT --period SECONDS [--count N]``: NULL CRLF keep-alives.

From ``--listen`` (``IP:PORT`` or ``UDP:IP:PORT``), else the first UDP listener of ``--config``,
else any port; ``--period`` defaults to the config's ``keep_alive_period``. A HOST name is
looked up with ``--dns-server`` (or the config's ``dns_server``) when one is given.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import trio

from ..config import ListenAddress
from ..config._values import is_ip
from ..dns import DnsError, Resolver
from ..keepalive import HostResolver, KeepAlives, resolve_host
from ..proto.errors import ConfigError
from ..proto.keepalive import validate_period
from ..transports import open_transport_layer
from . import _common
from ._listen import parse_listen


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "keepalive",
        help="send a bare CRLF to HOST:PORT every --period seconds",
        description="Send NULL SIP keep-alives (a bare CRLF) from a local UDP SIP port.",
    )
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument(
        "--period", type=float, default=None, metavar="SECONDS",
        help="seconds between keep-alives (default: keep_alive_period of --config)",
    )  # fmt: skip
    parser.add_argument("--count", type=int, default=None, help="stop after N keep-alives")
    parser.add_argument(
        "--listen", default=None, metavar="[UDP:]IP:PORT",
        help="the local UDP SIP port (default: the config's first UDP listener, else 0.0.0.0:0)",
    )  # fmt: skip
    _common.add_common_options(parser, tls=False)
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace, out: TextIO) -> int:
    listen = [args.listen] if args.listen else []
    args.listen = None  # not for endpoint_config: UDP only, checked here
    config = _common.endpoint_config(args)
    if listen:
        (local_address,) = parse_listen(listen, ("UDP",))
        if local_address.transport != "UDP":
            raise ConfigError("--listen", listen[0], "a UDP address: IP:PORT or UDP:IP:PORT")
    else:
        udp = [a for a in config.listen if a.transport == "UDP"]
        local_address = udp[0] if udp else ListenAddress(transport="UDP", host="0.0.0.0", port=0)
    if args.period is None:
        if not config.keep_alive_period:
            raise ConfigError("--period", None, "seconds > 0 (or keep_alive_period in --config)")
        args.period = float(config.keep_alive_period)
    args.period = validate_period(args.period, "--period")  # named as on the command line
    if args.count is not None and args.count < 1:
        raise ConfigError("--count", args.count, "an integer of at least 1")
    resolve: HostResolver = resolve_host
    if args.dns_server or config.dns_server:
        resolve = _first_address(_common.resolver(args, config))
    async with open_transport_layer() as layer, trio.open_nursery() as nursery:
        local = await nursery.start(layer.listen, "UDP", local_address.host, local_address.port)
        keepalives = KeepAlives(layer, nursery, resolve=resolve)
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


def _first_address(resolver: Resolver) -> HostResolver:
    async def resolve(host: str) -> str:
        if is_ip(host):
            return host
        addresses = await resolver.addresses(host)
        if not addresses:
            raise DnsError(host, "no A or AAAA record")
        return addresses[0]

    return resolve
