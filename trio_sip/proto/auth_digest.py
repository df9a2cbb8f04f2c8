"""Digest arithmetic (RFC 7616 §3.4.1, RFC 8760) and server-side checks, sans-I/O.

The request-digest for MD5, SHA-256 and SHA-512-256 (each also ``-sess``, with ``auth`` or
``auth-int``, or RFC 2069 style without qop), :func:`make_credentials` (the client's answer
to one challenge, pure), :func:`verify` (the server's check) and stateless HMAC-protected,
time-limited nonces (:func:`make_nonce` / :func:`check_nonce`). See
:mod:`trio_sip.proto.auth` for the theory of operation.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import random
from typing import Final

import attrs

from .auth_values import AuthenticationFailed, AuthParam, Challenge, Credentials, parse_credentials

__all__ = [
    "ALGORITHMS",
    "Ha1",
    "NonceStatus",
    "check_nonce",
    "choose_qop",
    "make_credentials",
    "make_nonce",
    "nonce_issued",
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


def _hash_of(algorithm: str) -> tuple[str, bool] | None:
    """(hashlib name, is -sess) for a supported algorithm token, else None."""
    name = algorithm.upper()
    sess = name.endswith("-SESS")
    base = name[:-5] if sess else name
    return (_HASHES[base], sess) if base in _HASHES else None


def _h(hash_name: str, data: str | bytes) -> str:
    # surrogateescape: a value with octets that are not UTF-8 (kept so by the parser) hashes
    # as the octets received, instead of raising (tests/attack: a REGISTER got a 500).
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
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
    # As octets: compare_digest refuses str with non-ASCII characters (TypeError; found by
    # the wire fuzzer).
    given_octets = (given or "").lower().encode("utf-8", "surrogatepass")
    return hmac.compare_digest(expected.encode(), given_octets)


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


def nonce_issued(secret: bytes, nonce: str) -> int | None:
    """The issue time (whole seconds) sealed in ``nonce`` if we made it with ``secret``, else
    None (not ours, or not a nonce at all)."""
    if len(nonce) != 43:  # 32 bytes of base64url without padding
        return None
    try:
        raw = base64.urlsafe_b64decode(nonce + "=")
    except (ValueError, TypeError):
        return None
    if len(raw) != 32:
        return None
    payload, mac = raw[:16], raw[16:]
    if not hmac.compare_digest(mac, hmac.new(secret, payload, "sha256").digest()[:16]):
        return None
    return int.from_bytes(payload[:8], "big", signed=True)


def check_nonce(secret: bytes, nonce: str, now: float, *, lifetime: float = 300.0) -> NonceStatus:
    """VALID if we issued ``nonce`` less than ``lifetime`` seconds ago; STALE if we issued it
    earlier (challenge again with ``stale=true``); INVALID otherwise."""
    issued = nonce_issued(secret, nonce)
    if issued is None:
        return NonceStatus.INVALID
    return NonceStatus.VALID if 0 <= now - issued < lifetime else NonceStatus.STALE
