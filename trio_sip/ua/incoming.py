# Incoming calls: the UAS side of an initial INVITE (RFC 3261 §13.3, §12.1.1, §9.2).
#
# Theory of operation: the agent wraps a new INVITE in an IncomingCall and hands it to the
# application (``ua.incoming_calls()``). When the queue has room this happens synchronously in
# the stack's starter (no task): the IncomingCall then tells the stack when the application
# decided or a CANCEL came (``_decide`` -> ``Stack._release``). Only a call that must wait for
# room has a handler task, which stays until the application decides (the stack answers 500
# for a handler that returns without a final response). ``ring()`` sends 180 with our
# Contact (an early dialog at the caller). ``accept()`` answers the offer with
# ``sdp.answer_for`` (or offers our SDP when the INVITE had none: the ACK brings the answer,
# §13.2.1), sends the 200 through the
# server transaction (RFC 6026 Accepted state), creates the UAS dialog (§12.1.1: route set from
# Record-Route in order, remote target from Contact) and starts the AckWait machine, which
# resends the 200 until the ACK and sends a BYE after 64*T1 without one (§13.3.1.4). A CANCEL
# before the answer makes the stack send 200 to the CANCEL and 487 to the INVITE (§9.2); the
# IncomingCall then reports ``cancelled`` and ``ring``/``accept`` raise CallFailed.
#
# Fault isolation: when the INVITE cannot be answered as asked -- its transaction failed on the
# transport (§17.2.4), or a response cannot be built from it (a value the builder refuses) --
# ``ring``/``accept``/``reject`` answer 500 if the transaction can still take a final response
# (else it is dropped), let the handler task go, and raise CallFailed: the call ends, the agent
# and the application go on. After 64*T1 without an ACK, the BYE of §13.3.1.4 goes only to a
# peer that proved it receives what we send (see ``_no_ack``).
"""IncomingCall: ring, accept or reject an incoming INVITE."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn, final

import trio

from trio_sip.proto.dialog import Dialog
from trio_sip.proto.errors import LocalProtocolError, ProtocolError, SipError
from trio_sip.proto.message import Request, Response
from trio_sip.proto.sdp import SdpError, SessionDescription, answer_for, parse_sdp
from trio_sip.proto.uri import NameAddress
from trio_sip.stack import IncomingRequest

from .call import Call, CallFailed, _keep
from .paths import ProxyList
from .session import CallState, EndReason

if TYPE_CHECKING:
    from .agent import UserAgent

__all__ = ["IncomingCall"]

logger = logging.getLogger("trio_sip.ua")


def _parse_offer(request: Request) -> SessionDescription | None:
    if not request.body:
        return None
    try:
        return parse_sdp(request.body)
    except SdpError:
        return None


_UNREAD: Any = object()


@final
class IncomingCall:
    """A ringing incoming call. Made by the user agent; never constructed by users."""

    __slots__ = (
        "_decided",
        "_incoming",
        "_offer",
        "_offer_given",
        "_ua",
        "_waiter",
        "call",
        "request",
    )

    def __init__(self, ua: UserAgent, incoming: IncomingRequest) -> None:
        self._ua = ua
        self._incoming = incoming
        #: The INVITE as received.
        self.request: Request = incoming.request
        self._offer: SessionDescription | None = _UNREAD  # parsed on first read
        #: The answered call, once :meth:`accept` returned.
        self.call: Call | None = None
        self._offer_given = False  # remote_sdp was set by the application
        # True once accepted, rejected or cancelled; the handler task parks in ``_serve``
        # until then (no trio.Event: one per ringing call, kept by the transaction, adds up).
        self._decided = False
        self._waiter: trio.lowlevel.Task | None = None

    @property
    def remote_sdp(self) -> SessionDescription | None:
        """The SDP offer of the INVITE (None when it had none or it was unreadable)."""
        offer = self._offer
        if offer is _UNREAD:
            offer = self._offer = _parse_offer(self.request)
        return offer

    @remote_sdp.setter
    def remote_sdp(self, value: SessionDescription | None) -> None:
        self._offer = value
        self._offer_given = True

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
        headers = [*self._record_routes(()), ("Contact", self._ua._contact_text)]
        try:
            await self._incoming.respond(status, reason, headers=headers)
        except ProtocolError as exc:
            self._give_up(exc)

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
        proxies: ProxyList | None = None,
    ) -> Call:
        """Answer 200 OK and return the :class:`Call`.

        ``sdp`` is our media (default: the agent's audio offer); the 200 carries
        ``answer_for(offer, sdp)``, or ``sdp`` itself when the INVITE had no offer. Raises
        :class:`CallFailed` if the caller cancelled first. ``proxies`` (default
        ``ua.proxies``): the configured proxies the 200 cycles through when no ACK comes
        (seed 002, only with a sip_transaction_timeout below 32000; docs/failover.md).
        """
        self._check_open()
        ua = self._ua
        media_key: tuple[int, int] | None = None
        try:
            if sdp is not None:
                media = sdp
            else:
                media_key = ua._new_media()  # CallFailed when every media port is held
                media = ua._media_sdp(*media_key)
            offer = self.remote_sdp
            local = answer_for(offer, media) if offer is not None else media
            body = bytes(local)
            headers = [*self._record_routes(headers), *headers]
            response = ua._make_2xx(self._incoming, body, headers)
            dialog = Dialog.from_uas(self.request, response, rng=ua._rng)
        except SipError as exc:  # e.g. the request's own headers make no 2xx or no dialog
            self._give_up(exc)
        except Exception:  # a bug: the INVITE still gets its 500, the handler task goes
            ua.stack._respond_quietly(self._incoming, 500)
            self._decide()
            raise
        # Kept small (see Call): our default media as (port, session id), the SDPs as the
        # bytes they were parsed from / written to (an answer to our default media always
        # parses back to itself when the agent's media address does), the 200 as text.
        compact = media_key is not None and ua._sdp_round_trips
        call = Call(
            ua,
            outgoing=False,
            session_id=ua._new_session_id(),
            local_sdp=None,
            media=None,
        )
        call._media = media_key if compact else media
        call._local_sdp = body if compact else local
        call._remote_sdp = (
            self.request.body if offer is not None and not self._offer_given else offer
        )
        call._final = _keep(response)
        if proxies is not None:
            call._proxies = tuple(proxies)
        call.dialog = dialog
        call.state = CallState.ANSWERED
        call._emit_answered()
        call._set_answered()
        # The dialog, the call and the ACK wait exist before the 200 leaves: the stack sends
        # it at once, and the ACK (or a BYE) may arrive before ``respond`` returns.
        ua.dialogs.add(dialog)
        ua._register(call)
        flow = self._incoming.flow
        ua.drivers.ack_wait(dialog, response, flow, _no_ack(call, flow.reliable))
        try:
            await self._incoming.respond(response)
        except BaseException as exc:
            ua.drivers.stop(dialog)
            ua._forget(call)
            if isinstance(exc, ProtocolError):  # the CANCEL's 487 went out first, or worse
                self._give_up(exc)
            self._decide()
            raise
        self.call = call
        self._decide()
        call._answer_paths()  # seed 002: the 200 cycles through the proxies (short timeout)
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
        try:
            response = await self._incoming.respond(status, reason, headers=headers)
        except ProtocolError as exc:
            self._give_up(exc)
        self._decide()
        return response

    def _check_open(self) -> None:
        if self.cancelled:
            raise CallFailed(self._incoming.final_response, "cancelled")
        if self._decided:
            raise LocalProtocolError("the call was already accepted or rejected")
        failure = self._incoming._failure
        if failure is not None:
            self._decide()
            raise CallFailed(None, f"transport error: {failure}")

    def _give_up(self, exc: SipError) -> NoReturn:
        """The INVITE cannot be answered as asked (see the module comment): 500 if the
        transaction can still take a final response (else it is dropped), let the handler task
        go, and raise CallFailed."""
        incoming = self._incoming
        self._ua.stack._respond_quietly(incoming, 500)
        self._decide()
        if incoming.cancelled:
            raise CallFailed(incoming.final_response, "cancelled") from exc
        if incoming._failure is not None:
            raise CallFailed(None, f"transport error: {incoming._failure}") from exc
        if isinstance(exc, CallFailed):
            raise exc
        raise CallFailed(None, f"cannot answer the INVITE: {exc}") from exc

    def _decide(self) -> None:
        """Accepted, rejected or cancelled: let the handler task go."""
        if self._decided:
            return
        self._decided = True
        incoming = self._incoming
        incoming._cancel_hook = None  # the transaction lingers; it need not keep us
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            trio.lowlevel.reschedule(waiter)
        else:
            self._ua.stack._release(incoming)  # no handler task: the stack's own bookkeeping

    def _handed(self) -> None:
        """Taken by the agent without a handler task (``UserAgent._handle_now``): a CANCEL
        (or the decision) releases the transaction; nothing parks."""
        if self._incoming.cancelled:
            self._decide()
        else:
            self._incoming._cancel_hook = self._decide

    async def _serve(self) -> None:
        """The agent's handler task, for a call that waited for room in the queue: stay until
        a decision or a CANCEL (see module comment).

        The stack calls the request's cancel hook synchronously when a CANCEL matches, so no
        watcher task is needed."""
        if self._incoming.cancelled:
            self._decide()
        if self._decided:
            await trio.lowlevel.checkpoint()
            return
        self._incoming._cancel_hook = self._decide
        self._waiter = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            self._waiter = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)


def _no_ack(call: Call, reliable: bool) -> Callable[[str], None]:
    """What to do when our 2xx to the initial INVITE got no ACK within 64*T1.

    RFC 3261 §13.3.1.4: "If the server retransmits the 2xx response for 64*T1 seconds without
    receiving an ACK, the dialog is confirmed, but the session SHOULD be terminated. This is
    accomplished with a BYE". The BYE goes to the INVITE's Contact, an address the sender chose,
    in a client transaction retransmitted over UDP (§17.1.2.2); with the eleven 2xx already sent
    to the INVITE's source, a single spoofed UDP datagram would get ~16 back, part of them to a
    third party: §26.1.5 warns of exactly this ("attackers can create bogus requests that
    contain a falsified source IP address and a corresponding Via header field that identify a
    targeted host as the originator ... using hapless SIP UAs or proxies to generate
    denial-of-service traffic aimed at the target"). So the BYE (a SHOULD) goes only to a
    peer that proved it receives what we send: the INVITE came over TCP/TLS (the handshake
    proves the address), or an in-dialog request came back, which carries the To tag that
    only our responses held (the dialog's remote CSeq moved). Otherwise the call ends here,
    without a BYE: the 2xx retransmissions themselves (§13.3.1.4) are kept.
    """

    def on_no_ack(reason: str) -> None:
        dialog = call.dialog
        heard = dialog is not None and dialog.remote_seq != dialog.initial_seq
        if reliable or heard:
            call._on_no_ack(reason)
            return
        logger.info("%r: %s; no BYE to a peer that never answered over UDP", call, reason)
        call._finish(EndReason.NO_ACK, None, f"{reason} (no BYE: the peer never answered)")

    return on_no_ack
