"""``trio-sip proxy``: a registrar + stateful proxy node (docs/cli.md, docs/scaling.md).

It listens on each ``--listen`` (default UDP and TCP at 127.0.0.1:5060) for the domain of the
first ``--domain`` (the others, and our listening addresses, are aliases of it), keeps its
bindings in ``--location`` (``memory:``, or ``redis://host:port/db`` shared with other nodes),
authenticates the users of ``--users`` (a TOML file: ``[users]`` then ``name = "password"``)
and applies the access policy of ``--trusted``, ``--relay`` and ``--proxy-auth``. Nodes that
share a Redis store and sit behind one front share ``--secret-file`` too: digest nonces and
Record-Route tokens made by one node are then good on the others.

Output: one ``listening on TRANSPORT:IP:PORT`` line per listener, then (``--verbose``) one
line per request received, and a line whenever the location store becomes unreachable or
reachable again. Ctrl-C (SIGINT) or SIGTERM stop the node: it closes its transactions and
sockets, prints one line and exits with 130 or 143 (128 + the signal's number).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO

import attrs
import trio

from ..location import LocationStore, StoreUnavailable, open_location_store
from ..location._store import Change
from ..proto.errors import ConfigError
from ..proto.location import Binding, LocationService, Planned
from ..proto.message import Request, Response
from ..proxy import ProxySite, open_proxy
from ..transports import Flow
from . import _common
from ._listen import check_listeners, parse_listen
from ._view import View

USERS_ALLOWED = 'a TOML file with a [users] table of name = "password" lines'


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "proxy", help="a registrar + stateful proxy node", description=__doc__
    )
    _common.add_listen_option(parser, "default: UDP and TCP at 127.0.0.1:5060")
    parser.add_argument(
        "--domain", action="append", default=[], metavar="D",
        help="our domain (repeatable: the first is the realm, the others aliases); "
        "default: the first listener's address",
    )  # fmt: skip
    parser.add_argument("--users", default=None, metavar="FILE", help=USERS_ALLOWED)
    parser.add_argument(
        "--location", default="memory:", metavar="URL",
        help="where bindings live: memory: (default) or redis://host:port/db "
        "(pip install trio-sip[redis])",
    )  # fmt: skip
    parser.add_argument(
        "--record-route", action="store_true",
        help="Record-Route dialog-creating requests (in-dialog requests come back through us)",
    )  # fmt: skip
    parser.add_argument(
        "--stateless", action="store_true", help="forward statelessly (no transactions)"
    )
    parser.add_argument(
        "--trusted", action="append", default=[], metavar="ADDR[/BITS]",
        help="a source allowed everything, unchallenged (a front, a gateway); repeatable",
    )  # fmt: skip
    parser.add_argument("--relay", choices=["none", "peers", "any"], default="none")
    parser.add_argument("--proxy-auth", choices=["all", "local", "none"], default="all")
    parser.add_argument(
        "--secret-file", default=None, metavar="FILE",
        help="at least 16 bytes keying nonces, branches and Record-Route tokens: the same "
        "file on every node of a cluster (default: random per run)",
    )  # fmt: skip
    parser.add_argument(
        "--min-expires", type=int, default=60, metavar="SECONDS",
        help="shortest registration accepted (423 below it; default 60)",
    )  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="one line per request received")
    _common.add_common_options(parser)
    parser.set_defaults(run=run)


def load_users(path: str) -> dict[str, str]:
    """The ``[users]`` table of ``path`` (name -> password). Raises ConfigError."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError("--users", path, f"{USERS_ALLOWED} ({exc})") from None
    users = data.get("users")
    if not isinstance(users, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in users.items()
    ):
        raise ConfigError("--users", path, USERS_ALLOWED)
    return dict(users)


def load_secret(path: str) -> bytes:
    try:
        secret = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError("--secret-file", path, f"a readable file ({exc})") from None
    if len(secret) < 16:
        raise ConfigError("--secret-file", path, "a file of at least 16 bytes")
    return secret


@attrs.define
class WatchedStore:
    """A LocationStore that says when it becomes unreachable and when it is back."""

    store: LocationStore
    view: View
    down: bool = False

    def _failed(self, exc: StoreUnavailable) -> None:
        if not self.down:
            self.down = True
            self.view.say(f"location store unavailable ({exc}): answering 503")

    def _worked(self) -> None:
        if self.down:
            self.down = False
            self.view.say("location store reachable again")

    async def lookup(self, aor: str) -> list[Binding]:
        try:
            result = await self.store.lookup(aor)
        except StoreUnavailable as exc:
            self._failed(exc)
            raise
        self._worked()
        return result

    async def update(self, aor: str, change: Change) -> Planned:
        try:
            result = await self.store.update(aor, change)
        except StoreUnavailable as exc:
            self._failed(exc)
            raise
        self._worked()
        return result

    async def count(self) -> int:
        return await self.store.count()

    async def aclose(self) -> None:
        await self.store.aclose()


def _log_requests(site: ProxySite, view: View) -> None:
    layer = site.stack.transport_layer
    deliver = layer.on_message
    assert deliver is not None

    def log(message: Request | Response, flow: Flow) -> None:
        if isinstance(message, Request):
            host, port = flow.remote
            view.say(f"{message.method} {message.uri} from {host}:{port} ({message.call_id})")
        deliver(message, flow)

    layer.on_message = log


async def run(args: argparse.Namespace, out: TextIO) -> int:
    if args.min_expires < 1:
        raise ConfigError("--min-expires", args.min_expires, "an integer of at least 1 second")
    config = _common.endpoint_config(args)
    if not config.listen:
        default = (args.transport,) if args.transport else ("UDP", "TCP")
        config = attrs.evolve(config, listen=parse_listen(["127.0.0.1:5060"], default))
    check_listeners(config)
    listen = [(a.transport, a.host, a.port) for a in config.listen]
    domains = [d.strip().lower() for d in args.domain if d.strip()] or [listen[0][1]]
    credentials = load_users(args.users) if args.users else None
    secret = load_secret(args.secret_file) if args.secret_file else None
    # Listen for the signals first: one that comes while we start up is not lost.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        view = View(out)
        service = LocationService(min_expires=args.min_expires)
        async with open_location_store(args.location, service=service) as raw_store:
            # A shared store gets the watcher; the memory store cannot fail.
            shared = args.location not in ("memory:", "memory://", "memory")
            store = WatchedStore(raw_store, view) if shared else None
            async with open_proxy(
                listen, domain=domains[0], aliases=domains[1:], location_service=service,
                location_store=store, role="stateless" if args.stateless else "stateful",
                record_route=args.record_route, timer_config=config.timer_config(),
                credentials=credentials, resolver=_common.resolver(args, config),
                transport_config=_common.transport_config(args, config), trusted=args.trusted,
                relay=args.relay, proxy_auth=args.proxy_auth, secret=secret,
            ) as site:  # fmt: skip
                for transport, (host, port) in site.listening:
                    bracket = f"[{host}]" if ":" in host else host
                    print(
                        f"listening on {transport.lower()}:{bracket}:{port}", file=out, flush=True
                    )
                print(f"domain {domains[0]}, location {args.location}", file=out, flush=True)
                if args.verbose:
                    _log_requests(site, view)
                signum = await _first(signals)
    name = signal.Signals(signum).name
    print(f"trio-sip proxy: stopped by {name}", file=sys.stderr, flush=True)
    return 128 + int(signum)


async def _first(signals: AsyncIterator[int]) -> int:
    """The first SIGINT or SIGTERM received (their default actions are off meanwhile)."""
    async for signum in signals:
        return int(signum)
    raise AssertionError("the signal receiver ended")  # pragma: no cover
