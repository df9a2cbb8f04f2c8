# Synchronous driving of one transaction machine (RFC 3261 §17; docs/architecture.md, Contract 2).
#
# Theory of operation: a transaction is driven where its inputs arrive, with no task of its own.
# ``_input`` feeds a received message or a transport failure to ``machine.handle``; the handle's
# TU methods (``respond``, ``retransmit``) call ``machine.handle`` themselves, so that an
# illegal action raises ``LocalProtocolError`` in the caller; the stack's TimerQueue calls
# ``_fire`` at the machine's deadline. Each time, ``_perform`` carries out the outputs in order:
#
# * ``Transmit``: serialised and sent at once when the flow can send synchronously (a UDP socket
#   that accepts the datagram); otherwise, and whenever an earlier send of this transaction is
#   still waiting, it joins the transaction's send queue, which one sender task drains in order
#   (TCP, TLS, a full UDP buffer, the in-memory test network). A ``TransportError`` is fed back
#   as ``TransportFailed`` (§17.1.4 / §17.2.4): the queued sends are dropped, the deliveries kept;
#   after the machine already ended (a final response over TCP, Timer J = 0) the owner is told
#   with ``TransportErrorOccurred`` so that the failure is not silent.
# * everything else goes to the handle's ``on_output`` (a failing owner is logged).
#
# Then the machine's next deadline is pushed on the stack's TimerQueue (the handle remembers it
# and ignores stale entries), or, once it is Terminated, the stack forgets the transaction.
"""_Transaction: the synchronous driver shared by ClientTransaction and IncomingRequest."""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import trio

from trio_sip.proto.errors import TransportError
from trio_sip.proto.message import Request, Response
from trio_sip.proto.outputs import (
    Input,
    Output,
    Transmit,
    TransportErrorOccurred,
    TransportFailed,
)
from trio_sip.proto.transaction import Key, Machine

if TYPE_CHECKING:
    from ._core import Stack

logger = logging.getLogger("trio_sip.stack")


class _Transaction:
    """A machine, its stack, its timer entry and its send queue (see the module comment)."""

    __slots__ = ("_done", "_machine", "_send_scope", "_sending", "_stack", "_timer_at")

    _stack: Stack
    _machine: Machine[Any]
    key: Key

    def _init_driving(self, stack: Stack, machine: Machine[Any]) -> None:
        self._stack = stack
        self._machine = machine
        #: The deadline pushed on the stack's TimerQueue for this machine (None: none).
        self._timer_at: float | None = None
        #: Messages waiting for the sender task (None: no sender running).
        self._sending: deque[Request | Response] | None = None
        self._send_scope: trio.CancelScope | None = None
        #: Terminated or stopped: forgotten by the stack, no more inputs or timers.
        self._done = False

    # -- what the subclasses provide -------------------------------------------------------

    def on_output(self, output: Output) -> None:
        raise NotImplementedError

    def _try_send(self, message: Request | Response) -> bool:
        """Send now if possible (True); False: use the sender task. Raises TransportError."""
        raise NotImplementedError

    async def _send(self, message: Request | Response) -> None:
        raise NotImplementedError

    # -- driving ---------------------------------------------------------------------------

    def _input(self, event: Input) -> None:
        """A received message, or a transport failure, for this machine."""
        if self._done or self._machine.terminated:
            return  # e.g. a flow failure reported after the end
        try:
            outputs = self._machine.handle(event, trio.current_time())
        except Exception as exc:
            self._stack._crash(self, exc)
            return
        self._perform(outputs)

    def _fire(self, now: float) -> None:
        """The stack's TimerQueue: the deadline this handle pushed has come."""
        self._timer_at = None
        try:
            outputs = self._machine.handle_timer(now)
        except Exception as exc:
            self._stack._crash(self, exc)
            return
        self._perform(outputs)

    def _perform(self, outputs: list[Output]) -> None:
        """Carry out ``outputs`` in order, then re-arm the timer or forget the transaction."""
        if self._done:
            return
        pending = outputs
        i = 0
        while i < len(pending):
            output = pending[i]
            i += 1
            if type(output) is not Transmit:
                self._output(output)
                continue
            message = output.message
            queue = self._sending
            if queue is not None:  # an earlier send still waits: keep the order
                queue.append(message)
                continue
            try:
                if self._try_send(message):
                    continue
            except TransportError as exc:
                pending = self._send_failed(exc, pending[i:])
                i = 0
                continue
            self._sending = deque([message])
            self._stack._start_sender(self)
        self._settle()

    def _settle(self) -> None:
        machine = self._machine
        if machine.terminated:
            self._stack._finish(self)
            return
        if self._done:
            return
        deadline = machine.deadline
        if deadline == self._timer_at:
            return
        timers = self._stack._timers
        self._timer_at = deadline
        if deadline is not None:
            timers.push(deadline, self)
        timers.prune()  # the entry this one replaces may be at the top

    def _output(self, output: Output) -> None:
        try:
            self.on_output(output)
        except Exception as exc:  # counted and logged once per interval (stack.faults)
            self._stack.faults.record("owner", exc, f"{self!r} on {type(output).__name__}")

    def _send_failed(self, exc: TransportError, rest: list[Output]) -> list[Output]:
        """A send failed: what to perform instead of ``rest``."""
        machine = self._machine
        if machine.terminated:
            self._output(TransportErrorOccurred(str(exc)))
            return rest
        # §17.1.4 / §17.2.4: the remaining Transmits are moot; deliveries are not.
        if self._sending is not None:
            self._sending.clear()
        kept = [o for o in rest if type(o) is not Transmit]
        return kept + machine.handle(TransportFailed(str(exc)), trio.current_time())

    async def _drain(self) -> None:
        """The sender task: send the queued messages in order (see ``Stack._start_sender``)."""
        queue = self._sending
        assert queue is not None
        while queue:
            message = queue[0]
            try:
                await self._send(message)
            except TransportError as exc:
                queue.popleft()
                outputs = self._send_failed(exc, [])
                if outputs:
                    self._sending = None
                    self._perform(outputs)
                    return
                continue
            queue.popleft()
