# URIs and addresses: RFC 3261 §19.1 (SIP and SIPS URIs), §20.10 / §25.1 (name-addr and
# addr-spec), RFC 3966 (tel URIs), RFC 5118 / RFC 5954 (IPv6 references) and generic
# parameters (§25.1 generic-param).
#
# Theory of operation: values are kept *as written* (escaped, original case) so a message can
# be forwarded without changing a byte; ``unescape()`` gives the decoded text when an
# application needs it (RFC 4475 §3.1.1.3/3.1.1.4: unescape exactly once, never cut at %00).
# Parsing is a handful of ``str.find`` calls: the user part ends at the first "@" (the grammar
# allows no "@" elsewhere), the host ends at ";" or "?", and IPv6 references are checked with
# the stdlib ``ipaddress`` module. A URI whose scheme is not sip/sips/tel is kept opaque as an
# AbsoluteUri; deciding whether to answer 416 is the validator's job, not the parser's.
"""SIP/SIPS/tel/absolute URIs, generic parameters and name-addr / addr-spec."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from typing import Any, Final, Union, overload

import attrs

from .abnf import (
    LWS,
    STRING_FAST_PATHS,
    TOKEN_CHARS,
    TOKEN_RE,
    is_token,
    quote,
    scan_quoted,
    split_top,
    unquote,
)
from .errors import ParseError

__all__ = [
    "HOSTNAME",
    "SIMPLE_PARAMS",
    "WILDCARD",
    "AbsoluteUri",
    "NameAddress",
    "Params",
    "SipUri",
    "TelUri",
    "Uri",
    "format_host",
    "parse_hostport",
    "parse_name_addr",
    "parse_params",
    "parse_uri",
    "simple_params",
    "unescape",
]

# user / password / uri-parameter / header characters (§25.1), escapes checked separately.
_USER_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+")
_PASSWORD_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*")
_PARAMCHARS_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-Fa-f]{2})+")
_HEADERCHARS_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-_.]*[A-Za-z0-9.])?")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_OPAQUE_BAD_RE = re.compile(r"[\x00-\x20\x7f<>\"]")
_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_token_match = TOKEN_RE.fullmatch

# Building blocks of the fast paths (regex source). Each fast path accepts a subset of what
# the general parser accepts, gives the same value, and hands everything else to it.
HOSTNAME = r"[A-Za-z0-9](?:[A-Za-z0-9\-_.]*[A-Za-z0-9.])?"
"""A hostname or IPv4 address, as ``parse_hostport`` accepts it (regex source)."""
SIMPLE_PARAMS = rf"(?:;[{TOKEN_CHARS}]+(?:=[{TOKEN_CHARS}]+)?)*"
"""``;name[=value]...`` with token names and values, no LWS (regex source)."""
_URI_PARAMCHARS = r"A-Za-z0-9\-_.!~*'()\[\]/:&+$"
# sip:/sips: with an optional unescaped user (no password), a hostname or IPv4 address, an
# optional port and unescaped URI parameters; no headers.
_SIP_FAST = re.compile(
    r"(sips?):(?:([A-Za-z0-9\-_.!~*'()&=+$,;?/]+)@)?"
    rf"({HOSTNAME})(?::([0-9]{{1,5}}))?((?:;[{_URI_PARAMCHARS}]+(?:=[{_URI_PARAMCHARS}]+)?)*)"
).fullmatch
# ["display name" | token words] <uri>;params, or a plain addr-spec uri;params.
_NAME_ADDR_FAST = re.compile(
    rf'(?:([{TOKEN_CHARS}]+(?: [{TOKEN_CHARS}]+)*) ?|"([^"\\]*)" ?)?<([^>]*)>({SIMPLE_PARAMS})'
).fullmatch
# The string fast paths' checks of URI parameters and user parts (unescaped only).
_uri_param_match = re.compile(f"[{_URI_PARAMCHARS}]+").fullmatch
_uri_user_match = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/]+").fullmatch
_ADDR_SPEC_FAST = re.compile(rf"([^\s<>\";,?*][^\s<>\";,?]*)({SIMPLE_PARAMS})").fullmatch


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
            raise ParseError(f"bad parameter {piece!r}")
        if value is not None and check(value) is None and (uri or not _good_value(value)):
            raise ParseError(f"bad parameter value in {piece!r}")
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
            raise ParseError(f"bad IPv6 reference in {text!r}")
        host = text[1:end]
        rest = text[end + 1 :]
        if rest:
            if rest[0] != ":":
                raise ParseError(f"junk after IPv6 reference in {text!r}")
            port = _port(rest[1:], text)
        return host, port
    colon = text.find(":")
    if colon >= 0:
        host = text[:colon]
        port = _port(text[colon + 1 :], text)
    else:
        host = text
    if not _HOSTNAME_RE.fullmatch(host):
        raise ParseError(f"bad host in {text!r}")
    return host, port


def _port(text: str, where: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 5 or int(text) > 65535:
        raise ParseError(f"bad port in {where!r}")
    return int(text)


def format_host(host: str) -> str:
    """Put brackets around an IPv6 address."""
    return f"[{host}]" if ":" in host else host


class SipUri:
    """A ``sip:`` or ``sips:`` URI (§19.1). Fields are kept as written (still escaped).
    Immutable, compares and hashes by value."""

    # A plain class, not attrs: mypyc compiles it to a native class (it cannot compile an
    # attrs class's generated __init__). The fields are read-only properties over private
    # slots (Final: no setter in the compiled build).
    __slots__ = ("_headers", "_host", "_params", "_password", "_port", "_scheme", "_user")
    __match_args__: Final = ("host", "user", "password", "port", "params", "headers", "scheme")

    def __init__(  # noqa: PLR0917  (positional, as the attrs class it replaces)
        self,
        host: str,
        user: str | None = None,
        password: str | None = None,
        port: int | None = None,
        params: Params = EMPTY_PARAMS,
        headers: tuple[tuple[str, str], ...] = (),
        scheme: str = "sip",
    ) -> None:
        self._host: Final = host
        self._user: Final = user
        self._password: Final = password
        self._port: Final = port
        self._params: Final = params
        self._headers: Final = headers
        self._scheme: Final = scheme

    @property
    def host(self) -> str:
        return self._host

    @property
    def user(self) -> str | None:
        return self._user

    @property
    def password(self) -> str | None:
        return self._password

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def params(self) -> Params:
        return self._params

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        return self._headers

    @property
    def scheme(self) -> str:
        return self._scheme

    @property
    def secure(self) -> bool:
        return self._scheme == "sips"

    @property
    def transport(self) -> str | None:
        return self._params.get("transport")

    @property
    def host_port(self) -> tuple[str, int | None]:
        return self._host, self._port

    def evolve(self, **changes: Any) -> SipUri:
        """A copy with some fields changed (as ``attrs.evolve`` did)."""
        return SipUri(
            changes.pop("host", self._host),
            changes.pop("user", self._user),
            changes.pop("password", self._password),
            changes.pop("port", self._port),
            changes.pop("params", self._params),
            changes.pop("headers", self._headers),
            changes.pop("scheme", self._scheme),
            **changes,
        )

    def _key(
        self,
    ) -> tuple[str, str | None, str | None, int | None, Params, tuple[tuple[str, str], ...], str]:
        return (
            self._host,
            self._user,
            self._password,
            self._port,
            self._params,
            self._headers,
            self._scheme,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SipUri):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> tuple[Any, ...]:
        return SipUri, self._key()

    def __repr__(self) -> str:
        return (
            f"SipUri(host={self._host!r}, user={self._user!r}, password={self._password!r}, "
            f"port={self._port!r}, params={self._params!r}, headers={self._headers!r}, "
            f"scheme={self._scheme!r})"
        )

    def __str__(self) -> str:
        out = [self._scheme, ":"]
        if self._user is not None:
            out.append(self._user)
            if self._password is not None:
                out += (":", self._password)
            out.append("@")
        out.append(format_host(self._host))
        if self._port is not None:
            out.append(f":{self._port}")
        if self._params:
            out.append(str(self._params))
        if self._headers:
            out.append("?" + "&".join(f"{k}={v}" for k, v in self._headers))
        return "".join(out)


@attrs.frozen
class TelUri:
    """A ``tel:`` URI (RFC 3966): the number as written and its parameters."""

    number: str
    params: Params = EMPTY_PARAMS

    scheme = "tel"
    password = None
    port = None
    host = ""

    @property
    def user(self) -> str:
        return self.number

    def __str__(self) -> str:
        return f"tel:{self.number}{self.params}"


@attrs.frozen
class AbsoluteUri:
    """A URI of another scheme (``http:``, ``urn:``, ...), kept opaque (§25.1 absoluteURI)."""

    scheme: str
    opaque: str

    user = None
    password = None
    port = None
    host = ""
    params = EMPTY_PARAMS

    def __str__(self) -> str:
        if self.scheme == "*":
            return "*"
        return f"{self.scheme}:{self.opaque}"


Uri = Union[SipUri, TelUri, AbsoluteUri]  # noqa: UP007  (a runtime alias)

WILDCARD = AbsoluteUri("*", "")
"""The URI of a ``Contact: *`` (§10.2.2)."""


def parse_uri(text: str) -> Uri:
    """Parse a URI; raises ParseError (status 400) if it is malformed."""
    if STRING_FAST_PATHS:
        sip = _fast_sip_uri(text)
        return _parse_uri(text) if sip is None else sip
    m = _SIP_FAST(text)
    if m is not None:
        scheme, user, host, port, ptext = m.groups()
        if port is None or int(port) <= 65535:
            return SipUri(
                host,
                user,
                None,
                None if port is None else int(port),
                simple_params(ptext),
                (),
                scheme,
            )
    return _parse_uri(text)


def _fast_sip_uri(text: str) -> SipUri | None:
    """The string-operation fast path of ``parse_uri`` (None: not for it)."""
    # Fast path (string operations): sip:/sips:, an optional unescaped user (no password), a
    # hostname or IPv4 address, an optional port, unescaped parameters, no headers. Whatever
    # it accepts, _parse_uri accepts with the same value; anything else goes to it.
    if text.startswith("sip:"):
        scheme = "sip"
        rest = text[4:]
    elif text.startswith("sips:"):
        scheme = "sips"
        rest = text[5:]
    else:
        return None
    if text.isascii():
        user: str | None = None
        at = rest.find("@")
        if at >= 0:
            user = rest[:at]
            rest = rest[at + 1 :]
        if user is None or user.isalnum() or _uri_user_match(user) is not None:
            semi = rest.find(";")
            host = rest if semi < 0 else rest[:semi]
            port: int | None = None
            colon = host.find(":")
            if colon >= 0:
                port = _ascii_port(host[colon + 1 :])
                host = host[:colon]
            if host and port != -1 and _ascii_hostname(host):
                params = EMPTY_PARAMS if semi < 0 else _uri_params(rest[semi:])
                if params is not None:
                    return SipUri(host, user, None, port, params, (), scheme)
    return None


def _parse_uri(text: str) -> Uri:
    """``parse_uri`` without the fast path (the general parser)."""
    colon = text.find(":")
    if colon <= 0 or not _SCHEME_RE.fullmatch(text, 0, colon):
        raise ParseError(f"bad URI {text!r}: no scheme")
    scheme = text[:colon].lower()
    if _OPAQUE_BAD_RE.search(text) is not None:
        raise ParseError(f"bad URI {text!r}: whitespace or forbidden character")
    rest = text[colon + 1 :]
    if scheme in ("sip", "sips"):
        return _parse_sip(scheme, rest, text)
    if scheme == "tel":
        semi = rest.find(";")
        number = rest if semi < 0 else rest[:semi]
        if not number:
            raise ParseError(f"bad tel URI {text!r}")
        return TelUri(
            number, parse_params(rest[semi + 1 :], uri=True) if semi >= 0 else EMPTY_PARAMS
        )
    if not rest:
        raise ParseError(f"bad URI {text!r}: empty after scheme")
    return AbsoluteUri(text[:colon], rest)  # kept as written: it is opaque to us


def _parse_sip(scheme: str, rest: str, text: str) -> SipUri:
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo = rest[:at]
        rest = rest[at + 1 :]
        pc = userinfo.find(":")
        if pc >= 0:
            user, password = userinfo[:pc], userinfo[pc + 1 :]
            if not _PASSWORD_RE.fullmatch(password):
                raise ParseError(f"bad password in URI {text!r}")
        else:
            user = userinfo
        if not _USER_RE.fullmatch(user):
            raise ParseError(f"bad user part in URI {text!r}")
    headers: tuple[tuple[str, str], ...] = ()
    q = rest.find("?")
    if q >= 0:
        headers = _parse_uri_headers(rest[q + 1 :], text)
        rest = rest[:q]
    params = EMPTY_PARAMS
    semi = rest.find(";")
    if semi >= 0:
        params = parse_params(rest[semi + 1 :], uri=True)
        rest = rest[:semi]
    host, port = parse_hostport(rest)
    return SipUri(host, user, password, port, params, headers, scheme)


def _parse_uri_headers(text: str, where: str) -> tuple[tuple[str, str], ...]:
    out = []
    for piece in text.split("&"):
        name, eq, value = piece.partition("=")
        if not eq or not name or not _HEADERCHARS_RE.fullmatch(name + value):
            raise ParseError(f"bad URI header {piece!r} in {where!r}")
        out.append((name, value))
    return tuple(out)


class NameAddress:
    """A name-addr or addr-spec with header parameters: From, To, Contact, Route, ... (§20).

    ``display_name`` is unquoted (``None`` if absent). A ``Contact: *`` has ``uri is WILDCARD``.
    ``uri`` may be given as text: it is parsed on first read (ParseError if malformed), so
    reading only a tag never pays for the URI.
    """

    __slots__ = ("_uri", "_uri_text", "display_name", "params")

    def __init__(
        self, uri: Uri | str, display_name: str | None = None, params: Params = EMPTY_PARAMS
    ) -> None:
        if isinstance(uri, str):
            self._uri: Uri | None = None
            self._uri_text = uri
        else:
            self._uri = uri
            self._uri_text = ""
        self.display_name = display_name
        self.params = params

    @property
    def uri(self) -> Uri:
        uri = self._uri
        if uri is None:
            uri = self._uri = parse_uri(self._uri_text)
        return uri

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @property
    def is_wildcard(self) -> bool:
        return self._uri is WILDCARD

    @property
    def expires(self) -> int | None:
        v = self.params.get("expires")
        if v is None or not v.isdigit() or not v.isascii() or len(v) > 10:
            return None
        return int(v)

    @property
    def q(self) -> float | None:
        v = self.params.get("q")
        try:
            return None if v is None else float(v)
        except ValueError:
            return None

    def evolve(self, **changes: Any) -> NameAddress:
        return NameAddress(
            changes.pop("uri", self._uri if self._uri is not None else self._uri_text),
            changes.pop("display_name", self.display_name),
            changes.pop("params", self.params),
            **changes,
        )

    def with_tag(self, tag: str) -> NameAddress:
        return self.evolve(params=self.params.with_param("tag", tag))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NameAddress):
            return NotImplemented
        return (self.uri, self.display_name, self.params) == (
            other.uri,
            other.display_name,
            other.params,
        )

    def __hash__(self) -> int:
        return hash((self.uri, self.display_name, self.params))

    def __repr__(self) -> str:
        return f"NameAddress({self!s})"

    def __str__(self) -> str:
        if self._uri is WILDCARD:
            return f"*{self.params}"
        name = "" if self.display_name is None else quote(self.display_name) + " "
        uri = self._uri_text if self._uri is None else str(self._uri)
        return f"{name}<{uri}>{self.params}"


def parse_name_addr(text: str) -> NameAddress:
    """Parse ``["display"] <uri>;params`` or ``uri;params`` (addr-spec), or ``*``."""
    if STRING_FAST_PATHS:
        addr = _fast_name_addr(text)
        if addr is not None:
            return addr
    else:
        m = _NAME_ADDR_FAST(text)
        if m is not None:
            words, quoted, uri_text, ptext = m.groups()
            return NameAddress(uri_text, quoted if words is None else words, simple_params(ptext))
    m = _ADDR_SPEC_FAST(text)
    if m is not None:
        uri_text, ptext = m.groups()
        return NameAddress(uri_text, None, simple_params(ptext))
    return _parse_name_addr(text)


def _fast_name_addr(text: str) -> NameAddress | None:
    """The string-operation fast path of ``parse_name_addr`` for a name-addr (None: not for
    it)."""
    # Fast path (string operations): a display name of single-spaced tokens or a quoted string
    # without quoted-pairs, at most one space, <uri>, token parameters. Whatever it accepts,
    # _parse_name_addr accepts with the same value; anything else goes on.
    display: str | None = None
    if text.startswith('"'):
        q = text.find('"', 1)
        lt = q + 1
        if text.startswith(" <", lt):
            lt += 1
        if q > 0 and text.startswith("<", lt) and text.find("\\", 1, q) < 0:
            display = text[1:q]
        else:
            lt = -1
    else:
        lt = text.find("<")
        if lt > 0:
            words = text[: lt - 1] if text[lt - 1] == " " else text[:lt]
            if words and all(is_token(w) for w in words.split(" ")):
                display = words
            else:
                lt = -1
    if lt >= 0:
        gt = text.find(">", lt)
        if gt > 0:
            params = _token_params(text[gt + 1 :])
            if params is not None:
                return NameAddress(text[lt + 1 : gt], display, params)
    return None


def _parse_name_addr(text: str) -> NameAddress:
    """``parse_name_addr`` without the fast paths (the general parser)."""
    s = text.strip(LWS)
    display: str | None = None
    if s.startswith('"'):
        end = scan_quoted(s, 0)
        display = unquote(s[:end])
        s = s[end:].lstrip(LWS)
        if not s.startswith("<"):
            raise ParseError(f"expected '<' after display name in {text!r}")
        lt = 0
    else:
        lt = s.find("<")
    if lt >= 0:
        gt = s.find(">", lt)
        if gt < 0:
            raise ParseError(f"missing '>' in {text!r}")
        if lt > 0:
            words = s[:lt].split()
            if not all(is_token(w) for w in words):
                raise ParseError(f"display name must be tokens or quoted in {text!r}")
            display = " ".join(words) if words else None
        uri_text = s[lt + 1 : gt]
        after = s[gt + 1 :].lstrip(LWS)
    elif s.startswith("*"):
        uri_text = "*"
        after = s[1:].lstrip(LWS)
    else:
        semi = s.find(";")
        uri_text = (s if semi < 0 else s[:semi]).rstrip(LWS)
        after = "" if semi < 0 else s[semi:]
        # §20: a URI with ',', '?' or ';' must be in angle brackets (RFC 4475 regbadct).
        if "?" in uri_text or "," in uri_text:
            raise ParseError(f"URI with '?' or ',' must be in <> in {text!r}")
    if after:
        if after[0] != ";":
            raise ParseError(f"junk after address in {text!r}")
        params = parse_params(after[1:])
    else:
        params = EMPTY_PARAMS
    return NameAddress(WILDCARD if uri_text == "*" and lt < 0 else uri_text, display, params)
