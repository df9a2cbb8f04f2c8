# The stack's stray hook of a site (RFC 3261 §16.11 stateless forwarding, §16.7 step 1 and
# §18.2.2 for responses, §16.10 for a CANCEL without a response context): a ProxySite mixin.
#
# Theory of operation: every message of a stateless site, and in a stateful site the ACK for
# a 2xx, an unmatched CANCEL and responses without a transaction, reach ``_on_stray``
# synchronously. A response goes upstream only when its top Via is a branch this site made
# for the Via below it (``branch_belongs``): a forged one would otherwise be reflected to
# whatever address its second Via names. A request is decided (``ProxySite.decide``: the
# access policy included) and forwarded to its first target in a task of the site's nursery,
# with the §16.11 branch (``stateless_branch``, signed); an answer of our own is sent
# statelessly (never to an ACK).
"""_Strays: stray messages and the stateless role of a ProxySite."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import trio

from trio_sip.proto.errors import ParseError, SipError, TransportError
from trio_sip.proto.ids import new_tag
from trio_sip.proto.message import Request, Response, make_response
from trio_sip.proto.proxy import (
    ProxyIdentity,
    Respond,
    branch_belongs,
    forward_request,
    is_own_via,
    stateless_branch,
    strip_own_via,
)
from trio_sip.proto.target import Target
from trio_sip.proto.transaction import TimeoutRole
from trio_sip.proto.uri import Uri
from trio_sip.registrar import Registrar
from trio_sip.transports import Flow

if TYPE_CHECKING:
    from trio_sip.stack import Stack

    from ._site import Decision

__all__: list[str] = []

logger = logging.getLogger("trio_sip.proxy")


class _Strays:
    """What a ProxySite does with stray messages. Attributes are the site's."""

    _nursery: trio.Nursery
    _tasks: int
    counters: dict[str, int]
    identity: ProxyIdentity
    branch_secret: bytes
    role: TimeoutRole
    registrar: Registrar | None
    rng: random.Random

    @property
    def stack(self) -> Stack:
        raise NotImplementedError

    def decide(self, request: Request, source: str | None = None) -> Decision:
        raise NotImplementedError

    async def decide_async(self, request: Request, source: str | None = None) -> Decision:
        raise NotImplementedError

    def auth_source(self, request: Request, source: str) -> str:
        raise NotImplementedError

    def record_route_value(self, request: Request | None = None) -> str | None:
        raise NotImplementedError

    async def resolve(self, uri: Uri) -> Target:
        raise NotImplementedError

    def _on_stray(self, message: Request | Response, flow: Flow) -> None:
        if isinstance(message, Response):
            try:
                ours = (
                    bool(message.vias)
                    and is_own_via(message.vias[0], self.identity)
                    and branch_belongs(message, self.branch_secret)
                )
            except ParseError:
                ours = False
            if not ours:  # not a branch we made for the next Via: nowhere to go
                self.counters["stray_responses"] += 1
                return
            stripped = strip_own_via(message)
            if stripped is not None:
                self._spawn(self._send_response, stripped)
        elif self.role is TimeoutRole.STATELESS_PROXY or message.method in ("ACK", "CANCEL"):
            self._spawn(self._stateless_request, message, flow)

    def _spawn(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        self._tasks += 1
        self._nursery.start_soon(self._run_task, fn, *args)

    async def _run_task(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        try:
            await fn(*args)
        except (SipError, OSError) as exc:
            logger.info("stateless forwarding failed: %s", exc)
        except Exception as exc:  # one message must not end the site (trio_sip/_faults.py)
            self.stack.faults.record("forward", exc, getattr(fn, "__name__", repr(fn)))
        finally:
            self._tasks -= 1

    async def _send_response(self, response: Response) -> None:
        self.counters["forwarded_responses"] += 1
        await self.stack.send_stateless(response)

    async def _stateless_request(self, request: Request, flow: Flow) -> None:
        source = flow.remote[0]
        decided = await self.decide_async(request, source)
        if decided is None:
            assert self.registrar is not None
            charged = self.auth_source(request, source)
            await self.registrar.handle_stateless(self.stack, request, flow, charged)
            return
        if isinstance(decided, Respond):
            if request.method != "ACK":
                await self._answer_stateless(request, decided, flow)
            return
        pre, targets = decided
        forwarded = forward_request(pre, targets[0], record_route=self.record_route_value(pre))
        try:
            target = await self.resolve(forwarded.next_hop)
        except SipError as exc:
            logger.info("no route to %s: %s", forwarded.next_hop, exc)
            if request.method != "ACK":
                await self._answer_stateless(request, Respond(404), flow)
            return
        self.counters["forwarded_requests"] += 1
        branch = stateless_branch(request, secret=self.branch_secret)
        await self.stack.send_stateless(forwarded.request, target, branch=branch)

    async def _answer_stateless(self, request: Request, answer: Respond, flow: Flow) -> None:
        try:
            response = make_response(
                request,
                answer.status,
                answer.reason,
                to_tag=new_tag(self.rng),
                headers=answer.headers,
            )
            await self.stack.send_stateless(response, flow=flow)
        except (ParseError, TransportError) as exc:
            logger.info("could not answer statelessly: %s", exc)
