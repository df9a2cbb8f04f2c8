"""Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760), sans-I/O.

Theory of operation
-------------------
A server challenges a request with 401 + ``WWW-Authenticate`` (a UAS or registrar) or
407 + ``Proxy-Authenticate`` (a proxy); the client repeats the request with ``Authorization``
or ``Proxy-Authorization`` "for each realm" it was challenged for (§22.3).

* Header values: ``<scheme> <auth-param> *("," <auth-param>)``, ``name = token /
  quoted-string``; names are case-insensitive, quoted strings may contain ``\\"`` escapes.
  :func:`parse_challenge` / :func:`parse_credentials` keep every parameter (unknown ones too)
  in order, so ``str()`` gives the header value back; malformed values raise
  :class:`~trio_sip.proto.errors.ParseError` (400).
* The response (RFC 7616 §3.4.1), with ``H`` the algorithm's hash in lower-case hex::

      A1 = username ":" realm ":" password              (-sess: H(A1) ":" nonce ":" cnonce)
      A2 = method ":" uri                               (auth-int: ... ":" H(body))
      response = H(H(A1) ":" nonce ":" nc ":" cnonce ":" qop ":" H(A2))
      response = H(H(A1) ":" nonce ":" H(A2))            (no qop: RFC 2069 compatibility)

* Algorithms MD5, SHA-256 and SHA-512-256, each also ``-sess``; with several challenges for
  one realm "the UAC MUST use the topmost header field value that it supports", preferring
  SHA-512-256, then SHA-256, then MD5 (RFC 8760 §2.4).
* qop: ``auth`` when offered, else ``auth-int`` (then the body is hashed into A2).
* "nc ... MUST be incremented for each request that uses the same nonce" (RFC 7616 §3.4);
  cnonces come from an injected :class:`random.Random`. The client keeps the challenge, so
  later requests (REGISTER refreshes) are authorised up front with the next nonce-count.
* RFC 7616 §3.3: ``stale=true`` means the nonce expired but the credentials were good: retry
  with the new nonce "without re-prompting the user". A new challenge for a realm the request
  already carried credentials for, without stale=true, means the credentials were refused.

Servers use :meth:`Challenge.digest` to build challenges, :func:`verify` to check answers and
:func:`make_nonce` / :func:`check_nonce` for stateless, HMAC-protected, time-limited nonces.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import random
import re
from collections.abc import Iterable, Mapping
from typing import Final

import attrs

from .errors import ParseError, SipError

__all__ = [
    "ALGORITHMS",
    "AuthParam",
    "AuthenticationFailed",
    "Challenge",
    "CredentialStore",
    "Credentials",
    "DigestClient",
    "Ha1",
    "NonceStatus",
    "check_nonce",
    "choose_qop",
    "make_credentials",
    "make_nonce",
    "parse_challenge",
    "parse_credentials",
    "verify",
]

_HASHES: Final = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
#: Supported algorithms, most preferred first (RFC 8760 §2.4).
ALGORITHMS: Final = (
    "SHA-512-256",
    "SHA-512-256-sess",
    "SHA-256",
    "SHA-256-sess",
    "MD5",
    "MD5-sess",
)
_RANK: Final = {name.upper(): i for i, name in enumerate(ALGORITHMS)}
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


class AuthenticationFailed(SipError):
    """Authentication cannot go on: no usable challenge, no credentials, or they were refused."""

    def __init__(self, msg: str, *, realm: str | None = None) -> None:
        super().__init__(msg)
        self.realm = realm


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
        return ParseError(f"malformed {what} header value ({why}): {value!r}")

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
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if not m:
            raise fail(f"cannot read a parameter at {rest[pos:]!r}")
        quoted = m.group(2) is not None
        text = _UNESCAPE.sub(r"\1", m.group(2)) if quoted else m.group(3)
        params.append(AuthParam(m.group(1), text, quoted))
        pos = m.end()
    names = [p.name.lower() for p in params]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise fail(f"parameter {duplicates[0]!r} appears twice")
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
            raise ParseError(f"Digest challenge without {' and '.join(missing)}: {value!r}")
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
            raise ParseError(f"Digest credentials without {', '.join(missing)}: {value!r}")
        nc = creds.get("nc")
        if nc is not None and not re.fullmatch(r"[0-9a-fA-F]{8}", nc):
            raise ParseError(f"Digest nc must be 8 hex digits, not {nc!r}")
    return creds


def _hash_of(algorithm: str) -> tuple[str, bool] | None:
    """(hashlib name, is -sess) for a supported algorithm token, else None."""
    name = algorithm.upper()
    sess = name.endswith("-SESS")
    base = name[:-5] if sess else name
    return (_HASHES[base], sess) if base in _HASHES else None


def _h(hash_name: str, data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.new(hash_name, raw).hexdigest()


@attrs.frozen(slots=True)
class Ha1:
    """A stored ``H(username ":" realm ":" password)`` for servers that keep no passwords.

    ``algorithm`` is the base algorithm (MD5, SHA-256, SHA-512-256); the -sess variant uses the
    same stored value.
    """

    hexdigest: str
    algorithm: str = "MD5"

    @classmethod
    def compute(cls, username: str, realm: str, password: str, algorithm: str = "MD5") -> Ha1:
        spec = _hash_of(algorithm)
        if spec is None:
            raise ValueError(f"unsupported digest algorithm {algorithm!r}")
        return cls(_h(spec[0], f"{username}:{realm}:{password}"), algorithm.upper())


def _response(
    spec: tuple[str, bool], ha1: str, nonce: str, cnonce: str, qop: str | None,
    *, nc: str, method: str, uri: str, body: bytes,
) -> str:  # fmt: skip
    """The request-digest of RFC 7616 §3.4.1 (RFC 2069 style when ``qop`` is None)."""
    hash_name, sess = spec
    if sess:
        ha1 = _h(hash_name, f"{ha1}:{nonce}:{cnonce}")
    a2 = f"{method}:{uri}:{_h(hash_name, body)}" if qop == "auth-int" else f"{method}:{uri}"
    ha2 = _h(hash_name, a2)
    if qop:
        return _h(hash_name, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(hash_name, f"{ha1}:{nonce}:{ha2}")


def choose_qop(challenge: Challenge) -> str | None:
    """``auth`` if offered, else ``auth-int``; None for a challenge without qop."""
    options = challenge.qop_options
    if not options:
        return None
    for qop in ("auth", "auth-int"):
        if qop in options:
            return qop
    raise AuthenticationFailed(f"no supported qop in {options}", realm=challenge.realm)


def make_credentials(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nc: int = 1,
    body: bytes = b"",
) -> Credentials:
    """The Digest answer to ``challenge`` for one request (pure: no state, no randomness).

    Parameter order: username, realm, nonce, uri, response, algorithm, cnonce, opaque, qop, nc
    (algorithm only when the challenge named one; cnonce/qop/nc only with a qop).
    """
    realm, nonce = challenge.realm, challenge.nonce
    if not challenge.is_digest or realm is None or nonce is None:
        raise AuthenticationFailed(f"not a usable Digest challenge: {challenge}", realm=realm)
    algorithm, spec = challenge.algorithm, _hash_of(challenge.algorithm)
    if spec is None:
        raise AuthenticationFailed(f"unsupported digest algorithm {algorithm!r}", realm=realm)
    qop, nc_text, hash_name = choose_qop(challenge), f"{nc:08x}", spec[0]
    ha1 = _h(hash_name, f"{username}:{realm}:{password}")
    response = _response(
        spec, ha1, nonce, cnonce, qop, nc=nc_text, method=method, uri=uri, body=body
    )
    shown = _h(hash_name, f"{username}:{realm}") if challenge.userhash else username
    params = [AuthParam("username", shown), AuthParam("realm", realm), AuthParam("nonce", nonce)]
    params += [AuthParam("uri", uri), AuthParam("response", response)]
    if challenge.get("algorithm") is not None:
        params.append(AuthParam("algorithm", algorithm, quoted=False))
    if qop or spec[1]:
        params.append(AuthParam("cnonce", cnonce))
    if challenge.opaque is not None:
        params.append(AuthParam("opaque", challenge.opaque))
    if qop:
        params += [AuthParam("qop", qop, quoted=False), AuthParam("nc", nc_text, quoted=False)]
    if challenge.userhash:
        params.append(AuthParam("userhash", "true", quoted=False))
    return Credentials("Digest", tuple(params))


def verify(
    credentials: Credentials | str,
    method: str,
    password_or_ha1: str | Ha1,
    *,
    body: bytes = b"",
) -> bool:
    """Whether ``credentials`` carry the right response for ``method`` (server side).

    Checks only the digest arithmetic: the caller checks that the realm and username are the
    ones it expects, that ``uri`` names the request, and the nonce with :func:`check_nonce`.
    A password is hashed with the credentials' username; with ``userhash=true`` pass an
    :class:`Ha1` looked up by the hashed username instead.
    """
    creds = parse_credentials(credentials) if isinstance(credentials, str) else credentials
    realm, nonce, uri, given = creds.realm, creds.nonce, creds.uri, creds.response
    spec = _hash_of(creds.algorithm)
    if not creds.is_digest or spec is None or None in (realm, nonce, uri, given):
        return False
    qop = creds.qop
    if qop not in (None, "auth", "auth-int"):
        return False
    if isinstance(password_or_ha1, Ha1):
        base = password_or_ha1.algorithm.upper()
        if _hash_of(base) != (spec[0], False):
            return False
        ha1 = password_or_ha1.hexdigest.lower()
    else:
        ha1 = _h(spec[0], f"{creds.username}:{realm}:{password_or_ha1}")
    nc, cnonce = creds.get("nc") or "", creds.cnonce or ""
    expected = _response(
        spec, ha1, nonce or "", cnonce, qop, nc=nc, method=method, uri=uri or "", body=body
    )
    return hmac.compare_digest(expected, (given or "").lower())


class CredentialStore:
    """Username and password per realm, with an optional default for any other realm."""

    def __init__(
        self,
        default: tuple[str, str] | None = None,
        realms: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self.default = default
        self._realms = dict(realms or {})

    def set(self, realm: str, username: str, password: str) -> None:
        self._realms[realm] = (username, password)

    def lookup(self, realm: str) -> tuple[str, str] | None:
        """(username, password) for ``realm`` (exact match), else the default, else None."""
        return self._realms.get(realm, self.default)


@attrs.define
class _Cached:
    header: str
    challenge: Challenge
    sess_cnonce: str | None = None


_HEADER_FOR_STATUS: Final = {401: "Authorization", 407: "Proxy-Authorization"}


class DigestClient:
    """Answers 401/407 challenges and authorises later requests (RFC 3261 §22.2-22.3).

    Feed each 401/407 to :meth:`handle_challenge` with its WWW-Authenticate /
    Proxy-Authenticate values and the credentials the challenged request carried; then
    :meth:`authorization_headers` gives the ``(name, value)`` headers for the retried request,
    and for every later request until the next challenge.
    """

    def __init__(self, credentials: CredentialStore, rng: random.Random) -> None:
        self.credentials = credentials
        self._rng = rng
        self._cache: dict[tuple[str, str], _Cached] = {}
        self._nc: dict[str, int] = {}

    def handle_challenge(
        self,
        status_code: int,
        challenges: Iterable[Challenge | str],
        *,
        sent: Iterable[Credentials | str] = (),
    ) -> None:
        """Take in the challenges of a 401 or 407; raise :class:`AuthenticationFailed` when
        the request cannot be retried (nothing supported, no credentials, or refused ones)."""
        header = _HEADER_FOR_STATUS.get(status_code)
        if header is None:
            raise ValueError(f"only 401 and 407 carry challenges, not {status_code}")
        best: dict[str, Challenge] = {}
        for item in challenges:
            try:
                chal = parse_challenge(item) if isinstance(item, str) else item
                choose_qop(chal)
            except (ParseError, AuthenticationFailed):
                continue
            if not chal.is_digest or chal.realm is None or _hash_of(chal.algorithm) is None:
                continue
            rank = _RANK[chal.algorithm.upper()]
            current = best.get(chal.realm)
            if current is None or rank < _RANK[current.algorithm.upper()]:
                best[chal.realm] = chal
        if not best:
            raise AuthenticationFailed(f"no supported Digest challenge in the {status_code}")
        sent_realms = set()
        for c in sent:
            with_creds = parse_credentials(c) if isinstance(c, str) else c
            if with_creds.is_digest and with_creds.realm is not None:
                sent_realms.add(with_creds.realm)
        for realm, chal in best.items():
            if realm in sent_realms and not chal.stale:
                self._cache.pop((header, realm), None)
                raise AuthenticationFailed(f"credentials for realm {realm!r} refused", realm=realm)
            if self.credentials.lookup(realm) is None:
                raise AuthenticationFailed(f"no credentials for realm {realm!r}", realm=realm)
        for realm, chal in best.items():
            self._cache[(header, realm)] = _Cached(header, chal)

    def forget(self, realm: str | None = None) -> None:
        """Drop cached challenges (for ``realm``, or all): later requests go unauthorised."""
        for key in [k for k in self._cache if realm is None or k[1] == realm]:
            del self._cache[key]

    def _cnonce(self) -> str:
        return f"{self._rng.getrandbits(128):032x}"

    def authorization_headers(
        self, method: str, uri: str, body: bytes = b""
    ) -> list[tuple[str, str]]:
        """``(header name, value)`` pairs for a request, one per cached realm.

        Each call uses the next nonce-count of its nonce and a fresh cnonce (for -sess the
        cnonce of the first request, which is folded into the session key).
        """
        out: list[tuple[str, str]] = []
        for (header, realm), cached in self._cache.items():
            creds = self.credentials.lookup(realm)
            if creds is None:
                continue
            chal = cached.challenge
            nonce = chal.nonce or ""
            self._nc[nonce] = nc = self._nc.get(nonce, 0) + 1
            sess = chal.algorithm.upper().endswith("-SESS")
            if sess and cached.sess_cnonce is None:
                cached.sess_cnonce = self._cnonce()
            cnonce = cached.sess_cnonce if sess and cached.sess_cnonce else self._cnonce()
            value = make_credentials(
                chal, method=method, uri=uri, username=creds[0], password=creds[1],
                cnonce=cnonce, nc=nc, body=body,
            )  # fmt: skip
            out.append((header, str(value)))
        return out


class NonceStatus(enum.Enum):
    """What :func:`check_nonce` found: ours and fresh, ours but expired, or not ours."""

    VALID = "valid"
    STALE = "stale"
    INVALID = "invalid"


def make_nonce(secret: bytes, now: float, rng: random.Random) -> str:
    """A nonce carrying its issue time and a random salt, sealed with HMAC-SHA-256."""
    payload = int(now).to_bytes(8, "big", signed=True) + rng.getrandbits(64).to_bytes(8, "big")
    mac = hmac.new(secret, payload, "sha256").digest()[:16]
    return base64.urlsafe_b64encode(payload + mac).decode("ascii").rstrip("=")


def check_nonce(secret: bytes, nonce: str, now: float, *, lifetime: float = 300.0) -> NonceStatus:
    """VALID if we issued ``nonce`` less than ``lifetime`` seconds ago; STALE if we issued it
    earlier (challenge again with ``stale=true``); INVALID otherwise."""
    try:
        raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
    except (ValueError, TypeError):
        return NonceStatus.INVALID
    if len(raw) != 32:
        return NonceStatus.INVALID
    payload, mac = raw[:16], raw[16:]
    if not hmac.compare_digest(mac, hmac.new(secret, payload, "sha256").digest()[:16]):
        return NonceStatus.INVALID
    issued = int.from_bytes(payload[:8], "big", signed=True)
    return NonceStatus.VALID if 0 <= now - issued < lifetime else NonceStatus.STALE
