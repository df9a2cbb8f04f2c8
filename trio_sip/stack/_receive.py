# The receiving half of the transaction layer: RFC 3261 §17.2.3 (matching requests to server
# transactions), §9.2 (CANCEL), §8.2 (UAS checks: 400/416/420/501, answered statelessly),
# §17.1.3 (matching responses), RFC 6026 §8.9 (stray responses) and §18.2.2 (response routing).
#
# Theory of operation: the transport layer calls ``_on_message`` synchronously for every parsed
# message. It asks ``TransactionTable.classify`` where the message goes and acts at once: the
# known transaction's machine handles it (and its outputs are performed) right here, the
# ``on_stray`` hook gets an ACK to a 2xx or an unmatched response, a request that fails
# ``check_request`` is refused statelessly, and a new request gets a server machine, started
# right here (so that retransmissions and CANCELs match from the first instant) and queued for
# the starter task, which hands it to the TU. Nothing here awaits; nothing here lets an
# exception escape into the transport layer: a ProtocolError met while reading one message gets
# that message its 4xx (a request) or drops it (a response); anything else is a fault, counted
# and logged once per kind per interval (``Stack.faults``, trio_sip/_faults.py).
"""_Receiver: classification and server-side handling of received messages (a Stack mixin)."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, cast

import trio

from trio_sip._faults import Faults
from trio_sip.drivers import Inbox, TimerQueue
from trio_sip.proto.errors import (
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    TransportError,
)
from trio_sip.proto.headers import canonical_name
from trio_sip.proto.ids import new_tag
from trio_sip.proto.limits import Limits
from trio_sip.proto.message import Request, Response, make_response
from trio_sip.proto.outputs import MessageReceived
from trio_sip.proto.parse import parse_message
from trio_sip.proto.target import TRANSPORTS
from trio_sip.proto.timers import TimerConfig
from trio_sip.proto.transaction import (
    AckFor2xx,
    CancelFor,
    Key,
    NewServerTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    TimeoutRole,
    ToTransaction,
    TransactionTable,
)
from trio_sip.proto.validate import check_request, check_response
from trio_sip.transports.base import Flow
from trio_sip.transports.pool import TransportLayer
from trio_sip.transports.stream import error_response_untrusted

from ._client import ClientTransaction
from ._driving import _Transaction
from ._server import IncomingRequest

if TYPE_CHECKING:
    from ._core import Stack

__all__ = ["Handler", "StrayHook", "SyncHandler"]

logger = logging.getLogger("trio_sip.stack")

Handler = Callable[[IncomingRequest], Awaitable[object]]
StrayHook = Callable[[Request | Response, Flow], object]
#: The owner's synchronous handler (a user agent's ``_handle_now``): True when it took the
#: request -- answered it, or handed it to something that answers it later and then calls
#: ``Stack._release`` -- False when the async handler should run (in a task).
SyncHandler = Callable[[IncomingRequest], bool]


class _Receiver:
    """What the Stack does with received messages. Attributes are the Stack's."""

    role: TimeoutRole
    timer_config: TimerConfig
    limits: Limits
    _nursery: trio.Nursery
    _layer: TransportLayer
    _table: TransactionTable
    _live: dict[Key, ClientTransaction | IncomingRequest]
    _handler: Handler | None
    _sync_handler: SyncHandler | None
    _on_stray: StrayHook | None
    _rng: random.Random
    _check: bool
    _counts: dict[str, int]
    _queue_in: trio.MemorySendChannel[IncomingRequest]
    _closed: bool
    _starts: Inbox[IncomingRequest]
    _timers: TimerQueue[_Transaction]
    faults: Faults

    def _on_message(self, message: Request | Response, flow: Flow) -> None:
        try:
            if self.role is TimeoutRole.STATELESS_PROXY or self._closed:
                if not self._closed:
                    self._stray(message, flow)
            elif isinstance(message, Response):
                self._on_response(message, flow)
            else:
                self._on_request(message, flow)
        except ProtocolError as exc:
            # A header read on demand was malformed: the peer's fault, not ours.
            if isinstance(message, Request):
                self._reject(message, flow, exc.status_hint or 400)
            else:
                self.faults.record("malformed-response", exc, f"from {flow!r}")
        except Exception as exc:
            self.faults.record("message", exc, f"{_first_line(message)} from {flow!r}")

    def _on_response(self, response: Response, flow: Flow) -> None:
        proxy = self.role is TimeoutRole.STATEFUL_PROXY
        if not check_response(response, role="proxy" if proxy else "uac"):
            self.faults.record("malformed-response", None, f"from {flow!r}")
            return
        where = self._table.classify(response)
        if isinstance(where, ToTransaction):
            self._live[where.key]._input(MessageReceived(response))
        else:
            self._stray(response, flow)

    def _on_request(self, request: Request, flow: Flow) -> None:
        try:
            where = self._table.classify(request)
        except ProtocolError as exc:
            self._reject(request, flow, exc.status_hint or 400)
            return
        if isinstance(where, ToTransaction):
            self._live[where.key]._input(MessageReceived(request))
            return
        if isinstance(where, AckFor2xx):
            self._stray(request, flow)
            return
        sent_over = request.vias[0].transport
        if (
            not flow.reliable
            and sent_over not in TRANSPORTS
            and sent_over.upper() not in TRANSPORTS
        ):
            # §18.2.2 has no way back over a transport we do not have (``Via: SIP/2.0/FOO``
            # over UDP): no transaction, no TU, nothing sent.
            self.faults.record("unanswerable-request", None, f"Via transport from {flow!r}")
            return
        if not cast("Stack", self).admission.admit(request, flow, where):
            return  # over a rate or overloaded: a stateless 503, or dropped (_admission.py)
        if self._check:
            proxy = self.role is TimeoutRole.STATEFUL_PROXY
            rejection = check_request(request, role="proxy" if proxy else "uas", limits=self.limits)
            if rejection is not None:
                self._reject(request, flow, rejection.status_code, rejection.headers)
                return
        if isinstance(where, CancelFor):
            self._on_cancel(request, flow, where)
        elif isinstance(where, NewServerTransaction):
            self._new_server(request, flow, where.key)

    def _new_server(
        self, request: Request, flow: Flow, key: Key, *, internal: bool = False
    ) -> IncomingRequest | None:
        cls = ServerInviteTransaction if request.method == "INVITE" else ServerNonInviteTransaction
        machine: ServerInviteTransaction | ServerNonInviteTransaction = cls(
            request, self.timer_config, reliable=flow.reliable, role=self.role
        )
        try:
            self._table.add(key, machine)
        except LocalProtocolError as exc:
            self.faults.record("table-full", exc, request.method, level=logging.WARNING)
            self._reject(request, flow, exc.status_hint)
            return None
        tag = new_tag(self._rng)
        incoming = IncomingRequest(
            cast("Stack", self),
            request,
            flow,
            key=key,
            machine=machine,
            to_tag=tag,
            internal=internal,
        )
        self._live[key] = incoming
        self._counts["server"] += 1
        # The start outputs (the delivery of the request) wait for the starter task; the
        # machine's 100 Trying timer runs from now.
        outputs = machine.start(trio.current_time())
        incoming._settle()
        if not internal:  # a CANCEL's own delivery is for nobody
            incoming._start_outputs = outputs
            self._starts.put(incoming)
        return incoming

    def _on_cancel(self, cancel: Request, flow: Flow, where: CancelFor) -> None:
        # §9.2: "the UAS ... responds to the CANCEL with a 200 (OK)" if it matches, else 481;
        # "if the original request was an INVITE and no final response was sent, the UAS
        # SHOULD immediately respond to the INVITE with a 487 (Request Terminated)."
        # §16.10, in the STATEFUL_PROXY role: a CANCEL matching a response context gets 200,
        # but the INVITE's final response is the best one from the branches the proxy then
        # cancels (the downstream 487), so the stack sends no 487; "If a response context is
        # not found, the element ... MUST statelessly forward the CANCEL request": it goes to
        # ``on_stray`` without a transaction, as in the stateless role.
        proxy = self.role is TimeoutRole.STATEFUL_PROXY
        invite = self._live.get(where.invite_key) if where.invite_key is not None else None
        if proxy and not isinstance(invite, IncomingRequest):
            self._stray(cancel, flow)
            return
        handle = self._new_server(cancel, flow, where.key, internal=True)
        if handle is None:
            return
        # Nobody else answers this transaction (internal): a response that cannot be built
        # from the CANCEL (no Call-ID, no From) must end it, not leave it in Trying for ever.
        if not isinstance(invite, IncomingRequest):
            self._respond_quietly(handle, 481)
            return
        handle.to_tag = invite.to_tag
        self._respond_quietly(handle, 200)
        if handle.final_response is None:
            return  # no 200 could be made: the CANCEL was dropped, the INVITE goes on
        invite._cancel()
        if invite.final_response is None and not proxy:
            try:
                invite._respond_now(invite.make_response(487))
            except LocalProtocolError as exc:  # the transaction just ended
                logger.debug("no 487 for the cancelled INVITE: %s", exc)

    def _dispatch(self, incoming: IncomingRequest) -> None:
        """A new request was delivered by its server transaction: hand it to the TU."""
        if self._handler is not None:
            # A request the owner answers without awaiting costs no task (and no cancel scope).
            sync = self._sync_handler
            if sync is not None and self._handle_now(sync, incoming):
                return
            self._counts["handlers"] += 1
            self._nursery.start_soon(self._run_handler, self._handler, incoming)
            return
        try:
            self._queue_in.send_nowait(incoming)
        except trio.WouldBlock:
            self._respond_quietly(incoming, 503)
            self.faults.record(
                "queue-full", None, f"503 to {incoming.request.method}", level=logging.WARNING
            )

    async def _run_handler(self, handler: Handler, incoming: IncomingRequest) -> None:
        try:
            await handler(incoming)
        except Exception as exc:
            self._handler_failed(incoming, exc)
        else:
            if not _answered(incoming) and not incoming.cancelled:
                self._respond_quietly(incoming, 500)
                self.faults.record("no-answer", None, f"500 to {incoming!r}", level=logging.WARNING)
            elif incoming.final_response is None and self.role is TimeoutRole.STATEFUL_PROXY:
                # The 487 the stack held back for the proxy (§16.10): nothing else will come.
                self._respond_quietly(incoming, 487)
        finally:
            self._counts["handlers"] -= 1
            self._release(incoming)

    def _handle_now(self, sync: SyncHandler, incoming: IncomingRequest) -> bool:
        """Run the synchronous handler; an exception is a handler fault, as in a task."""
        try:
            taken = sync(incoming)
        except Exception as exc:
            self._handler_failed(incoming, exc)
            taken = True
        if taken and _answered(incoming):
            self._release(incoming)
        return taken

    def _handler_failed(self, incoming: IncomingRequest, exc: Exception) -> None:
        # A header of the request that does not parse, read by the handler, is the peer's
        # fault (§8.2, §16.3: 400), as when the stack reads it; anything else is ours: 500.
        status = (exc.status_hint or 400) if isinstance(exc, RemoteProtocolError) else 500
        self._respond_quietly(incoming, status)
        self.faults.record("handler", exc, repr(incoming))

    def _release(self, incoming: IncomingRequest) -> None:
        """Nobody will answer ``incoming`` any more (its handler returned, or the owner it was
        handed to decided): once it only lingers, its parsed views go (``_compact``)."""
        incoming._handled = True
        if not incoming._done:
            incoming._compact()

    def _respond_quietly(self, incoming: IncomingRequest, status: int) -> None:
        """Answer ``status`` unless a final response went out (or the transaction ended). When
        no response can be built from the request (a value the response builder refuses), the
        transaction is dropped instead: it must not wait for an answer that cannot come."""
        if _answered(incoming):
            return
        try:
            incoming._respond_now(incoming.make_response(status))
            return
        except ProtocolError as exc:
            if _answered(incoming):
                return  # sent, then the transport failed: the machine says so
            error: ProtocolError = exc
        response = partial_response(incoming.request, status, incoming.to_tag, complete=True)
        if response is not None:
            try:
                incoming._respond_now(response)
                return
            except ProtocolError as exc:
                error = exc
        self.faults.record("unanswerable-request", error, f"no {status} for {incoming!r}")
        cast("Stack", self)._stop(incoming)

    def _reject(
        self, request: Request, flow: Flow, status: int, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Answer ``request`` statelessly (§8.2: 400, 420, 501, ... ; 503 when full)."""
        if request.method == "ACK" or not status:
            return
        if not request.headers.get_list("Via"):
            # §18.2.2 routes every response by its Via: without one nothing can go back (a
            # response built anyway has no destination).
            self.faults.record("unanswerable-request", None, f"{status}, no Via")
            return
        tag = new_tag(self._rng)
        response: Response | None
        try:
            response = make_response(request, status, to_tag=tag, headers=headers)
        except ProtocolError:
            # §8.2.6.2 with what the request has (no Call-ID, say): the Via lines route it.
            response = partial_response(request, status, tag)
            if response is None:
                raw = error_response_untrusted(bytes(request), status)
                parsed = parse_message(raw) if raw is not None else None
                response = parsed if isinstance(parsed, Response) else None
        if response is None:
            self.faults.record("unanswerable-request", None, f"{status}, no usable Via")
            return
        self.faults.record("rejected-request", None, f"{request.method} answered {status}")
        self._nursery.start_soon(self._send_quietly, response, flow)

    async def _send_quietly(self, response: Response, flow: Flow) -> None:
        try:
            await self._layer.send_response(response, flow)
        except (TransportError, ProtocolError) as exc:
            self.faults.record("send", exc, f"stateless {response.status_code}")
        except Exception as exc:  # a bug: counted, never the end of the stack (strict: raised)
            self.faults.record("send", exc, f"stateless {response.status_code}")

    def _stray(self, message: Request | Response, flow: Flow) -> None:
        if self._on_stray is None:
            logger.debug("dropping unmatched %r from %r", message, flow)
            return
        try:
            self._on_stray(message, flow)
        except ProtocolError as exc:  # the hook read a malformed header
            self.faults.record("stray-hook", exc, _first_line(message))
        except Exception as exc:
            self.faults.record("stray-hook", exc, _first_line(message))

    def _log_transport_error(self, tx: IncomingRequest, reason: str) -> None:
        self.faults.record("transport", None, f"{tx!r}: {reason}")


def _answered(incoming: IncomingRequest) -> bool:
    """A final response went out, or the transaction is over (or was dropped)."""
    return incoming.final_response is not None or incoming._done or incoming._machine.terminated


def _first_line(message: Request | Response) -> str:
    if isinstance(message, Request):
        return f"{message.method} request"
    return f"{message.status_code} response"


def partial_response(
    request: Request, status: int, to_tag: str, *, complete: bool = False
) -> Response | None:
    """A response to ``request`` that copies only what can be copied (§8.2.6.2): its Via
    lines, and the first From, To (with ``to_tag`` added when it has none), Call-ID and CSeq
    that it has and that a response may carry. None without a Via, or with ``complete`` when
    one of the other four is missing."""
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, value in request.headers:
        key = canonical_name(name)
        if key not in _COPIED or (key in seen and key != "via"):
            continue
        if key == "to" and "tag=" not in value.replace(" ", "").lower():
            value = f"{value};tag={to_tag}"
        if "\r" in value or "\n" in value or "\x00" in value:
            continue
        seen.add(key)
        pairs.append((name, value))
    if "via" not in seen or (complete and len(seen) < len(_COPIED)):
        return None
    try:
        response = Response(status, None, pairs)
        _ = response.vias[0]  # a Via that does not parse routes nothing
    except (ProtocolError, IndexError):
        return None
    return response


_COPIED = frozenset(("via", "from", "to", "call-id", "cseq"))
