"""The configuration model: EndpointConfig, ConnectionConfig and ListenAddress values.

Theory of operation: configuration objects are frozen, slotted attrs values, so a running
endpoint can hold one without copying and ``attrs.evolve`` makes changed copies. Every object
validates itself in ``__attrs_post_init__``: each field is checked by a function from
:mod:`._values` and *all* failures are collected, then raised together as one
:class:`ConfigErrors` (a :class:`~trio_sip.proto.errors.ConfigError` whose ``setting``, ``value``
and ``allowed`` are those of the first problem, and whose ``errors`` lists every problem). Cross
field rules (``t2 >= t1``, unique connection ids, ``sips:`` needs TLS) run after the field checks.

Units follow the deployments this mirrors: SIP timers in milliseconds, periods in seconds.

Geo-redundancy: an endpoint has several :class:`ConnectionConfig` values, one per server site,
each with its own user, transport, ``reg_interval`` and enabled flag (see
docs/configuration.md and the "Geo-redundancy" section of the architecture).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from ..errors import ConfigErrors as ConfigErrors
from ..proto.errors import ConfigError
from ..proto.timers import TimerConfig
from ._values import (
    Check,
    bool_check,
    int_check,
    is_ip,
    optional,
    parse_hostport,
    parse_server,
    server_check,
    text_check,
    user_check,
)

__all__ = ["TRANSPORTS", "ConfigErrors", "ConnectionConfig", "EndpointConfig", "ListenAddress"]

#: Transports a connection or a listener may use.
TRANSPORTS = ("UDP", "TCP", "TLS")
_TRANSPORT_ALLOWED = "one of UDP, TCP, TLS"
LISTEN_ALLOWED = "TRANSPORT:ip[:port], e.g. UDP:127.0.0.1:5060 or TLS:[::1]:5061 (port 0..65535)"


def raise_all(errors: Sequence[ConfigError]) -> None:
    """Raise :class:`ConfigErrors` if there is any error (flattening nested aggregates)."""
    flat: list[ConfigError] = []
    for err in errors:
        flat.extend(err.errors if isinstance(err, ConfigErrors) else (err,))
    if flat:
        raise ConfigErrors(flat)


def _run_checks(obj: object, checks: Mapping[str, Check]) -> list[ConfigError]:
    errors = []
    for name, check in checks.items():
        try:
            check(name, getattr(obj, name))
        except ConfigError as exc:
            errors.append(exc)
    return errors


def _upper(value: object) -> Any:
    """Transport names are case-insensitive: normalise them; anything else stays as written,
    for the check to name it."""
    if isinstance(value, str) and value.upper() in TRANSPORTS:
        return value.upper()
    return value


def _transport_check(setting: str, value: Any) -> None:
    if value not in TRANSPORTS:
        raise ConfigError(setting, value, _TRANSPORT_ALLOWED)


def _to_tuple(value: object) -> Any:
    """Lists become tuples (configuration is immutable); a lone string is *not* a sequence."""
    if isinstance(value, list | tuple):
        return tuple(value)
    return value


@attrs.frozen(slots=True, kw_only=True)
class ListenAddress:
    """One local listener: transport, IP address (IPv6 without brackets) and port (0: any)."""

    transport: str = attrs.field(converter=_upper)
    host: str
    port: int

    def __attrs_post_init__(self) -> None:
        errors = _run_checks(self, {"transport": _transport_check, "port": _PORT_OR_ZERO})
        if not (isinstance(self.host, str) and is_ip(self.host)):
            errors.append(ConfigError("host", self.host, "an IPv4 or IPv6 address"))
        raise_all(errors)

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        """Parse ``"UDP:127.0.0.1:5060"``, ``"TCP:[::1]:5060"`` or ``"UDP:0.0.0.0"`` (port 5060;
        5061 for TLS). Raises :class:`ConfigError` with setting ``listen``."""
        transport, sep, rest = text.partition(":") if isinstance(text, str) else ("", "", "")
        if not sep or transport.upper() not in TRANSPORTS:
            raise ConfigError("listen", text, LISTEN_ALLOWED)
        try:
            host, port = parse_hostport(rest, ip_only=True, allow_zero_port=True)
        except ValueError:
            raise ConfigError("listen", text, LISTEN_ALLOWED) from None
        if port is None:
            port = 5061 if transport.upper() == "TLS" else 5060
        return cls(transport=transport, host=host, port=port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


_PORT_OR_ZERO = int_check(0, 65535, "port; 0 picks a free port")


def _to_listen(value: object) -> Any:
    """Strings in ``listen`` become :class:`ListenAddress` (raising ``listen[i]`` errors)."""
    items = _to_tuple(value)
    if not isinstance(items, tuple):
        return items
    out: list[object] = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            try:
                item = ListenAddress.parse(item)
            except ConfigError as exc:
                raise ConfigErrors([ConfigError(f"listen[{index}]", item, exc.allowed)]) from None
        out.append(item)
    return tuple(out)


def _each(check: Check) -> Check:
    """A tuple whose every item passes ``check`` (errors name ``setting[i]``)."""

    def each_check(setting: str, value: Any) -> None:
        if not isinstance(value, tuple):
            raise ConfigError(setting, value, "a list")
        for index, item in enumerate(value):
            check(f"{setting}[{index}]", item)

    return each_check


def _instance_check(cls: type, allowed: str) -> Check:
    def check(setting: str, value: Any) -> None:
        if not isinstance(value, cls):
            raise ConfigError(setting, value, allowed)

    return check


def _dns_server_check(setting: str, value: Any) -> None:
    allowed = "an IP address with an optional :port (1..65535), e.g. 10.0.0.53 or [2001:db8::53]:53"
    if not isinstance(value, str):
        raise ConfigError(setting, value, allowed)
    try:
        parse_hostport(value, ip_only=True)
    except ValueError:
        raise ConfigError(setting, value, allowed) from None


_NAME = text_check(256, forbid='"')
_PASSWORD = text_check(256)

_CONNECTION_CHECKS: dict[str, Check] = {
    "id": text_check(64),
    "user": user_check,
    "server": server_check,
    "transport": _transport_check,
    "reg_interval": int_check(0, 86400, "seconds; 0 = never re-register or resend"),
    "expires": int_check(0, 2**31 - 1, "seconds; 0 = do not register"),
    "auth_user": optional(_NAME),
    "password": optional(_PASSWORD),
    "realm": optional(_NAME),
    "enabled": bool_check,
    "outbound_proxies": _each(server_check),
    "display_name": optional(text_check(256)),
}


@attrs.frozen(slots=True, kw_only=True)
class ConnectionConfig:
    """One connection: a user (DN) at one server site (geo-redundancy: one per site).

    ``server`` is ``host[:port]`` (a name may resolve to many addresses) or a ``sip:``/``sips:``
    URI; ``reg_interval`` is the period (s) between registration attempts while the site is down
    (0: never re-register or resend); ``expires`` the Expires asked for in REGISTER (0: do not
    register).
    """

    id: str
    user: str
    server: str
    transport: str = attrs.field(default="UDP", converter=_upper)
    reg_interval: int = 3600
    expires: int = 1800
    auth_user: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    realm: str | None = None
    enabled: bool = True
    outbound_proxies: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)
    display_name: str | None = None

    def __attrs_post_init__(self) -> None:
        errors = _run_checks(self, _CONNECTION_CHECKS)
        if not errors and self.server_scheme == "sips" and self.transport != "TLS":
            errors.append(ConfigError("transport", self.transport, "TLS for a sips: server"))
        raise_all(errors)

    @property
    def server_scheme(self) -> str | None:
        """``"sip"`` or ``"sips"`` when ``server`` is a URI, else None."""
        return parse_server(self.server)[0]

    @property
    def server_host(self) -> str:
        """The server's host name or IP address (IPv6 without brackets)."""
        return parse_server(self.server)[1]

    @property
    def server_port(self) -> int | None:
        """The explicit port, or None (RFC 3263 resolution picks it)."""
        return parse_server(self.server)[2]


_ENDPOINT_CHECKS: dict[str, Check] = {
    "sip_transaction_timeout": int_check(1, 32000, "ms"),
    "t1": int_check(1, 60000, "ms"),
    "t2": int_check(1, 60000, "ms"),
    "t4": int_check(1, 60000, "ms"),
    "keep_alive_period": int_check(0, 3600, "seconds; 0 = off"),
    "rfc5626_pong_timeout": int_check(1, 300, "seconds"),
    "hold_other_calls": bool_check,
    "user_agent": text_check(256),
    "listen": _each(_instance_check(ListenAddress, LISTEN_ALLOWED)),
    "dns_server": optional(_dns_server_check),
    "tls_verify": bool_check,
    "tls_ca_file": optional(text_check(4096)),
    "tls_cert_file": optional(text_check(4096)),
    "tls_key_file": optional(text_check(4096)),
    "connections": _each(_instance_check(ConnectionConfig, "a ConnectionConfig")),
}


@attrs.frozen(slots=True, kw_only=True)
class EndpointConfig:
    """Endpoint-wide policy plus the connections (server sites) the endpoint registers with.

    ``sip_transaction_timeout`` bounds every client transaction (Timer B/F, RFC 3261 §17.1);
    4000 ms is recommended for HA deployments so failover to the next address starts quickly.
    """

    sip_transaction_timeout: int = 32000
    t1: int = 500
    t2: int = 4000
    t4: int = 5000
    keep_alive_period: int = 0
    rfc5626_pong_timeout: int = 10
    hold_other_calls: bool = True
    user_agent: str = "trio-sip"
    listen: tuple[ListenAddress, ...] = attrs.field(default=(), converter=_to_listen)
    dns_server: str | None = None
    tls_verify: bool = True
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    connections: tuple[ConnectionConfig, ...] = attrs.field(default=(), converter=_to_tuple)

    def __attrs_post_init__(self) -> None:
        errors = _run_checks(self, _ENDPOINT_CHECKS)
        if not any(err.setting in ("t1", "t2") for err in errors) and self.t2 < self.t1:
            errors.append(ConfigError("t2", self.t2, f"at least t1 ({self.t1} ms)"))
        if self.tls_key_file is not None and self.tls_cert_file is None:
            allowed = "unset, or set together with tls_cert_file (the certificate it goes with)"
            errors.append(ConfigError("tls_key_file", self.tls_key_file, allowed))
        connections: Any = self.connections  # may hold anything until checked
        if isinstance(connections, tuple):
            seen: dict[object, int] = {}
            for index, conn in enumerate(connections):
                if not isinstance(conn, ConnectionConfig):
                    continue
                if conn.id in seen:
                    allowed = f"a unique id; already used by connections[{seen[conn.id]}]"
                    errors.append(ConfigError(f"connections[{index}].id", conn.id, allowed))
                seen.setdefault(conn.id, index)
        raise_all(errors)

    @property
    def dns_server_address(self) -> tuple[str, int] | None:
        """``dns_server`` as ``(ip, port)`` (port 53 by default), or None."""
        if self.dns_server is None:
            return None
        host, port = parse_hostport(self.dns_server, ip_only=True)
        return host, 53 if port is None else port

    def timer_config(self) -> TimerConfig:
        """The core's :class:`~trio_sip.proto.timers.TimerConfig` (T1/T2/T4 in seconds)."""
        return TimerConfig(
            t1=self.t1 / 1000,
            t2=self.t2 / 1000,
            t4=self.t4 / 1000,
            sip_transaction_timeout=self.sip_transaction_timeout,
        )

    def connection(self, connection_id: str) -> ConnectionConfig:
        """The connection with this id (``KeyError`` if there is none)."""
        for conn in self.connections:
            if conn.id == connection_id:
                return conn
        raise KeyError(connection_id)

    def enabled_connections(self) -> Iterable[ConnectionConfig]:
        """The connections whose registration task should run."""
        return tuple(conn for conn in self.connections if conn.enabled)
