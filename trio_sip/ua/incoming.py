# Incoming calls: the UAS side of an initial INVITE (RFC 3261 §13.3, §12.1.1, §9.2).
#
# Theory of operation: the agent's request handler wraps a new INVITE in an IncomingCall and
# hands it to the application (``ua.incoming_calls()``); the handler task then stays until the
# application decides (the stack answers 500 for a handler that returns without a final
# response), watching for a CANCEL meanwhile. ``ring()`` sends 180 with our Contact (an early
# dialog at the caller). ``accept()`` answers the offer with ``sdp.answer_for`` (or offers our
# SDP when the INVITE had none: the ACK brings the answer, §13.2.1), sends the 200 through the
# server transaction (RFC 6026 Accepted state), creates the UAS dialog (§12.1.1: route set from
# Record-Route in order, remote target from Contact) and starts the AckWait machine, which
# resends the 200 until the ACK and sends a BYE after 64*T1 without one (§13.3.1.4). A CANCEL
# before the answer makes the stack send 200 to the CANCEL and 487 to the INVITE (§9.2); the
# IncomingCall then reports ``cancelled`` and ``accept`` raises CallFailed.
"""IncomingCall: ring, accept or reject an incoming INVITE."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, final

import trio

from trio_sip.proto.dialog import Dialog
from trio_sip.proto.errors import LocalProtocolError
from trio_sip.proto.message import Request, Response
from trio_sip.proto.sdp import SdpError, SessionDescription, answer_for, parse_sdp
from trio_sip.proto.uri import NameAddress
from trio_sip.stack import IncomingRequest

from .call import Call, CallFailed
from .session import Answered, CallState

if TYPE_CHECKING:
    from .agent import UserAgent

__all__ = ["IncomingCall"]


@final
class IncomingCall:
    """A ringing incoming call. Made by the user agent; never constructed by users."""

    def __init__(self, ua: UserAgent, incoming: IncomingRequest) -> None:
        self._ua = ua
        self._incoming = incoming
        #: The INVITE as received.
        self.request: Request = incoming.request
        #: The SDP offer of the INVITE (None when it had none or it was unreadable).
        self.remote_sdp: SessionDescription | None = None
        if self.request.body:
            try:
                self.remote_sdp = parse_sdp(self.request.body)
            except SdpError:
                self.remote_sdp = None
        #: The answered call, once :meth:`accept` returned.
        self.call: Call | None = None
        self._decided = trio.Event()

    @property
    def caller(self) -> NameAddress:
        """The From of the INVITE."""
        return self.request.from_

    @property
    def callee(self) -> NameAddress:
        """The To of the INVITE."""
        return self.request.to

    @property
    def cancelled(self) -> bool:
        """True once the caller cancelled (the stack answered 487)."""
        return self._incoming.cancelled

    async def wait_cancelled(self) -> None:
        """Wait until the caller cancels."""
        await self._incoming.wait_cancelled()

    def __repr__(self) -> str:
        return f"<IncomingCall from {self.caller.uri} {self.request.call_id}>"

    async def ring(self, status: int = 180, reason: str | None = None) -> None:
        """Send a provisional response (180 Ringing by default) with our Contact."""
        if not 101 <= status <= 199:
            raise LocalProtocolError(f"ring() sends 101-199, not {status}")
        self._check_open()
        headers = [*self._record_routes(()), ("Contact", str(self._ua.contact))]
        await self._incoming.respond(status, reason, headers=headers)

    def _record_routes(self, given: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """§12.1.1: a UAS copies every Record-Route of the request into responses that
        establish a dialog (1xx with a To tag, 2xx), in order; unless the caller gave them."""
        if any(name.lower() == "record-route" for name, _ in given):
            return []
        return [("Record-Route", value) for value in self.request.headers.get_all("Record-Route")]

    async def accept(
        self,
        sdp: SessionDescription | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Call:
        """Answer 200 OK and return the :class:`Call`.

        ``sdp`` is our media (default: the agent's audio offer); the 200 carries
        ``answer_for(offer, sdp)``, or ``sdp`` itself when the INVITE had no offer. Raises
        :class:`CallFailed` if the caller cancelled first.
        """
        self._check_open()
        ua = self._ua
        media = sdp if sdp is not None else ua._default_sdp()
        offer = self.remote_sdp
        local = answer_for(offer, media) if offer is not None else media
        headers = [*self._record_routes(headers), *headers]
        try:
            response = await ua._respond_2xx(self._incoming, local, headers)
        except LocalProtocolError as exc:  # the CANCEL's 487 went out first
            self._decided.set()
            raise CallFailed(self._incoming.final_response, "cancelled") from exc
        dialog = Dialog.from_uas(self.request, response, rng=ua._rng)
        ua.dialogs.add(dialog)
        call = Call(
            ua, outgoing=False, session_id=ua._new_session_id(), local_sdp=local, media=media
        )
        call.dialog = dialog
        call.remote_sdp = offer
        call.final_response = response
        call.state = CallState.ANSWERED
        ua._register(call)
        call._emit(Answered(response))
        call._set_answered()
        self.call = call
        await ua.drivers.start_ack_wait(dialog, response, self._incoming.flow, call._on_no_ack)
        self._decided.set()
        return call

    async def reject(
        self,
        status: int = 486,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """Refuse the call with a 3xx-6xx (486 Busy Here by default)."""
        if not 300 <= status <= 699:
            raise LocalProtocolError(f"reject() sends 300-699, not {status}")
        self._check_open()
        response = await self._incoming.respond(status, reason, headers=headers)
        self._decided.set()
        return response

    def _check_open(self) -> None:
        if self.cancelled:
            raise CallFailed(self._incoming.final_response, "cancelled")
        if self._decided.is_set():
            raise LocalProtocolError("the call was already accepted or rejected")

    async def _serve(self) -> None:
        """The agent's handler task: stay until a decision or a CANCEL (see module comment).

        The stack calls the request's cancel hook synchronously when a CANCEL matches, so no
        watcher task is needed."""
        self._incoming._cancel_hook = self._decided.set
        if self._incoming.cancelled:
            self._decided.set()
        await self._decided.wait()
