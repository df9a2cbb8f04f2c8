"""Checks for single configuration values: numbers, names, host[:port], SIP URIs, users.

Theory of operation: every check is a function ``check(setting, value)`` that returns nothing or
raises :class:`~trio_sip.proto.errors.ConfigError` naming the setting, the value and a readable
description of what is allowed. The model (:mod:`.model`) runs one check per field and collects
the failures; the loaders only turn text into Python values and leave range checks to the model,
so a setting is validated the same way whether it came from Python, XML or TOML.

Addresses follow RFC 3261 §25.1: ``hostport = host [":" port]``, ``host = hostname / IPv4address
/ IPv6reference`` (IPv6 literals in brackets), and a hostname's top label starts with a letter,
which is what tells a name from a mistyped IPv4 address such as ``10.0.0.300``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from ..proto.errors import ConfigError

__all__ = [
    "Check",
    "bool_check",
    "int_check",
    "optional",
    "parse_hostport",
    "parse_server",
    "server_check",
    "text_check",
    "user_check",
]

#: ``check(setting, value)`` raises ConfigError or returns None.
Check = Callable[[str, Any], None]

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TOPLABEL = r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"(?:{_LABEL}\.)*{_TOPLABEL}\.?")
# RFC 3261 §25.1: user = 1*( unreserved / escaped / user-unreserved )
_USER_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+")
_URI_PARAMS_RE = re.compile(r"(?:;[A-Za-z0-9\-_.!~*'()%\[\]/:&+$]+(?:=[^;?\s]*)?)*")

HOSTPORT_ALLOWED = "host[:port]: a host name, an IPv4 address or a [bracketed] IPv6 address"


def int_check(lo: int, hi: int, unit: str) -> Check:
    """An integer (not a bool) in ``lo..hi``."""
    allowed = f"an integer {lo}..{hi} ({unit})"

    def check(setting: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ConfigError(setting, value, allowed)

    return check


def bool_check(setting: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(setting, value, "true or false")


def text_check(max_len: int, *, forbid: str = "") -> Check:
    """A non-empty string of printable characters (no CR, LF or other control characters)."""
    extra = f", without {' '.join(forbid)}" if forbid else ""
    allowed = f"a non-empty string of at most {max_len} printable characters{extra}"

    def check(setting: str, value: Any) -> None:
        if (
            not isinstance(value, str)
            or not value
            or len(value) > max_len
            or not value.isprintable()
            or any(ch in value for ch in forbid)
        ):
            raise ConfigError(setting, value, allowed)

    return check


def optional(check: Check) -> Check:
    """``None`` or whatever ``check`` accepts."""

    def optional_check(setting: str, value: Any) -> None:
        if value is not None:
            try:
                check(setting, value)
            except ConfigError as exc:
                raise ConfigError(setting, value, f"unset (None) or {exc.allowed}") from None

    return optional_check


def _port(text: str, *, allow_zero: bool) -> int:
    lo = 0 if allow_zero else 1
    if not text.isascii() or not text.isdigit() or not lo <= int(text) <= 65535:
        raise ValueError(f"a port {lo}..65535")
    return int(text)


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_hostport(
    text: str, *, ip_only: bool = False, allow_zero_port: bool = False
) -> tuple[str, int | None]:
    """Split ``host[:port]``; the host comes back without IPv6 brackets.

    Raises ``ValueError`` whose message says what is allowed.
    """
    what = (
        "ip[:port]: an IPv4 address or a [bracketed] IPv6 address" if ip_only else HOSTPORT_ALLOWED
    )
    port_text: str | None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not is_ip(host) or ":" not in host:
            raise ValueError(what)
        if rest and not rest.startswith(":"):
            raise ValueError(what)
        port_text = rest[1:] if rest else None
    else:
        if text.count(":") > 1:
            raise ValueError(f"{what} (put IPv6 addresses in brackets)")
        host, sep, port_str = text.partition(":")
        port_text = port_str if sep else None
        valid_host = is_ip(host) if ip_only else (is_ip(host) or _HOSTNAME_RE.fullmatch(host))
        if not host or not valid_host:
            raise ValueError(what)
    if port_text is None:
        return host, None
    try:
        return host, _port(port_text, allow_zero=allow_zero_port)
    except ValueError as exc:
        raise ValueError(f"{what}, with {exc}") from None


def parse_server(text: str) -> tuple[str | None, str, int | None]:
    """Split a server address into ``(scheme, host, port)``.

    Accepts ``host``, ``host:port`` and ``sip:``/``sips:`` URIs (optionally with a user part and
    ``;parameters``); ``scheme`` is None for a plain host[:port].
    """
    allowed = f"{HOSTPORT_ALLOWED}, or a sip:/sips: URI"
    scheme: str | None = None
    rest = text
    lowered = text.lower()
    for candidate in ("sip:", "sips:"):
        if lowered.startswith(candidate):
            scheme, rest = candidate[:-1], text[len(candidate) :]
            break
    if scheme is not None:
        rest = rest.split("?", 1)[0]
        user, at, hostpart = rest.rpartition("@")
        if at and not _USER_RE.fullmatch(user.split(":", 1)[0]):
            raise ValueError(allowed)
        rest = hostpart
        end = rest.find(";")
        if end >= 0:
            if not _URI_PARAMS_RE.fullmatch(rest[end:]):
                raise ValueError(allowed)
            rest = rest[:end]
    try:
        host, port = parse_hostport(rest)
    except ValueError as exc:
        raise ValueError(f"{exc}, or a sip:/sips: URI") from None
    return scheme, host, port


def server_check(setting: str, value: Any) -> None:
    """A server: host[:port] or a SIP URI."""
    if not isinstance(value, str):
        raise ConfigError(setting, value, f"{HOSTPORT_ALLOWED}, or a sip:/sips: URI")
    try:
        parse_server(value)
    except ValueError as exc:
        raise ConfigError(setting, value, str(exc)) from None


def user_check(setting: str, value: Any) -> None:
    """A DN or user name (RFC 3261 ``user``), optionally ``user@domain``."""
    allowed = "a DN or user name (RFC 3261 user characters), optionally user@domain"
    if not isinstance(value, str):
        raise ConfigError(setting, value, allowed)
    user, at, domain = value.partition("@")
    if not _USER_RE.fullmatch(user):
        raise ConfigError(setting, value, allowed)
    if at:
        try:
            parse_hostport(domain)
        except ValueError:
            raise ConfigError(setting, value, allowed) from None
