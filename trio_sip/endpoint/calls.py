# Endpoint calls: a user agent Call plus the connection it runs on (docs/endpoint.md).
#
# Theory of operation: an EndpointCall is one session as the application sees it. Its
# ``session_id`` never changes, but the SIP call under it (``call``, a trio_sip.ua Call) may:
# when an outgoing call's site fails before any answer, the endpoint places the call again on
# another registered connection (endpoint.py) and this object follows the new Call, reporting
# one ``Failover`` event (old and new Call-ID) on the new connection. A follower task copies
# every session event of the current Call into ``events`` as a CallEvent carrying the
# connection id; the Ended of an attempt that fails over is swallowed, so the application sees
# exactly one Ended per session.
#
# A dead site: an in-dialog request (hold, retrieve, or the INFO the endpoint sends to check
# the calls of a connection that just became unavailable) that times out or hits a transport
# error ends the session with Ended(DIALOG_GONE, <408 Request Timeout>) and a SipError in the
# CallEvent; the SIP call is then torn down in the background (BYE, bounded).
"""EndpointCall, IncomingEndpointCall and the failure classification."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, final

import trio

from trio_sip.proto.errors import SipError, TransactionError
from trio_sip.proto.message import Request, Response
from trio_sip.proto.sdp import SessionDescription
from trio_sip.proto.uri import NameAddress
from trio_sip.ua import Answered, Call, CallFailed, CallState, Ended, EndReason, IncomingCall
from trio_sip.ua.session import SessionEvent

from .status import CallEvent

if TYPE_CHECKING:
    from .endpoint import Endpoint

__all__ = ["EndpointCall", "IncomingEndpointCall", "site_failure", "site_is_dead"]

logger = logging.getLogger("trio_sip.endpoint")
TIMEOUT = "408 Request Timeout"


def failure_reason(detail: str) -> str:
    """A status reason for an attempt that got no response: 408 or a transport error."""
    lowered = detail.lower()
    if "no final response" in lowered or "timeout" in lowered or "within" in lowered:
        return TIMEOUT
    if lowered.startswith(("transport error", "dns error")):
        return detail
    return f"transport error: {detail}"


def site_failure(ended: Ended) -> str | None:
    """Why an unanswered attempt failed at its site (no response at all, 503 or 408), or None
    when the failure was the callee's (486, 404, ...) or ours (cancelled)."""
    if ended.reason is EndReason.FAILED:
        if ended.response is not None:
            return f"{ended.response.status_code} {ended.response.reason}"
        return failure_reason(ended.detail or "no answer")
    response = ended.response
    if (
        ended.reason is EndReason.REJECTED
        and response is not None
        and response.status_code
        in (
            408,
            503,
        )
    ):
        return f"{response.status_code} {response.reason}"
    return None


def site_is_dead(reason: str) -> bool:
    """True for the reasons that mean nothing answers at the site (not a 403 or a 503)."""
    return reason.startswith((TIMEOUT, "408", "transport error", "DNS error"))


@final
class EndpointCall:
    """One session of the endpoint. Made by ``endpoint.dial`` or
    ``IncomingEndpointCall.accept``; ``events`` receives :class:`CallEvent` records."""

    def __init__(self, endpoint: Endpoint, *, outgoing: bool, connection_id: str) -> None:
        self._endpoint = endpoint
        self.outgoing = outgoing
        #: The connection the call uses now (it changes when an outgoing call fails over).
        self.connection_id = connection_id
        #: Every connection an outgoing call was tried on, in order.
        self.connections_tried: list[str] = []
        #: The SIP call under the session now (None before the first INVITE is out).
        self.call: Call | None = None
        self.session_id = ""
        self.final_response: Response | None = None
        self.end_reason: Ended | None = None
        self._send, self.events = trio.open_memory_channel[CallEvent](math.inf)
        self._answered = trio.Event()
        self._ended = trio.Event()
        self._hangup = trio.Event()

    # -- introspection ---------------------------------------------------------------------

    @property
    def state(self) -> CallState:
        if self.end_reason is not None:
            return CallState.ENDED
        return self.call.state if self.call is not None else CallState.CALLING

    @property
    def held(self) -> bool:
        return self.call is not None and self.call.held

    @property
    def call_id(self) -> str | None:
        return self.call.call_id if self.call is not None else None

    def __repr__(self) -> str:
        return f"<EndpointCall {self.session_id} on {self.connection_id} {self.state.name}>"

    # -- application side ------------------------------------------------------------------

    async def wait_answered(self) -> Response:
        """Wait for the answer; return the 2xx. Raises ``CallFailed`` if the session ended
        without one (on every connection tried)."""
        await self._answered.wait()
        if self.final_response is None or self.final_response.status_code >= 300:
            detail = self.end_reason.detail if self.end_reason is not None else ""
            raise CallFailed(self.final_response, detail or "not answered")
        return self.final_response

    async def wait_ended(self) -> Ended:
        await self._ended.wait()
        assert self.end_reason is not None
        return self.end_reason

    async def hold(self) -> Response:
        """Put the call on hold (re-INVITE, a=sendonly)."""
        return await self._in_dialog(lambda call: call.hold())

    async def retrieve(self) -> Response:
        """Take the call off hold (re-INVITE, a=sendrecv)."""
        return await self._in_dialog(lambda call: call.retrieve())

    async def send_info(self, body: bytes = b"", content_type: str | None = None) -> Response:
        return await self._in_dialog(lambda call: call.send_info(body, content_type))

    async def hangup(self) -> None:
        """BYE (answered) or CANCEL (ringing); returns when the session has ended."""
        self._hangup.set()
        call = self.call
        if call is not None and self.end_reason is None:
            await call.hangup()
        await self._ended.wait()

    async def aclose(self) -> None:
        """``hangup()``, shielded and bounded by the user agent's ``cleanup_timeout``."""
        with trio.CancelScope(shield=True):
            with trio.move_on_after(self._endpoint.ua.cleanup_timeout + 1):
                await self.hangup()
            if self.end_reason is None:
                self._end(Ended(EndReason.CANCELLED, None, "closed"))

    async def __aenter__(self) -> EndpointCall:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the endpoint's side ---------------------------------------------------------------

    def _attach(self, connection_id: str, call: Call) -> None:
        self.connection_id = connection_id
        self.connections_tried.append(connection_id)
        self.call = call
        if not self.session_id:
            self.session_id = call.session_id

    def _emit(self, event: SessionEvent, error: SipError | None = None) -> None:
        record = CallEvent(self.connection_id, self.session_id, event, trio.current_time(), error)
        try:
            self._send.send_nowait(record)
        except trio.ClosedResourceError:
            return
        self._endpoint._publish_call_event(record)

    def _end(self, ended: Ended, error: SipError | None = None) -> None:
        if self.end_reason is not None:
            return
        self.end_reason = ended
        if self.final_response is None:
            self.final_response = ended.response
        self._emit(ended, error)
        self._send.close()
        self._answered.set()
        self._ended.set()
        self._endpoint._forget(self)

    async def _follow(self, call: Call) -> Ended:
        """Copy ``call``'s session events until its Ended, which is returned (not copied)."""
        async for event in call.events:
            if isinstance(event, Ended):
                return event
            if call is not self.call or self.end_reason is not None:
                continue
            if isinstance(event, Answered):
                self.final_response = event.response
                self._emit(event)
                self._answered.set()
                continue
            self._emit(event)
        return call.end_reason or Ended(EndReason.FAILED, None, "the call vanished")

    async def _in_dialog(self, operation: Callable[[Call], Awaitable[Response]]) -> Response:
        call = self.call
        if call is None or self.end_reason is not None:
            raise CallFailed(None, f"the call is {self.state.value}, not answered")
        try:
            return await operation(call)
        except TransactionError as exc:
            response = self._site_dead(call, str(exc))
            raise CallFailed(response, f"{TIMEOUT}: {exc}") from exc

    def _site_dead(self, call: Call, detail: str) -> Response:
        """End the session because its site no longer answers (module comment)."""
        response = Response(408, "Request Timeout", [("Call-ID", call.call_id or "")])
        text = f"{TIMEOUT}: {failure_reason(detail)} (connection {self.connection_id})"
        self._end(Ended(EndReason.DIALOG_GONE, response, text), SipError(text))
        self._endpoint._spawn(call.aclose)
        return response


@final
class IncomingEndpointCall:
    """A ringing incoming call with the connection it arrived on."""

    def __init__(self, endpoint: Endpoint, incoming: IncomingCall, connection_id: str) -> None:
        self._endpoint = endpoint
        self._incoming = incoming
        #: The connection the INVITE arrived on ("" when no connection matched).
        self.connection_id = connection_id
        self.request: Request = incoming.request
        self.remote_sdp = incoming.remote_sdp
        self.call: EndpointCall | None = None

    @property
    def caller(self) -> NameAddress:
        return self._incoming.caller

    @property
    def callee(self) -> NameAddress:
        return self._incoming.callee

    @property
    def cancelled(self) -> bool:
        return self._incoming.cancelled

    async def wait_cancelled(self) -> None:
        await self._incoming.wait_cancelled()

    def __repr__(self) -> str:
        return f"<IncomingEndpointCall from {self.caller.uri} on {self.connection_id}>"

    async def ring(self, status: int = 180, reason: str | None = None) -> None:
        await self._incoming.ring(status, reason)

    async def reject(self, status: int = 486, reason: str | None = None) -> Response:
        return await self._incoming.reject(status, reason)

    async def accept(
        self, sdp: SessionDescription | None = None, *, headers: Iterable[tuple[str, str]] = ()
    ) -> EndpointCall:
        """Answer 200 OK (after holding the other calls when ``hold_other_calls`` is on) and
        return the :class:`EndpointCall`."""
        endpoint = self._endpoint
        await endpoint._hold_others(None)
        conn = endpoint.connections.get(self.connection_id)
        proxies = endpoint.proxies_for(conn) if conn is not None else None
        # copies Record-Route (§12.1.1); the 200 cycles through ``proxies`` (seed 002)
        call = await self._incoming.accept(sdp, headers=headers, proxies=proxies)
        ecall = EndpointCall(endpoint, outgoing=False, connection_id=self.connection_id)
        ecall._attach(self.connection_id, call)
        endpoint._adopt(ecall)
        endpoint._spawn(_follow_incoming, ecall, call)
        self.call = ecall
        return ecall


async def _follow_incoming(ecall: EndpointCall, call: Call) -> None:
    ecall._end(await ecall._follow(call))
