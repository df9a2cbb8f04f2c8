# The stateful proxy's request handling: RFC 3261 §16.2 (a stateful proxy is a UAS for the
# incoming request and a UAC per branch), §16.6 step 11 and §16.8 (Timer C), §16.7 (response
# processing, through proto.proxy.ResponseContext), §16.9 (transport errors count as 503) and
# §16.10 (CANCEL: "cancels all pending client transactions").
#
# Theory of operation: the stack hands each new request to ``handle`` in its own task. After
# the §16.3 / §16.4 / §16.5 decisions (proto.proxy) an INVITE gets 100 Trying at once, then
# every target becomes one branch task: resolve the next hop, add our Via with a loop-detecting
# branch, run a client transaction (``Stack.send_request``) and feed each response to the
# response context. The context's actions are applied here: ``Forward`` goes upstream through
# the server transaction (a 2xx that can no longer go that way, because a final response
# already went, is sent statelessly: every 2xx to an INVITE must reach the caller), ``Cancel``
# sends ``tx.make_cancel()`` in its own non-INVITE transaction. Timer C (> 3 min, reset by
# every provisional) bounds an INVITE branch: "If the client transaction has received a
# provisional response, the proxy MUST generate a CANCEL ... If [not] ... the proxy MUST behave
# as if the transaction received a 408". A CANCEL from upstream that matches the server
# transaction is answered 200 by the stack, which in the STATEFUL_PROXY role sends no 487 of its
# own (§16.10); ``wait_cancelled`` then cancels the pending branches, and the INVITE's final
# response is the best of the branches' (normally the callee's 487, with its To tag). Only an
# INVITE cancelled before any branch exists is answered 487 here. A CANCEL that matches nothing
# is forwarded statelessly by the site (``_site``). The handler returns when every branch task
# has ended, so nothing of a request outlives its context.
"""Stateful forwarding: branches, Timer C, CANCEL, best response."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import trio

from trio_sip.proto.errors import (
    LocalProtocolError,
    NotCancelled,
    SipError,
    TransactionError,
    TransactionTimeoutError,
    TransportError,
)
from trio_sip.proto.ids import new_tag
from trio_sip.proto.message import Request, Response
from trio_sip.proto.proxy import (
    Cancel,
    Forward,
    Forwarded,
    Respond,
    ResponseContext,
    forward_request,
    proxy_branch,
)
from trio_sip.proto.uri import Uri
from trio_sip.stack import ClientTransaction, IncomingRequest

if TYPE_CHECKING:
    from ._site import ProxySite

logger = logging.getLogger("trio_sip.proxy")


class _Request:
    """One proxied request: its context, its branches' transactions, CANCELs sent."""

    def __init__(self, site: ProxySite, incoming: IncomingRequest) -> None:
        self.site = site
        self.incoming = incoming
        self.ctx = ResponseContext(incoming.request, incoming.to_tag)
        self.txs: dict[str, ClientTransaction] = {}
        self.cancelled: set[str] = set()
        self.nursery: trio.Nursery | None = None

    async def apply(self, actions: list[Forward | Cancel]) -> None:
        for action in actions:
            if isinstance(action, Cancel):
                self.cancel_branch(action.branch)
            else:
                await self.forward(action.response)

    async def forward(self, response: Response) -> None:
        site, incoming = self.site, self.incoming
        site.counters["forwarded_responses"] += 1
        if incoming.final_response is None:
            try:
                await incoming.respond(response)
                return
            except LocalProtocolError as exc:
                logger.debug("server transaction refused %d: %s", response.status_code, exc)
        if self.ctx.invite and 200 <= response.status_code < 300:
            try:  # every 2xx to an INVITE goes upstream (§16.7 step 5)
                await site.stack.send_stateless(response, flow=incoming.flow)
            except TransportError as exc:
                logger.info("could not forward a 2xx: %s", exc)

    def cancel_branch(self, branch: str) -> None:
        tx = self.txs.get(branch)
        if tx is None or branch in self.cancelled or self.nursery is None:
            return
        self.cancelled.add(branch)
        self.nursery.start_soon(self._send_cancel, tx)

    async def _send_cancel(self, tx: ClientTransaction) -> None:
        try:
            await self.site.stack.request(tx.make_cancel(), tx.target, new_via=False)
        except (TransactionError, TransportError) as exc:
            logger.info("CANCEL for %r failed: %s", tx, exc)

    async def run(self, forwarded: list[Forwarded]) -> None:
        site = self.site
        async with trio.open_nursery() as outer:
            watcher = trio.CancelScope()
            if self.ctx.invite:
                outer.start_soon(self._watch_cancel, watcher)
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                for fwd in forwarded:
                    branch = proxy_branch(
                        self.incoming.request, new_tag(site.rng), secret=site.branch_secret
                    )
                    self.ctx.add_branch(branch)
                    nursery.start_soon(self._branch, fwd, branch)
            watcher.cancel()
        if self.incoming.final_response is None:
            await self.forward(self.ctx.best())

    async def _watch_cancel(self, scope: trio.CancelScope) -> None:
        with scope:
            try:
                await self.incoming.wait_cancelled()
            except NotCancelled:  # the INVITE's transaction ended first
                return
            await self.apply(self.ctx.cancel())

    async def _branch(self, fwd: Forwarded, branch: str) -> None:
        site = self.site
        try:
            target = await site.resolve(fwd.next_hop)
            layer = site.stack.transport_layer
            # §18.1.1: TCP when too big for UDP, and UDP again if that TCP is refused.
            target, flow = await layer.connect_request(target, len(bytes(fwd.request)) + 200)
        except (SipError, OSError) as exc:
            logger.info("no route to %s: %s", fwd.next_hop, exc)
            await self.apply(self.ctx.on_transport_error(branch))
            return
        request = site.stack.add_via(fwd.request, flow, branch)
        site.counters["forwarded_requests"] += 1
        try:
            async with site.stack.send_request(request, target, new_via=False) as tx:
                self.txs[branch] = tx
                await self._responses(tx, branch)
        except TransactionTimeoutError:
            await self.apply(self.ctx.on_timeout(branch))
        except TransportError:
            await self.apply(self.ctx.on_transport_error(branch))
        except TransactionError as exc:
            logger.info("branch %s ended: %s", branch, exc)
            await self.apply(self.ctx.on_timeout(branch))

    async def _responses(self, tx: ClientTransaction, branch: str) -> None:
        site = self.site
        timer_c = trio.current_time() + site.timer_c if self.ctx.invite else math.inf
        provisional = False
        while True:
            with trio.move_on_at(timer_c) as scope:
                try:
                    event = await tx.__anext__()
                except StopAsyncIteration:
                    return
            if scope.cancelled_caught:
                # Timer C (§16.8): CANCEL after a provisional (then wait a transaction
                # timeout for the 487), else behave as if a 408 arrived.
                if provisional and branch not in self.cancelled:
                    self.cancel_branch(branch)
                    timer_c = trio.current_time() + site.stack.timer_config.timer_b
                    continue
                await self.apply(self.ctx.on_timeout(branch))
                return
            if not isinstance(event, Response):
                continue
            if event.status_code < 200:
                provisional = True
                timer_c = trio.current_time() + site.timer_c  # §16.7 step 2: reset Timer C
            await self.apply(self.ctx.on_response(branch, event))
            if event.status_code >= 200:
                return


async def handle_stateful(site: ProxySite, incoming: IncomingRequest) -> None:
    """The stack's handler for a stateful site (see the module comment)."""
    source = incoming.flow.remote[0]
    decided = await site.decide_async(incoming.request, source)
    if isinstance(decided, Respond):
        await _respond(incoming, decided)
        return
    if decided is None:  # the registrar's
        assert site.registrar is not None
        await site.registrar.handle(incoming, site.auth_source(incoming.request, source))
        return
    pre, targets = decided
    if incoming.method == "INVITE":
        if incoming.cancelled:  # §16.10: cancelled before any branch exists
            await _respond(incoming, Respond(487))
            return
        await incoming.respond(100)
    forwarded = [_forwarded(site, pre, target) for target in targets]
    site.counters["contexts"] += 1
    try:
        await _Request(site, incoming).run(forwarded)
    finally:
        site.counters["contexts"] -= 1


def _forwarded(site: ProxySite, pre: Request, target: Uri) -> Forwarded:
    return forward_request(pre, target, record_route=site.record_route_value(pre))


async def _respond(incoming: IncomingRequest, answer: Respond) -> None:
    if incoming.method == "ACK":
        return
    try:
        await incoming.respond(answer.status, answer.reason, headers=answer.headers)
    except LocalProtocolError as exc:
        logger.debug("answer not sent: %s", exc)
