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
#
# Layout: the pieces URIs share with other grammar (parameters, host[:port], %-escapes, and
# their fast-path subsets) are in ``uri_parts.py``; this module re-exports them. The fast paths
# of ``parse_uri`` and ``parse_name_addr`` stay here, beside the general parsers they must
# agree with, and because they build SipUri / NameAddress, whose lazy ``.uri`` calls
# ``parse_uri`` back (a module of their own would be an import cycle).
"""SIP/SIPS/tel/absolute URIs, generic parameters and name-addr / addr-spec."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, TypedDict, Union, Unpack

import attrs

from .abnf import (
    LWS,
    STRING_FAST_PATHS,
    TOKEN_CHARS,
    excerpt,
    is_token,
    quote,
    scan_quoted,
    unquote,
)
from .errors import ParseError
from .uri_parts import _URI_PARAMCHARS as _URI_PARAMCHARS
from .uri_parts import EMPTY_PARAMS as EMPTY_PARAMS
from .uri_parts import HOSTNAME as HOSTNAME
from .uri_parts import SIMPLE_PARAMS as SIMPLE_PARAMS
from .uri_parts import Params as Params
from .uri_parts import _ascii_hostname as _ascii_hostname
from .uri_parts import _ascii_port as _ascii_port
from .uri_parts import _token_params as _token_params
from .uri_parts import _uri_params as _uri_params
from .uri_parts import format_host as format_host
from .uri_parts import parse_hostport as parse_hostport
from .uri_parts import parse_params as parse_params
from .uri_parts import simple_params as simple_params
from .uri_parts import unescape as unescape

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

# user / password / header characters (§25.1), escapes checked separately.
_USER_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+")
_PASSWORD_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*")
_HEADERCHARS_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_OPAQUE_BAD_RE = re.compile(r"[\x00-\x20\x7f<>\"]")

# The fast paths (uri_parts.py has their building blocks). Each accepts a subset of what the
# general parser accepts, gives the same value, and hands everything else to it.
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
# The string fast path's check of user parts (unescaped only).
_uri_user_match = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/]+").fullmatch
_ADDR_SPEC_FAST = re.compile(rf"([^\s<>\";,?*][^\s<>\";,?]*)({SIMPLE_PARAMS})").fullmatch


class SipUriChanges(TypedDict, total=False):
    """The fields ``SipUri.evolve`` changes."""

    host: str
    user: str | None
    password: str | None
    port: int | None
    params: Params
    headers: tuple[tuple[str, str], ...]
    scheme: str


def no_other_changes(changes: Mapping[str, object]) -> None:
    """``evolve`` with a field the class does not have: TypeError, as ``attrs.evolve``."""
    if changes:
        raise TypeError(f"evolve() got unexpected keyword arguments: {sorted(changes)}")


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

    def evolve(self, **changes: Unpack[SipUriChanges]) -> SipUri:
        """A copy with some fields changed (as ``attrs.evolve`` did)."""
        new = SipUri(
            changes.pop("host", self._host),
            changes.pop("user", self._user),
            changes.pop("password", self._password),
            changes.pop("port", self._port),
            changes.pop("params", self._params),
            changes.pop("headers", self._headers),
            changes.pop("scheme", self._scheme),
        )
        no_other_changes(changes)
        return new

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
        raise ParseError(f"bad URI {excerpt(text)}: no scheme")
    scheme = text[:colon].lower()
    if _OPAQUE_BAD_RE.search(text) is not None:
        raise ParseError(f"bad URI {excerpt(text)}: whitespace or forbidden character")
    rest = text[colon + 1 :]
    if scheme in ("sip", "sips"):
        return _parse_sip(scheme, rest, text)
    if scheme == "tel":
        semi = rest.find(";")
        number = rest if semi < 0 else rest[:semi]
        if not number:
            raise ParseError(f"bad tel URI {excerpt(text)}")
        return TelUri(
            number, parse_params(rest[semi + 1 :], uri=True) if semi >= 0 else EMPTY_PARAMS
        )
    if not rest:
        raise ParseError(f"bad URI {excerpt(text)}: empty after scheme")
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
                raise ParseError(f"bad password in URI {excerpt(text)}")
        else:
            user = userinfo
        if not _USER_RE.fullmatch(user):
            raise ParseError(f"bad user part in URI {excerpt(text)}")
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
            raise ParseError(f"bad URI header {excerpt(piece)} in {excerpt(where)}")
        out.append((name, value))
    return tuple(out)


class NameAddressChanges(TypedDict, total=False):
    """The fields ``NameAddress.evolve`` changes."""

    uri: Uri | str
    display_name: str | None
    params: Params


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

    def evolve(self, **changes: Unpack[NameAddressChanges]) -> NameAddress:
        """A copy with some of ``uri``, ``display_name``, ``params`` changed."""
        new = NameAddress(
            changes.pop("uri", self._uri if self._uri is not None else self._uri_text),
            changes.pop("display_name", self.display_name),
            changes.pop("params", self.params),
        )
        no_other_changes(changes)
        return new

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
            raise ParseError(f"expected '<' after display name in {excerpt(text)}")
        lt = 0
    else:
        lt = s.find("<")
    if lt >= 0:
        gt = s.find(">", lt)
        if gt < 0:
            raise ParseError(f"missing '>' in {excerpt(text)}")
        if lt > 0:
            words = s[:lt].split()
            if not all(is_token(w) for w in words):
                raise ParseError(f"display name must be tokens or quoted in {excerpt(text)}")
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
            raise ParseError(f"URI with '?' or ',' must be in <> in {excerpt(text)}")
    if after:
        if after[0] != ";":
            raise ParseError(f"junk after address in {excerpt(text)}")
        params = parse_params(after[1:])
    else:
        params = EMPTY_PARAMS
    return NameAddress(WILDCARD if uri_text == "*" and lt < 0 else uri_text, display, params)
