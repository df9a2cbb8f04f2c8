# The transaction layer's shell: RFC 3261 §17 (transactions), §17.2.3 / §9.2 (matching and
# CANCEL), §8.2 (UAS request checks), §18 (transport use), §16.11 (stateless proxies) and
# RFC 6026 (2xx handling, stray responses).
#
# Theory of operation: a Stack owns one nursery, one TransportLayer and one TransactionTable.
# Every received message reaches ``_on_message`` synchronously (no task per message) and goes
# where ``TransactionTable.classify`` says: a response to its client transaction's inbox, a
# retransmitted request (or the ACK for a 300-699) to its server transaction's inbox, an ACK
# for a 2xx and a stray response to the ``on_stray`` hook (RFC 6026 §8.9: drop by default). A
# new request is checked (``validate.check_request``: 400/416/420/501...) and refused
# statelessly when it fails; otherwise it gets a server transaction and an IncomingRequest,
# handed to the handler callback (run in the stack's nursery; an exception becomes a 500) or
# queued for ``requests()``. A CANCEL gets its own transaction, answered 200 (481 without a
# match) by the stack, and the INVITE it names gets 487 unless a final response went out;
# in the STATEFUL_PROXY role (§16.10) there is no 487 (the proxy forwards the best response of
# the branches it cancels) and a CANCEL without a match goes to ``on_stray`` untouched, to be
# forwarded statelessly.
#
# No transaction has a task of its own (``_driving``): a machine is fed where its inputs
# arrive (the transport callback, the TU's ``respond``, a flow failure) and its outputs are
# performed there; a UDP datagram is sent synchronously when the socket takes it, and anything
# else goes through a short-lived sender task per transaction that has sends waiting (TCP, TLS,
# a full socket buffer). Every deadline (Timers A-M, the 100 Trying timer) sits in one
# ``TimerQueue`` served by one task. New requests reach the TU through one starter task, one
# per scheduling round or two (as fast as an application answering in a loop takes them: an
# agent's 16-call ``incoming_queue`` overflowed, 486, when a burst went up at once). A
# transaction is forgotten (removed from the table) when its machine is Terminated, when it is
# cancelled, or when the stack closes. Closing the stack closes the transports and cancels the
# nursery: no task, timer or socket remains.
# Fault isolation (trio_sip/_faults.py, docs/security.md "Faults"): whatever one message, one
# transaction or one handler raises is caught where it happens, answered (a 500 where a server
# transaction can still take one), counted in ``stack.faults`` by kind and logged once per kind
# per interval; it never reaches the nursery, except in strict mode (``strict=True`` or
# TRIO_SIP_STRICT=1, as in the test suite), where an exception that is not a SipError -- a bug --
# fails the stack's nursery so that the test sees it.
# Timeouts the role hears (proto/transaction/timeouts.py) are published as typed events to
# ``on_timeout`` and ``timeouts()`` streams (``_timeouts``).
"""Stack and open_stack: client and server transactions over the transport layer."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import final

import attrs
import trio

from trio_sip._faults import Faults
from trio_sip._groups import open_service_nursery
from trio_sip._inputs import listen_arg
from trio_sip.drivers import Inbox, TimerQueue
from trio_sip.proto.errors import LocalProtocolError, TransactionTimeoutError, TransportError
from trio_sip.proto.ids import new_branch
from trio_sip.proto.limits import DEFAULT_LIMITS, Limits
from trio_sip.proto.message import Request, Response
from trio_sip.proto.target import Target
from trio_sip.proto.timers import TimerConfig
from trio_sip.proto.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Key,
    TimeoutRole,
    TransactionTable,
    client_key,
)
from trio_sip.transports.base import Flow, NetworkBackend, TransportConfig, format_address
from trio_sip.transports.pool import TransportLayer

from ._admission import Admission
from ._client import ClientTransaction
from ._driving import _Transaction
from ._receive import Handler, StrayHook, SyncHandler, _Receiver
from ._server import IncomingRequest
from ._timeouts import TimeoutCallback, TimeoutEvent, TimeoutHub, TimeoutStream

__all__ = ["Handler", "Stack", "StackStatistics", "StrayHook", "open_stack"]

logger = logging.getLogger("trio_sip.stack")

_Tx = ClientTransaction | IncomingRequest


@attrs.frozen(slots=True)
class StackStatistics:
    """What is alive in a stack (``Stack.statistics()``)."""

    #: Client / server transactions not ended yet (lingering in Completed/Accepted included).
    client_transactions: int
    server_transactions: int
    #: Handler tasks still running.
    handlers: int
    #: Every per-request task the stack started that is still running: handlers, and the
    #: sender tasks of transactions with sends waiting (transactions have no task of their own).
    tasks: int
    #: Flows in the transport pool: client and accepted connections, and connected UDP
    #: sockets (only without a UDP listener: otherwise UDP leaves from the listener).
    flows: int
    #: Requests waiting in the ``requests()`` queue.
    queued_requests: int
    #: Faults recorded since the stack opened (by kind: ``stack.faults.counts``).
    faults: int = 0


@final
class Stack(_Receiver):
    """The transaction layer (see the module comment). Made by :func:`open_stack`."""

    def __init__(
        self,
        nursery: trio.Nursery,
        layer: TransportLayer,
        *,
        timer_config: TimerConfig,
        role: TimeoutRole,
        handler: Handler | None,
        on_stray: StrayHook | None,
        rng: random.Random,
        check_requests: bool,
        request_queue_size: int,
        max_transactions: int,
        limits: Limits = DEFAULT_LIMITS,
        strict: bool | None = None,
        on_timeout: TimeoutCallback | None = None,
    ) -> None:
        self._nursery = nursery
        #: What one message, transaction or handler raised, counted by kind (see _faults).
        self.faults = Faults(logger, strict=strict, crash=self._fail)
        #: The resource bounds of this stack (docs/security.md).
        self.limits = limits
        self._layer = layer
        self.timer_config = timer_config
        self.role = role
        self._handler = handler
        #: Tried before ``handler`` (set by a user agent; see ``_Receiver._dispatch``).
        self._sync_handler: SyncHandler | None = None
        self._on_stray = on_stray
        self._rng = rng
        self._check = check_requests
        self._table = TransactionTable(max_transactions)
        self._live: dict[Key, _Tx] = {}
        self._starts: Inbox[IncomingRequest] = Inbox()
        self._counts = {"client": 0, "server": 0, "handlers": 0, "senders": 0}
        #: Every machine's next deadline; served by the ``_timers.serve`` task.
        self._timers: TimerQueue[_Transaction] = TimerQueue(_fire, _timer_live)
        self._queue_in, self._queue_out = trio.open_memory_channel[IncomingRequest](
            request_queue_size
        )
        self._closed = False
        self._timeout_hub: TimeoutHub[TimeoutEvent] = TimeoutHub(on_timeout, self._hook_failed)
        #: Per-source request rates and overload shedding (503 + Retry-After, docs/security.md).
        self.admission = Admission(self, limits)
        layer.admit_source = self.admission.admit_source

    # -- introspection ---------------------------------------------------------------------

    @property
    def listening(self) -> list[tuple[str, tuple[str, int]]]:
        """``[(transport, (host, port)), ...]`` the stack listens on."""
        return self._layer.listening

    @property
    def transport_layer(self) -> TransportLayer:
        return self._layer

    def statistics(self) -> StackStatistics:
        c = self._counts
        return StackStatistics(
            client_transactions=c["client"],
            server_transactions=c["server"],
            handlers=c["handlers"],
            tasks=c["handlers"] + c["senders"],
            flows=len(self._layer.flows),
            queued_requests=self._queue_out.statistics().current_buffer_used,
            faults=self.faults.total,
        )

    def _hook_failed(self, exc: Exception, event: object) -> None:
        """An ``on_timeout`` callback (the stack's, the user agent's, the endpoint's) raised."""
        self.faults.record("timeout-hook", exc, repr(event))

    def timeouts(self, maxlen: int = 1024) -> TimeoutStream[TimeoutEvent]:
        """``async for event in stack.timeouts()``: every :class:`TimeoutEvent` (RETRANSMIT or
        TRANSACTION, client or server) the role hears, from now until the stack closes; at most
        ``maxlen`` unread (the oldest goes first)."""
        return self._timeout_hub.stream(maxlen)

    # -- client side -----------------------------------------------------------------------

    async def request(
        self,
        request: Request,
        target: Target,
        *,
        retransmit_interval: float | None = None,
        new_via: bool = True,
    ) -> Response:
        """Send ``request`` in a client transaction and return its final response.

        Raises :class:`TransactionTimeoutError` (Timer B/F, bounded by
        ``sip_transaction_timeout``) or :class:`TransportError`. Cancelling the caller
        cancels the transaction.
        """
        async with self.send_request(
            request, target, retransmit_interval=retransmit_interval, new_via=new_via
        ) as tx:
            return await tx.wait_final()

    @asynccontextmanager
    async def send_request(
        self,
        request: Request,
        target: Target,
        *,
        retransmit_interval: float | None = None,
        new_via: bool = True,
        role: TimeoutRole | None = None,
    ) -> AsyncIterator[ClientTransaction]:
        """Start a client transaction; yield its :class:`ClientTransaction` handle.

        With ``new_via`` (the default) the stack adds the top Via (transport, sent-by, a fresh
        branch, ``rport``); with ``new_via=False`` the request is sent as given (a CANCEL
        from ``tx.make_cancel()``). ``retransmit_interval`` is this transaction's own T1
        (JAIN-SIP ``setRetransmitTimer``: Timer A / E start from it, B / F are
        min(64 * it, ``sip_transaction_timeout``)); ``role`` overrides the stack's timeout
        role for this one.
        Leaving the block before the final response cancels the transaction.
        """
        tx = await self._start_client(request, target, retransmit_interval, new_via, role)
        try:
            yield tx
        finally:
            await tx._close()

    async def _start_client(
        self,
        request: Request,
        target: Target,
        retransmit_interval: float | None,
        new_via: bool,
        role: TimeoutRole | None,
    ) -> ClientTransaction:
        role = role or self.role
        if role is TimeoutRole.STATELESS_PROXY:
            raise LocalProtocolError("no client transactions in the stateless-proxy role")
        self._check_open()
        size = len(bytes(request)) + 120 if new_via else None  # our Via is still to come
        target, flow = await self._connect(target, request.method, size, retransmit_interval)
        if new_via:
            request = self.add_via(request, flow)
        request = _with_length(request)
        cls = ClientInviteTransaction if request.method == "INVITE" else ClientNonInviteTransaction
        machine: ClientInviteTransaction | ClientNonInviteTransaction = cls(
            request,
            self.timer_config,
            reliable=flow.reliable,
            retransmit_interval=retransmit_interval,
            role=role,
        )
        key = client_key(request)
        self._table.add(key, machine)
        app = machine.rule.hears_retransmit
        tx = ClientTransaction(
            self, request, target, flow, key=key, machine=machine, app_retransmit=app
        )
        self._live[key] = tx
        self._counts["client"] += 1
        try:
            tx._watch()
            tx._perform(machine.start(trio.current_time()))
            # The first transmission has happened when this returns (as ``nursery.start``
            # would): wait for a send that could not go out synchronously.
            while tx._sending is not None and not tx._done:
                if tx._gone is None:
                    tx._gone = trio.lowlevel.ParkingLot()
                await tx._gone.park()
        except BaseException:
            self._stop(tx)
            raise
        return tx

    async def _connect(
        self,
        target: Target,
        method: str,
        size: int | None = None,
        retransmit_interval: float | None = None,
    ) -> tuple[Target, Flow]:
        """The target and a flow to it; with ``size``, the §18.1.1 choice (over TCP when too
        big for UDP, back to UDP when that TCP connect is refused or reset:
        ``TransportLayer.connect_request``). A connect that hangs (a SYN into a blackhole) is
        bounded by the transaction timeout (Timer B or F, scaled by the transaction's own
        ``retransmit_interval``), as the transaction it serves would be."""
        config = self.timer_config
        if retransmit_interval is None:
            limit = config.timer_b if method == "INVITE" else config.timer_f
        else:  # this transaction's own T1 (B and F are the same value)
            limit = config.timers(reliable=True, retransmit_interval=retransmit_interval).b
        with trio.move_on_after(limit):
            if size is None:
                return target, await self._layer.connect(target)
            return await self._layer.connect_request(target, size)
        raise TransactionTimeoutError(
            f"{target.transport} connect to {target.host}:{target.port}: no answer within "
            f"{limit:g} s"
        )

    def add_via(self, request: Request, flow: Flow, branch: str | None = None) -> Request:
        """``request`` with our Via on top: ``flow``'s transport, our sent-by (the listening
        address for that transport when there is one, else the flow's local address:
        ``TransportLayer.sent_by``), the given or a fresh branch (§8.1.1.7) and ``rport``
        (RFC 3581)."""
        host, port = self._sent_by(flow)
        branch = branch or new_branch(self._rng)
        via = f"SIP/2.0/{flow.transport} {format_address((host, port))};branch={branch};rport"
        return request.evolve(headers=request.headers.prepend("Via", via))

    def _sent_by(self, flow: Flow) -> tuple[str, int]:
        # Over UDP the flow is the listener's, so this is where the datagram leaves from.
        return self._layer.sent_by(flow)

    # -- stateless sending -----------------------------------------------------------------

    async def send_stateless(
        self,
        message: Request | Response,
        target: Target | None = None,
        *,
        flow: Flow | None = None,
        new_via: bool = True,
        branch: str | None = None,
    ) -> Request | Response:
        """Send one message outside any transaction; return it as sent.

        A request (an ACK for a 2xx, §13.2.2.4; a stateless proxy's forward, §16.11) goes to
        ``target`` (or on ``flow``), with our Via added unless ``new_via=False`` (``branch``
        fixes the branch, e.g. a stateless proxy's hash). A response is routed per §18.2.2
        from its top Via (``flow``: the one its request arrived on). Raises TransportError.
        """
        self._check_open()
        if isinstance(message, Response):
            await self._layer.send_response(message, flow)
            return message
        if flow is not None:
            return await self._send_on(message, flow, new_via, branch)
        if target is None:
            raise LocalProtocolError("send_stateless needs a target or a flow for a request")
        flow = await self._stateless_flow(message, target, new_via)
        try:
            return await self._send_on(message, flow, new_via, branch)
        except TransportError:
            # A pooled connection may have just broken (a TCP reset its reader has not seen
            # yet: the chaos soak's reset lost the ACK of a re-INVITE's 2xx and so the call):
            # the request goes once more, on a new connection.
            if not flow.reliable or flow.usable:
                raise
            flow = await self._stateless_flow(message, target, new_via)
            return await self._send_on(message, flow, new_via, branch)

    async def _stateless_flow(self, message: Request, target: Target, new_via: bool) -> Flow:
        if new_via:
            return (await self._layer.connect_request(target, len(bytes(message)) + 120))[1]
        return await self._layer.connect(target)

    async def _send_on(
        self, message: Request, flow: Flow, new_via: bool, branch: str | None
    ) -> Request:
        if new_via:
            message = self.add_via(message, flow, branch)
        message = _with_length(message)
        await flow.send(bytes(message))
        return message

    # -- server side -----------------------------------------------------------------------

    async def requests(self) -> AsyncIterator[IncomingRequest]:
        """Iterate over new requests (only when the stack was opened without a handler)."""
        if self._handler is not None:
            raise LocalProtocolError("this stack hands requests to its handler")
        async for incoming in self._queue_out:
            yield incoming

    # -- driving ---------------------------------------------------------------------------

    async def _starter(self) -> None:
        """Hands new requests to the TU (their machine already started in the transport
        callback): one per scheduling round or two (``Inbox.get`` and the checkpoint), so a
        burst of new requests reaches the handlers spread out, as the application consumes
        them (an agent's 16-call ``incoming_queue`` overflowed, 486, with one batch)."""
        while True:
            incoming = await self._starts.get()
            outputs = incoming._start_outputs
            incoming._start_outputs = None
            if outputs:
                try:
                    incoming._perform(outputs)
                except Exception as exc:  # one request must not stop the delivery of all
                    self._crash(incoming, exc)
            await trio.lowlevel.checkpoint()

    def _start_sender(self, tx: _Transaction) -> None:
        """``tx`` has a send that cannot go out synchronously: drain its queue in a task."""
        if self._closed:
            tx._sending = None
            return
        self._counts["senders"] += 1
        self._nursery.start_soon(self._sender, tx)

    async def _sender(self, tx: _Transaction) -> None:
        try:
            with trio.CancelScope() as tx._send_scope:
                if tx._done and not tx._machine.terminated:
                    return  # stopped before the task ran
                await tx._drain()
        except Exception as exc:
            self._crash(tx, exc)
        finally:
            tx._send_scope = None
            tx._sending = None
            self._counts["senders"] -= 1
            if isinstance(tx, ClientTransaction):
                tx._sender_exited()

    def _finish(self, tx: _Transaction) -> None:
        """The machine of ``tx`` is Terminated: forget the transaction."""
        if not tx._done:
            tx._done = True
            if tx._timer_at is not None:
                tx._timer_at = None
                self._timers.prune()
            self._counts["client" if isinstance(tx, ClientTransaction) else "server"] -= 1
            self._forget(tx)
            if isinstance(tx, ClientTransaction):
                tx._stopped()
            elif isinstance(tx, IncomingRequest):
                tx._ended()

    def _stop(self, tx: _Transaction) -> None:
        """Abandon ``tx`` (cancelled, or the stack closes): its waiting sends too."""
        self._finish(tx)
        if tx._send_scope is not None:
            tx._send_scope.cancel()
        elif tx._sending is not None:
            tx._sending.clear()

    def _crash(self, tx: _Transaction, exc: Exception) -> None:
        if isinstance(tx, ClientTransaction):
            tx._crashed(exc)
        self._stop(tx)
        self.faults.record("transaction", exc, repr(tx))

    def _fail(self, exc: BaseException) -> None:
        """Strict mode: a bug was caught in a callback; fail the stack's nursery with it."""
        if self._closed:
            return

        async def reraise() -> None:
            raise exc

        self._nursery.start_soon(reraise)

    def _forget(self, tx: _Transaction) -> None:
        if self._live.get(tx.key) is tx:
            del self._live[tx.key]
        if self._table.get(tx.key) is tx._machine:
            self._table.remove(tx.key)

    # -- closing ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError("the stack is closed")

    async def aclose(self) -> None:
        """Close the transports and cancel every transaction and handler."""
        if self._closed:
            return
        self._closed = True
        await self._layer.aclose()
        self._queue_in.close()
        for tx in list(self._live.values()):
            self._stop(tx)
        self._timeout_hub.close()
        self._timers.clear()
        self._nursery.cancel_scope.cancel()


#: Incremented in a child process after fork(): buffered random bytes are never shared.
_FORKS = [0]


def _forked() -> None:
    _FORKS[0] += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


class _BufferedSystemRandom(random.SystemRandom):
    """``random.SystemRandom`` whose ``getrandbits`` (all that branches and tags use) draws
    ``os.urandom`` 4 KB at a time: one ``getrandom`` system call per ~500 identifiers instead
    of one per identifier. Same source, same unpredictability (the buffer is dropped in a
    forked child)."""

    def __init__(self) -> None:
        super().__init__()
        self._buffer = b""
        self._pos = 0
        self._fork = _FORKS[0]

    def getrandbits(self, k: int, /) -> int:
        if k <= 0:
            return super().getrandbits(k)
        n = (k + 7) // 8
        pos = self._pos
        if self._fork != _FORKS[0]:
            self._fork = _FORKS[0]
            self._buffer = b""
        if pos + n > len(self._buffer):
            self._buffer = os.urandom(max(4096, n))
            pos = 0
        self._pos = pos + n
        return int.from_bytes(self._buffer[pos : pos + n], "big") >> (8 * n - k)


def _timer_live(tx: _Transaction, deadline: float) -> bool:
    """Whether a TimerQueue entry is still the transaction's next deadline."""
    return tx._timer_at == deadline and not tx._done


def _fire(tx: _Transaction, deadline: float, now: float) -> None:
    """The TimerQueue's callback (for live entries): run the machine's timers. A failure ends
    that transaction, never the timer task every transaction depends on."""
    try:
        tx._fire(now)
    except Exception as exc:
        tx._stack._crash(tx, exc)


def _with_length(message: Request) -> Request:
    value = str(len(message.body))
    if message.headers.get("Content-Length") == value:
        return message
    return message.evolve(headers=message.headers.replace("Content-Length", value))


@asynccontextmanager
async def open_stack(
    listen: Iterable[tuple[str, str, int] | str] = (),
    *,
    timer_config: TimerConfig | None = None,
    role: TimeoutRole = TimeoutRole.USER_AGENT,
    handler: Handler | None = None,
    on_stray: StrayHook | None = None,
    transport_config: TransportConfig | None = None,
    backend: NetworkBackend | None = None,
    rng: random.Random | None = None,
    check_requests: bool = True,
    request_queue_size: int = 100,
    max_transactions: int | None = None,
    limits: Limits | None = None,
    strict: bool | None = None,
    on_timeout: TimeoutCallback | None = None,
) -> AsyncIterator[Stack]:
    """A :class:`Stack` listening on each ``(transport, host, port)`` of ``listen`` (or
    ``"TRANSPORT:ip:port"``, the ``--listen`` form).

    ``handler(incoming)`` answers new requests (else iterate ``stack.requests()``);
    ``on_stray(message, flow)`` receives ACKs for 2xx, unmatched responses, late 2xx to an
    INVITE and, in ``TimeoutRole.STATELESS_PROXY``, every message. In
    ``TimeoutRole.STATEFUL_PROXY`` a matched CANCEL gets 200 but no 487 for the INVITE (the
    handler forwards its branches' best response, RFC 3261 §16.10), and an unmatched CANCEL
    goes to ``on_stray`` instead of getting 481 (to be forwarded statelessly). ``backend`` swaps the
    sockets (``FakeNetwork.backend(host)`` in tests). ``limits`` bounds what peers can make the
    stack hold (docs/security.md); ``max_transactions`` defaults to ``limits.max_transactions``.
    What one message, transaction or handler raises is answered, counted (``stack.faults``) and
    logged once per kind per minute; with ``strict`` (default: ``TRIO_SIP_STRICT=1`` in the
    environment) an exception that is not a SipError fails the stack instead (for tests).
    ``on_timeout(event)`` is called synchronously with each :class:`TimeoutEvent` the role hears
    (docs/transactions.md; ``stack.timeouts()`` is the async form). Closing cancels everything.
    """
    limits = limits or DEFAULT_LIMITS
    listen = listen_arg("listen", listen)
    async with open_service_nursery() as nursery:
        layer = TransportLayer(
            nursery, None, config=transport_config, backend=backend, limits=limits
        )
        stack = Stack(
            nursery,
            layer,
            timer_config=timer_config or TimerConfig(),
            role=role,
            handler=handler,
            on_stray=on_stray,
            rng=rng or _BufferedSystemRandom(),
            check_requests=check_requests,
            request_queue_size=request_queue_size,
            max_transactions=max_transactions or limits.max_transactions,
            limits=limits,
            strict=strict,
            on_timeout=on_timeout,
        )
        layer.on_message = stack._on_message
        try:
            for transport, host, port in listen:
                await nursery.start(layer.listen, transport, host, port)
            nursery.start_soon(stack._starter)
            nursery.start_soon(stack._timers.serve)
            nursery.start_soon(stack.faults.serve)
            nursery.start_soon(stack.admission.run)
            yield stack
        finally:
            await stack.aclose()
