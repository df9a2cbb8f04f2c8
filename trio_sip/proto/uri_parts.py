# The pieces of URIs that other grammar shares: generic parameters (§25.1 generic-param,
# §19.1.1 uri-parameters), host[:port] (§25.1 hostport, RFC 5118 / RFC 5954 IPv6 references)
# and %-escapes. ``uri.py`` (SIP/SIPS/tel URIs, name-addr) and ``fields.py`` (Via) build on
# them; ``uri.py`` re-exports every name here, so ``trio_sip.proto.uri`` stays the one import.
#
# Theory of operation: values are kept as written (see ``uri.py``). Each piece has its
# general parser (``parse_params``, ``parse_hostport``) and, for the fast paths of the URI,
# address and Via parsers, the subset they accept: ``SIMPLE_PARAMS`` / ``HOSTNAME`` as regex
# source (the pure-Python build) and ``simple_params``, ``_token_params``, ``_uri_params``,
# ``_ascii_hostname``, ``_ascii_port`` as string operations (the compiled build, see
# ``abnf.STRING_FAST_PATHS``). Whatever a fast path accepts, the general parser accepts with
# the same value.
"""Generic parameters, host[:port] and %-escapes: the pieces URIs and Via share."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from typing import overload

from .abnf import (
    LWS,
    TOKEN_CHARS,
    TOKEN_RE,
    excerpt,
    is_token,
    scan_quoted,
    split_top,
    unquote,
)
from .errors import ParseError

__all__ = [
    "EMPTY_PARAMS",
    "HOSTNAME",
    "SIMPLE_PARAMS",
    "Params",
    "format_host",
    "parse_hostport",
    "parse_params",
    "simple_params",
    "unescape",
]

_PARAMCHARS_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-Fa-f]{2})+")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-_.]*[A-Za-z0-9.])?")
_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_token_match = TOKEN_RE.fullmatch

# Building blocks of the fast paths (regex source). Each fast path accepts a subset of what
# the general parser accepts, gives the same value, and hands everything else to it.
HOSTNAME = r"[A-Za-z0-9](?:[A-Za-z0-9\-_.]*[A-Za-z0-9.])?"
"""A hostname or IPv4 address, as ``parse_hostport`` accepts it (regex source)."""
SIMPLE_PARAMS = rf"(?:;[{TOKEN_CHARS}]+(?:=[{TOKEN_CHARS}]+)?)*"
"""``;name[=value]...`` with token names and values, no LWS (regex source)."""
_URI_PARAMCHARS = r"A-Za-z0-9\-_.!~*'()\[\]/:&+$"
# The string fast paths' check of URI parameters (unescaped only).
_uri_param_match = re.compile(f"[{_URI_PARAMCHARS}]+").fullmatch


def unescape(text: str) -> str:
    """Decode ``%HH`` escapes once (as UTF-8, undecodable bytes kept via surrogateescape)."""
    if "%" not in text:
        return text
    raw = _ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), text)
    try:
        return raw.encode("latin-1").decode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return raw


class Params:
    """Ordered parameters (``;name=value;flag``); names compare case-insensitively.

    Values are kept as written (a quoted value keeps its quotes; use ``unquoted``). A valueless
    parameter has the value ``None``: test presence with ``in``.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str | None]] = ()) -> None:
        self._items: tuple[tuple[str, str | None], ...] = tuple(items)

    def _find(self, name: str) -> int:
        items = self._items
        for i, (k, _) in enumerate(items):
            if k == name:
                return i
        lname = name.lower()
        for i, (k, _) in enumerate(items):
            if k.lower() == lname:
                return i
        return -1

    def get(self, name: str, default: str | None = None) -> str | None:
        i = self._find(name)
        return default if i < 0 else self._items[i][1]

    def unquoted(self, name: str) -> str | None:
        """The value with surrounding quotes removed (quoted-pairs resolved)."""
        v = self.get(name)
        if v is not None and len(v) >= 2 and v[0] == '"' and v[-1] == '"':
            return unquote(v)
        return v

    def __getitem__(self, name: str) -> str | None:
        i = self._find(name)
        if i < 0:
            raise KeyError(name)
        return self._items[i][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) >= 0

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> tuple[tuple[str, str | None], ...]:
        return self._items

    def with_param(self, name: str, value: str | None = None) -> Params:
        """A copy with ``name`` set (replacing an existing value in place, else appended)."""
        i = self._find(name)
        items = list(self._items)
        if i < 0:
            items.append((name, value))
        else:
            items[i] = (items[i][0], value)
        return Params(items)

    def without(self, name: str) -> Params:
        lname = name.lower()
        return Params((k, v) for k, v in self._items if k.lower() != lname)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Params):
            return NotImplemented
        return sorted((k.lower(), v) for k, v in self._items) == sorted(
            (k.lower(), v) for k, v in other._items
        )

    def __hash__(self) -> int:
        return hash(frozenset((k.lower(), v) for k, v in self._items))

    def __str__(self) -> str:
        return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self._items)

    def __repr__(self) -> str:
        return f"Params({list(self._items)!r})"


EMPTY_PARAMS = Params()


@overload
def simple_params(text: str) -> Params: ...
@overload
def simple_params(text: str, required: str) -> Params | None: ...
def simple_params(text: str, required: str | None = None) -> Params | None:
    """The Params of a text matching ``SIMPLE_PARAMS`` (``""`` or ``";a=b;c"``); None if the
    parameter named ``required`` (lower case) is present without a value."""
    if not text:
        return EMPTY_PARAMS
    params = Params.__new__(Params)
    body = text[1:]
    if ";" not in body:  # one parameter, the usual ";tag=..." / ";lr"
        name, eq, value = body.partition("=")
        if eq:
            params._items = ((name, value),)
        elif required is not None and name.lower() == required:
            return None
        else:
            params._items = ((name, None),)
        return params
    items: list[tuple[str, str | None]] = []
    for piece in body.split(";"):
        name, eq, value = piece.partition("=")
        if eq:
            items.append((name, value))
        elif required is not None and name.lower() == required:
            return None
        else:
            items.append((name, None))
    params._items = tuple(items)
    return params


def _token_params(text: str, required: str | None = None) -> Params | None:
    """The Params of ``text`` if it matches ``SIMPLE_PARAMS`` (token names and values), else
    None; also None if the parameter named ``required`` (lower case) has no value. (String
    operations, no regex: the fast paths' share of ``simple_params``.)"""
    if not text:
        return EMPTY_PARAMS
    if text[0] != ";":
        return None
    items: list[tuple[str, str | None]] = []
    for piece in text[1:].split(";"):
        name, eq, value = piece.partition("=")
        if not is_token(name):
            return None
        if eq:
            if not is_token(value):
                return None
            items.append((name, value))
        elif required is not None and name.lower() == required:
            return None
        else:
            items.append((name, None))
    params = Params.__new__(Params)
    params._items = tuple(items)
    return params


def _uri_params(text: str) -> Params | None:
    """The Params of URI parameters ``;name[=value]...`` made of unescaped paramchars (the
    fast path of ``parse_uri``), else None."""
    if not text:
        return EMPTY_PARAMS
    if text[0] != ";":
        return None
    items: list[tuple[str, str | None]] = []
    for piece in text[1:].split(";"):
        name, eq, value = piece.partition("=")
        if not (name.isalnum() or _uri_param_match(name) is not None):
            return None
        if eq:
            if not (value.isalnum() or _uri_param_match(value) is not None):
                return None
            items.append((name, value))
        else:
            items.append((name, None))
    params = Params.__new__(Params)
    params._items = tuple(items)
    return params


def _ascii_hostname(host: str) -> bool:
    """``HOSTNAME`` (a hostname or IPv4 address) for a host known to be ASCII."""
    # The usual names and addresses are letters, digits and dots, not starting with a dot.
    if host.replace(".", "0").isalnum() and host[0] != ".":
        return True
    return _HOSTNAME_RE.fullmatch(host) is not None


def _ascii_port(digits: str) -> int:
    """The port of ``:<digits>`` (1 to 5 ASCII digits, at most 65535), else -1."""
    if 0 < len(digits) <= 5 and digits.isdigit():
        port = int(digits)
        if port <= 65535:
            return port
    return -1


def parse_params(text: str, *, uri: bool = False) -> Params:
    """Parse ``a=b;c;d="q"`` (the text after the first ``;``).

    Header parameters (``uri=False``) allow LWS around ``=`` and quoted values; URI parameters
    use the stricter paramchar set (§19.1.1), where names may be %-escaped.
    """
    items: list[tuple[str, str | None]] = []
    pieces = text.split(";") if uri or '"' not in text else split_top(text, ";")
    check = _PARAMCHARS_RE.fullmatch if uri else _token_match
    for piece in pieces:
        eq = piece.find("=")
        if eq < 0:
            name, value = piece.strip(LWS), None
        else:
            name, value = piece[:eq].strip(LWS), piece[eq + 1 :].strip(LWS)
        if check(name) is None:
            raise ParseError(f"bad parameter {excerpt(piece)}")
        if value is not None and check(value) is None and (uri or not _good_value(value)):
            raise ParseError(f"bad parameter value in {excerpt(piece)}")
        items.append((name, value))
    return Params(items)


def _good_value(value: str) -> bool:
    # gen-value = token / host / quoted-string (§25.1); host allows an IPv6 reference.
    if not value:
        return False
    if value[0] == '"':
        return scan_quoted(value, 0) == len(value)
    if value[0] == "[":
        return value[-1] == "]" and _ipv6_ok(value[1:-1])
    # RFC 3261 via-received allows a bare IPv6 address (RFC 5118 §4.5).
    return is_token(value) or _HOSTNAME_RE.fullmatch(value) is not None or _ipv6_ok(value)


def _ipv6_ok(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def parse_hostport(text: str) -> tuple[str, int | None]:
    """Split ``host[:port]``; an IPv6 reference loses its brackets (RFC 5118 §4.3/§4.4)."""
    port: int | None = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or not _ipv6_ok(text[1:end]):
            raise ParseError(f"bad IPv6 reference in {excerpt(text)}")
        host = text[1:end]
        rest = text[end + 1 :]
        if rest:
            if rest[0] != ":":
                raise ParseError(f"junk after IPv6 reference in {excerpt(text)}")
            port = _port(rest[1:], text)
        return host, port
    colon = text.find(":")
    if colon >= 0:
        host = text[:colon]
        port = _port(text[colon + 1 :], text)
    else:
        host = text
    if not _HOSTNAME_RE.fullmatch(host):
        raise ParseError(f"bad host in {excerpt(text)}")
    return host, port


def _port(text: str, where: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 5 or int(text) > 65535:
        raise ParseError(f"bad port in {excerpt(where)}")
    return int(text)


def format_host(host: str) -> str:
    """Put brackets around an IPv6 address."""
    return f"[{host}]" if ":" in host else host
