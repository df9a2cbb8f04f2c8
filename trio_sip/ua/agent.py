# The user agent: RFC 3261 §8 (UAC/UAS behaviour), §11 (OPTIONS), §12-§15 (calls), RFC 3428
# (MESSAGE), RFC 6086 (INFO), on top of the transaction layer and the failover client.
#
# Theory of operation: ``open_user_agent`` opens a Stack (its handler and ``on_stray`` hook are
# ours) and one nursery for everything the agent runs: outgoing INVITE tasks, the 2xx/ACK
# machines (``dialogs.DialogDrivers``) and cleanup tasks. Every request the agent sends goes
# through a ``FailoverClient`` (RFC 3263 targets, blacklist, ``retry.decide``): initial INVITEs
# (INITIAL_INVITE), re-INVITEs (REINVITE), BYE, CANCEL, out-of-dialog MESSAGE/OPTIONS (OTHER);
# in-dialog requests go to the dialog's next hop (first Route, else the remote target).
#
# Incoming requests (already checked by the stack: 400/416/420/501 go out statelessly): a
# method registered with ``route()`` goes to its handler; one with a To tag goes through the
# DialogSet (§12.2.2: 481 for an unknown dialog, 500 for an old CSeq, 491 for glare) to its
# Call; a new INVITE becomes an IncomingCall for ``incoming_calls()`` (486 when nobody keeps
# up); OPTIONS is answered 200 with Allow / Accept / Supported (§11.2); MESSAGE goes to
# ``messages()`` and is answered 200; dialog-only methods outside a dialog get 481, any
# other known method 405 with Allow (§8.2.1). ACKs for our 2xx and retransmitted 2xx come
# through ``on_stray`` to the dialog machines. Transaction timeouts of the stack come back
# through its ``on_timeout`` hook and are re-published with their call (``timeouts``). Closing
# the agent ends every call (BYE/CANCEL, shielded, bounded by ``cleanup_timeout``), then
# cancels the nursery and closes the stack.
"""open_user_agent / connect_user_agent and UserAgent."""

from __future__ import annotations

import functools
import logging
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, Required, TypedDict, Unpack, final

import attrs
import trio

from trio_sip._groups import open_service_nursery
from trio_sip._inputs import address_arg, destination_arg, name_addr_arg, request_uri_arg
from trio_sip.dns import Resolver, default_resolver
from trio_sip.failover import Destination, FailoverClient
from trio_sip.keepalive import KeepAlives
from trio_sip.proto.auth import CredentialStore, DigestClient
from trio_sip.proto.blacklist import Blacklist
from trio_sip.proto.dialog import Dialog, DialogSet
from trio_sip.proto.errors import ConfigError, SipError
from trio_sip.proto.ids import new_call_id, new_tag
from trio_sip.proto.limits import Limits
from trio_sip.proto.message import Request, Response
from trio_sip.proto.registration import DEFAULT_REG_INTERVAL
from trio_sip.proto.sdp import SdpError, SessionDescription, audio_offer, parse_sdp
from trio_sip.proto.target import Target
from trio_sip.proto.timers import TimerConfig
from trio_sip.proto.uri import NameAddress, SipUri, Uri, parse_uri
from trio_sip.stack import IncomingRequest, Stack, TimeoutEvent, TimeoutStream, open_stack
from trio_sip.stack._timeouts import TimeoutHub
from trio_sip.transports import TransportConfig
from trio_sip.transports.base import Flow, NetworkBackend

from .call import Call
from .dialogs import DialogDrivers, challenge, next_hop, with_auth
from .incoming import IncomingCall
from .media_ports import MediaPorts, media_port_range
from .paths import ProxyList
from .registration import Registrations, UaRegistration
from .subscription import Subscriptions
from .timeouts import AgentTimeout, call_for
from .trust import ProxyTrust

__all__ = [
    "IncomingMessage",
    "UserAgent",
    "UserAgentOptions",
    "connect_user_agent",
    "open_user_agent",
]

logger = logging.getLogger("trio_sip.ua")

ALLOW = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "MESSAGE")
_DIALOG_ONLY = frozenset({"BYE", "INFO", "UPDATE", "PRACK"})
#: A new INVITE that finds the ``incoming_calls()`` queue full waits this long for room (a
#: burst: the application takes calls one per round or two) before it is answered 486, ...
QUEUE_WAIT = 1.0
#: ... and at most this many times ``incoming_queue`` calls wait so (the rest get 486 at once).
OVERFLOW_FACTOR = 4
RequestHandler = Callable[[IncomingRequest], Awaitable[object]]


@attrs.frozen
class IncomingMessage:
    """A MESSAGE received outside any dialog (already answered 200)."""

    request: Request

    @property
    def sender(self) -> NameAddress:
        return self.request.from_

    @property
    def text(self) -> str:
        return self.request.body.decode("utf-8", errors="replace")


@final
class UserAgent:
    """A SIP user agent. Made by :func:`open_user_agent`; never constructed by users."""

    def __init__(
        self,
        stack: Stack,
        nursery: trio.Nursery,
        failover: FailoverClient,
        *,
        aor: NameAddress,
        contact: NameAddress,
        credentials: CredentialStore | None,
        rng: random.Random,
        media_address: str,
        media_port: int | MediaPorts,
        cleanup_timeout: float,
        incoming_queue: int,
        user_agent: str,
        proxies: ProxyList = (),
        on_timeout: Callable[[AgentTimeout], object] | None = None,
    ) -> None:
        self.stack = stack
        #: The configured proxies (SIP URIs or Targets): under a short sip_transaction_timeout
        #: the 2xx we answer with, our ACKs, BYEs and CANCELs cycle through them too (seed
        #: 002; docs/failover.md, "The configured proxies").
        self.proxies: ProxyList = tuple(proxies)
        self.failover = failover
        # Configured proxies are exempt from the per-source request rate (ua/trust.py).
        self._trust = ProxyTrust(stack.admission, failover, nursery)
        self._trust.add(self.proxies)
        self.aor = aor
        self._contact = contact
        self.credentials = credentials
        self.cleanup_timeout = cleanup_timeout
        self.user_agent = user_agent
        self.dialogs = DialogSet(rng=rng)
        self.drivers = DialogDrivers(stack, nursery)
        self._nursery = nursery
        self._rng = rng
        self._media_address = media_address
        #: The RTP ports of the default SDP: one per call, given back when the call ends.
        self.media_ports = (
            media_port
            if isinstance(media_port, MediaPorts)
            else MediaPorts(media_port_range(None, media_port))
        )
        self._media_held: dict[Call, int] = {}
        self._media_pending: int | None = None  # allocated, its call not made yet
        # Calls keep SDPs as bytes when parsing them back gives the same value; true for the
        # default SDP and answers to it unless the media address is odd (checked once).
        probe = audio_offer(media_address, self.media_ports.ports[0], session_id=1)
        try:
            self._sdp_round_trips = parse_sdp(bytes(probe)) == probe
        except SdpError:
            self._sdp_round_trips = False
        # Header values every call sends (computed once; Allow again when ``route`` adds one).
        self._contact_text = str(contact)
        self._allow_text = ", ".join(ALLOW)
        self._calls: dict[Any, Call] = {}
        self._live: set[Call] = set()
        stack.admission.count_dialogs = self._live.__len__  # Limits.max_dialogs: 503 above it
        self._routes: dict[str, RequestHandler] = {}
        self._incoming_in, self._incoming_out = trio.open_memory_channel[IncomingCall](
            incoming_queue
        )
        self._messages_in, self._messages_out = trio.open_memory_channel[IncomingMessage](
            incoming_queue
        )
        # INVITEs waiting for room in a full incoming-call queue (``_queue_call``).
        self._overflow = 0
        self._overflow_max = OVERFLOW_FACTOR * incoming_queue
        self._closed = False
        self._closing = trio.Event()
        self._timeout_hub: TimeoutHub[AgentTimeout] = TimeoutHub(on_timeout, stack._hook_failed)
        #: Keep-alive loops (NULL CRLFs, RFC 5626 pings on registration flows).
        self.keepalives = KeepAlives(stack.transport_layer, nursery, rng=rng)
        #: REGISTER tasks: ``await ua.register(...)`` or ``ua.registrations.register(...)``.
        self.registrations = Registrations(
            stack, nursery, failover=failover, keepalives=self.keepalives, rng=rng
        )
        #: SUBSCRIBE/NOTIFY tasks; NOTIFYs for them are routed here before anything else.
        self.subscriptions = Subscriptions(stack, nursery, failover=failover, rng=rng)

    def timeouts(self, maxlen: int = 1024) -> TimeoutStream[AgentTimeout]:
        """``async for timeout in ua.timeouts()``: each :class:`AgentTimeout` (a transaction
        timeout of this agent, with its call) from now until the agent closes."""
        return self._timeout_hub.stream(maxlen)

    def _on_timeout(self, event: TimeoutEvent) -> None:
        if self._timeout_hub.listening:
            self._timeout_hub.publish(AgentTimeout(event, call_for(self, event.request)))

    async def register(
        self,
        destination: Destination,
        *,
        registrar: str | None = None,
        expires: int = 3600,
        reg_interval: float = DEFAULT_REG_INTERVAL,
        credentials: CredentialStore | tuple[str, str] | None = None,
        headers: Iterable[tuple[str, str]] = (),
        keepalive_period: float = 120.0,
        flow_retry: float = 30.0,
        unregister_timeout: float = 4.0,
    ) -> UaRegistration:
        """Register this agent's AOR and Contact at ``destination``: ``host``, ``host:port``,
        a ``sip:``/``sips:`` URI (resolved by RFC 3263), a ``Target`` or a list of them.

        The keywords are :meth:`Registrations.register`'s (docs/registration.md); the agent's
        credentials are used unless ``credentials`` is given. Returns at once, the first
        REGISTER under way (``await registration.wait_registered()``). Raises ``ConfigError``
        for a destination of another form.
        """
        destination = destination_arg("destination", destination)
        self._trust.add([destination])
        return await self.registrations.register(
            str(self.aor),
            destination,
            contact=str(self.contact),
            registrar=registrar,
            expires=expires,
            reg_interval=reg_interval,
            credentials=credentials if credentials is not None else self.credentials,
            headers=headers,
            keepalive_period=keepalive_period,
            flow_retry=flow_retry,
            unregister_timeout=unregister_timeout,
        )

    @property
    def contact(self) -> NameAddress:
        """Our Contact (in requests, 1xx and 2xx)."""
        return self._contact

    @contact.setter
    def contact(self, value: NameAddress) -> None:
        self._contact = value
        self._contact_text = str(value)

    @property
    def host(self) -> str:
        uri = self.contact.uri
        return uri.host if isinstance(uri, SipUri) else "localhost"

    @property
    def calls(self) -> list[Call]:
        """The calls not ended yet."""
        return list(self._live)

    # -- placing calls ---------------------------------------------------------------------------

    @asynccontextmanager
    async def call(
        self,
        destination: str | Uri,
        *,
        sdp: SessionDescription | None = None,
        outbound_proxy: str | Uri | None = None,
        headers: Iterable[tuple[str, str]] = (),
        aor: str | NameAddress | None = None,
        credentials: CredentialStore | None = None,
        proxies: ProxyList | None = None,
    ) -> AsyncIterator[Call]:
        """Place a call; leaving the block hangs up (BYE) or cancels (CANCEL after a 1xx).

        ``destination``: a ``sip:``/``sips:``/``tel:`` URI (``user@host`` is a ``sip:`` one);
        ``outbound_proxy``: ``host``, ``host:port`` or a ``sip:``/``sips:`` URI (a ``tel:``
        destination needs one). ``aor`` (the From of this call) and ``credentials`` (for its
        401/407 challenges, in-dialog ones included) default to the agent's; a multi-account
        application passes each account's own; so are ``proxies`` (the configured proxies,
        ``ua.proxies``). Invalid values raise ``ConfigError`` naming the argument before
        anything is sent; ``CallFailed`` when the call fails."""
        uri = request_uri_arg("destination", destination)
        caller = name_addr_arg("aor", aor) if aor is not None else None
        proxy = (
            address_arg("outbound_proxy", outbound_proxy) if outbound_proxy is not None else None
        )
        if proxy is None and not isinstance(uri, SipUri):
            raise ConfigError("outbound_proxy", None, f"a SIP proxy for the {uri.scheme}: URI")
        self._trust.add([*([proxy] if proxy is not None else []), *(proxies or ())])
        media_key: tuple[int, int] | None = None
        if sdp is None:
            media_key = self._new_media()
            media = self._media_sdp(*media_key)
        else:
            media = sdp
        body = bytes(media)
        hop: Uri = uri
        routes: list[tuple[str, str]] = []
        if proxy is not None:
            hop = (
                proxy
                if "lr" in proxy.params
                else proxy.evolve(params=proxy.params.with_param("lr"))
            )
            routes.append(("Route", f"<{hop}>"))
        request = self._new_request(
            "INVITE", uri, [*routes, *headers], body, "application/sdp", aor=caller
        )
        call = Call(self, outgoing=True, session_id=self._new_session_id(), local_sdp=media,
                    media=media)  # fmt: skip
        self._claim_media(call)
        if credentials is not None:
            call._digest = self._digest_client(credentials)
        if proxies is not None:
            call._proxies = tuple(proxies)
        if media_key is not None and self._sdp_round_trips:  # kept small (see Call)
            call._media, call._local_sdp = media_key, body
        self._live.add(call)
        try:
            await self._nursery.start(call._run_invite, request, hop)
        except BaseException:
            self._live.discard(call)
            self._release_media(call)
            raise
        async with call:
            yield call

    def _new_request(
        self,
        method: str,
        uri: Uri,
        headers: Iterable[tuple[str, str]],
        body: bytes = b"",
        content_type: str | None = None,
        *,
        aor: NameAddress | None = None,
    ) -> Request:
        """A request outside any dialog (§8.1.1), without Via (the stack adds it)."""
        pairs = [
            ("Max-Forwards", "70"),
            ("From", str((aor or self.aor).with_tag(new_tag(self._rng)))),
            ("To", str(NameAddress(uri))),
            ("Call-ID", new_call_id(self._rng, self.host)),
            ("CSeq", f"1 {method}"),
            ("Contact", self._contact_text),
            ("Allow", self._allow_text),
            ("User-Agent", self.user_agent),
        ]
        if content_type is not None and body:
            pairs.append(("Content-Type", content_type))
        pairs.extend(headers)
        return Request(method, uri, pairs, body)

    def _new_media(self) -> tuple[int, int]:
        """The (port, session id) of the next default SDP (``audio_offer`` draws the session
        id from the agent's Random the same way). The port is the call's once it claims it
        (``_claim_media``, in the same step: no await between); one never claimed (the call
        was not made) is given back here, at the next allocation."""
        if self._media_pending is not None:
            self.media_ports.release(self._media_pending)
        port = self._media_pending = self.media_ports.allocate()
        return port, self._rng.randrange(1, 2**62)

    def _claim_media(self, call: Call) -> None:
        """``call`` holds the port allocated last, if its call has not been made yet."""
        if self._media_pending is not None:
            self._media_held[call] = self._media_pending
            self._media_pending = None

    def _release_media(self, call: Call) -> None:
        port = self._media_held.pop(call, None)
        if port is not None:
            self.media_ports.release(port)

    def _media_sdp(self, port: int, session_id: int) -> SessionDescription:
        """Our default SDP for ``port`` and ``session_id`` (the same value every time)."""
        return audio_offer(self._media_address, port, session_id=session_id)

    def _new_session_id(self) -> str:
        return new_tag(self._rng)

    def _digest_client(self, credentials: CredentialStore | None = None) -> DigestClient | None:
        store = credentials if credentials is not None else self.credentials
        return DigestClient(store, self._rng) if store else None

    # -- out-of-dialog requests ------------------------------------------------------------------

    async def send_message(
        self,
        destination: str | Uri,
        text: str | bytes,
        *,
        content_type: str = "text/plain;charset=UTF-8",
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """Send a MESSAGE (RFC 3428); return the final response (401/407 answered)."""
        body = text.encode() if isinstance(text, str) else text
        return await self.request("MESSAGE", destination, body, content_type, headers=headers)

    async def options(self, destination: str | Uri) -> Response:
        """Send an OPTIONS (§11); return the final response."""
        return await self.request("OPTIONS", destination, headers=[("Accept", "application/sdp")])

    async def request(
        self,
        method: str,
        destination: str | Uri,
        body: bytes = b"",
        content_type: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """Send any request outside a dialog with failover; answer 401/407 (CSeq + 1).
        ``destination``: a ``sip:``/``sips:`` URI (``user@host`` is a ``sip:`` one), else
        ``ConfigError``."""
        uri = request_uri_arg("destination", destination)
        if not isinstance(uri, SipUri):
            raise ConfigError("destination", destination, "a sip: or sips: URI")
        request = self._new_request(method, uri, headers, body, content_type)
        digest = self._digest_client()
        for _ in range(3):
            result = await self.failover.request(request, uri)
            if not challenge(digest, request, result.response):
                break
            seq = request.cseq.seq + 1
            request = request.evolve(headers=request.headers.replace("CSeq", f"{seq} {method}"))
            request = with_auth(request, digest)
        return result.response

    # -- receiving -------------------------------------------------------------------------------

    async def incoming_calls(self) -> AsyncIterator[IncomingCall]:
        """Iterate over new incoming calls (ring, accept or reject each)."""
        async for incoming in self._incoming_out:
            yield incoming

    async def messages(self) -> AsyncIterator[IncomingMessage]:
        """Iterate over MESSAGEs received outside any dialog (already answered 200)."""
        async for message in self._messages_out:
            yield message

    def route(self, method: str, handler: RequestHandler) -> None:
        """Hand every ``method`` request (e.g. NOTIFY) to ``handler(incoming)``, which must
        answer it; the method is then listed in Allow."""
        self._routes[method.upper()] = handler
        self._allow_text = ", ".join(self._allow())

    def _allow(self) -> list[str]:
        return [*ALLOW, *(m for m in self._routes if m not in ALLOW)]

    async def _handle(self, incoming: IncomingRequest) -> None:
        """The stack's handler (see the module comment)."""
        request = incoming.request
        method = request.method
        handler = self._routes.get(method)
        if handler is not None:
            await handler(incoming)
            return
        if method == "NOTIFY" and await self.subscriptions.handle(incoming):
            return
        if request.to.tag is not None:
            found = self.dialogs.check_request(request)
            if isinstance(found, Response):
                await incoming.respond(found)
                return
            call = self._calls.get(found.id) if isinstance(found, Dialog) else None
            if call is None:
                await incoming.respond(481)
                return
            await call._on_request(incoming)
            return
        if method == "INVITE":
            ringing = IncomingCall(self, incoming)
            if not await self._queue_call(ringing):
                self.stack._respond_quietly(incoming, 486)  # unless a CANCEL's 487 went out
                await trio.lowlevel.checkpoint()
                return
            await ringing._serve()
        elif method == "MESSAGE":
            await incoming.respond(200)
            try:
                self._messages_in.send_nowait(IncomingMessage(request))
            except (trio.WouldBlock, trio.ClosedResourceError):
                logger.warning("MESSAGE queue full: dropping a message from %s", request.from_)
        elif method in _DIALOG_ONLY:
            await incoming.respond(481)
        else:
            await self._answer_other(incoming)

    def _handle_now(self, incoming: IncomingRequest) -> bool:
        """The stack's synchronous handler: what needs no await is done here, in the starter's
        round, without a task or a cancel scope -- a new INVITE that finds room in the
        ``incoming_calls()`` queue (the IncomingCall releases the transaction when decided),
        a BYE, an out-of-dialog OPTIONS. False: ``_handle`` runs in a task."""
        request = incoming.request
        method = request.method
        if method in self._routes:
            return False
        if request.to.tag is not None:
            if method != "BYE":
                return False
            found = self.dialogs.check_request(request)
            if isinstance(found, Response):
                incoming._respond_now(found)
                return True
            call = self._calls.get(found.id) if isinstance(found, Dialog) else None
            if call is None:
                incoming._respond_now(incoming.make_response(481))
            else:
                call._on_bye(incoming)
            return True
        if method == "INVITE":
            ringing = IncomingCall(self, incoming)
            try:
                self._incoming_in.send_nowait(ringing)
            except (trio.WouldBlock, trio.ClosedResourceError):
                return False  # ``_handle`` waits for room, or answers 486
            ringing._handed()
            return True
        if method == "OPTIONS":
            incoming._respond_now(incoming.make_response(200, headers=self._options_headers()))
            return True
        return False

    async def _queue_call(self, ringing: IncomingCall) -> bool:
        """Put a new call in the ``incoming_calls()`` queue. When it is full, wait up to
        ``QUEUE_WAIT`` seconds for room (a burst the application takes in a moment), at most
        ``OVERFLOW_FACTOR`` times ``incoming_queue`` calls at a time; False: no room (486)."""
        try:
            self._incoming_in.send_nowait(ringing)
            return True
        except trio.ClosedResourceError:
            return False
        except trio.WouldBlock:
            pass
        if self._overflow >= self._overflow_max:
            return False
        self._overflow += 1
        try:
            with trio.move_on_after(QUEUE_WAIT):
                await self._incoming_in.send(ringing)
                return True
            return False
        except trio.ClosedResourceError:
            return False
        finally:
            self._overflow -= 1

    def _options_headers(self) -> list[tuple[str, str]]:
        return [
            ("Allow", self._allow_text),
            ("Accept", "application/sdp"),
            ("Supported", ""),
            ("Contact", self._contact_text),
        ]

    async def _answer_other(self, incoming: IncomingRequest) -> None:
        """OPTIONS: 200 with our capabilities (§11.2); any other method: 405 with Allow."""
        allow = ("Allow", self._allow_text)
        if incoming.method == "OPTIONS":
            await incoming.respond(200, headers=self._options_headers())
        else:
            await incoming.respond(405, headers=[allow])

    def _make_2xx(
        self,
        incoming: IncomingRequest,
        sdp: SessionDescription | bytes | None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """The 200 to ``incoming`` (not sent) with our Contact, Allow, Supported, and ``sdp``
        (a description or its bytes) as the body."""
        pairs = [
            ("Contact", self._contact_text),
            ("Allow", self._allow_text),
            ("Supported", ""),
            ("User-Agent", self.user_agent),
        ]
        if sdp is not None:
            pairs.append(("Content-Type", "application/sdp"))
        pairs.extend(headers)
        body = b"" if sdp is None else sdp if isinstance(sdp, bytes) else bytes(sdp)
        return incoming.make_response(200, headers=pairs, body=body)

    def _on_stray(self, message: Request | Response, flow: Flow) -> None:
        """ACKs for our 2xx and retransmitted 2xx responses (§13.2.2.4, §13.3.1.4)."""
        if isinstance(message, Request):
            if message.method != "ACK":
                return
            self.drivers.deliver(message)
            dialog = self.dialogs.for_request(message)
            call = self._calls.get(dialog.id) if dialog is not None else None
            if call is not None:
                call._on_ack(message)
        elif (
            200 <= message.status_code < 300
            and message.cseq.method == "INVITE"
            and not self.drivers.deliver(message)
        ):
            logger.info("a 2xx for no known dialog (a fork?) from %r: ignored", flow)

    # -- bookkeeping -----------------------------------------------------------------------------

    def _register(self, call: Call) -> None:
        assert call.dialog is not None
        self._calls[call.dialog.id] = call
        self._live.add(call)
        self._claim_media(call)  # an incoming call's answer: its port was allocated just now

    def _forget(self, call: Call) -> None:
        self._live.discard(call)
        self._release_media(call)
        if call.dialog is not None:
            self._calls.pop(call.dialog.id, None)
            self.dialogs.discard(call.dialog.id)

    def _spawn(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        if not self._closed:
            self._nursery.start_soon(fn, *args)

    async def _target_for(self, dialog: Dialog, fallback: Target) -> Target:
        """The first target of the dialog's next hop (for ACKs), else ``fallback``."""
        try:
            targets = await self.failover.targets(next_hop(dialog))
        except SipError:
            return fallback
        return targets[0] if targets else fallback

    # -- closing ---------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """End every call (BYE / CANCEL, bounded by ``cleanup_timeout``), then stop."""
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            with trio.move_on_after(self.cleanup_timeout):
                async with trio.open_nursery() as nursery:
                    # Unregister (Expires: 0) while the stack can still send it.
                    nursery.start_soon(self.registrations.aclose)
                    for call in list(self._live):
                        nursery.start_soon(call.aclose)
            self._incoming_in.close()
            self._messages_in.close()
            self._timeout_hub.close()
            self._nursery.cancel_scope.cancel()
            await self.stack.aclose()
        self._closing.set()


def _as_name_addr(aor: str | NameAddress) -> NameAddress:
    """``"sip:alice@example.com"``, ``"Alice <sip:alice@...>"`` or a NameAddress."""
    return name_addr_arg("aor", aor)


@asynccontextmanager
async def open_user_agent(
    listen: Iterable[tuple[str, str, int] | str] = (("UDP", "127.0.0.1", 0),),
    *,
    aor: str | NameAddress,
    display_name: str | None = None,
    contact: str | NameAddress | None = None,
    credentials: CredentialStore | None = None,
    timer_config: TimerConfig | None = None,
    failover: FailoverClient | None = None,
    resolver: Resolver | None = None,
    blacklist: Blacklist | None = None,
    backend: NetworkBackend | None = None,
    transport_config: TransportConfig | None = None,
    rng: random.Random | None = None,
    media_address: str | None = None,
    media_port: int | None = None,
    media_ports: range | None = None,
    cleanup_timeout: float = 4.0,
    incoming_queue: int = 16,
    user_agent: str = "trio-sip",
    limits: Limits | None = None,
    strict: bool | None = None,
    proxies: ProxyList = (),
    on_timeout: Callable[[AgentTimeout], object] | None = None,
) -> AsyncIterator[UserAgent]:
    """A :class:`UserAgent` listening on ``listen`` (see docs/calls.md for every argument)."""
    ports = MediaPorts(media_port_range(media_ports, media_port))
    if not cleanup_timeout > 0 or math.isinf(cleanup_timeout):
        raise ConfigError("cleanup_timeout", cleanup_timeout, "finite seconds > 0")
    rng = rng if rng is not None else random.SystemRandom()
    holder: list[UserAgent] = []

    async def handler(incoming: IncomingRequest) -> None:
        await holder[0]._handle(incoming)

    def on_stray(message: Request | Response, flow: Flow) -> None:
        if holder:
            holder[0]._on_stray(message, flow)

    def on_stack_timeout(event: TimeoutEvent) -> None:
        if holder:
            holder[0]._on_timeout(event)

    address = _as_name_addr(aor)
    if display_name is not None:
        address = address.evolve(display_name=display_name)
    async with open_stack(
        listen,
        timer_config=timer_config,
        handler=handler,
        on_stray=on_stray,
        backend=backend,
        transport_config=transport_config,
        rng=rng,
        limits=limits,
        strict=strict,
        on_timeout=on_stack_timeout,
    ) as stack:
        if not stack.listening:  # cancelled while the listeners started, or none asked for
            await trio.lowlevel.checkpoint_if_cancelled()
            raise ConfigError("listen", listen, "at least one (transport, host, port) listener")
        transport, (host, port) = stack.listening[0]
        if contact is None:
            user = address.uri.user if isinstance(address.uri, SipUri) else None
            params = "" if transport == "UDP" else f";transport={transport.lower()}"
            at = f"{user}@" if user else ""
            bracket = f"[{host}]" if ":" in host else host
            contact_addr = NameAddress(parse_uri(f"sip:{at}{bracket}:{port}{params}"))
        else:
            contact_addr = name_addr_arg("contact", contact)
        if failover is None and resolver is None:
            resolver = default_resolver(
                rng=rng
            )  # RFC 3263 on the system's DNS (docs/resolution.md)
        fc = failover or FailoverClient(stack, resolver=resolver, blacklist=blacklist, rng=rng)
        async with open_service_nursery() as nursery:
            ua = UserAgent(
                stack, nursery, fc, aor=address, contact=contact_addr, credentials=credentials,
                rng=rng, media_address=media_address or host, media_port=ports,
                cleanup_timeout=cleanup_timeout, incoming_queue=incoming_queue,
                user_agent=user_agent, proxies=proxies, on_timeout=on_timeout,
            )  # fmt: skip
            holder.append(ua)
            stack._sync_handler = ua._handle_now
            try:
                yield ua
            finally:
                await ua.aclose()


class UserAgentOptions(TypedDict, total=False):
    """The keyword arguments of :func:`open_user_agent` (``aor`` required), for
    :func:`connect_user_agent`."""

    listen: Iterable[tuple[str, str, int] | str]
    aor: Required[str | NameAddress]
    display_name: str | None
    contact: str | NameAddress | None
    credentials: CredentialStore | None
    timer_config: TimerConfig | None
    failover: FailoverClient | None
    resolver: Resolver | None
    blacklist: Blacklist | None
    backend: NetworkBackend | None
    transport_config: TransportConfig | None
    rng: random.Random | None
    media_address: str | None
    media_port: int | None
    media_ports: range | None
    cleanup_timeout: float
    incoming_queue: int
    user_agent: str
    limits: Limits | None
    strict: bool | None
    proxies: ProxyList


async def _serve_user_agent(
    options: UserAgentOptions,
    *,
    task_status: trio.TaskStatus[UserAgent] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with open_user_agent(**options) as ua:
        task_status.started(ua)
        await ua._closing.wait()


async def connect_user_agent(
    nursery: trio.Nursery, **options: Unpack[UserAgentOptions]
) -> UserAgent:
    """Like :func:`open_user_agent` (the same keyword arguments), in the caller's
    ``nursery``; ``await ua.aclose()`` ends it (or cancel the nursery)."""
    ua: UserAgent = await nursery.start(functools.partial(_serve_user_agent, options))
    return ua
