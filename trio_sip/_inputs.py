"""Checking what the application passes in (docs/errors.md, "Invalid input").

Bad input from the application is a :class:`~trio_sip.ConfigError` (a ``ValueError``) naming
the parameter, the value and what is allowed, raised before anything is sent; a
``RemoteProtocolError`` (``ParseError``) is only ever about what came off the wire. The address
forms are the same everywhere a server or proxy is named, as in ``ConnectionConfig.server`` and
``--server``: ``host``, ``host:port``, ``[v6]:port`` and ``sip:``/``sips:`` URIs; listeners are
``(transport, ip, port)`` or ``"TRANSPORT:ip:port"`` (``--listen``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .config import ListenAddress
from .config._values import parse_server
from .proto.errors import ConfigError, ParseError
from .proto.target import Target
from .proto.uri import AbsoluteUri, NameAddress, SipUri, TelUri, Uri, parse_name_addr, parse_uri

__all__ = [
    "ADDRESS_ALLOWED",
    "address_arg",
    "destination_arg",
    "listen_arg",
    "name_addr_arg",
    "request_uri_arg",
]

ADDRESS_ALLOWED = (
    "host, host:port, [IPv6]:port or a sip:/sips: URI, e.g. proxy.example.com, "
    "192.0.2.10:5060 or sip:proxy.example.com;transport=tcp"
)
REQUEST_URI_ALLOWED = "a SIP URI with a host, e.g. sip:bob@example.com (or user@host, or tel:)"
NAME_ADDR_ALLOWED = 'a SIP URI or a name-addr, e.g. sip:alice@example.com or "Alice <sip:...>"'


def request_uri_arg(setting: str, value: str | Uri) -> Uri:
    """Whom a request is for: a ``sip:``/``sips:``/``tel:`` URI (``user@host`` gets
    ``sip:``); ConfigError otherwise."""
    if not isinstance(value, str):
        if isinstance(value, (SipUri, TelUri, AbsoluteUri)):
            return value
        raise ConfigError(setting, value, REQUEST_URI_ALLOWED)
    text = value.strip()
    if "@" in text and ":" not in text.partition("@")[0]:
        text = f"sip:{text}"
    try:
        return parse_uri(text)
    except ParseError:
        raise ConfigError(setting, value, REQUEST_URI_ALLOWED) from None


def address_arg(setting: str, value: str | Uri) -> SipUri:
    """A server or proxy (:data:`ADDRESS_ALLOWED`) as a SIP URI; ConfigError otherwise."""
    if isinstance(value, SipUri):
        return value
    if not isinstance(value, str):
        raise ConfigError(setting, value, ADDRESS_ALLOWED)
    text = value.strip()
    try:
        scheme, _host, _port = parse_server(text)
        uri = parse_uri(text if scheme is not None else f"sip:{text}")
    except (ValueError, ParseError):
        raise ConfigError(setting, value, ADDRESS_ALLOWED) from None
    if not isinstance(uri, SipUri):
        raise ConfigError(setting, value, ADDRESS_ALLOWED)
    return uri


def destination_arg(
    setting: str, value: str | SipUri | Target | Sequence[Target]
) -> SipUri | Target | Sequence[Target]:
    """Where a request goes: an address (:func:`address_arg`), a Target or a list of them."""
    if isinstance(value, Target):
        return value
    if isinstance(value, (str, SipUri)):
        return address_arg(setting, value)
    if isinstance(value, Sequence):
        items: list[object] = list(value)
        targets = [t for t in items if isinstance(t, Target)]
        if targets and len(targets) == len(items):
            return targets
    raise ConfigError(setting, value, f"{ADDRESS_ALLOWED}; or a Target, or a list of Targets")


def name_addr_arg(setting: str, value: str | NameAddress) -> NameAddress:
    """``"sip:alice@example.com"``, ``"Alice <sip:alice@...>"`` or a NameAddress."""
    if isinstance(value, NameAddress):
        return value
    if not isinstance(value, str):
        raise ConfigError(setting, value, NAME_ADDR_ALLOWED)
    try:
        return parse_name_addr(value) if "<" in value else NameAddress(parse_uri(value))
    except ParseError:
        raise ConfigError(setting, value, NAME_ADDR_ALLOWED) from None


ListenItem = tuple[str, str, int] | str


def listen_arg(setting: str, value: Iterable[ListenItem]) -> list[tuple[str, str, int]]:
    """Listeners: ``(transport, host, port)`` triples or ``"TRANSPORT:ip:port"`` strings
    (``ListenAddress.parse``, the ``--listen`` form)."""
    if isinstance(value, str):  # one listener given bare
        value = [value]
    out: list[tuple[str, str, int]] = []
    for item in value:
        if isinstance(item, str):
            try:
                address = ListenAddress.parse(item)
            except ConfigError as exc:
                raise ConfigError(setting, item, exc.allowed) from None
            out.append((address.transport, address.host, address.port))
        elif isinstance(item, tuple) and len(item) == 3:
            out.append(item)
        else:
            raise ConfigError(
                setting,
                item,
                "(transport, host, port) or 'TRANSPORT:ip:port', e.g. 'UDP:127.0.0.1:0'",
            )
    return out
