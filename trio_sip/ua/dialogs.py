# Dialog drivers: the 2xx/ACK machines on the generic driver, and in-dialog requests sent
# through the failover client (RFC 3261 §12.2.1.1, §13.2.2.4, §13.3.1.4, §22; RFC 6026).
#
# Theory of operation: the two 2xx machines of ``proto.dialog_requests`` have the Contract 2
# shape but know nothing of transports, so each runs under ``drivers.run_machine`` in the user
# agent's nursery, with a small adapter giving it the ``terminated`` flag the driver reads:
#
# * AckWait (UAS): the server transaction sent our 2xx once (it must see it, to move to RFC
#   6026's Accepted state); the machine resends that 2xx at T1, 2*T1, ... capped at T2, routed
#   per §18.2.2 like any response, until the ACK arrives or 64*T1 passes (then the owner sends
#   a BYE, §13.3.1.4).
# * AckResender (UAC): the ACK for a 2xx is not part of any transaction: it is sent
#   statelessly to the dialog's next hop, and sent again for every retransmitted 2xx for 64*T1.
#
# The stack hands ACKs for a 2xx and retransmitted 2xx responses to its ``on_stray`` hook;
# :class:`DialogDrivers` routes each to the driver inbox of its (dialog, CSeq). The machines
# start *after* their first transmission (the 2xx by the transaction, the ACK by
# ``send_stateless``, which stamps the Via), so the adapter swallows the start output.
#
# In-dialog requests are built with the core's builders (dialog routing, CSeq) without a Via
# (the stack adds one per attempt, with a fresh branch) and sent to the dialog's next hop --
# "the first Route, else the remote target" (§12.2.1.1) -- through the failover client, which
# applies the per-request retry policy. A 401/407 is answered with the call's DigestClient
# and the request goes again with the next CSeq (§22.2).
"""DialogDrivers: 2xx/ACK machines and in-dialog requests for the user agent."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from trio_sip.drivers import Inbox, InboxItem, run_machine
from trio_sip.proto.auth import AuthenticationFailed, DigestClient
from trio_sip.proto.dialog import Dialog, DialogId
from trio_sip.proto.dialog_requests import (
    AckResender,
    AckResenderState,
    AckTimeout,
    AckWait,
    AckWaitState,
)
from trio_sip.proto.message import Request, Response
from trio_sip.proto.outputs import MessageReceived, Output, TransportFailed
from trio_sip.proto.target import Target
from trio_sip.proto.uri import SipUri
from trio_sip.transports.base import Flow

if TYPE_CHECKING:
    from trio_sip.stack import Stack

__all__ = ["DialogDrivers", "next_hop", "strip_via", "with_auth"]

logger = logging.getLogger("trio_sip.ua")

#: The Via the core's builders require; removed before sending (the stack adds the real one).
PLACEHOLDER_VIA = "SIP/2.0/UDP invalid;branch=z9hG4bKplaceholder"


def strip_via(request: Request) -> Request:
    """``request`` without Via headers (the stack stamps one per attempt)."""
    return request.evolve(headers=request.headers.remove("Via"))


def next_hop(dialog: Dialog) -> SipUri | str:
    """Where the dialog's next request goes: the first Route, else the remote target."""
    uri = dialog.route_set[0].uri if dialog.route_set else dialog.remote_target
    return uri if isinstance(uri, SipUri) else str(uri)


def with_auth(request: Request, digest: DigestClient | None) -> Request:
    """``request`` with the credentials the digest client holds (none before a challenge)."""
    if digest is None:
        return request
    headers = request.headers
    for name in ("Authorization", "Proxy-Authorization"):
        headers = headers.remove(name)
    for name, value in digest.authorization_headers(request.method, request.uri_text, request.body):
        headers = headers.append(name, value)
    return request.evolve(headers=headers)


def challenge(digest: DigestClient | None, request: Request, response: Response) -> bool:
    """Take in a 401/407 to ``request``; True when it can be sent again with credentials."""
    if digest is None or response.status_code not in (401, 407):
        return False
    challenges = response.www_authenticate or response.proxy_authenticate
    try:
        digest.handle_challenge(
            response.status_code,
            challenges,
            sent=request.authorization + request.proxy_authorization,
        )
    except AuthenticationFailed as exc:
        logger.info("cannot answer the %d to %s: %s", response.status_code, request.method, exc)
        return False
    return True


class _Adapter:
    """Gives AckWait / AckResender the surface ``run_machine`` reads (``terminated``)."""

    def __init__(self, inner: AckWait | AckResender, *, skip_start: bool = True) -> None:
        self.inner = inner
        self._skip = skip_start

    @property
    def state(self) -> Any:
        return self.inner.state

    @property
    def deadline(self) -> float | None:
        return self.inner.deadline

    @property
    def terminated(self) -> bool:
        if isinstance(self.inner, AckWait):
            return self.inner.state is not AckWaitState.WAITING
        return self.inner.state is AckResenderState.TERMINATED

    def start(self, now: float) -> list[Any]:
        out = self.inner.start(now)
        return [] if self._skip else list(out)

    def handle(self, event: Any, now: float) -> list[Any]:
        if isinstance(event, TransportFailed):
            return []  # a lost retransmission: the next one (or the give-up timer) follows
        return list(self.inner.handle(event, now))

    def handle_timer(self, now: float) -> list[Any]:
        return list(self.inner.handle_timer(now))


class _Owner:
    def __init__(self, on_timeout: Callable[[str], object] | None) -> None:
        self.on_timeout = on_timeout

    def on_output(self, output: Output | AckTimeout) -> None:
        if isinstance(output, AckTimeout) and self.on_timeout is not None:
            self.on_timeout(output.reason)


class DialogDrivers:
    """The running 2xx/ACK machines of one user agent, keyed by (dialog id, CSeq number)."""

    def __init__(self, stack: Stack, nursery: trio.Nursery) -> None:
        self._stack = stack
        self._nursery = nursery
        self._inboxes: dict[tuple[DialogId, int], Inbox[InboxItem]] = {}
        self._scopes: dict[tuple[DialogId, int], trio.CancelScope] = {}
        self._resenders: set[tuple[DialogId, int]] = set()
        #: dialog id -> the CSeq numbers of its running machines (``stop`` is O(machines of
        #: that dialog), not O(every running machine)).
        self._by_dialog: dict[DialogId, set[int]] = {}

    def __len__(self) -> int:
        return len(self._inboxes)

    async def start_ack_wait(
        self,
        dialog: Dialog,
        response: Response,
        flow: Flow,
        on_timeout: Callable[[str], object],
    ) -> None:
        """Resend ``response`` (already sent once by the transaction) until its ACK."""
        machine = _Adapter(AckWait(response, self._stack.timer_config))

        async def send(message: Request | Response) -> None:
            await self._stack.send_stateless(message, flow=flow)

        await self._start((dialog.id, response.cseq.seq), machine, send, _Owner(on_timeout))

    async def send_ack(self, dialog: Dialog, ack: Request, target: Target) -> Request:
        """Send the ACK for a 2xx statelessly (Via stamped by the stack) and keep it for the
        2xx retransmissions for 64*T1. Returns the ACK as sent."""
        sent = await self._stack.send_stateless(strip_via(ack), target)
        assert isinstance(sent, Request)
        machine = _Adapter(AckResender(sent, self._stack.timer_config))

        async def send(message: Request | Response) -> None:
            await self._stack.send_stateless(message, target, new_via=False)

        key = (dialog.id, sent.cseq.seq)
        old = self._scopes.get(key)
        if old is not None:
            old.cancel()
        await self._start(key, machine, send, _Owner(None))
        self._resenders.add(key)
        return sent

    async def _start(
        self,
        key: tuple[DialogId, int],
        machine: _Adapter,
        send: Callable[[Request | Response], Any],
        owner: _Owner,
    ) -> None:
        # The machine's first transmission already happened (the 2xx by its transaction, the
        # ACK by send_stateless) and its start outputs are skipped, so the driver needs no
        # ``nursery.start`` handshake: its scope is made here, and the task is only spawned.
        inbox: Inbox[InboxItem] = Inbox()
        scope = trio.CancelScope()
        self._inboxes[key] = inbox
        self._scopes[key] = scope
        self._by_dialog.setdefault(key[0], set()).add(key[1])
        drive = functools.partial(self._drive, key, machine, inbox, send, owner, scope=scope)
        self._nursery.start_soon(drive)
        await trio.lowlevel.checkpoint()

    async def _drive(
        self,
        key: tuple[DialogId, int],
        machine: _Adapter,
        inbox: Inbox[InboxItem],
        send: Callable[[Request | Response], Any],
        owner: _Owner,
        *,
        scope: trio.CancelScope,
    ) -> None:
        try:
            await run_machine(machine, inbox, send, owner, scope=scope)  # type: ignore[arg-type]
        finally:
            if self._inboxes.get(key) is inbox:
                del self._inboxes[key]
                self._scopes.pop(key, None)
                self._resenders.discard(key)
                seqs = self._by_dialog.get(key[0])
                if seqs is not None:
                    seqs.discard(key[1])
                    if not seqs:
                        del self._by_dialog[key[0]]

    def deliver(self, message: Request | Response) -> bool:
        """An ACK for our 2xx (UAS) or a retransmitted 2xx (UAC): give it to its machine.
        The dialog id comes from the message itself, so it works after the call ended."""
        local, remote = message.to.tag, message.from_.tag
        if isinstance(message, Response):
            local, remote = remote, local
        if local is None or remote is None:
            return False
        inbox = self._inboxes.get((DialogId(message.call_id, local, remote), message.cseq.seq))
        if inbox is None:
            return False
        inbox.put(MessageReceived(message))
        return True

    def stop(self, dialog: Dialog, *, keep_ack: bool = False) -> None:
        """Stop the machines of ``dialog`` (the call ended); ``keep_ack`` leaves the
        AckResenders running (2xx retransmissions still get their ACK for 64*T1)."""
        for seq in tuple(self._by_dialog.get(dialog.id, ())):
            key = (dialog.id, seq)
            scope = self._scopes.get(key)
            if scope is not None and not (keep_ack and key in self._resenders):
                scope.cancel()
