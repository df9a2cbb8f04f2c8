"""Digest header values (RFC 3261 §22, RFC 7616 §3.3-3.4): ``WWW-Authenticate`` /
``Proxy-Authenticate`` challenges and ``Authorization`` / ``Proxy-Authorization`` credentials.

``<scheme> <auth-param> *("," <auth-param>)``, ``name = token / quoted-string``; names are
case-insensitive, quoted strings may contain ``\\"`` escapes. :func:`parse_challenge` /
:func:`parse_credentials` keep every parameter (unknown ones too) in order, so ``str()`` gives
the header value back; malformed values raise :class:`~trio_sip.proto.errors.ParseError`
(400). The arithmetic is in :mod:`trio_sip.proto.auth_digest`; :mod:`trio_sip.proto.auth` is
the public face of the three modules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs

from ..errors import AuthenticationFailed as AuthenticationFailed
from .abnf import excerpt
from .errors import ParseError

__all__ = [
    "AuthParam",
    "AuthenticationFailed",
    "Challenge",
    "Credentials",
    "parse_challenge",
    "parse_credentials",
]

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# name = ( quoted-string / bare value ), then a comma (empty list elements allowed) or the end.
_PARAM = re.compile(
    r"([A-Za-z0-9\-.!%*_+`'~]+)\s*=\s*"
    r'(?:"((?:[^"\\\r\n]|\\[^\r\n])*)"|([^\s,"]+))'
    r"\s*(?:,[\s,]*|\Z)"
)
_UNESCAPE = re.compile(r"\\(.)")
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*\Z")
_WS = " \t\r\n"


def _quote(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"a quoted-string cannot contain CR or LF: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@attrs.frozen(slots=True)
class AuthParam:
    """One ``name=value``; ``quoted`` says whether it is written as a quoted-string."""

    name: str
    value: str
    quoted: bool = True

    def __str__(self) -> str:
        return f"{self.name}={_quote(self.value) if self.quoted else self.value}"


def _parse(value: str, what: str) -> tuple[str, tuple[AuthParam, ...], str | None]:
    """Split ``value`` into scheme, auth-params and (for non-Digest schemes) a token68."""

    def fail(why: str) -> ParseError:
        return ParseError(f"malformed {what} header value ({why}): {excerpt(value)}")

    text = value.strip(_WS)
    m = _TOKEN.match(text)
    if not m:
        raise fail("no auth scheme")
    scheme, pos = m.group(), m.end()
    rest = text[pos:].lstrip(_WS)
    if pos < len(text) and rest == text[pos:]:
        raise fail("no space after the scheme")
    if not rest:
        return scheme, (), None
    if scheme.lower() != "digest" and _TOKEN68.match(rest) and not re.match(r"[^=]+=[^=]", rest):
        return scheme, (), rest
    params: list[AuthParam] = []
    seen: set[str] = set()  # a set, not list.count per name: linear in the parameters
    pos = 0
    end = len(rest)
    while pos < end:
        m = _PARAM.match(rest, pos)
        if not m:
            raise fail(f"cannot read a parameter at {excerpt(rest[pos : pos + 40], 30)}")
        name = m.group(1)
        key = name.lower()
        if key in seen:
            raise fail(f"parameter {excerpt(key, 30)} appears twice")
        seen.add(key)
        quoted = m.group(2) is not None
        text = _UNESCAPE.sub(r"\1", m.group(2)) if quoted else m.group(3)
        params.append(AuthParam(name, text, quoted))
        pos = m.end()
    return scheme, tuple(params), None


class _Param:
    """An auth-param read as an attribute: its unquoted value, None when absent."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: _AuthValue | None, owner: object = None) -> str | None:
        return None if obj is None else obj.get(self.name)


@attrs.frozen(slots=True)
class _AuthValue:
    scheme: str
    params: tuple[AuthParam, ...] = ()
    token68: str | None = None

    def __str__(self) -> str:
        if self.token68 is not None:
            return f"{self.scheme} {self.token68}"
        return " ".join((self.scheme, ", ".join(map(str, self.params)))).rstrip()

    @property
    def is_digest(self) -> bool:
        return self.scheme.lower() == "digest"

    def get(self, name: str) -> str | None:
        """The value of parameter ``name`` (case-insensitive), unquoted; None if absent."""
        name = name.lower()
        return next((p.value for p in self.params if p.name.lower() == name), None)

    realm = _Param("realm")
    nonce = _Param("nonce")
    opaque = _Param("opaque")

    @property
    def algorithm(self) -> str:
        """The algorithm token as written; MD5 when absent (RFC 7616 §3.3)."""
        return self.get("algorithm") or "MD5"

    @property
    def userhash(self) -> bool:
        return (self.get("userhash") or "").lower() == "true"


@attrs.frozen(slots=True)
class Challenge(_AuthValue):
    """A ``WWW-Authenticate`` / ``Proxy-Authenticate`` value."""

    @property
    def qop_options(self) -> tuple[str, ...]:
        """The offered qop values, lower-cased (empty: RFC 2069 style, no qop)."""
        qop = self.get("qop") or ""
        return tuple(q.strip().lower() for q in qop.split(",") if q.strip())

    @property
    def stale(self) -> bool:
        return (self.get("stale") or "").lower() == "true"

    @property
    def domain(self) -> tuple[str, ...]:
        return tuple((self.get("domain") or "").split())

    @classmethod
    def digest(
        cls,
        realm: str,
        nonce: str,
        *,
        algorithm: str = "MD5",
        qop: Iterable[str] = ("auth",),
        opaque: str | None = None,
        stale: bool = False,
        domain: Iterable[str] = (),
    ) -> Challenge:
        """A server's Digest challenge: realm, domain, qop, nonce, opaque, stale, algorithm."""
        params = [AuthParam("realm", realm)]
        if domain := " ".join(domain):
            params.append(AuthParam("domain", domain))
        if qop_text := ",".join(qop):
            params.append(AuthParam("qop", qop_text))
        params.append(AuthParam("nonce", nonce))
        if opaque is not None:
            params.append(AuthParam("opaque", opaque))
        if stale:
            params.append(AuthParam("stale", "TRUE", quoted=False))
        params.append(AuthParam("algorithm", algorithm, quoted=False))
        return cls("Digest", tuple(params))


@attrs.frozen(slots=True)
class Credentials(_AuthValue):
    """An ``Authorization`` / ``Proxy-Authorization`` value."""

    username = _Param("username")
    uri = _Param("uri")
    response = _Param("response")
    cnonce = _Param("cnonce")

    @property
    def qop(self) -> str | None:
        qop = self.get("qop")
        return qop.lower() if qop else None

    @property
    def nc(self) -> int | None:
        nc = self.get("nc")
        return int(nc, 16) if nc else None


def parse_challenge(value: str) -> Challenge:
    """Parse a ``WWW-Authenticate`` / ``Proxy-Authenticate`` value. Raises ParseError."""
    scheme, params, token68 = _parse(value, "challenge")
    challenge = Challenge(scheme, params, token68)
    if challenge.is_digest:
        missing = [n for n in ("realm", "nonce") if challenge.get(n) is None]
        if missing:
            raise ParseError(f"Digest challenge without {' and '.join(missing)}: {excerpt(value)}")
    return challenge


def parse_credentials(value: str) -> Credentials:
    """Parse an ``Authorization`` / ``Proxy-Authorization`` value. Raises ParseError."""
    scheme, params, token68 = _parse(value, "credentials")
    creds = Credentials(scheme, params, token68)
    if creds.is_digest:
        required = ["realm", "nonce", "uri", "response"]
        if creds.get("username*") is None:
            required.insert(0, "username")
        if creds.get("qop") is not None:
            required += ["cnonce", "nc"]
        missing = [n for n in required if creds.get(n) is None]
        if missing:
            raise ParseError(f"Digest credentials without {', '.join(missing)}: {excerpt(value)}")
        nc = creds.get("nc")
        if nc is not None and not re.fullmatch(r"[0-9a-fA-F]{8}", nc):
            raise ParseError(f"Digest nc must be 8 hex digits, not {excerpt(nc, 20)}")
    return creds
