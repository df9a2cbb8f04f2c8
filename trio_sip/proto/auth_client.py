"""The client side of Digest (RFC 3261 §22.2-22.3): credentials per realm and the
challenge cache that authorises retried and later requests, sans-I/O (cnonces from an
injected :class:`random.Random`). See :mod:`trio_sip.proto.auth` for the theory of operation.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Final

import attrs

from .auth_digest import _RANK, _hash_of, choose_qop, make_credentials
from .auth_values import (
    AuthenticationFailed,
    Challenge,
    Credentials,
    parse_challenge,
    parse_credentials,
)
from .errors import ParseError

__all__ = ["CredentialStore", "DigestClient"]


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
