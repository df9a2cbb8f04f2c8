"""Options every ``trio-sip`` command takes, and the command registry."""

from __future__ import annotations

import argparse
from types import ModuleType

import attrs

from ..config import EndpointConfig, load_config
from ..dns import DnspythonResolver
from ..proto.errors import ConfigError
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
