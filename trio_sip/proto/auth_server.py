# The server side of Digest as a registrar (401, RFC 3261 §22.2) or a proxy (407, §22.3) uses
# it, sans-I/O: RFC 7616 §3.3 (nonces, stale), §3.4 (nonce-count), §5.3-5.4 (replay, limited
# use nonces), §5.13 (no username enumeration).
#
# Theory of operation: a DigestServer holds the realm, the passwords (or stored HA1 values)
# and three bounded pieces of state.
#
# * Nonces are stateless: issue time, 64 random bits, HMAC (``auth_digest.make_nonce``). One
#   that is ours but older than ``nonce_lifetime`` is answered with a new challenge carrying
#   ``stale=true`` when the response digest was right: "The server SHOULD only set stale to
#   true if it receives a request for which the nonce is invalid and the response digest is
#   valid (indicating that the client knows the correct username/password)" (RFC 7616 §3.3).
# * Replays: "The nc value is the hexadecimal count of the number of requests (including the
#   current request) that the client has sent with the nonce value in this request ... the
#   server can detect request replays by maintaining its own copy of this count - if the same
#   nc value is seen twice, then the request is a replay" (RFC 7616 §3.4). NonceTable keeps,
#   per nonce that was used with good credentials, the highest nc and which request carried
#   it. A new request (another branch, Call-ID or CSeq) must bring a higher nc, else it gets a
#   new challenge, never a success. The very request again within 64*T1 (its retransmission,
#   which a stateless element sees) is the same request, not a replay. ACK and CANCEL carry
#   the INVITE's credentials unchanged (§22.1: they "cannot be challenged"), so for them the
#   digest is checked with the INVITE's method and an nc already seen is accepted. Without
#   qop there is no nc: such a nonce is good for one request (later ones get stale=true).
#   Only credentials that verified create an entry, so an attacker without a password cannot
#   fill the table; it holds at most ``Limits.max_auth_nonces`` entries, the earliest used
#   forgotten first. Forgetting fails closed: the table remembers the latest issue time of a
#   forgotten nonce, and a nonce issued no later than that which it no longer knows gets
#   stale=true (the client retries with a fresh nonce; a replay gets nowhere).
# * Failed authentications (a wrong digest, an unknown user, a nonce that is not ours, a
#   Request-URI other than the credentials' uri, a replay) take a token from the source's bucket
#   in a RateLimiter (``Limits.failed_auth_rate`` / ``failed_auth_burst``). ``admit(source,
#   now)`` says when the caller should drop that source's requests (the site does, before they
#   make a transaction): while the bucket is empty, and each drop uses up what the bucket
#   refilled meanwhile, so a source is let in again only after it paused ``1 / rate`` seconds.
#   A guesser that floods (svcrack sends a request every 5 ms) gets its burst and then nothing;
#   a client that retries at Timer E's pace gets one try a second or so. A request without
#   credentials, a stale nonce and a success take nothing.
#
# No enumeration: an unknown user, a wrong password and a foreign nonce get the same answer (a
# plain new challenge) and the same work, because the digest is always computed, with a random
# dummy password for a username we do not know.
"""DigestServer: challenges, checks with replay protection, failed-authentication limits."""

from __future__ import annotations

import enum
import hmac
import math
import random
from collections.abc import Hashable, Mapping

import attrs

from .auth_digest import Ha1, make_nonce, nonce_issued, verify
from .auth_values import Challenge, Credentials
from .errors import ParseError
from .limits import DEFAULT_LIMITS, Limits
from .message import Request
from .rate import RateLimiter

__all__ = ["AuthResult", "AuthStatistics", "DigestServer", "NonceTable", "NonceUse"]

#: Seconds during which the very same request may come again with the same nonce-count:
#: 64*T1, the life of a transaction that retransmits it (RFC 3261 §17).
RETRANSMIT_WINDOW = 32.0


@attrs.frozen(slots=True)
class AuthResult:
    """What :meth:`DigestServer.check` found: the authenticated ``username``, or the
    ``status`` (401 or 407) and challenge ``headers`` to answer with."""

    username: str | None = None
    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return self.username is not None


@attrs.frozen(slots=True)
class AuthStatistics:
    """Counters of a :class:`DigestServer` (``statistics()``)."""

    challenges: int
    authenticated: int
    failures: int
    replays: int
    stale: int
    #: Nonces whose nonce-count is remembered now (at most ``Limits.max_auth_nonces``).
    nonces: int
    #: Sources whose failed-authentication bucket is tracked now.
    sources: int


class NonceUse(enum.Enum):
    """What :meth:`NonceTable.use` found."""

    FRESH = "fresh"  # a higher nonce-count (or a first use): go on
    REPEAT = "repeat"  # the same request again, or an ACK/CANCEL with the INVITE's nc: go on
    REPLAY = "replay"  # an nc already used by another request: refuse
    FORGOTTEN = "forgotten"  # the nonce's state was dropped: challenge with stale=true


@attrs.define(slots=True)
class _Use:
    issued: int
    nc: int
    request: tuple[str, str, int]  # top Via branch, Call-ID, CSeq number
    at: float


class NonceTable:
    """The highest nonce-count used per nonce, at most ``max_entries`` of them (see the module
    comment). Entries older than ``lifetime`` are dropped as they expire."""

    def __init__(
        self, max_entries: int, lifetime: float, window: float = RETRANSMIT_WINDOW
    ) -> None:
        self.max_entries = max_entries
        self.lifetime = lifetime
        self.window = window
        self._uses: dict[str, _Use] = {}  # insertion order: first use
        #: Nonces issued at or before this time that are not in the table were forgotten.
        self.floor = -math.inf

    def __len__(self) -> int:
        return len(self._uses)

    def use(
        self,
        nonce: str,
        issued: int,
        nc: int,
        request: tuple[str, str, int],
        now: float,
        *,
        reuse: bool = False,
    ) -> NonceUse:
        """Record a use of ``nonce`` (issued at ``issued``) with count ``nc`` by ``request``
        (branch, Call-ID, CSeq number). ``reuse``: an ACK or CANCEL repeating credentials."""
        uses = self._uses
        # Expired nonces are refused as stale before they get here: forget them.
        while uses:
            first = next(iter(uses.values()))
            if first.issued + self.lifetime > now:
                break
            del uses[next(iter(uses))]
        entry = uses.get(nonce)
        if entry is None:
            if issued <= self.floor:
                return NonceUse.FORGOTTEN
            uses[nonce] = _Use(issued, nc, request, now)
            if len(uses) > self.max_entries:
                oldest = next(iter(uses))
                self.floor = max(self.floor, uses.pop(oldest).issued)
            return NonceUse.FRESH
        if nc > entry.nc:
            entry.nc, entry.request, entry.at = nc, request, now
            return NonceUse.FRESH
        if reuse:
            return NonceUse.REPEAT
        if nc == entry.nc and request == entry.request and now - entry.at <= self.window:
            return NonceUse.REPEAT
        return NonceUse.REPLAY

    def clear(self) -> None:
        self._uses.clear()


class DigestServer:
    """Digest authentication for ``realm`` with ``credentials`` (username -> password or
    :class:`~trio_sip.proto.auth.Ha1`). See the module comment.

    ``secret`` keys the nonces (random by default; give the same one to a restarted server to
    keep its outstanding nonces good); ``limits`` gives ``max_auth_nonces`` and the
    failed-authentication rate; ``algorithm`` is the one challenges offer.
    """

    def __init__(
        self,
        realm: str,
        credentials: Mapping[str, str | Ha1],
        *,
        rng: random.Random | None = None,
        secret: bytes | None = None,
        nonce_lifetime: float = 300.0,
        limits: Limits | None = None,
        algorithm: str = "MD5",
        window: float = RETRANSMIT_WINDOW,
    ) -> None:
        limits = limits or DEFAULT_LIMITS
        self.realm = realm
        self.credentials = dict(credentials)
        self.nonce_lifetime = nonce_lifetime
        self.algorithm = algorithm
        self._rng = rng or random.SystemRandom()
        key = secret if secret is not None else self._rng.getrandbits(256).to_bytes(32, "big")
        self._secret = hmac.new(key, b"trio-sip digest nonce", "sha256").digest()
        # Never a real password: stands in for unknown users so every check does equal work.
        self._dummy = f"{self._rng.getrandbits(128):032x}"
        self.nonces = NonceTable(limits.max_auth_nonces, nonce_lifetime, window)
        self.failures = RateLimiter.for_failed_auth(limits)
        self.counters = {"challenges": 0, "authenticated": 0, "failures": 0, "replays": 0}
        self.counters["stale"] = 0

    def statistics(self) -> AuthStatistics:
        c = self.counters
        sources = len(self.failures) if self.failures is not None else 0
        return AuthStatistics(
            c["challenges"], c["authenticated"], c["failures"], c["replays"], c["stale"],
            len(self.nonces), sources,
        )  # fmt: skip

    def blocked(self, source: Hashable, now: float) -> bool:
        """True while ``source`` is over its failed-authentication rate (nothing changes)."""
        return self.failures is not None and self.failures.exhausted(source, now)

    def admit(self, source: Hashable, now: float) -> bool:
        """False while ``source`` is over its failed-authentication rate: drop its request.

        A dropped request uses up what the source's bucket refilled meanwhile, so a source
        that keeps sending stays out until it pauses ``1 / failed_auth_rate`` seconds: a
        password guesser that floods gets nothing through, a client that waits gets a try."""
        limiter = self.failures
        if limiter is None or not limiter.exhausted(source, now):
            return True
        refilled = limiter.burst - limiter.retry_after(source, now, limiter.burst) * limiter.rate
        if refilled > 0:
            limiter.take(source, now, refilled * (1 - 1e-9))
        return False

    def challenge(self, now: float, *, proxy: bool = False, stale: bool = False) -> AuthResult:
        """A fresh challenge: 407 with Proxy-Authenticate (``proxy``) or 401."""
        self.counters["challenges"] += 1
        nonce = make_nonce(self._secret, now, self._rng)
        value = str(Challenge.digest(self.realm, nonce, algorithm=self.algorithm, stale=stale))
        header = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        return AuthResult(status=407 if proxy else 401, headers=((header, value),))

    def _credentials(self, request: Request, proxy: bool) -> Credentials | None:
        values = request.proxy_authorization if proxy else request.authorization
        for creds in values:
            if creds.is_digest and creds.realm == self.realm:
                return creds
        return None

    def check(
        self,
        request: Request,
        now: float,
        *,
        proxy: bool = False,
        source: Hashable | None = None,
    ) -> AuthResult:
        """Authenticate ``request`` (its Proxy-Authorization when ``proxy``, else its
        Authorization) at ``now``; ``source`` (the sender's IP address) is charged for a
        failure. Raises ParseError for malformed credentials (also charged)."""
        try:
            creds = self._credentials(request, proxy)
        except ParseError:
            self._failed(source, now)
            raise
        if creds is None:
            return self.challenge(now, proxy=proxy)
        unchallengeable = request.method in ("ACK", "CANCEL")  # §22.1: the INVITE's creds
        method = "INVITE" if unchallengeable else request.method
        username = creds.username or ""
        secret = self.credentials.get(username)
        digest_ok = verify(
            creds, method, secret if secret is not None else self._dummy, body=request.body
        )
        issued = nonce_issued(self._secret, creds.nonce or "")
        if secret is None or not digest_ok or issued is None or creds.uri != request.uri_text:
            return self._failed(source, now, proxy)
        if not 0 <= now - issued < self.nonce_lifetime:
            self.counters["stale"] += 1
            return self.challenge(now, proxy=proxy, stale=True)
        top = request.vias[0] if request.vias else None
        branch = (top.branch or "") if top is not None else ""
        rid = (branch, request.call_id, request.cseq.seq)
        nc = creds.nc if creds.qop else None
        use = self.nonces.use(creds.nonce or "", issued, nc or 1, rid, now, reuse=unchallengeable)
        if use is NonceUse.FRESH or use is NonceUse.REPEAT:
            self.counters["authenticated"] += 1
            return AuthResult(username=username)
        if use is NonceUse.FORGOTTEN or nc is None:
            # Good credentials, nonce no longer usable (forgotten, or used up without qop).
            self.counters["stale"] += 1
            return self.challenge(now, proxy=proxy, stale=True)
        self.counters["replays"] += 1
        return self._failed(source, now, proxy)

    def _failed(self, source: Hashable | None, now: float, proxy: bool = False) -> AuthResult:
        self.counters["failures"] += 1
        if self.failures is not None and source is not None:
            self.failures.take(source, now)
        return self.challenge(now, proxy=proxy)
