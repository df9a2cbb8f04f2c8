# The client side of the low-level API: one handle per client transaction (RFC 3261 §17.1).
#
# Theory of operation: ``Stack.send_request`` builds the machine (§17.1.1 INVITE, §17.1.2
# non-INVITE), registers it in the TransactionTable under its ClientKey (§17.1.3) and starts
# it; this handle drives it synchronously (``_driving``: responses and flow failures are fed
# in the transport's callbacks, timers by the stack's TimerQueue, no task of its own). Every
# output that is not a Transmit turns into what the application iterates: each
# response up to and including the first final one (§17.1.1.2 "passed to the TU"), the
# RetransmitTimeout notifications of the application-retransmit role (JAIN-SIP's
# Timeout.RETRANSMIT: Timer A of an INVITE), or an exception: TransactionTimeoutError (Timer
# B/F where the role hears JAIN-SIP's Timeout.TRANSACTION), TransactionError (a Timer B the
# role does not report: the seed's "User Agent" and a stateful proxy's INVITE) or
# TransportError (§17.1.4). Both timeouts are also published as typed events on the stack
# (``_timeouts``: ``open_stack(on_timeout=...)``, ``stack.timeouts()``). After the final
# response the machine lives
# on (Timers D/K/M absorb retransmissions, RFC 6026 §8.4); a further 2xx to an INVITE (a
# retransmission or a fork, which the TU must ACK) goes to the stack's ``on_stray`` hook.
# Leaving the handle's context before a final response stops the transaction.
"""ClientTransaction: the handle ``Stack.send_request`` yields."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, final

import trio

from trio_sip.drivers import Inbox
from trio_sip.proto.errors import TransactionError, TransactionTimeoutError, TransportError
from trio_sip.proto.message import Request, Response
from trio_sip.proto.outputs import (
    ApplicationRetransmit,
    Deliver,
    Output,
    RetransmitTimeout,
    Terminated,
    TerminationReason,
    TransactionTimeout,
    TransportErrorOccurred,
    TransportFailed,
)
from trio_sip.proto.target import Target
from trio_sip.proto.transaction import (
    ClientInviteState,
    ClientInviteTransaction,
    ClientKey,
    ClientNonInviteState,
    ClientNonInviteTransaction,
)
from trio_sip.transports.base import Flow, FlowEvent, FlowFailed

from ._driving import _Transaction
from ._timeouts import report

if TYPE_CHECKING:
    from ._core import Stack

__all__ = ["ClientEvent", "ClientTransaction"]

#: What iterating a ClientTransaction yields.
ClientEvent = Response | RetransmitTimeout


@final
class ClientTransaction(_Transaction):
    """One client transaction. Made by :meth:`Stack.send_request`; never constructed by users.

    ``async for event in tx`` yields each :class:`Response` (provisional, then the final one,
    which ends the iteration) and, in ``TimeoutRole.USER_AGENT_APP_RETRANSMIT``, each
    :class:`RetransmitTimeout` of an INVITE (call :meth:`retransmit` to resend). It raises
    :class:`TransactionTimeoutError` (a TRANSACTION timeout), :class:`TransportError`, or a
    plain :class:`TransactionError` (Timer B in a role that hears no TRANSACTION timeout on
    INVITE) when the transaction ends without a final response.
    """

    __slots__ = (
        "_app_retransmit",
        "_closed",
        "_error",
        "_events",
        "_exhausted",
        "_gone",
        "_unwatch",
        "final_response",
        "flow",
        "key",
        "request",
        "target",
    )

    key: ClientKey

    def __init__(
        self,
        stack: Stack,
        request: Request,
        target: Target,
        flow: Flow,
        *,
        key: ClientKey,
        machine: ClientInviteTransaction | ClientNonInviteTransaction,
        app_retransmit: bool,
    ) -> None:
        self._init_driving(stack, machine)
        #: The request as sent (with the stack's Via and Content-Length).
        self.request = request
        self.target = target
        self.flow = flow
        self.key = key
        self._events: Inbox[ClientEvent | TransactionError] = Inbox()
        self._app_retransmit = app_retransmit
        #: The first final response, once it has arrived.
        self.final_response: Response | None = None
        self._error: TransactionError | None = None
        self._closed = False
        self._exhausted = False
        self._gone: trio.lowlevel.ParkingLot | None = None
        self._unwatch: Callable[[], None] | None = None

    # -- application side ------------------------------------------------------------------

    @property
    def state(self) -> ClientInviteState | ClientNonInviteState:
        """The machine's state (an Enum member, e.g. ``ClientInviteState.PROCEEDING``)."""
        state: ClientInviteState | ClientNonInviteState = self._machine.state
        return state

    @property
    def terminated(self) -> bool:
        return bool(self._machine.terminated)

    def __aiter__(self) -> ClientTransaction:
        return self

    async def __anext__(self) -> ClientEvent:
        if self._exhausted:
            await trio.lowlevel.checkpoint()
            raise StopAsyncIteration
        item = await self._events.get()
        if isinstance(item, TransactionError):
            self._exhausted = True
            raise item
        if isinstance(item, Response) and item.status_code >= 200:
            self._exhausted = True
        return item

    async def wait_final(self) -> Response:
        """Wait for the final response (skipping provisionals and notifications).

        Raises :class:`TransactionTimeoutError` or :class:`TransportError`.
        """
        async for _ in self:
            pass
        if self.final_response is None:
            error = self._error or TransactionError("the transaction ended without a response")
            raise type(error)(*error.args)
        return self.final_response

    def retransmit(self) -> None:
        """Resend the INVITE now (``TimeoutRole.USER_AGENT_APP_RETRANSMIT``, Calling state):
        the answer to a :class:`RetransmitTimeout` / ``RetransmitTimeoutEvent``.

        Raises ``LocalProtocolError`` in any other role or state.
        """
        outputs = self._machine.handle(ApplicationRetransmit(), trio.current_time())
        self._perform(outputs)

    def cancel(self) -> None:
        """Abandon the transaction now (no CANCEL is sent: that is the TU's decision)."""
        if self.final_response is None and self._error is None:
            self._fail(TransactionError("the transaction was cancelled"))
        self._stack._stop(self)

    def make_cancel(self) -> Request:
        """The CANCEL for this INVITE (§9.1): same Request-URI, Call-ID, From, To, CSeq number
        and top Via (so the same branch), Route copied. Send it with
        ``stack.send_request(cancel, tx.target, new_via=False)`` once a provisional arrived."""
        req = self.request
        headers: list[tuple[str, str]] = [("Via", req.headers.get_list("Via")[0])]
        headers += [("Route", value) for value in req.headers.get_all("Route")]
        for name in ("Max-Forwards", "From", "To", "Call-ID"):
            value = req.headers.get(name)
            if value is not None:
                headers.append((name, value))
        headers += [("CSeq", f"{req.cseq.seq} CANCEL"), ("Content-Length", "0")]
        return Request("CANCEL", req.uri_text, headers)

    def __repr__(self) -> str:
        return f"<ClientTransaction {self.request.method} {self.key.branch} {self.state.name}>"

    # -- driver side -----------------------------------------------------------------------

    def _watch(self) -> None:
        """Feed a failure of the flow (a TCP reset, an ICMP port-unreachable) at once."""

        def on_flow_event(event: FlowEvent) -> None:
            if isinstance(event, FlowFailed):
                self._input(TransportFailed(str(event.error)))

        self._unwatch = self.flow.subscribe(on_flow_event)

    def _try_send(self, message: Request | Response) -> bool:
        flow = self.flow
        return flow.sync_send and flow.try_send(bytes(message))

    async def _send(self, message: Request | Response) -> None:
        await self.flow.send(bytes(message))

    def _fail(self, error: TransactionError) -> None:
        if self.final_response is None and self._error is None:
            self._error = error
            self._events.put(error)

    async def _close(self) -> None:
        """The application left the handle's context: without a final response, stop the
        transaction, and wait (shielded) until a send of it still in progress is abandoned,
        so that nothing of it outlives the caller's block."""
        self._closed = True
        if self.final_response is None:
            self.cancel()
            with trio.CancelScope(shield=True):
                while self._sending is not None:
                    if self._gone is None:
                        self._gone = trio.lowlevel.ParkingLot()
                    await self._gone.park()

    def _stopped(self) -> None:
        """The stack forgot the transaction (it ended, was cancelled, or the stack closed)."""
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        self._fail(TransactionError("the transaction was stopped (stack closed or cancelled)"))

    def _sender_exited(self) -> None:
        if self._gone is not None:
            self._gone.unpark_all()

    def on_output(self, output: Output) -> None:
        if isinstance(output, Deliver):
            message = output.message
            assert isinstance(message, Response)
            if self.final_response is None and self._error is None and not self._closed:
                if message.status_code >= 200:
                    self.final_response = message
                self._events.put(message)
            elif self.request.method == "INVITE" and 200 <= message.status_code < 300:
                self._stack._stray(message, self.flow)  # the TU must ACK every 2xx
        elif isinstance(output, RetransmitTimeout):
            if self._app_retransmit and not self._closed and self.final_response is None:
                self._events.put(output)
            report(self._stack._timeout_hub, self, output)
        elif isinstance(output, TransactionTimeout):
            self._fail(TransactionTimeoutError(f"no final response to {self.request.method}"))
            report(self._stack._timeout_hub, self, output)
        elif isinstance(output, TransportErrorOccurred):
            self._fail(TransportError(output.reason))
        elif isinstance(output, Terminated):
            if output.reason is TerminationReason.TIMEOUT:  # a timeout this role does not hear
                rule = self._machine.rule
                self._fail(
                    TransactionError(
                        f"the {self.request.method} transaction ended at Timer "
                        f"{rule.timeout_timer} without a final response ({rule.role.name} "
                        "reports no TRANSACTION timeout for it)"
                    )
                )
            else:
                self._fail(TransactionError(f"transaction ended: {output.reason.value}"))

    def _crashed(self, exc: Exception) -> None:
        self._fail(TransactionError(f"internal error in the transaction: {exc!r}"))
