# SUBSCRIBE / NOTIFY tasks for the user agent: RFC 6665 subscriber and notifier.
#
# Theory of operation. *Subscriber*: one supervised task per subscription runs the pure
# ``proto.subscription.Subscription`` machine in the refresh-task loop it shares with
# ``ua.registration`` (``ua.refresh.RefreshTask``): ``SendRequest`` outputs go through the
# failover client with kind SUBSCRIBE (one attempt; a failure waits for the next
# ``reg_interval`` tick, never when it is 0, and the blacklist then picks the next target),
# initial SUBSCRIBEs to the configured destination and
# in-dialog ones (refreshes, the unsubscribe) to the dialog's next hop (§12.2.1.1). The task
# sleeps until ``machine.deadline`` (the refresh at ``refresh_delay`` of the granted duration,
# or the retry). NOTIFYs reach it through :meth:`Subscriptions.handle` (the UA's request
# handler calls it): the machine is fed synchronously, its ``SendResponse`` answers the NOTIFY,
# ``Notified`` becomes a :class:`Notification` for the application and a resubscription is
# handed to the task. Closing sends ``Expires: 0`` in the dialog (shielded, bounded).
#
# *Notifier* (:class:`Notifier`): ``accept(incoming)`` answers a SUBSCRIBE with 200/202 and an
# Expires no longer than ``max_expires`` (``answer_subscribe``, §4.2.1.1), makes the dialog
# (§4.2.1.1: the 2xx creates it) and sends the first NOTIFY at once (§4.2.1.2). Refreshing
# SUBSCRIBEs in the dialog move the expiry; ``Expires: 0`` or the expiry itself end the
# subscription with a terminated NOTIFY (reason timeout when it expired, §4.2.2).
"""Subscriptions: RFC 6665 subscriber tasks and a small notifier."""

from __future__ import annotations

import logging
import math
import random
import weakref
from collections import deque
from typing import Any, TypedDict, final

import attrs
import trio

from trio_sip.errors import SubscriptionError as SubscriptionError
from trio_sip.failover import Destination, FailoverClient
from trio_sip.proto.dialog import Dialog
from trio_sip.proto.message import Request
from trio_sip.proto.registration import DEFAULT_REG_INTERVAL, SendRequest, StateChanged
from trio_sip.proto.retry import RequestKind
from trio_sip.proto.subscription import (
    Notified,
    NotifyReceived,
    SendResponse,
    SubscriptionState,
    SubState,
    answer_subscribe,
    build_notify,
)
from trio_sip.proto.subscription import Subscription as SubscribeMachine
from trio_sip.proto.uri import SipUri
from trio_sip.stack import IncomingRequest, Stack

from .dialogs import PLACEHOLDER_VIA, next_hop
from .refresh import EventStream, RefreshTask, RefreshTasks, send_once

__all__ = [
    "Notification",
    "Notifier",
    "ServerSubscription",
    "SubscriptionEvent",
    "Subscriptions",
    "UaSubscription",
]

logger = logging.getLogger("trio_sip.ua.subscription")
SS = SubscriptionState


class SubscriptionStatistics(TypedDict):
    """What ``UaSubscription.statistics()`` returns (a dict, as before)."""

    state: SubscriptionState
    requests: int
    next_attempt: float | None
    reason: str


@attrs.frozen(slots=True)
class SubscriptionEvent:
    old: SubscriptionState
    new: SubscriptionState
    reason: str
    time: float


@attrs.frozen(slots=True)
class Notification:
    """One accepted NOTIFY: its Subscription-State, body and Content-Type."""

    state: SubState
    body: bytes
    content_type: str | None
    request: Request


@final
class UaSubscription(RefreshTask[SubscribeMachine, SubscriptionEvent]):
    """One subscription kept alive by a task (made by :meth:`Subscriptions.subscribe`)."""

    history_limit = 100  # a long-lived subscription must not grow without bound

    def __init__(
        self, machine: SubscribeMachine, failover: FailoverClient, destination: Destination
    ) -> None:
        super().__init__(machine, failover, destination, RequestKind.SUBSCRIBE, close_timeout=4.0)
        self._pending: deque[object] = deque()
        self._notes: weakref.WeakSet[EventStream[Notification]] = weakref.WeakSet()
        self.last_notification: Notification | None = None

    @property
    def state(self) -> SubscriptionState:
        return self.machine.state

    def events(self) -> EventStream[SubscriptionEvent]:
        """The current state (the last :class:`SubscriptionEvent`), then every change."""
        return super().events()

    def notifications(self) -> EventStream[Notification]:
        """The last accepted NOTIFY (:class:`Notification`: the resource's current state),
        then every one from now on."""
        last = self.last_notification
        return self._new_stream(self._notes, [last] if last is not None else [])

    async def wait_active(self) -> None:
        """Return once ACTIVE; raise ``SubscriptionError`` if it fails or ends first."""
        while self.machine.state is not SS.ACTIVE:
            if self.machine.state in (SS.FAILED, SS.TERMINATED) or self._done.is_set():
                raise SubscriptionError(self.reason or self.machine.state.value)
            await self._changed.wait()
        await trio.lowlevel.checkpoint()

    def statistics(self) -> SubscriptionStatistics:
        """``state``, ``requests`` (SUBSCRIBEs sent), ``next_attempt`` (trio time of the
        refresh or retry, None if none) and ``reason``."""
        return {
            "state": self.machine.state,
            "requests": self.requests,
            "next_attempt": self.machine.deadline,
            "reason": self.reason,
        }

    async def aclose(self) -> None:
        """Unsubscribe (``Expires: 0`` in the dialog, bounded) and wait for the task."""
        await super().aclose()

    # -- the task (the loop is RefreshTask.run) ---------------------------------------------

    def _finished(self) -> bool:
        # Ended by the notifier (a terminated NOTIFY, no retry): the task returns, so the
        # subscription leaves ``ua.subscriptions`` and its streams end.
        return self.machine.state is SS.TERMINATED and not self._pending

    def _sleep_until(self) -> float | None:
        return None if self._pending else super()._sleep_until()

    async def _step(self) -> None:
        if self._pending:
            await self._perform(list(self._pending))
            self._pending.clear()
        else:
            await super()._step()

    async def _close(self) -> None:
        if self.machine.state not in (SS.UNSUBSCRIBING, SS.TERMINATED):
            await self._perform(self.machine.close(trio.current_time()))

    def _closed(self) -> None:
        for stream in list(self._notes):
            stream._close()

    def _destination_for(self, request: Request) -> Destination:
        dialog = self.machine.dialog
        if dialog is not None and request.to.tag is not None:
            hop = next_hop(dialog)
            if isinstance(hop, SipUri):
                return hop
        return self.destination

    def _output(self, output: object) -> None:
        if isinstance(output, StateChanged):
            assert isinstance(output.old, SS) and isinstance(output.new, SS)
            self.reason = output.reason
            event = SubscriptionEvent(output.old, output.new, output.reason, trio.current_time())
            logger.info("%s: %s", self.machine.event, event)
            self._announce(event)
        elif isinstance(output, Notified):
            r = output.request
            note = Notification(output.state, r.body, r.headers.get("Content-Type"), r)
            self.last_notification = note
            for stream in list(self._notes):
                stream._put(note)

    async def _on_notify(self, incoming: IncomingRequest) -> None:
        outputs = self.machine.handle(NotifyReceived(incoming.request), trio.current_time())
        for output in outputs:
            if isinstance(output, SendResponse):
                await incoming.respond(output.response)
            elif isinstance(output, SendRequest):
                self._pending.append(output)
                self._wakeup.set()
            else:
                self._output(output)
        if self.machine.state is SS.TERMINATED:
            self._wakeup.set()  # the task sees it has finished


@final
class Subscriptions(RefreshTasks[UaSubscription]):
    """The subscriber side of one user agent: tasks in ``nursery``, NOTIFY dispatch."""

    async def subscribe(
        self,
        target: str,
        event: str,
        destination: Destination,
        *,
        local: str,
        contact: str,
        expires: int = 3600,
        reg_interval: float = DEFAULT_REG_INTERVAL,
        accept: str | None = None,
    ) -> UaSubscription:
        """Subscribe to ``event`` at ``target`` (sent to ``destination``); returns at once."""
        machine = SubscribeMachine(
            target,
            event,
            local=local,
            contact=contact,
            rng=self._rng,
            expires=expires,
            reg_interval=reg_interval,
            accept=accept,
            config=self.stack.timer_config,
        )
        return await self._start(UaSubscription(machine, self.failover, destination))

    async def handle(self, incoming: IncomingRequest) -> bool:
        """Give a NOTIFY to its subscription (True), or report it is none of ours (False)."""
        request = incoming.request
        if request.method != "NOTIFY":
            return False
        for sub in self._all:
            machine = sub.machine
            if machine.state is SS.TERMINATED:
                continue  # ended: the NOTIFY matches nothing (481 from the agent)
            if machine.call_id == request.call_id and machine.from_tag == request.to.tag:
                await sub._on_notify(incoming)
                return True
        return False


@final
class ServerSubscription:
    """A subscription we accepted (made by :meth:`Notifier.accept`)."""

    def __init__(self, notifier: Notifier, dialog: Dialog, expires_at: float) -> None:
        self._notifier = notifier
        self.dialog = dialog
        self.expires_at = expires_at
        self.terminated = False
        self._wakeup = trio.Event()
        self._done = trio.Event()

    async def notify(
        self, body: bytes = b"", content_type: str | None = None, state: str = "active"
    ) -> None:
        """Send a NOTIFY with the current state and the remaining duration."""
        remaining = max(0, math.ceil(self.expires_at - trio.current_time()))
        sub = SubState(state, expires=remaining)
        await self._notifier._send_notify(self, sub, body, content_type)

    async def terminate(self, reason: str = "noresource") -> None:
        if not self.terminated:
            self.terminated = True
            self._wakeup.set()
            await self._notifier._send_notify(self, SubState("terminated", reason), b"", None)

    async def wait_terminated(self) -> None:
        await self._done.wait()

    async def _watch_expiry(self, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        try:
            while not self.terminated:
                self._wakeup = trio.Event()
                with trio.move_on_at(self.expires_at):
                    await self._wakeup.wait()
                if not self.terminated and trio.current_time() >= self.expires_at:
                    await self.terminate("timeout")
        finally:
            self._done.set()


@final
class Notifier:
    """The notifier side for one event package (``event``), supervised in ``nursery``."""

    def __init__(
        self,
        stack: Stack,
        nursery: trio.Nursery,
        event: str,
        *,
        contact: str,
        failover: FailoverClient | None = None,
        max_expires: int = 3600,
        rng: random.Random | None = None,
    ) -> None:
        self.stack = stack
        self.event = event
        self.contact = contact
        self.max_expires = max_expires
        self._nursery = nursery
        self._failover = failover if failover is not None else FailoverClient(stack)
        self._rng = rng if rng is not None else random.SystemRandom()
        self.subscriptions: dict[Any, ServerSubscription] = {}

    async def accept(
        self,
        incoming: IncomingRequest,
        *,
        status: int = 200,
        state: str = "active",
        body: bytes = b"",
        content_type: str | None = None,
    ) -> ServerSubscription:
        """Accept a new SUBSCRIBE (200/202 with Expires) and send the first NOTIFY."""
        response, granted = answer_subscribe(
            incoming.request,
            to_tag=incoming.to_tag,
            contact=self.contact,
            max_expires=self.max_expires,
            status=status,
        )
        await incoming.respond(response)
        dialog = Dialog.from_uas(incoming.request, response, rng=self._rng)
        sub = ServerSubscription(self, dialog, trio.current_time() + granted)
        self.subscriptions[dialog.id] = sub
        await self._nursery.start(sub._watch_expiry)
        await sub.notify(body, content_type, state)
        return sub

    async def handle(self, incoming: IncomingRequest) -> bool:
        """Answer an in-dialog SUBSCRIBE (refresh, or ``Expires: 0``) of ours (True)."""
        request = incoming.request
        if request.method != "SUBSCRIBE" or request.to.tag is None:
            return False
        for sub in self.subscriptions.values():
            did = sub.dialog.id
            if (did.call_id, did.local_tag, did.remote_tag) == (
                request.call_id,
                request.to.tag,
                request.from_.tag,
            ):
                break
        else:
            return False
        rejection = sub.dialog.receive_request(request)
        if rejection is not None or sub.terminated:
            await incoming.respond(rejection or incoming.make_response(481))
            return True
        response, granted = answer_subscribe(
            request,
            to_tag=sub.dialog.id.local_tag,
            contact=self.contact,
            max_expires=self.max_expires,
        )
        await incoming.respond(response)
        sub.expires_at = trio.current_time() + granted
        sub._wakeup.set()
        if granted == 0:
            await sub.terminate("timeout")
        else:
            await sub.notify()
        return True

    async def _send_notify(
        self, sub: ServerSubscription, state: SubState, body: bytes, content_type: str | None
    ) -> None:
        notify = build_notify(
            sub.dialog,
            via=PLACEHOLDER_VIA,
            event=self.event,
            state=state,
            body=body,
            content_type=content_type,
        )
        hop = next_hop(sub.dialog)
        destination: Destination = hop if isinstance(hop, SipUri) else str(hop)
        response, _t, failure = await send_once(
            self._failover, notify, destination, RequestKind.OTHER
        )
        if response is None or response.status_code >= 300:
            logger.info("NOTIFY failed (%s): ending the subscription", failure or response)
            sub.terminated = True
            sub._wakeup.set()
        if state.value == "terminated":
            self.subscriptions.pop(sub.dialog.id, None)
