"""``trio-sip call URI [--server URI ...] [--user ...] [--password ...] [--hangup-after S]``:
place one call, print each session event, hang up.

With ``--server`` the call goes through the servers as outbound proxies: the first one, and
the next one when a server fails before answering (timeout, transport error, 503). Without,
it goes straight to URI. Exit 0 once the call was answered and hung up; 1 with the reason
when it was not answered.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import trio

from .._inputs import request_uri_arg
from ..endpoint import open_endpoint
from ..proto.errors import ConfigError
from ..proto.uri import SipUri
from . import _common
from ._listen import parse_media_ports
from ._view import View


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "call", help="place a call, print its events, hang up", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("uri", help="who to call, e.g. sip:bob@example.com")
    _common.add_endpoint_options(parser, servers_required=False)
    parser.add_argument("--hangup-after", type=float, default=1.0, metavar="SECONDS")
    _common.add_media_option(parser)
    _common.add_listen_option(
        parser,
        "default: the config's, else port 0 on the address "
        "facing the first server, for each transport in use",
    )
    _common.add_common_options(parser)
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace, out: TextIO) -> int:
    uri = request_uri_arg("URI", args.uri)
    if not isinstance(uri, SipUri):
        raise ConfigError("URI", args.uri, "a sip: or sips: URI")
    if args.hangup_after < 0:
        raise ConfigError("--hangup-after", args.hangup_after, "seconds >= 0")
    media_ports = parse_media_ports(args.media_ports)
    if not args.server and not _common.endpoint_config(args).connections:
        port = f":{uri.port}" if uri.port else ""
        args.server = [f"{uri.host}{port}"]  # straight to the URI's host
        if args.transport is None:  # sips: means TLS; else the URI's transport parameter
            wanted = "TLS" if uri.secure else (uri.transport or "UDP").upper()
            args.transport = wanted if wanted in ("UDP", "TCP", "TLS") else None
    config = _common.connections_config(args, expires=0)  # no REGISTER: calls only
    if not config.connections:
        raise ConfigError("--server", None, "a server, or connections in --config")
    view = View(out)
    resolver = _common.resolver(args, config)
    async with open_endpoint(
        config, resolver=resolver, listen=await _common.listen_for(config, resolver),
        on_call_event=lambda record: view.call("", record),
        transport_config=_common.transport_config(args, config), media_ports=media_ports,
    ) as endpoint:  # fmt: skip
        first = next(iter(endpoint.connections))
        view.say(f"calling {uri} through {first}")
        async with endpoint.dial(first, uri) as call:
            await call.wait_answered()
            await trio.sleep(args.hangup_after)
            await call.hangup()
    return 0
