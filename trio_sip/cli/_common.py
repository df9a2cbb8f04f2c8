"""Options the ``trio-sip`` commands share, the configuration they make, and the registry.

The configuration of a command is the ``--config`` file (XML or TOML; its warnings go to
stderr, one line each) with the command line on top: ``--transaction-timeout-ms``,
``--dns-server``, ``--tls-ca/--tls-cert/--tls-key`` and ``--listen`` replace the file's
values, ``--server`` replaces its connections (the file's per-connection settings, such as the
``reg_interval`` of ``proxy<N>``, still apply to the N-th ``--server``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

from ..config import ConnectionConfig, EndpointConfig, LoadedConfig, load_config
from ..config import tls as config_tls
from ..dns import CachingResolver, DnspythonResolver, default_resolver
from ..proto.errors import ConfigError
from ..proto.timers import TimerConfig
from ..transports import TransportConfig
from ._listen import listen_for as listen_for
from ._listen import parse_listen

COMMANDS: list[ModuleType] = []

#: TLS options -> the EndpointConfig setting each replaces.
TLS_OPTIONS = {
    "--tls-ca": "tls_ca_file",
    "--tls-cert": "tls_cert_file",
    "--tls-key": "tls_key_file",
}


def add_common_options(parser: argparse.ArgumentParser, *, tls: bool = True) -> None:
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
        help="use this DNS server instead of the system's (or the config's dns_server)",
    )
    group.add_argument(
        "--config", default=None, metavar="FILE", help="a SipEndpoint.config XML or TOML file"
    )
    if not tls:
        parser.set_defaults(tls_ca=None, tls_cert=None, tls_key=None)
        return
    group = parser.add_argument_group("TLS (with --transport TLS, a sips: URI or a TLS listener)")
    group.add_argument(
        "--tls-ca", default=None, metavar="FILE",
        help="PEM CA bundle that signs the servers' certificates (default: the system's)",
    )  # fmt: skip
    group.add_argument(
        "--tls-cert", default=None, metavar="FILE",
        help="our PEM certificate (chain): needed to listen on TLS; shown to servers that ask",
    )  # fmt: skip
    group.add_argument(
        "--tls-key", default=None, metavar="FILE",
        help="the private key of --tls-cert (default: in the --tls-cert file)",
    )  # fmt: skip


def add_listen_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="[TRANSPORT:]IP:PORT",
        help="a local listener, repeatable: UDP:127.0.0.1:5060, TCP:[::1]:5060, TLS:10.0.0.5:5061,"
        f" or IP:PORT for UDP and TCP on that port (--transport: that one only); {default}",
    )


def add_media_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--media-ports",
        default=None,
        metavar="LOW-HIGH",
        help="RTP ports for the SDP, one per call (RTCP on the next port), e.g. 40000-40999 "
        "(default: 40000 and up)",
    )


def loaded_config(args: argparse.Namespace) -> LoadedConfig | None:
    """The ``--config`` file, loaded once per command; its warnings are printed to stderr."""
    cached: LoadedConfig | None = getattr(args, "_loaded_config", None)
    if cached is not None or not getattr(args, "config", None):
        return cached
    loaded = load_config(args.config)
    for warning in loaded.warnings:
        print(f"trio-sip {args.command}: warning: {loaded.source}: {warning}", file=sys.stderr)
    args._loaded_config = loaded
    return loaded


def _existing(option: str, value: str) -> str:
    if not Path(value).is_file():
        raise ConfigError(option, value, "an existing PEM file")
    return value


def endpoint_config(args: argparse.Namespace) -> EndpointConfig:
    """The configuration file (if any), with command-line options on top."""
    loaded = loaded_config(args)
    config = loaded.config if loaded is not None else EndpointConfig()
    changes: dict[str, Any] = {}
    if args.transaction_timeout_ms is not None:
        changes["sip_transaction_timeout"] = args.transaction_timeout_ms
    if args.dns_server:
        changes["dns_server"] = args.dns_server
    for option, setting in TLS_OPTIONS.items():
        value = getattr(args, option[2:].replace("-", "_"), None)
        if value is not None:
            changes[setting] = _existing(option, value)
    if changes.get("tls_cert_file") and not getattr(args, "tls_key", None):
        changes["tls_key_file"] = None  # a new certificate: its key is in its file
    listen = getattr(args, "listen", None)
    if listen and isinstance(listen, list):
        default = (args.transport,) if args.transport else ("UDP", "TCP")
        changes["listen"] = parse_listen(listen, default)
    if not changes:
        return config
    try:
        return attrs.evolve(config, **changes)
    except ConfigError as exc:  # named as on the command line
        errors = getattr(exc, "errors", (exc,))
        raise ConfigError(_option(errors[0].setting), errors[0].value, errors[0].allowed) from None


def _option(setting: str) -> str:
    names = {v: k for k, v in TLS_OPTIONS.items()}
    names |= {"sip_transaction_timeout": "--transaction-timeout-ms", "dns_server": "--dns-server"}
    return names.get(setting, setting)


def timer_config(args: argparse.Namespace) -> TimerConfig:
    return endpoint_config(args).timer_config()


def transport_config(args: argparse.Namespace, config: EndpointConfig) -> TransportConfig:
    """The SSL contexts of ``config``; an unreadable file names the option that gave it."""
    try:
        return config_tls.transport_config(config)
    except ConfigError as exc:
        option = _option(exc.setting)
        given = getattr(args, option[2:].replace("-", "_"), None) if option in TLS_OPTIONS else None
        raise ConfigError(option if given else exc.setting, exc.value, exc.allowed) from None


def positive_float(setting: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(setting, value, "a number greater than 0") from None
    if not number > 0:
        raise ConfigError(setting, value, "a number greater than 0")
    return number


def resolver(args: argparse.Namespace, config: EndpointConfig | None = None) -> CachingResolver:
    """The DNS resolver: ``--dns-server``, else the configuration's ``dns_server``, else the
    library's default (the system's configuration, or ``$TRIO_SIP_DNS_SERVER``)."""
    server = args.dns_server or (config or endpoint_config(args)).dns_server
    if server:
        return DnspythonResolver.from_address(server)
    return default_resolver()


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


def connections_config(
    args: argparse.Namespace,
    *,
    expires: int | None = None,
    reg_interval: int | None = None,
    defaults: dict[str, int] | None = None,
) -> EndpointConfig:
    """The endpoint configuration with one connection per ``--server`` (else the configuration
    file's connections). ``expires`` and ``reg_interval`` (given on the command line) win over
    the file; ``defaults`` fill in for ``--server`` connections what the file does not set."""
    config = endpoint_config(args)
    connections: tuple[ConnectionConfig, ...] = config.connections
    if args.server:
        transport = args.transport or "UDP"
        connections = tuple(
            ConnectionConfig(
                id=server, user=args.user, server=server, transport=transport,
                password=args.password, **(defaults or {}),  # type: ignore[arg-type]
            )
            for server in dict.fromkeys(args.server)
        )  # fmt: skip
        loaded = loaded_config(args)
        if loaded is not None:
            connections = loaded.configure_connections(connections)
    given = {"expires": expires, "reg_interval": reg_interval}
    changes: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
    if changes:
        try:
            connections = tuple(attrs.evolve(c, **changes) for c in connections)
        except ConfigError as exc:
            errors = getattr(exc, "errors", (exc,))
            option = f"--{errors[0].setting.replace('_', '-')}"
            raise ConfigError(option, errors[0].value, errors[0].allowed) from None
    return attrs.evolve(config, connections=connections)
