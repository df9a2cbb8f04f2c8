# The server side of the low-level API: one handle per server transaction (RFC 3261 §17.2).
#
# Theory of operation: the stack builds the machine (§17.2.1 INVITE with RFC 6026's Accepted
# state, §17.2.2 non-INVITE) inside the transport's synchronous callback and starts it there
# (the server machine's start only delivers the request), so the table matches retransmissions
# and a CANCEL (§9.2) from the first instant; the driver task then performs the outputs. The
# handle is the driver's owner and the application's TU interface: ``respond`` builds the
# response (§8.2.6.2: Via, From, To, Call-ID and CSeq copied, one To tag per transaction,
# §8.2.6.2 / §12.1.1) and feeds ``SendResponse`` to the machine synchronously, so an illegal
# response (a second final one) raises ``LocalProtocolError`` in the caller; the outputs go to
# the driver, which sends them per §18.2.2 (back on the request's connection, or to
# ``received``/``rport`` over UDP). The machine then retransmits a 300-699 until the ACK
# (Timer G/H), absorbs INVITE retransmissions after a 2xx (RFC 6026 §8.7) and ends.
"""IncomingRequest: the handle the application answers a request through."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, final

import trio

from trio_sip.drivers import Inbox, InboxItem
from trio_sip.proto.message import Request, Response, make_response
from trio_sip.proto.outputs import (
    Deliver,
    Output,
    SendResponse,
    TransactionTimeout,
    TransportErrorOccurred,
)
from trio_sip.proto.transaction import Key, Machine
from trio_sip.transports.base import Flow

if TYPE_CHECKING:
    from ._receive import _Receiver

__all__ = ["IncomingRequest"]


@final
class IncomingRequest:
    """A received request with its server transaction. Made by the stack, never by users.

    ``request`` is the request as received (``received``/``rport`` stamped in its top Via),
    ``flow`` the flow it arrived on. Answer with :meth:`respond`.
    """

    __slots__ = (
        "_cancel_hook",
        "_cancelled",
        "_inbox",
        "_internal",
        "_lingering",
        "_machine",
        "_stack",
        "final_response",
        "flow",
        "key",
        "request",
        "timed_out",
        "to_tag",
    )

    def __init__(
        self,
        stack: _Receiver,
        request: Request,
        flow: Flow,
        *,
        key: Key,
        machine: Machine[Any],
        to_tag: str,
        internal: bool = False,
    ) -> None:
        self._stack = stack
        self.request = request
        self.flow = flow
        self.key = key
        self._machine = machine
        self._inbox: Inbox[InboxItem] = Inbox()
        #: The To tag every response of this transaction carries (unless the request had one).
        self.to_tag = to_tag
        #: The final response sent, if any.
        self.final_response: Response | None = None
        #: True when Timer H fired: the ACK for our 300-699 never came (§17.2.1).
        self.timed_out = False
        self._cancelled: trio.Event | None = None
        #: Called (synchronously) when a CANCEL matches: the user agent's incoming call.
        self._cancel_hook: Callable[[], object] | None = None
        self._internal = internal  # a CANCEL the stack answers itself
        #: No driver task: the stack's linger timer holds the machine's deadline.
        self._lingering = False

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def state(self) -> Any:
        return self._machine.state

    @property
    def cancelled(self) -> bool:
        """True once a CANCEL for this INVITE arrived (the stack answered 487 if it could)."""
        return self._cancelled is not None and self._cancelled.is_set()

    async def wait_cancelled(self) -> None:
        """Wait until a CANCEL for this request arrives."""
        if self._cancelled is None:
            self._cancelled = trio.Event()
        await self._cancelled.wait()

    def make_response(
        self,
        status_code: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Response:
        """A response to the request with this transaction's To tag (not sent)."""
        tag = self.to_tag if status_code > 100 else None
        return make_response(
            self.request, status_code, reason, to_tag=tag, headers=headers, body=body
        )

    async def respond(
        self,
        status: int | Response,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Response:
        """Send a response: a status code (built with :meth:`make_response`) or a Response.

        Raises ``LocalProtocolError`` if the transaction does not allow it (a final response
        was already sent, the transaction ended). Calling it again with the same 2xx to an
        INVITE retransmits it (RFC 6026 Accepted state). Returns the response.
        """
        if isinstance(status, Response):
            response = status
        else:
            response = self.make_response(status, reason, headers=headers, body=body)
        self._respond_now(response)
        await trio.lowlevel.checkpoint()
        return response

    def _respond_now(self, response: Response) -> None:
        outputs = self._machine.handle(SendResponse(response), trio.current_time())
        if response.status_code >= 200 and self.final_response is None:
            self.final_response = response
        self._put(outputs)

    def _put(self, item: InboxItem) -> None:
        """Give the driver an input or outputs; start a driver again if the machine lingers."""
        self._inbox.put(item)
        if self._lingering:
            self._stack._revive(self)

    def __repr__(self) -> str:
        return f"<IncomingRequest {self.request.method} {self.state.name}>"

    # -- stack / driver side ---------------------------------------------------------------

    async def _send(self, message: Request | Response) -> None:
        assert isinstance(message, Response)
        await self._stack._layer.send_response(message, self.flow)

    def _cancel(self) -> None:
        """A CANCEL matched this request (§9.2)."""
        if self._cancelled is None:
            self._cancelled = trio.Event()
        self._cancelled.set()
        if self._cancel_hook is not None:
            self._cancel_hook()

    def on_output(self, output: Output) -> None:
        if isinstance(output, Deliver):
            message = output.message
            assert isinstance(message, Request)
            if message is self.request:
                if not self._internal:
                    self._stack._dispatch(self)
            else:  # the ACK for our 2xx, matched in the Accepted state (RFC 6026 §8.7)
                self._stack._stray(message, self.flow)
        elif isinstance(output, TransactionTimeout):
            self.timed_out = True
        elif isinstance(output, TransportErrorOccurred):
            self._stack._log_transport_error(self, output.reason)
