"""SUBSCRIBE / NOTIFY between a subscriber task and a notifier, in virtual time."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from trio_sip.proto.message import Request
from trio_sip.proto.subscription import SubscriptionState
from trio_sip.proto.target import Target
from trio_sip.stack import IncomingRequest, open_stack
from trio_sip.testing import FakeNetwork
from trio_sip.ua.subscription import (
    Notifier,
    ServerSubscription,
    SubscriptionError,
    Subscriptions,
    UaSubscription,
)

WATCHER, SERVER = "10.0.0.1", "10.0.0.2"
SS = SubscriptionState
EVENT = "presence"


class Server:
    """A notifier stack: accepts SUBSCRIBEs for ``presence``, logs every request."""

    def __init__(self) -> None:
        self.notifier: Notifier | None = None
        self.log: list[tuple[float, Request]] = []
        self.accepted: list[ServerSubscription] = []
        self.refuse: int | None = None

    async def handler(self, incoming: IncomingRequest) -> None:
        self.log.append((trio.current_time(), incoming.request))
        assert self.notifier is not None
        if await self.notifier.handle(incoming):
            return
        if self.refuse is not None:
            await incoming.respond(self.refuse)
            return
        sub = await self.notifier.accept(
            incoming, body=b"open", content_type="application/pidf+xml"
        )
        self.accepted.append(sub)

    def subscribes(self) -> list[tuple[float, Request]]:
        return [(t, r) for t, r in self.log if r.method == "SUBSCRIBE"]


@asynccontextmanager
async def setup(
    server: Server, net: FakeNetwork | None = None
) -> AsyncIterator[tuple[Subscriptions, FakeNetwork]]:
    net = net or FakeNetwork()
    subscriptions: Subscriptions | None = None

    async def watcher_handler(incoming: IncomingRequest) -> None:
        assert subscriptions is not None
        if not await subscriptions.handle(incoming):
            await incoming.respond(481)

    async with (
        open_stack(
            [("UDP", SERVER, 5060)],
            backend=net.backend(SERVER),
            handler=server.handler,
            rng=random.Random(2),
        ) as notifier_stack,
        open_stack(
            [("UDP", WATCHER, 5060)],
            backend=net.backend(WATCHER),
            handler=watcher_handler,
            rng=random.Random(1),
        ) as watcher_stack,
        trio.open_nursery() as nursery,
    ):
        server.notifier = Notifier(
            notifier_stack,
            nursery,
            EVENT,
            contact=f"<sip:presence@{SERVER}:5060>",
            max_expires=600,
            rng=random.Random(3),
        )
        subscriptions = Subscriptions(watcher_stack, nursery, rng=random.Random(4))
        yield subscriptions, net
        nursery.cancel_scope.cancel()


async def subscribe(subscriptions: Subscriptions, **kw: object) -> UaSubscription:
    return await subscriptions.subscribe(
        "<sip:bob@example.com>",
        EVENT,
        Target("UDP", SERVER, 5060),
        local="<sip:alice@example.com>",
        contact=f"<sip:alice@{WATCHER}:5060>",
        **kw,  # type: ignore[arg-type]
    )


async def test_subscribe_notify_delivery_and_refresh_on_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = Server()
    async with setup(server) as (subscriptions, _net):
        sub = await subscribe(subscriptions, expires=3600)  # the notifier shortens it to 600
        notes = sub.notifications()
        await sub.wait_active()
        first = await notes.__anext__()
        assert (first.state.value, first.body, first.content_type) == (
            "active",
            b"open",
            "application/pidf+xml",
        )
        assert first.state.expires == 600
        await trio.sleep(10)
        (accepted,) = server.accepted
        await accepted.notify(b"busy", "application/pidf+xml")
        assert (await notes.__anext__()).body == b"busy"
        await trio.sleep(600)
        times = [t for t, _ in server.subscribes()]
        assert times == [0.0, 568.0]  # refresh_delay(600) = 600 - 64*T1
        refresh = server.subscribes()[1][1]
        initial = server.subscribes()[0][1]
        assert refresh.to.tag is not None and refresh.call_id == initial.call_id
        assert refresh.headers["Event"] == EVENT and refresh.cseq.seq == initial.cseq.seq + 1
        assert sub.state is SS.ACTIVE
        assert [(e.old, e.new) for e in sub.history] == [
            (SS.IDLE, SS.SUBSCRIBING),
            (SS.SUBSCRIBING, SS.ACTIVE),
        ]


async def test_close_unsubscribes_and_the_notifier_terminates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = Server()
    async with setup(server) as (subscriptions, _net):
        sub = await subscribe(subscriptions, expires=600)
        await sub.wait_active()
        await trio.sleep(1)
        await sub.aclose()
        await trio.sleep(1)
        last = server.subscribes()[-1][1]
        assert last.headers["Expires"] == "0" and last.to.tag is not None
        assert sub.state is SS.TERMINATED
        (accepted,) = server.accepted
        assert accepted.terminated and server.notifier is not None
        assert server.notifier.subscriptions == {}


async def test_failure_retries_at_the_reg_interval_tick_and_zero_never(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = Server()
    server.refuse = 403
    async with setup(server) as (subscriptions, _net):
        sub = await subscribe(subscriptions, reg_interval=120)
        never = await subscribe(subscriptions, reg_interval=0)
        with pytest.raises(SubscriptionError, match="403 Forbidden"):
            await sub.wait_active()
        server.refuse = None
        await trio.sleep(121)
        assert sub.state is SS.ACTIVE
        assert never.state is SS.FAILED
        # The retry is a new subscription (new Call-ID); reg_interval=0 never sends again.
        assert sorted(t for t, _ in server.subscribes()) == [0.0, 0.0, 120.0]
        assert len({r.call_id for _, r in server.subscribes()}) == 3
        assert never.statistics()["requests"] == 1 and sub.statistics()["requests"] == 2


async def test_notifier_ends_an_unrefreshed_subscription_with_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = Server()
    net = FakeNetwork()
    async with setup(server, net) as (subscriptions, _net):
        sub = await subscribe(subscriptions, expires=600)
        await sub.wait_active()
        await trio.sleep(1)
        (accepted,) = server.accepted
        net.partition(WATCHER, SERVER)  # refreshes are lost from now on
        with trio.fail_after(700):
            await accepted.wait_terminated()
        assert accepted.terminated
        ends = [p.time for p in net.packets() if b"terminated;reason=timeout" in p.data]
        assert ends[0] == 600.0  # the granted 600 s, unrefreshed (the refresh at 568 was lost)
        assert trio.current_time() == 632.0  # that NOTIFY's own Timer F: nobody answers


async def test_terminated_by_the_notifier_ends_the_task_and_a_late_notify_gets_481(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = Server()
    net = FakeNetwork()
    async with setup(server, net) as (subscriptions, _net):
        sub = await subscribe(subscriptions, expires=600)
        events = sub.events()
        await sub.wait_active()
        await trio.sleep(1)
        (accepted,) = server.accepted
        await accepted.terminate("noresource")
        with trio.fail_after(5):
            seen = [event async for event in events]  # the stream ends with the task
        assert [(e.old, e.new, e.time) for e in seen] == [
            (SS.IDLE, SS.SUBSCRIBING, 0.0),  # the current state when the stream was made
            (SS.SUBSCRIBING, SS.ACTIVE, 0.0),
            (SS.ACTIVE, SS.TERMINATED, 1.0),
        ]
        assert seen[-1].reason == "NOTIFY terminated;reason=noresource"
        assert list(subscriptions) == []  # no task left behind
        # RFC 6665 §4.1.3: a NOTIFY in the ended subscription's dialog gets 481.
        await accepted.notify(b"late", "application/pidf+xml")
        answers = [
            p.data.split(b"\r\n", 1)[0]
            for p in net.packets()
            if p.src[0] == WATCHER and b"CSeq: " in p.data and b" NOTIFY\r\n" in p.data
        ]
        assert answers == [
            b"SIP/2.0 200 OK",
            b"SIP/2.0 200 OK",
            b"SIP/2.0 481 Call/Transaction Does Not Exist",
        ]
        assert sub.last_notification is not None and sub.last_notification.body == b""
        assert sub.state is SS.TERMINATED and await trio.sleep(700) is None
        assert [t for t, _ in server.subscribes()] == [0.0]  # never refreshed or resubscribed


async def test_history_keeps_the_last_100_state_changes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = Server()
    async with setup(server) as (subscriptions, _net):
        sub = await subscribe(subscriptions, expires=600)
        await sub.wait_active()
        await trio.sleep(1)
        (accepted,) = server.accepted
        for _ in range(60):  # bounded: 120 more state changes
            await accepted.notify(state="pending")
            await accepted.notify(state="active")
        assert sub.state is SS.ACTIVE
        assert len(sub.history) == 100
        assert (sub.history[-1].old, sub.history[-1].new) == (SS.PENDING, SS.ACTIVE)
        assert sub.history[0].old is SS.ACTIVE  # the oldest ones (IDLE -> ...) are gone
