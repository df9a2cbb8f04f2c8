# A registrar on the Stack: RFC 3261 §10.3 (processing REGISTER requests), §22 and RFC 7616
# (digest authentication: 401 with WWW-Authenticate, "stale=true" when "the nonce ... was
# valid [but] has expired"), §10.3 step 4 ("the registrar ... MUST determine whether the
# authenticated user is authorized to modify registrations for this address-of-record").
#
# Theory of operation: ``Registrar.decide(request, now, source=None)`` is synchronous and does
# everything: the registrar checks of ``validate.check_request`` (Require → 420, a non-SIP To →
# 400), the AOR from the To header (§10.3 step 5: a domain we are not responsible for → 404),
# digest authentication when ``credentials`` are given (a ``proto.auth_server.DigestServer``:
# stateless HMAC nonces that expire, nonce-count replay refused, no difference between unknown
# users and wrong passwords, failures charged to ``source``; the username must be the AOR's
# user, else 403), then the binding rules and bounds of ``LocationService.register``.
# ``decide_async`` does the same checks and commits to the registrar's location *store*
# (``trio_sip.location``: this process's LocationService by default, or Redis shared by the
# nodes of a cluster), answering 503 with Retry-After while the store is unreachable.
# ``handle(incoming)`` answers through the request's server transaction (stateful site);
# ``handle_stateless`` answers with ``Stack.send_stateless`` (a stateless site: a retransmitted
# REGISTER is recognised by its branch and applied again).
"""Registrar: REGISTER handling (bindings, expiry, 423, digest auth) on the Stack."""

from __future__ import annotations

import logging
import random
from collections.abc import Hashable, Mapping

import trio

from .location import LocationStore, MemoryLocationStore, StoreUnavailable, register_change
from .proto.auth_server import DigestServer
from .proto.errors import LocalProtocolError, ParseError, TransportError
from .proto.ids import new_tag
from .proto.location import LocationService, RegisterOutcome
from .proto.message import Request, make_response
from .proto.proxy import ProxyIdentity
from .proto.uri import SipUri
from .proto.validate import check_request
from .stack import IncomingRequest, Stack
from .transports import Flow

__all__ = ["Registrar"]

logger = logging.getLogger("trio_sip.registrar")


class Registrar:
    """REGISTER processing for ``identity``'s domain into ``location``.

    ``credentials`` (username -> password) turns digest authentication on, in ``realm``
    (default: the domain). Nonces live ``nonce_lifetime`` seconds. ``auth``: a
    :class:`~trio_sip.proto.auth_server.DigestServer` to use instead (a site shares one between
    its registrar and its proxy, so failures and nonces are counted once).
    """

    def __init__(
        self,
        location: LocationService,
        identity: ProxyIdentity,
        *,
        credentials: Mapping[str, str] | None = None,
        realm: str | None = None,
        nonce_lifetime: float = 300.0,
        rng: random.Random | None = None,
        auth: DigestServer | None = None,
        store: LocationStore | None = None,
        auth_offset: float = 0.0,
    ) -> None:
        self.location = location
        #: Where ``handle`` commits bindings: ``store``, else ``location`` in this process.
        self.store: LocationStore = store if store is not None else MemoryLocationStore(location)
        #: Added to the Trio clock for digest nonces (a site's wall-clock offset, so that the
        #: nodes of a cluster that share a secret accept each other's nonces).
        self.auth_offset = auth_offset
        self.identity = identity
        self.credentials = dict(credentials) if credentials is not None else None
        self.realm = auth.realm if auth is not None else realm or identity.domain
        self.nonce_lifetime = nonce_lifetime
        self._rng = rng or random.SystemRandom()
        if auth is None and self.credentials is not None:
            auth = DigestServer(
                self.realm, self.credentials, rng=self._rng, nonce_lifetime=nonce_lifetime,
                limits=location.limits,
            )  # fmt: skip
        #: The digest server (None: no authentication).
        self.auth = auth
        #: How many REGISTERs were answered, by status code.
        self.answered: dict[int, int] = {}

    def decide(
        self, request: Request, now: float, *, source: Hashable | None = None
    ) -> RegisterOutcome:
        """The answer to ``request`` (a REGISTER) at ``now``, committed to ``location`` (this
        process's LocationService); ``source`` (the sender's address) is charged for a failed
        authentication. ``handle`` uses :meth:`decide_async` (the ``store``)."""
        checked = self._check(request, now, source)
        if isinstance(checked, RegisterOutcome):
            return checked
        return self.location.register(request, checked, now)

    async def decide_async(
        self, request: Request, *, source: Hashable | None = None
    ) -> RegisterOutcome:
        """The answer to ``request`` (a REGISTER), committed to ``store``; an unreachable
        store gets 503 with Retry-After (§21.5.4: "temporarily unable to process")."""
        checked = self._check(request, trio.current_time(), source)
        if isinstance(checked, RegisterOutcome):
            return checked
        change = register_change(request, checked, self.location.rules)
        try:
            return (await self.store.update(checked, change)).outcome
        except StoreUnavailable as exc:
            logger.info("REGISTER for %s: location store unavailable: %s", checked, exc)
            retry = str(self.location.limits.retry_after)
            return RegisterOutcome(
                503, (("Retry-After", retry),), "Service Unavailable (location store)"
            )

    def _check(
        self, request: Request, now: float, source: Hashable | None
    ) -> RegisterOutcome | str:
        """The AOR ``request`` may change, or the answer refusing it (420, 400, 404, 401, 403)."""
        rejection = check_request(request, role="registrar")
        if rejection is not None:
            return RegisterOutcome(rejection.status_code, rejection.headers)
        try:
            to = request.to.uri
            if not isinstance(to, SipUri) or not self.identity.responsible_for(to.host):
                return RegisterOutcome(404, reason="Not Found (not our domain)")
            aor = self.identity.aor(to)
            if self.auth is not None:
                result = self.auth.check(request, now + self.auth_offset, source=source)
                if not result.ok:
                    return RegisterOutcome(result.status, result.headers)
                if result.username != to.user:
                    return RegisterOutcome(403, reason="Forbidden (not your address-of-record)")
        except ParseError as exc:
            return RegisterOutcome(400, reason=f"Bad Request ({exc})")
        return aor

    async def handle(self, incoming: IncomingRequest, source: Hashable | None = None) -> None:
        """Answer a REGISTER through its server transaction. ``source``: who is charged for
        a failed authentication (default: the address it came from)."""
        if source is None:
            source = incoming.flow.remote[0]
        outcome = await self.decide_async(incoming.request, source=source)
        self._count(outcome)
        try:
            await incoming.respond(outcome.status, outcome.reason, headers=outcome.headers)
        except LocalProtocolError as exc:  # the transaction ended meanwhile
            logger.debug("REGISTER answer not sent: %s", exc)

    async def handle_stateless(
        self, stack: Stack, request: Request, flow: Flow, source: Hashable | None = None
    ) -> None:
        """Answer a REGISTER without a transaction (a stateless site)."""
        if source is None:
            source = flow.remote[0]
        outcome = await self.decide_async(request, source=source)
        self._count(outcome)
        try:
            response = make_response(
                request,
                outcome.status,
                outcome.reason,
                to_tag=new_tag(self._rng),
                headers=outcome.headers,
            )
            await stack.send_stateless(response, flow=flow)
        except (ParseError, TransportError) as exc:
            logger.info("REGISTER answer not sent: %s", exc)

    def _count(self, outcome: RegisterOutcome) -> None:
        self.answered[outcome.status] = self.answered.get(outcome.status, 0) + 1
