# The Call: one session, placed (UAC, RFC 3261 §13.2) or accepted (UAS, §13.3), with hold and
# retrieve by re-INVITE (§14, RFC 3264 §8.4), hang-up (§15) and cancellation (§9.1).
#
# Theory of operation: an outgoing call's INVITE runs in one task in the user agent's nursery
# (``_run_invite``), through ``FailoverClient.invite`` (kind INITIAL_INVITE): each response
# moves the session (1xx: RINGING and an early dialog; 2xx: the confirmed dialog, the ACK via
# the dialog drivers, ANSWERED; 3xx-6xx: ENDED, ``CallFailed`` for ``wait_answered``). A retry
# on the next target gets a new Call-ID (``rebuild``) and reports ``Failover`` (DISCONNECTED,
# then CALLING again, same ``session_id``). A 401/407 is answered with the digest client and
# the INVITE goes again with CSeq + 1 (§22.2). Cancelling (leaving ``async with`` before the
# answer) sets a flag and starts a sibling task, which waits for a provisional response -- "If no
# provisional response has been received, the CANCEL request MUST NOT be sent" (§9.1) -- and
# sends the CANCEL through the failover client; a 2xx that still arrives is ACKed and BYEd.
#
# Once answered, both kinds of call are the same: hold/retrieve send a re-INVITE with our last
# SDP's direction changed (``SessionDescription.hold/retrieve``: sendrecv -> sendonly,
# recvonly -> inactive, back to sendrecv), answer a 491 by waiting the §14.1 delay and trying
# again, and ACK the 2xx. Requests from the remote side (BYE, re-INVITE, INFO, MESSAGE) come
# from the agent's handler, already checked by the dialog (§12.2.2). Ending a call stops its
# dialog machines and closes its event channel.
#
# Seed 002's cycling rows (only when sip_transaction_timeout < 32000; ua/paths.py): the 2xx we
# answer with and the ACK we send for theirs go through the configured proxies too
# (``_add_paths``, DialogDrivers.add_destinations), and so do BYE and CANCEL (their target
# lists are built with ``paths.cycle_targets``). A cycling BYE runs in the agent's nursery, so
# leaving ``async with call`` (bounded by ``cleanup_timeout``) does not cut its 32 s short.
# With the default 32000 none of this runs: no work or task is added per call.
"""Call and CallFailed."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, final

import trio

from trio_sip.errors import CallFailed as CallFailed
from trio_sip.proto.dialog import Dialog
from trio_sip.proto.dialog_requests import (
    build_ack,
    build_bye,
    build_cancel,
    build_info,
    build_reinvite,
)
from trio_sip.proto.errors import LocalProtocolError, SipError, TransactionError
from trio_sip.proto.fsm import step
from trio_sip.proto.ids import new_call_id
from trio_sip.proto.message import Request, Response
from trio_sip.proto.retry import RequestKind, cycles
from trio_sip.proto.sdp import SdpError, SessionDescription, answer_for, parse_sdp
from trio_sip.proto.target import Target
from trio_sip.stack import IncomingRequest

from .dialogs import PLACEHOLDER_VIA, challenge, next_hop, strip_via, with_auth
from .paths import ProxyList, cycle_targets, cycle_targets_nowait
from .session import (
    TRANSITIONS,
    Answered,
    CallState,
    CallTrigger,
    Ended,
    EndReason,
    Failover,
    Held,
    InfoReceived,
    MessageReceived,
    Progress,
    Retrieved,
    SessionEvent,
)

if TYPE_CHECKING:
    from trio_sip.failover import Attempt, Destination, InviteAttempts

    from .agent import UserAgent

__all__ = ["Call", "CallFailed"]

logger = logging.getLogger("trio_sip.ua")
_HOLD = ("sendonly", "inactive")


_Kept = tuple[int, str, str, bytes, str]


def _keep(response: Response) -> _Kept:
    """``response`` in one string and its body (a few hundred bytes instead of the message
    with its header list and parsed views); :func:`_rebuild` makes an equal Response."""
    text = "\n".join([f"{name}:{value}" for name, value in response.headers])
    return (response.status_code, response.reason, text, response.body, response.version)


def _rebuild(kept: _Kept) -> Response:
    status, reason, text, body, version = kept
    pairs = [line.split(":", 1) for line in text.split("\n")] if text else []
    return Response(status, reason, [(n, v) for n, v in pairs], body, version=version)


def _sdp(value: SessionDescription | bytes | None) -> SessionDescription | None:
    """An SDP kept as the bytes it was parsed from (or serialised to): parsed on each read."""
    return parse_sdp(value) if isinstance(value, bytes) else value


@final
class Call:
    """One call. Made by ``UserAgent.call`` (outgoing) or ``IncomingCall.accept`` (incoming).

    ``async with call:`` hangs up (or cancels) when the block is left; ``events`` is the
    receive side of the session event channel (docs/calls.md).
    """

    # Memory (10,000 established calls must fit in 100 MB at the UAS): slots; the event
    # channel, the ParkingLot of the waits, the INVITE task's scope and the re-INVITE lock are
    # made when first needed (until ``events`` is read, events wait in a list, and an incoming
    # call's Answered is only a flag); an incoming call keeps its SDPs as bytes and its 200 as
    # one string (``local_sdp``, ``remote_sdp`` and ``final_response`` are rebuilt on read) and
    # its default media as (port, session id).
    __slots__ = (
        "_answered",
        "_answered_event",
        "_attempts",
        "_cancel",
        "_destination",
        "_digest",
        "_ended",
        "_events",
        "_events_closed",
        "_failover_ids",
        "_final",
        "_local_sdp",
        "_media",
        "_pending_events",
        "_provisional_tx",
        "_proxies",
        "_reinvite_lock",
        "_remote_held",
        "_remote_sdp",
        "_request",
        "_scope",
        "_send_events",
        "_ua",
        "_waiters",
        "dialog",
        "end_reason",
        "held",
        "outgoing",
        "session_id",
        "state",
    )

    def __init__(
        self,
        ua: UserAgent,
        *,
        outgoing: bool,
        session_id: str,
        local_sdp: SessionDescription | None,
        media: SessionDescription | None,
    ) -> None:
        self._ua = ua
        self.outgoing = outgoing
        self.session_id = session_id
        self.state = CallState.CALLING
        self.dialog: Dialog | None = None
        self._local_sdp: SessionDescription | bytes | None = local_sdp
        self._remote_sdp: SessionDescription | bytes | None = None
        # Our capabilities, for answers to re-offers; (port, session id) of the default SDP.
        self._media: SessionDescription | tuple[int, int] | None = media
        self._final: Response | _Kept | None = None
        self.end_reason: Ended | None = None
        self.held = False
        self._remote_held = False
        self._send_events: trio.MemorySendChannel[SessionEvent] | None = None
        self._events: trio.MemoryReceiveChannel[SessionEvent] | None = None
        # Events nobody read yet; a Progress or Answered as (0 or 1, the response kept small).
        self._pending_events: list[SessionEvent | tuple[int, _Kept]] | None = None
        self._answered_event = False  # an Answered(final_response) is the first pending event
        self._events_closed = False
        self._answered = False
        self._ended = False
        self._cancel = False
        self._waiters: trio.lowlevel.ParkingLot | None = None
        self._digest = ua._digest_client()
        self._attempts: InviteAttempts | None = None
        self._provisional_tx: object = None
        self._failover_ids = ("", "")
        self._scope: trio.CancelScope | None = None
        self._request: Request | None = None
        self._destination: object = None
        self._reinvite_lock: trio.Lock | None = None
        #: The configured proxies (ua/paths.py): where seed 002's cycling rows go too.
        self._proxies: ProxyList = ua.proxies

    @property
    def local_sdp(self) -> SessionDescription | None:
        """The SDP we last sent (offer or answer)."""
        return _sdp(self._local_sdp)

    @local_sdp.setter
    def local_sdp(self, value: SessionDescription | None) -> None:
        self._local_sdp = value

    @property
    def remote_sdp(self) -> SessionDescription | None:
        """The SDP the remote side last sent."""
        return _sdp(self._remote_sdp)

    @remote_sdp.setter
    def remote_sdp(self, value: SessionDescription | None) -> None:
        self._remote_sdp = value

    @property
    def final_response(self) -> Response | None:
        """The final response to the INVITE: the 2xx that answered the call (ours for an
        incoming call), or the 3xx-6xx that ended it."""
        final = self._final
        return _rebuild(final) if isinstance(final, tuple) else final

    @final_response.setter
    def final_response(self, value: Response | None) -> None:
        self._final = value

    def _media_sdp(self) -> SessionDescription | None:
        media = self._media
        return self._ua._media_sdp(*media) if isinstance(media, tuple) else media

    # -- introspection -----------------------------------------------------------------------

    @property
    def events(self) -> trio.MemoryReceiveChannel[SessionEvent]:
        """The receive side of the session event channel (closed after :class:`Ended`)."""
        if self._events is None:
            send, self._events = trio.open_memory_channel[SessionEvent](math.inf)
            if self._answered_event:
                self._answered_event = False
                response = self.final_response
                assert response is not None
                send.send_nowait(Answered(response))
            for event in self._pending_events or ():
                if isinstance(event, tuple):
                    kind, kept = event
                    response = _rebuild(kept)
                    event = Answered(response) if kind else Progress(response)
                send.send_nowait(event)
            self._pending_events = None
            if self._events_closed:
                send.close()
            else:
                self._send_events = send
        return self._events

    @property
    def call_id(self) -> str | None:
        if self.dialog is not None:
            return self.dialog.id.call_id
        return self._request.call_id if self._request is not None else None

    def __repr__(self) -> str:
        return f"<Call {self.session_id} {self.state.name} {self.call_id}>"

    # -- waiting -----------------------------------------------------------------------------

    async def wait_answered(self) -> Response:
        """Wait for the answer; return the 2xx. Raises :class:`CallFailed` if the call ended
        without one."""
        await self._wait_for(lambda: self._answered)
        ok = self.final_response
        if self.dialog is None or ok is None or ok.status_code >= 300:
            raise CallFailed(ok, self._end_detail())
        return ok

    async def wait_ended(self) -> Ended:
        """Wait until the call is over; return the :class:`Ended` record."""
        await self._wait_for(lambda: self._ended)
        assert self.end_reason is not None
        return self.end_reason

    async def _wait_for(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` (re-checked on every :meth:`_wake`)."""
        if condition():
            await trio.lowlevel.checkpoint()
            return
        while not condition():
            if self._waiters is None:
                self._waiters = trio.lowlevel.ParkingLot()
            await self._waiters.park()

    def _wake(self) -> None:
        if self._waiters is not None:
            self._waiters.unpark_all()

    def _set_answered(self) -> None:
        self._answered = True
        self._wake()

    def _set_cancel(self) -> None:
        if not self._cancel and self.outgoing and self.dialog is None:
            # The canceller task exists only once there is something to cancel (no task per
            # call for its whole life).
            self._ua._nursery.start_soon(self._canceller)
        self._cancel = True
        self._wake()

    def _end_detail(self) -> str:
        if self.end_reason is None:
            return ""
        return self.end_reason.detail or self.end_reason.reason.value

    # -- async with ----------------------------------------------------------------------------

    async def __aenter__(self) -> Call:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Hang up (answered) or cancel (not answered); shielded and bounded by the agent's
        ``cleanup_timeout``. Returns when the call is ENDED."""
        with trio.CancelScope(shield=True):
            with trio.move_on_after(self._ua.cleanup_timeout):
                try:
                    await self.hangup()
                except SipError as exc:
                    logger.info("%r: cleanup failed: %s", self, exc)
            if self._scope is not None:
                self._scope.cancel()  # the INVITE task, if it still runs (no provisional came)
            self._finish(EndReason.CANCELLED if self.dialog is None else EndReason.LOCAL_HANGUP)

    # -- state -------------------------------------------------------------------------------

    def _move(self, trigger: CallTrigger) -> None:
        self.state = step("call", TRANSITIONS, self.state, trigger)

    def _emit_answered(self) -> None:
        """Emit Answered(final_response); a flag until someone reads ``events``."""
        if self._events is None and not self._pending_events and not self._events_closed:
            self._answered_event = True
        else:
            response = self.final_response
            assert response is not None
            self._emit(Answered(response))

    def _emit_response(self, kind: int, response: Response, kept: _Kept | None = None) -> None:
        """Emit Progress (``kind`` 0) or Answered (1); until someone reads ``events`` the
        response waits as text (``kept``: already made)."""
        if self._events is None and not self._events_closed:
            if self._pending_events is None:
                self._pending_events = []
            self._pending_events.append((kind, kept or _keep(response)))
        else:
            self._emit(Answered(response) if kind else Progress(response))

    def _emit(self, event: SessionEvent) -> None:
        if self._send_events is not None:
            with contextlib.suppress(trio.ClosedResourceError):
                self._send_events.send_nowait(event)
        elif self._events is None and not self._events_closed:
            if self._pending_events is None:
                self._pending_events = []
            self._pending_events.append(event)

    def _finish(
        self, reason: EndReason, response: Response | None = None, detail: str = ""
    ) -> None:
        if self.state is CallState.ENDED:
            return
        self._move(CallTrigger.END)
        self.end_reason = Ended(reason, response, detail)
        if self.dialog is not None:
            self.dialog.terminate()
            self._ua.drivers.stop(self.dialog, keep_ack=True)
        self._ua._forget(self)
        self._cancel = True
        self._emit(self.end_reason)
        self._events_closed = True
        if self._send_events is not None:
            self._send_events.close()
        self._answered = True
        self._ended = True
        self._wake()  # the canceller, wait_answered, wait_ended

    # -- outgoing: the initial INVITE ---------------------------------------------------------

    async def _run_invite(
        self,
        request: Request,
        destination: object,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """The UAC side of the initial INVITE (runs in the agent's nursery). Errors before
        the first transmission (nothing resolves) go to the caller of ``nursery.start``."""
        self._request, self._destination = request, destination
        started = [False]

        def report() -> None:
            if not started[0]:
                started[0] = True
                task_status.started()

        self._scope = trio.CancelScope()
        with self._scope:
            try:
                await self._invite_loop(request, destination, report)
            except SipError as exc:  # every target timed out / failed, or nothing resolved
                self._finish(EndReason.FAILED, None, str(exc))
                if not started[0]:
                    raise CallFailed(None, str(exc)) from exc
        report()
        self._scope = None
        if self.dialog is None:
            self._finish(EndReason.FAILED, self.final_response, "the INVITE ended")
        else:  # answered: the INVITE, its attempts and transaction are not needed any more
            self._request = self._attempts = self._provisional_tx = self._destination = None

    async def _invite_loop(
        self, request: Request, destination: object, report: Callable[[], None]
    ) -> None:
        fc = self._ua.failover
        while True:
            final: Response | None = None
            async with fc.invite(
                request,
                destination,  # type: ignore[arg-type]
                kind=RequestKind.INITIAL_INVITE,
                on_attempt=self._on_attempt,
                rebuild=self._rebuild,
            ) as attempts:
                self._attempts = attempts
                self._poke()
                report()
                async for response in attempts:
                    sent = attempts.transaction.request
                    self._request = strip_via(sent)
                    if response.status_code < 200:
                        self._on_provisional(sent, response, attempts)
                    else:
                        final = response
                        await self._on_final(sent, response, attempts.target)
            assert self._request is not None
            if final is not None and challenge(self._digest, self._request, final):
                if self._cancel:
                    self._finish(EndReason.CANCELLED, final)
                    return
                request = self._next_invite(self._request)
                continue
            if final is not None and final.status_code >= 300:
                cancelled = self._cancel and final.status_code == 487
                reason = EndReason.CANCELLED if cancelled else EndReason.REJECTED
                self.final_response = final
                self._finish(reason, final)
            return

    def _poke(self) -> None:
        """Wake the canceller: a provisional arrived, an attempt began or the call ended."""
        self._wake()

    def _next_invite(self, previous: Request) -> Request:
        """The INVITE again with CSeq + 1 and credentials (§22.2)."""
        seq = previous.cseq.seq + 1
        headers = previous.headers.replace("CSeq", f"{seq} INVITE")
        return with_auth(previous.evolve(headers=headers), self._digest)

    def _rebuild(self, request: Request, target: Target) -> Request:
        """A failover retry of the initial INVITE: a new Call-ID (same session)."""
        current = self._request or strip_via(request)
        new = new_call_id(self._ua._rng, self._ua.host)
        self._failover_ids = (current.call_id, new)
        self._request = current.evolve(headers=current.headers.replace("Call-ID", new))
        return self._request

    def _on_attempt(self, attempt: Attempt) -> None:
        old, new = self._failover_ids
        done = [a for a in (self._attempts.attempts if self._attempts else ()) if a.outcome]
        reason = done[-1].outcome if done else "failed"
        self._move(CallTrigger.FAILOVER)
        self._emit(Failover(f"{reason}; trying {attempt.target}", old, new))
        self._move(CallTrigger.RETRY)
        self._poke()

    def _on_provisional(self, sent: Request, response: Response, attempts: InviteAttempts) -> None:
        self._provisional_tx = attempts.transaction
        self._poke()
        if response.status_code == 100:
            return
        self._ua.dialogs.uac_response(sent, response)
        if self.state in (CallState.CALLING, CallState.RINGING):
            self._move(CallTrigger.PROVISIONAL)
            self._emit_response(0, response)

    async def _on_final(self, sent: Request, response: Response, target: Target) -> None:
        if response.status_code >= 300:
            self._ua.dialogs.uac_response(sent, response)
            return
        dialog = self._ua.dialogs.uac_response(sent, response)
        if dialog is None:
            return
        self.dialog = dialog
        kept = self._final = _keep(response)  # rebuilt when read (the call may last hours)
        self._ua._register(self)
        self._take_remote_sdp(response)
        await self._send_ack(sent, target)
        if self._cancel:
            self.state = CallState.ANSWERED
            await self.hangup()
            return
        self._move(CallTrigger.SUCCESS)
        self._emit_response(1, response, kept)
        self._set_answered()

    async def _send_ack(self, invite: Request, fallback: Target) -> None:
        assert self.dialog is not None
        ack = build_ack(self.dialog, invite, via=PLACEHOLDER_VIA)
        target = await self._ua._target_for(self.dialog, fallback)
        sent = await self._ua.drivers.send_ack(self.dialog, ack, target)
        if self._cycling():
            self._add_paths(sent.cseq.seq, [next_hop(self.dialog), *self._proxies])

    # -- seed 002: the cycling rows --------------------------------------------------------

    def _cycling(self) -> bool:
        return cycles(self._ua.stack.timer_config.sip_transaction_timeout)

    def _add_paths(
        self, seq: int, sources: list[Destination], exclude: Sequence[Target] = ()
    ) -> None:
        """Let the 2xx (UAS) or ACK (UAC) of INVITE ``seq`` cycle through the targets of
        ``sources`` after its own way (short timeout only); a DNS lookup runs in a task."""
        dialog = self.dialog
        if dialog is None or not self._cycling() or not sources:
            return
        drivers, client = self._ua.drivers, self._ua.failover
        found = cycle_targets_nowait(client, sources)
        if found is not None:
            drivers.add_destinations(dialog, seq, found, exclude=exclude)
            return

        async def resolve() -> None:
            found = await cycle_targets(client, sources)
            drivers.add_destinations(dialog, seq, found, exclude=exclude)

        self._ua._spawn(resolve)

    def _answer_paths(self) -> None:
        """Seed 002: our 2xx to the initial INVITE also cycles through the proxy in front of us
        (the first route: the top Record-Route, §12.1.1) and the configured proxies."""
        if not self._cycling() or self.dialog is None:
            return  # the default: nothing to do per answered call (the 200 is kept as text)
        dialog, response = self.dialog, self.final_response
        if response is None:
            return
        sources: list[Destination] = [next_hop(dialog)] if dialog.route_set else []
        # The proxy that sent us the INVITE by its Via (its source port may differ).
        via = response.vias[0]
        transport = via.transport.upper()
        port = via.port or (5061 if transport == "TLS" else 5060)
        host = (via.params.get("received") or via.host).strip("[]")
        sent_by = Target(transport, host, port)
        self._add_paths(response.cseq.seq, [*sources, *self._proxies], [sent_by])

    async def _cycle_destination(self, first: Destination, kind: RequestKind) -> Destination:
        """Where a BYE or CANCEL goes: ``first`` (RFC 3261's place), then, when cycling, the
        other proxies (ua/paths.py)."""
        if not self._cycling() or (not self._proxies and kind is RequestKind.BYE):
            return first
        found = await cycle_targets(self._ua.failover, [first, *self._proxies])
        return found or first

    async def _canceller(self) -> None:
        """§9.1: once cancelled, and once a provisional arrived, send the CANCEL."""
        await self._wait_for(lambda: self._cancel)
        while self.state is not CallState.ENDED and self.dialog is None:
            attempts = self._attempts
            if attempts is not None and attempts.final_response is None:
                try:
                    tx = attempts.transaction
                except TransactionError:
                    tx = None
                if tx is not None and tx is self._provisional_tx and tx.final_response is None:
                    self._move(CallTrigger.CANCEL)
                    try:
                        # §9.1: where the INVITE went; seed 002, when cycling: then the
                        # INVITE's other targets and the configured proxies.
                        first: list[Target] = [attempts.target, *attempts.targets]
                        to = await self._cycle_destination(first, RequestKind.CANCEL)
                        if to is first:
                            to = attempts.target
                        await self._ua.failover.request(
                            build_cancel(tx.request), to, kind=RequestKind.CANCEL
                        )
                    except SipError as exc:
                        logger.info("%r: CANCEL failed: %s", self, exc)
                    return
            # Nothing awaits between the checks above and parking: no wake-up is missed.
            if self._waiters is None:
                self._waiters = trio.lowlevel.ParkingLot()
            await self._waiters.park()

    # -- answered calls ------------------------------------------------------------------------

    async def hangup(self) -> None:
        """Send BYE (answered) or cancel (not answered yet); returns once the call ENDED."""
        await self._hangup(EndReason.LOCAL_HANGUP)

    async def _hangup(self, reason: EndReason, detail: str = "") -> None:
        if self.state is CallState.ENDED:
            return
        if self.dialog is None or self.state not in (CallState.ANSWERED, CallState.ENDING):
            self._set_cancel()
            await self._wait_for(lambda: self._ended)
            return
        if self.state is CallState.ANSWERED:
            self._move(CallTrigger.BYE)
            bye = build_bye(self.dialog, via=PLACEHOLDER_VIA)
            bye = with_auth(strip_via(bye), self._digest)
            if not self._cycling() or self._ua._closed:  # one attempt; or no nursery left
                await self._send_bye(bye, reason, detail)
                return
            # Cycling: in the agent's nursery, so that the BYE goes on for seed 002's 32 s even
            # when the caller stops waiting (``aclose`` is bounded by cleanup_timeout).
            self._ua._nursery.start_soon(self._send_bye, bye, reason, detail)
        await self._wait_for(lambda: self._ended)

    async def _send_bye(self, bye: Request, reason: EndReason, detail: str) -> None:
        response: Response | None = None
        try:
            response = await self._request_in_dialog(bye, RequestKind.BYE)
        except SipError as exc:
            failed = f"BYE failed: {exc}"
            self._finish(reason, None, f"{detail}; {failed}" if detail else failed)
            return
        self._finish(reason, response, detail)

    async def _request_in_dialog(self, request: Request, kind: RequestKind) -> Response:
        """Send an in-dialog request to the next hop with failover; answer 401/407 once."""
        assert self.dialog is not None
        dialog = self.dialog
        to: Destination = next_hop(dialog)
        if kind is RequestKind.BYE:
            to = await self._cycle_destination(to, kind)
        for _ in range(3):
            result = await self._ua.failover.request(request, to, kind=kind)
            response = result.response
            dialog.receive_response(request, response)
            if not challenge(self._digest, request, response):
                return response
            seq = dialog.next_local_seq()
            headers = request.headers.replace("CSeq", f"{seq} {request.method}")
            request = with_auth(request.evolve(headers=headers), self._digest)
        return response

    async def send_info(
        self,
        body: bytes = b"",
        content_type: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """Send an INFO in the dialog (RFC 6086); return the final response."""
        dialog = self._need_dialog()
        info = build_info(
            dialog, via=PLACEHOLDER_VIA, body=body, content_type=content_type, headers=headers
        )
        response = await self._request_in_dialog(
            with_auth(strip_via(info), self._digest), RequestKind.OTHER
        )
        self._check_gone(response)
        return response

    async def hold(self) -> Response:
        """Put the call on hold: re-INVITE with a=sendonly (a=inactive if they hold us)."""
        response = await self._reinvite(lambda sdp: sdp.hold())
        self.held = True
        local = self.local_sdp
        assert local is not None
        self._emit(Held(local.media_direction(0)))
        return response

    async def retrieve(self) -> Response:
        """Take the call off hold: re-INVITE with a=sendrecv."""
        response = await self._reinvite(lambda sdp: sdp.retrieve())
        self.held = False
        local = self.local_sdp
        assert local is not None
        self._emit(Retrieved(local.media_direction(0)))
        return response

    def _need_dialog(self) -> Dialog:
        if self.dialog is None or self.state is not CallState.ANSWERED:
            raise LocalProtocolError(f"the call is {self.state.value}, not answered")
        return self.dialog

    def _check_gone(self, response: Response) -> None:
        if response.status_code in (408, 481):
            self._finish(EndReason.DIALOG_GONE, response)

    async def _reinvite(
        self, change: Callable[[SessionDescription], SessionDescription]
    ) -> Response:
        """Send a re-INVITE (§14.1) with ``change(last SDP we sent)``; retry after 491."""
        if self._reinvite_lock is None:
            self._reinvite_lock = trio.Lock()
        async with self._reinvite_lock:
            while True:
                dialog = self._need_dialog()
                local = self.local_sdp
                if local is None:
                    raise LocalProtocolError("no SDP to change: the call has no session")
                offer = change(local)
                request = build_reinvite(dialog, via=PLACEHOLDER_VIA, sdp=offer)
                request = with_auth(strip_via(request), self._digest)
                final, sent, target = await self._send_reinvite(dialog, request)
                dialog.receive_response(sent, final)
                if 200 <= final.status_code < 300:
                    self.local_sdp = offer
                    self._take_remote_sdp(final)
                    ack = build_ack(dialog, sent, via=PLACEHOLDER_VIA)
                    await self._ua.drivers.send_ack(
                        dialog, ack, await self._ua._target_for(dialog, target)
                    )
                    return final
                if final.status_code == 491:
                    await trio.sleep(dialog.glare_retry_delay())
                    continue
                if challenge(self._digest, sent, final):
                    continue
                self._check_gone(final)
                raise CallFailed(final, "re-INVITE refused")

    async def _send_reinvite(
        self, dialog: Dialog, request: Request
    ) -> tuple[Response, Request, Target]:
        final: Response | None = None
        try:
            async with self._ua.failover.invite(
                request, next_hop(dialog), kind=RequestKind.REINVITE
            ) as attempts:
                async for response in attempts:
                    if response.status_code >= 200:
                        final = response
                        return final, attempts.transaction.request, attempts.target
        finally:
            if final is None:
                dialog.reinvite_pending = False
        raise TransactionError("the re-INVITE ended without a final response")

    def _take_remote_sdp(self, message: Request | Response) -> SessionDescription | None:
        if not message.body:
            return None
        try:
            sdp = parse_sdp(message.body)
        except SdpError as exc:
            logger.info("%r: unreadable SDP: %s", self, exc)
            return None
        self._remote_sdp = message.body  # parsed again when read
        return sdp

    # -- requests from the remote side ---------------------------------------------------------

    async def _on_request(self, incoming: IncomingRequest) -> None:
        """An in-dialog request the dialog accepted (§12.2.2)."""
        method = incoming.method
        if method == "BYE":
            self._on_bye(incoming)
            await trio.lowlevel.checkpoint()
        elif method == "INVITE":
            await self._on_reinvite(incoming)
        elif method in ("INFO", "MESSAGE"):
            await incoming.respond(200)
            kind = InfoReceived if method == "INFO" else MessageReceived
            self._emit(kind(incoming.request))
        else:
            await self._ua._answer_other(incoming)

    def _on_bye(self, incoming: IncomingRequest) -> None:
        """A BYE the dialog accepted: 200, and the call ends (no await: no handler task)."""
        incoming._respond_now(incoming.make_response(200))
        self._finish(EndReason.REMOTE_HANGUP, None)

    async def _on_reinvite(self, incoming: IncomingRequest) -> None:
        """A re-INVITE from the remote side: answer its offer with answer_for (§14.2)."""
        dialog = self.dialog
        assert dialog is not None
        request = incoming.request
        offer = self._take_remote_sdp(request)
        media = self._media_sdp()
        local = self.local_sdp
        if offer is not None and media is not None:
            answer = answer_for(offer, media, previous=local)
        elif local is not None:
            answer = local.next_version()  # an offerless re-INVITE: we offer
        else:
            answer = None
        response = self._ua._make_2xx(incoming, answer)
        # The ACK wait first: the stack sends the 200 at once (see IncomingCall.accept).
        self._ua.drivers.ack_wait(dialog, response, incoming.flow, self._on_no_ack)
        try:
            await incoming.respond(response)
        except BaseException:
            self._ua.drivers.stop(dialog, keep_ack=True)
            raise
        dialog.response_sent(request, response)
        self.local_sdp = answer
        if offer is not None:
            theirs = offer.media_direction(0)
            if theirs in _HOLD and not self._remote_held:
                self._remote_held = True
                self._emit(Held(answer.media_direction(0) if answer else "", by_remote=True))
            elif theirs not in _HOLD and self._remote_held:
                self._remote_held = False
                self._emit(Retrieved(answer.media_direction(0) if answer else "", by_remote=True))

    def _on_ack(self, ack: Request) -> None:
        if ack.body:
            self._take_remote_sdp(ack)

    def _on_no_ack(self, reason: str) -> None:
        """§13.3.1.4: our 2xx was never ACKed: "terminate the session ... with a BYE"."""
        logger.info("%r: %s: sending BYE", self, reason)
        self._ua._spawn(self._bye_after_no_ack, reason)

    async def _bye_after_no_ack(self, reason: str) -> None:
        if self.dialog is None or self.state is CallState.ENDED:
            return
        self.state = CallState.ANSWERED
        with trio.move_on_after(self._ua.cleanup_timeout):
            try:
                await self._hangup(EndReason.NO_ACK, reason)
            except SipError as exc:
                logger.info("%r: BYE failed: %s", self, exc)
        self._finish(EndReason.NO_ACK, None, reason)
