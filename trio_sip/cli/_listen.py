"""Local listeners and media ports of the ``trio-sip`` commands.

``--listen`` takes ``TRANSPORT:IP:PORT`` (``UDP:127.0.0.1:5060``, ``TCP:[::1]:5060``,
``TLS:10.0.0.5:5061``) or a plain ``IP:PORT``, which means every default transport on that port:
UDP and TCP (RFC 3261 §18: "All SIP elements MUST implement UDP and TCP"), or only the one
``--transport`` names. Port 0 picks a free port, the same one for UDP and TCP.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable

from ..config import TRANSPORTS, EndpointConfig, ListenAddress
from ..config._values import is_ip, parse_hostport
from ..dns import DnsError, Resolver
from ..proto.errors import ConfigError
from ..proto.resolve import UriParts

__all__ = [
    "LISTEN_ALLOWED",
    "check_listeners",
    "listen_for",
    "parse_listen",
    "parse_media_ports",
]

#: What --listen takes; every example here works (tests/test_cli_config.py checks them).
LISTEN_ALLOWED = (
    "TRANSPORT:IP:PORT or IP:PORT (UDP and TCP on that port), e.g. UDP:127.0.0.1:5060, "
    "TCP:[::1]:5060 or 127.0.0.1:5060"
)
MEDIA_ALLOWED = (
    "LOW-HIGH, ports 1..65535 with room for one RTP port and its RTCP port, e.g. 40000-40999"
)


def _free_shared_port(host: str, transports: Iterable[str], attempts: int = 50) -> int:
    """A port free for every transport on ``host`` (picked, then released for the stack)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kinds = [socket.SOCK_DGRAM if t == "UDP" else socket.SOCK_STREAM for t in transports]
    for _ in range(attempts):
        with contextlib.ExitStack() as stack:
            port = 0
            try:
                for kind in kinds:
                    sock = stack.enter_context(socket.socket(family, kind))
                    sock.bind((host, port))
                    port = sock.getsockname()[1]
            except OSError:
                continue
            return port
    raise ConfigError("--listen", f"{host}:0", "an address with a port free for UDP and TCP")


def parse_listen(values: Iterable[str], transports: tuple[str, ...]) -> list[ListenAddress]:
    """``--listen`` values as listeners (plain ``IP:PORT``: one per transport of
    ``transports``); duplicates once. Raises ConfigError naming ``--listen``."""
    out: dict[ListenAddress, None] = {}
    for text in values:
        head = text.partition(":")[0].upper()
        if head in TRANSPORTS:
            try:
                out[ListenAddress.parse(text)] = None
            except ConfigError:
                raise ConfigError("--listen", text, LISTEN_ALLOWED) from None
            continue
        try:
            host, port = parse_hostport(text, ip_only=True, allow_zero_port=True)
        except ValueError:
            raise ConfigError("--listen", text, LISTEN_ALLOWED) from None
        if port == 0 and len(transports) > 1:
            port = _free_shared_port(host, transports)
        for transport in transports:
            default = 5061 if transport == "TLS" else 5060
            out[
                ListenAddress(
                    transport=transport, host=host, port=default if port is None else port
                )
            ] = None
    return list(out)


def parse_media_ports(text: str | None) -> range | None:
    """``--media-ports LOW-HIGH`` as the range of ports (both ends included)."""
    if text is None:
        return None
    low, sep, high = text.partition("-")
    if not (sep and low.strip().isdigit() and high.strip().isdigit()):
        raise ConfigError("--media-ports", text, MEDIA_ALLOWED)
    first, last = int(low), int(high)
    if not 1 <= first < last <= 65535:
        raise ConfigError("--media-ports", text, MEDIA_ALLOWED)
    return range(first, last + 1)


def local_address_for(host: str) -> str:
    """The local IP address that faces ``host`` (no packet is sent), for the Contact."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 5060))
            return str(probe.getsockname()[0])
    except OSError:
        return "::1" if family == socket.AF_INET6 else "127.0.0.1"


async def listen_for(
    config: EndpointConfig, resolver: Resolver
) -> list[tuple[str, str, int]] | None:
    """Listeners for the connections: None when configured (``--listen`` or the file's
    ``listen``: the endpoint uses ``config.listen``), else port 0 on the address facing the
    first server, for each transport in use. A server name is looked up with ``resolver``
    (``--dns-server``), as the requests will be: the system resolver may not know it.

    Raises ConfigError when a connection's transport has no listener, or when a TLS listener
    has no certificate (the Contact of a TLS connection names a TLS listener)."""
    check_listeners(config)
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


def check_listeners(config: EndpointConfig) -> None:
    """Raise ConfigError when a connection's transport has no listener in ``config.listen``,
    or when a TLS listener (configured, or needed by a TLS connection) has no certificate."""
    used = sorted({c.transport for c in config.connections})
    have = {a.transport for a in config.listen} if config.listen else set(used)
    for transport in used:
        if transport not in have:
            example = f"{transport}:{config.listen[0].host}:0"
            allowed = f"a {transport} listener for the {transport} connection, e.g. {example}"
            raise ConfigError("--listen", ", ".join(map(str, config.listen)), allowed)
    if "TLS" in have and config.tls_cert_file is None:
        allowed = (
            "a PEM certificate (with --tls-key, or tls_cert_file in --config) to listen on TLS: "
            "a TLS connection's Contact is our TLS listener, where the server sends requests"
        )
        raise ConfigError("--tls-cert", None, allowed)
