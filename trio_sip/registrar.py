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
# ``handle(incoming)`` answers through the request's server transaction (stateful site);
# ``handle_stateless`` answers with ``Stack.send_stateless`` (a stateless site: a retransmitted
# REGISTER is recognised by its branch and applied again).
"""Registrar: REGISTER handling (bindings, expiry, 423, digest auth) on the Stack."""

from __future__ import annotations

import logging
import random
from collections.abc import Hashable, Mapping

import trio

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
    ) -> None:
        self.location = location
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
        """The answer to ``request`` (a REGISTER) at ``now``; ``source`` (the sender's
        address) is charged for a failed authentication."""
        rejection = check_request(request, role="registrar")
        if rejection is not None:
            return RegisterOutcome(rejection.status_code, rejection.headers)
        try:
            to = request.to.uri
            if not isinstance(to, SipUri) or not self.identity.responsible_for(to.host):
                return RegisterOutcome(404, reason="Not Found (not our domain)")
            aor = self.identity.aor(to)
            if self.auth is not None:
                result = self.auth.check(request, now, source=source)
                if not result.ok:
                    return RegisterOutcome(result.status, result.headers)
                if result.username != to.user:
                    return RegisterOutcome(403, reason="Forbidden (not your address-of-record)")
        except ParseError as exc:
            return RegisterOutcome(400, reason=f"Bad Request ({exc})")
        return self.location.register(request, aor, now)

    async def handle(self, incoming: IncomingRequest) -> None:
        """Answer a REGISTER through its server transaction."""
        source = incoming.flow.remote[0]
        outcome = self.decide(incoming.request, trio.current_time(), source=source)
        self._count(outcome)
        try:
            await incoming.respond(outcome.status, outcome.reason, headers=outcome.headers)
        except LocalProtocolError as exc:  # the transaction ended meanwhile
            logger.debug("REGISTER answer not sent: %s", exc)

    async def handle_stateless(self, stack: Stack, request: Request, flow: Flow) -> None:
        """Answer a REGISTER without a transaction (a stateless site)."""
        outcome = self.decide(request, trio.current_time(), source=flow.remote[0])
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
