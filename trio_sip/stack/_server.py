# The server side of the low-level API: one handle per server transaction (RFC 3261 §17.2).
#
# Theory of operation: the stack builds the machine (§17.2.1 INVITE with RFC 6026's Accepted
# state, §17.2.2 non-INVITE) inside the transport's synchronous callback and starts it there
# (the server machine's start only delivers the request), so the table matches retransmissions
# and a CANCEL (§9.2) from the first instant; the stack's starter task then hands the request to
# the TU. The handle is the machine's owner (it drives it synchronously, ``_driving``) and the
# application's TU interface: ``respond`` builds the response (§8.2.6.2: Via, From, To, Call-ID
# and CSeq copied, one To tag per transaction, §8.2.6.2 / §12.1.1) and feeds ``SendResponse``
# to the machine synchronously, so an illegal response (a second final one) raises
# ``LocalProtocolError`` in the caller, and the response goes out at once per §18.2.2 (back on
# the request's connection, or to ``received``/``rport`` over UDP). The machine then
# retransmits a 300-699 until the ACK (Timer G/H), absorbs INVITE retransmissions after a 2xx
# (RFC 6026 §8.7) and ends.
"""IncomingRequest: the handle the application answers a request through."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, final

import trio

from trio_sip.drivers import LINGER_MIN
from trio_sip.proto.errors import NotCancelled, ProtocolError
from trio_sip.proto.message import Request, Response, make_response
from trio_sip.proto.outputs import (
    ApplicationRetransmit,
    Deliver,
    Output,
    RetransmitTimeout,
    SendResponse,
    Terminated,
    TerminationReason,
    TransactionTimeout,
    TransportErrorOccurred,
)
from trio_sip.proto.transaction import (
    Key,
    ServerInviteState,
    ServerInviteTransaction,
    ServerNonInviteState,
    ServerNonInviteTransaction,
)
from trio_sip.transports.base import Flow

from ._driving import _Transaction
from ._timeouts import report

if TYPE_CHECKING:
    from ._core import Stack

__all__ = ["IncomingRequest"]


@final
class IncomingRequest(_Transaction):
    """A received request with its server transaction. Made by the stack, never by users.

    ``request`` is the request as received (``received``/``rport`` stamped in its top Via),
    ``flow`` the flow it arrived on. Answer with :meth:`respond`.
    """

    __slots__ = (
        "_cancel_hook",
        "_cancelled",
        "_compacted",
        "_failure",
        "_handled",
        "_internal",
        "_out",
        "_out_via",
        "_start_outputs",
        "_was_cancelled",
        "final_response",
        "flow",
        "key",
        "request",
        "timed_out",
        "to_tag",
    )

    def __init__(
        self,
        stack: Stack,
        request: Request,
        flow: Flow,
        *,
        key: Key,
        machine: ServerInviteTransaction | ServerNonInviteTransaction,
        to_tag: str,
        internal: bool = False,
    ) -> None:
        self._init_driving(stack, machine)
        self.request = request
        self.flow = flow
        self.key = key
        #: The machine's start outputs, until the stack's starter performs them.
        self._start_outputs: list[Output] | None = None
        #: The flow responses leave on synchronously, for the top Via ``_out_via`` (§18.2.2).
        self._out: Flow | None = None
        self._out_via: object = None
        #: The To tag every response of this transaction carries (unless the request had one).
        self.to_tag = to_tag
        #: The final response sent, if any.
        self.final_response: Response | None = None
        #: True when Timer H fired: the ACK for our 300-699 never came (§17.2.1). Where the
        #: role hears it, a ``TransactionTimeoutEvent`` is also published (``stack.timeouts()``).
        self.timed_out = False
        self._cancelled: trio.Event | None = None
        self._was_cancelled = False
        #: Called (synchronously) when a CANCEL matches: the user agent's incoming call.
        self._cancel_hook: Callable[[], object] | None = None
        self._internal = internal  # a CANCEL the stack answers itself
        #: The handler returned; the parsed views were dropped (``_compact``).
        self._handled = False
        self._compacted = False
        #: Why the transport failed this transaction (§17.2.4), if it did.
        self._failure: str | None = None

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def state(self) -> ServerInviteState | ServerNonInviteState:
        """The machine's state (an Enum member, e.g. ``ServerInviteState.PROCEEDING``)."""
        state: ServerInviteState | ServerNonInviteState = self._machine.state
        return state

    @property
    def cancelled(self) -> bool:
        """True once a CANCEL for this INVITE arrived (the stack answered 487 if it could,
        except in the STATEFUL_PROXY role, where the proxy forwards its branches' best)."""
        return self._was_cancelled

    async def wait_cancelled(self) -> None:
        """Wait until a CANCEL for this request arrives. Raises :class:`NotCancelled` once the
        transaction has ended without one (no CANCEL can match it any more)."""
        if self._cancelled is None:
            self._cancelled = trio.Event()
        if not self._cancelled.is_set() and self._done:
            raise NotCancelled(f"the {self.request.method} transaction ended without a CANCEL")
        await self._cancelled.wait()
        if not self._was_cancelled:
            raise NotCancelled(f"the {self.request.method} transaction ended without a CANCEL")

    def _ended(self) -> None:
        """The transaction ended: wake ``wait_cancelled`` (it raises NotCancelled)."""
        if self._cancelled is not None:
            self._cancelled.set()

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
            self.request,
            status_code,
            reason,
            to_tag=tag,
            headers=headers,
            body=body,
            limits=self._stack.limits,
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

    def retransmit(self) -> None:
        """Resend the final 300-699 response now: the answer to a ``RetransmitTimeoutEvent``
        (Timer G) in ``TimeoutRole.USER_AGENT_APP_RETRANSMIT``, where INVITE retransmissions
        are the application's. Raises ``LocalProtocolError`` in any other role or state."""
        self._perform(self._machine.handle(ApplicationRetransmit(), trio.current_time()))

    def set_retransmit_interval(self, seconds: float) -> None:
        """This INVITE transaction's own T1 (JAIN-SIP ``setRetransmitTimer``): Timer G starts
        from it and Timer H is 64 times it. Call it before the final response; raises
        ``LocalProtocolError`` after it, and for a non-INVITE (nothing retransmits on a
        timer), ``ConfigError`` unless ``seconds`` is finite and > 0."""
        self._machine.set_retransmit_interval(seconds)

    def _respond_now(self, response: Response) -> None:
        outputs = self._machine.handle(SendResponse(response), trio.current_time())
        if response.status_code >= 200 and self.final_response is None:
            self.final_response = response
        self._perform(outputs)

    def __repr__(self) -> str:
        return f"<IncomingRequest {self.request.method} {self.state.name}>"

    # -- stack / driver side ---------------------------------------------------------------

    def _settle(self) -> None:
        super()._settle()
        if self._handled and not self._compacted and not self._done:
            self._compact()

    def _compact(self) -> None:
        """Once the handler has returned and the machine only lingers (RFC 6026 Accepted,
        Completed, Confirmed: its next timer at least ``LINGER_MIN`` away), drop the parsed
        views of the messages it keeps: the garbage collector would otherwise traverse them
        for up to 32 s. Reading a view again parses it again (same values)."""
        deadline = self._machine.deadline
        if deadline is None or deadline - trio.current_time() < LINGER_MIN:
            return
        self._compacted = True
        self._out_via = None
        self.request._drop_views()
        if self.final_response is not None:
            self.final_response._drop_views()
        last = getattr(self._machine, "last_response", None)
        if isinstance(last, Response) and last is not self.final_response:
            last._drop_views()

    def _try_send(self, message: Request | Response) -> bool:
        assert isinstance(message, Response)
        try:
            via = message.vias[0]
        except (ProtocolError, IndexError):
            return False  # the async path reports it
        if via is not self._out_via:
            try:
                self._out = self._stack._layer.sync_response_flow(message, self.flow)
            except ProtocolError:
                return False
            self._out_via = via
        out = self._out
        if out is None or not out.usable:
            return False
        return out.try_send(bytes(message))

    async def _send(self, message: Request | Response) -> None:
        assert isinstance(message, Response)
        await self._stack._layer.send_response(message, self.flow)

    def _cancel(self) -> None:
        """A CANCEL matched this request (§9.2)."""
        self._was_cancelled = True
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
        elif isinstance(output, TransportErrorOccurred):
            self._failure = output.reason
            self._stack._log_transport_error(self, output.reason)
        elif isinstance(output, Terminated):
            if output.reason is TerminationReason.TIMEOUT:  # Timer H, heard or not
                self.timed_out = True
        elif isinstance(output, (TransactionTimeout, RetransmitTimeout)):
            if type(output) is TransactionTimeout:
                self.timed_out = True
            report(self._stack._timeout_hub, self, output)
