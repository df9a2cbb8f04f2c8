"""``trio-sip register --server URI [--server URI ...] --user USER[@DOMAIN] [--password P]
[--once]``: one connection per server, registered at once; prints every status event.

``--expires`` (default 600) and ``--reg-interval`` (default 30) apply to every connection; when
not given, the ``--config`` file's values apply (``proxy<N>`` settings to the N-th server).

Without ``--once`` it keeps the registrations up (refreshing, retrying while a server is down)
until interrupted, then unregisters. With ``--once`` it exits as soon as every connection
has either registered (exit 0) or failed once (exit 1, with the reasons).
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import trio

from ..config import EndpointConfig
from ..endpoint import ConnectionStatus, open_endpoint
from ..proto.errors import ConfigError, SipError
from . import _common
from ._view import View

CS = ConnectionStatus


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "register", help="register at one or more servers, print status events",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    _common.add_endpoint_options(parser, servers_required=False)
    parser.add_argument(
        "--expires",
        type=int,
        default=None,
        metavar="SECONDS",
        help="the Expires asked for (default: the config's, else 600)",
    )
    parser.add_argument(
        "--reg-interval",
        type=int,
        default=None,
        metavar="SECONDS",
        help="retry period while a server is down (default: the config's, else 30)",
    )
    parser.add_argument("--once", action="store_true", help="exit once every connection is done")
    _common.add_listen_option(
        parser,
        "default: the config's, else port 0 on the address "
        "facing the first server, for each transport in use",
    )
    _common.add_common_options(parser)
    parser.set_defaults(run=run)


def register_config(args: argparse.Namespace) -> EndpointConfig:
    """The configuration ``register`` runs: --expires and --reg-interval first, then the
    --config file (its proxy<N> settings for the N-th --server), then 600 s and 30 s."""
    return _common.connections_config(
        args, expires=args.expires, reg_interval=args.reg_interval,
        defaults={"expires": 600, "reg_interval": 30},
    )  # fmt: skip


async def run(args: argparse.Namespace, out: TextIO) -> int:
    config = register_config(args)
    if not config.connections:
        raise ConfigError("--server", None, "at least one --server (or connections in --config)")
    view = View(out)
    resolver = _common.resolver(args, config)
    async with open_endpoint(
        config, resolver=resolver, listen=await _common.listen_for(config, resolver),
        on_status=lambda event: view.status("", event),
        transport_config=_common.transport_config(args, config),
    ) as endpoint:  # fmt: skip
        if not args.once:
            await trio.sleep_forever()
        stream = endpoint.status_events()
        outcome: dict[str, ConnectionStatus] = {}
        for conn in endpoint.connections.values():
            if conn.status in (CS.REGISTERED, CS.UNAVAILABLE):
                outcome[conn.id] = conn.status
        async for event in stream:
            if event.new in (CS.REGISTERED, CS.UNAVAILABLE):
                outcome.setdefault(event.connection_id, event.new)
            if len(outcome) == len(endpoint.connections):
                break
        failed = [c for c in endpoint.connections.values() if outcome[c.id] is not CS.REGISTERED]
        if failed:
            reasons = "; ".join(f"{c.id}: {c.reason}" for c in failed)
            raise SipError(f"{len(failed)} of {len(outcome)} not registered: {reasons}")
        print(f"all {len(outcome)} connections registered", file=out, flush=True)
    return 0
