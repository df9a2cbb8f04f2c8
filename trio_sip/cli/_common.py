"""Options every ``trio-sip`` command takes, and the command registry."""

from __future__ import annotations

import argparse
import contextlib
from types import ModuleType

import attrs

from ..config import EndpointConfig, load_config
from ..config._values import is_ip
from ..dns import DnsError, DnspythonResolver, Resolver
from ..proto.errors import ConfigError
from ..proto.resolve import UriParts
from ..proto.timers import TimerConfig

COMMANDS: list[ModuleType] = []


def add_common_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("common options")
    group.add_argument(
        "--transport",
        type=str.upper,
        choices=["UDP", "TCP", "TLS"],
        default=None,
        help="transport for requests (default: UDP, or the URI's transport parameter)",
    )
    group.add_argument(
        "--transaction-timeout-ms",
        type=int,
        default=None,
        metavar="MS",
        help="sip_transaction_timeout, 1..32000 ms (default 32000; 4000 recommended)",
    )
    group.add_argument(
        "--dns-server",
        default=None,
        metavar="ADDR[:PORT]",
        help="use this DNS server instead of the system's",
    )
    group.add_argument(
        "--config", default=None, metavar="FILE", help="a SipEndpoint.config XML or TOML file"
    )


def endpoint_config(args: argparse.Namespace) -> EndpointConfig:
    """The configuration file (if any), with command-line options on top."""
    config = load_config(args.config).config if args.config else EndpointConfig()
    if args.transaction_timeout_ms is not None:
        config = attrs.evolve(config, sip_transaction_timeout=args.transaction_timeout_ms)
    return config


def timer_config(args: argparse.Namespace) -> TimerConfig:
    config = endpoint_config(args)
    return config.timer_config()


def positive_float(setting: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(setting, value, "a number greater than 0") from None
    if not number > 0:
        raise ConfigError(setting, value, "a number greater than 0")
    return number


def resolver(args: argparse.Namespace) -> DnspythonResolver:
    """The DNS resolver: ``--dns-server`` when given, else the system's configuration."""
    if args.dns_server:
        return DnspythonResolver.from_address(args.dns_server)
    return DnspythonResolver()


def local_host_for(host: str) -> str:
    """A wildcard bind address of the family ``host`` needs."""
    return "::" if ":" in host else "0.0.0.0"


def add_endpoint_options(parser: argparse.ArgumentParser, *, servers_required: bool) -> None:
    """--server (repeatable), --user and --password: one connection per server."""
    parser.add_argument(
        "--server",
        action="append",
        default=[],
        required=servers_required,
        metavar="URI",
        help="a SIP server (host[:port] or sip: URI); repeat for one connection per site",
    )
    parser.add_argument("--user", default="trio-sip", metavar="USER[@DOMAIN]")
    parser.add_argument("--password", default=None, help="digest password")


def local_address_for(host: str) -> str:
    """The local IP address that faces ``host`` (no packet is sent), for the Contact."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 5060))
            return str(probe.getsockname()[0])
    except OSError:
        return "::1" if family == socket.AF_INET6 else "127.0.0.1"


def connections_config(
    args: argparse.Namespace, *, expires: int | None = None, reg_interval: int = 30
) -> EndpointConfig:
    """The endpoint configuration with one connection per ``--server`` (the configuration
    file's connections when no --server is given)."""
    from ..config import ConnectionConfig

    config = endpoint_config(args)
    if not args.server:
        return config
    transport = args.transport or "UDP"
    extra: dict[str, object] = {} if expires is None else {"expires": expires}
    connections = [
        ConnectionConfig(
            id=server, user=args.user, server=server, transport=transport,
            reg_interval=reg_interval, password=args.password, **extra,  # type: ignore[arg-type]
        )
        for server in dict.fromkeys(args.server)
    ]  # fmt: skip
    return attrs.evolve(config, connections=connections)


async def listen_for(
    config: EndpointConfig, resolver: Resolver
) -> list[tuple[str, str, int]] | None:
    """Listeners for the connections: the configured ones, else port 0 on the address facing
    the first server, for each transport in use. A server name is looked up with ``resolver``
    (``--dns-server``), as the requests will be: the system resolver may not know it."""
    if config.listen or not config.connections:
        return None
    first = config.connections[0]
    host = first.server_host
    if not is_ip(host):
        scheme = first.server_scheme or "sip"
        parts = UriParts(scheme, host, first.server_port, first.transport.lower())
        with contextlib.suppress(DnsError):
            targets = await resolver.resolve(parts)
            host = targets[0].host if targets else host
    local = local_address_for(host)
    return [(t, local, 0) for t in sorted({c.transport for c in config.connections})]
