# Dialog drivers: the 2xx/ACK machines, and in-dialog requests sent through the failover
# client (RFC 3261 §12.2.1.1, §13.2.2.4, §13.3.1.4, §22; RFC 6026).
#
# Theory of operation: the two 2xx machines of ``proto.dialog_requests`` have the Contract 2
# shape but know nothing of transports. They run without a task each (a UAC keeps one for
# 64*T1 after every answered call): inputs are handled where they arrive, every deadline waits
# in one ``drivers.TimerQueue`` served by one task in the user agent's nursery, and a
# Transmit (only ever a retransmission) is sent by a short task:
#
# * AckWait (UAS): the server transaction sent our 2xx once (it must see it, to move to RFC
#   6026's Accepted state); the machine resends that 2xx at T1, 2*T1, ... capped at T2, routed
#   per §18.2.2 like any response, until the ACK arrives or 64*T1 passes (then the owner sends
#   a BYE, §13.3.1.4).
# * AckResender (UAC): the ACK for a 2xx is not part of any transaction: it is sent
#   statelessly to the dialog's next hop, and sent again for every retransmitted 2xx for 64*T1.
#
# The stack hands ACKs for a 2xx and retransmitted 2xx responses to its ``on_stray`` hook;
# :class:`DialogDrivers` gives each to the machine of its (dialog, CSeq) at once. The machines
# start *after* their first transmission (the 2xx by the transaction, the ACK by
# ``send_stateless``, which stamps the Via), so their start output is dropped. A failed
# retransmission is dropped too: the next one, or the give-up timer, follows.
#
# Seed 002's cycling (``proto.ack_path``, only when sip_transaction_timeout < 32000): a
# machine's destination 0 is the RFC's way (the 2xx: the arrival flow; the ACK: the first
# target of the next hop); ``add_destinations`` appends the other proxies' addresses (``paths``)
# as destinations 1, 2, ... -- the 2xx then goes as it is (same Via stack) on a flow to that
# address, the ACK as it is (its Via kept) to that target.
#
# In-dialog requests are built with the core's builders (dialog routing, CSeq) without a Via
# (the stack adds one per attempt, with a fresh branch) and sent to the dialog's next hop --
# "the first Route, else the remote target" (§12.2.1.1) -- through the failover client, which
# applies the per-request retry policy. A 401/407 is answered with the call's DigestClient
# and the request goes again with the next CSeq (§22.2).
"""DialogDrivers: 2xx/ACK machines and in-dialog requests for the user agent."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import trio

from trio_sip.drivers import TimerQueue
from trio_sip.proto.auth import AuthenticationFailed, DigestClient
from trio_sip.proto.dialog import Dialog, DialogId
from trio_sip.proto.dialog_requests import AckResender, AckTimeout, AckWait, NextDestination
from trio_sip.proto.errors import ProtocolError, TransportError
from trio_sip.proto.message import Request, Response
from trio_sip.proto.outputs import MessageReceived, Terminated, Transmit
from trio_sip.proto.target import Target
from trio_sip.proto.uri import SipUri
from trio_sip.transports.base import Flow

from .paths import merge

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


class _Running:
    """One running 2xx/ACK machine: no task of its own (see the module comment)."""

    __slots__ = (
        "done",
        "first",
        "key",
        "machine",
        "on_timeout",
        "others",
        "resender",
        "sending",
        "timer_at",
    )

    def __init__(
        self,
        key: tuple[DialogId, int],
        machine: AckWait | AckResender,
        first: Flow | Target,
        on_timeout: Callable[[str], object] | None,
    ) -> None:
        self.key = key
        self.machine = machine
        #: Destination 0: the 2xx's arrival flow, or the ACK's target.
        self.first = first
        #: Destinations 1, 2, ...: the other proxies' addresses (seed 002's cycling).
        self.others: list[Target] | None = None
        self.on_timeout = on_timeout
        self.resender = isinstance(machine, AckResender)
        #: The deadline pushed on the drivers' TimerQueue (stale entries are ignored).
        self.timer_at: float | None = None
        #: (message, destination) waiting for this machine's sender task (None: no sender).
        self.sending: deque[tuple[Request | Response, int]] | None = None
        self.done = False


def _what(running: _Running) -> str:
    return "the ACK" if running.resender else "the 2xx"


def _live(running: _Running, deadline: float) -> bool:
    """Whether a timer entry still counts (not ended, not moved to another deadline)."""
    return not running.done and running.timer_at == deadline


class DialogDrivers:
    """The running 2xx/ACK machines of one user agent, keyed by (dialog id, CSeq number).

    No task per machine: inputs (the ACK, a retransmitted 2xx) are handled where they arrive,
    every deadline waits in one TimerQueue, and a Transmit (a retransmission: the first 2xx /
    ACK went out before the machine started) is sent by a short task.
    """

    def __init__(self, stack: Stack, nursery: trio.Nursery) -> None:
        self._stack = stack
        self._nursery = nursery
        self._running: dict[tuple[DialogId, int], _Running] = {}
        #: dialog id -> the CSeq numbers of its running machines (``stop`` is O(machines of
        #: that dialog), not O(every running machine)).
        self._by_dialog: dict[DialogId, set[int]] = {}
        self._timers: TimerQueue[_Running] = TimerQueue(self._fire, _live)
        nursery.start_soon(self._timers.serve)

    def __len__(self) -> int:
        return len(self._running)

    def ack_wait(
        self,
        dialog: Dialog,
        response: Response,
        flow: Flow,
        on_timeout: Callable[[str], object],
    ) -> None:
        """Resend ``response`` until its ACK. Call it *before* the transaction sends the 2xx
        the first time (the stack sends at once, and the ACK may be back before the sender's
        next checkpoint is over); the first retransmission is due T1 from now."""
        machine = AckWait(response, self._stack.timer_config)
        self._start((dialog.id, response.cseq.seq), machine, flow, on_timeout)

    async def send_ack(self, dialog: Dialog, ack: Request, target: Target) -> Request:
        """Send the ACK for a 2xx statelessly (Via stamped by the stack) and keep it for the
        2xx retransmissions for 64*T1. Returns the ACK as sent."""
        stack = self._stack
        sent = await stack.send_stateless(strip_via(ack), target)
        assert isinstance(sent, Request)
        key = (dialog.id, sent.cseq.seq)
        old = self._running.get(key)
        if old is not None:
            self._end(old)
        self._start(key, AckResender(sent, stack.timer_config), target, None)
        return sent

    def add_destinations(
        self,
        dialog: Dialog,
        seq: int,
        targets: Sequence[Target],
        *,
        exclude: Sequence[Target] = (),
    ) -> int:
        """Seed 002: let the 2xx (UAS) or the ACK (UAC) of ``dialog``'s INVITE ``seq`` cycle
        through ``targets`` too, after its own destination and without ``exclude`` (module
        comment). Returns how many destinations the machine has now (0: it has ended)."""
        running = self._running.get((dialog.id, seq))
        if running is None:
            return 0
        first = running.first
        if isinstance(first, Flow):
            first_key = [Target(first.transport, first.remote[0], first.remote[1])]
        else:
            first_key = [first]
        others = running.others or []
        others.extend(merge([targets], exclude=[*exclude, *others, *first_key]))
        running.others = others
        running.machine.destinations = 1 + len(others)
        return running.machine.destinations

    def _start(
        self,
        key: tuple[DialogId, int],
        machine: AckWait | AckResender,
        first: Flow | Target,
        on_timeout: Callable[[str], object] | None,
    ) -> None:
        # The machine's first transmission already happened (the 2xx by its transaction, the
        # ACK by send_stateless): its start outputs are dropped, only its deadlines are set.
        machine.start(trio.current_time())
        running = _Running(key, machine, first, on_timeout)
        self._running[key] = running
        self._by_dialog.setdefault(key[0], set()).add(key[1])
        self._settle(running)

    def _end(self, running: _Running) -> None:
        running.done = True
        key = running.key
        if self._running.get(key) is running:
            del self._running[key]
            seqs = self._by_dialog.get(key[0])
            if seqs is not None:
                seqs.discard(key[1])
                if not seqs:
                    del self._by_dialog[key[0]]
        # Its timer entry is dead now (most AckWaits end within milliseconds, long before
        # T1): drop the dead entries at the top so the timer task does not wake for them.
        self._timers.prune()

    def _fire(self, running: _Running, deadline: float, now: float) -> None:
        if running.done or running.timer_at != deadline:
            return  # stale: the machine ended or moved its deadline
        running.timer_at = None
        self._perform(running, running.machine.handle_timer(now))

    def _perform(self, running: _Running, outputs: Sequence[object]) -> None:
        for output in outputs:
            if isinstance(output, Transmit):
                self._transmit(running, output.message)
            elif isinstance(output, NextDestination):
                logger.info("%s of %s: %s", _what(running), running.key[0], output.reason)
            elif isinstance(output, Terminated):
                self._end(running)
            elif isinstance(output, AckTimeout) and running.on_timeout is not None:
                try:
                    running.on_timeout(output.reason)
                except Exception:
                    logger.exception("2xx/ACK machine owner failed on %r", output)
        self._settle(running)

    def _settle(self, running: _Running) -> None:
        if running.done:
            return
        deadline = running.machine.deadline
        if deadline is None:
            running.timer_at = None
        elif deadline != running.timer_at:
            running.timer_at = deadline
            self._timers.push(deadline, running)

    def _transmit(self, running: _Running, message: Request | Response) -> None:
        item = (message, running.machine.destination)
        if running.sending is not None:  # an earlier send still waits: keep the order
            running.sending.append(item)
            return
        running.sending = deque([item])
        self._nursery.start_soon(self._drain, running)

    async def _drain(self, running: _Running) -> None:
        """Send the machine's queued retransmissions in order. A failed one is dropped, with
        the rest (§17.1.4: the next one, the next destination or the give-up timer follows)."""
        queue = running.sending
        assert queue is not None
        try:
            while queue and not running.done:
                try:
                    await self._send(running, *queue[0])
                # ProtocolError: a Via that routes nowhere
                except (TransportError, ProtocolError) as exc:
                    logger.info("%s of %s not sent: %s", _what(running), running.key[0], exc)
                    queue.clear()
                    break
                queue.popleft()
        finally:
            running.sending = None

    async def _send(self, running: _Running, message: Request | Response, index: int) -> None:
        stack = self._stack
        way: Flow | Target = running.first
        if index > 0 and running.others is not None and index <= len(running.others):
            way = running.others[index - 1]
        if isinstance(message, Request):  # an ACK: its Via was stamped by the first send
            assert isinstance(way, Target)
            await stack.send_stateless(message, way, new_via=False)
        elif isinstance(way, Flow):
            await stack.send_stateless(message, flow=way)  # §18.2.2 from the top Via
        else:  # seed 002: the same 2xx, through another proxy of the list
            flow = await stack.transport_layer.connect(way)
            await flow.send(bytes(message))

    def deliver(self, message: Request | Response) -> bool:
        """An ACK for our 2xx (UAS) or a retransmitted 2xx (UAC): give it to its machine.
        The dialog id comes from the message itself, so it works after the call ended."""
        local, remote = message.to.tag, message.from_.tag
        if isinstance(message, Response):
            local, remote = remote, local
        if local is None:
            return False
        # An RFC 2543 peer's ACK has no From tag: its dialog's remote tag is null (§12.1.1).
        key = (DialogId(message.call_id, local, remote or ""), message.cseq.seq)
        running = self._running.get(key)
        if running is None:
            return False
        now = trio.current_time()
        self._perform(running, running.machine.handle(MessageReceived(message), now))
        return True

    def stop(self, dialog: Dialog, *, keep_ack: bool = False) -> None:
        """Stop the machines of ``dialog`` (the call ended); ``keep_ack`` leaves the
        AckResenders running (2xx retransmissions still get their ACK for 64*T1)."""
        for seq in tuple(self._by_dialog.get(dialog.id, ())):
            running = self._running.get((dialog.id, seq))
            if running is not None and not (keep_ack and running.resender):
                self._end(running)
