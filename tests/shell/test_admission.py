"""Admission control (issue #10): per-source request rates and overload get a stateless 503 with
Retry-After, a source that ignores it is dropped before parsing, and service recovers when the
load ends. Virtual time on the in-memory network; raw datagrams play the peers."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.testing

from trio_sip import Limits
from trio_sip.proto.message import Response
from trio_sip.proto.parse import parse_message
from trio_sip.stack import IncomingRequest, Stack, open_stack
from trio_sip.testing import FakeNetwork
from trio_sip.transports.base import DatagramSocket
from trio_sip.ua import open_user_agent

SERVER = "10.0.0.2"
FLOOD, OTHER = "10.0.0.66", "10.0.0.7"


def raw(
    n: int,
    method: str = "OPTIONS",
    *,
    source: str = FLOOD,
    to_tag: str | None = None,
    call_id: str | None = None,
    cseq_method: str | None = None,
    branch: str | None = None,
) -> bytes:
    """A request datagram from ``source``:5070 (branch and Call-ID from ``n``)."""
    to = f"<sip:bob@{SERVER}>" + (f";tag={to_tag}" if to_tag else "")
    body = b""
    lines = [
        f"{method} sip:bob@{SERVER} SIP/2.0",
        f"Via: SIP/2.0/UDP {source}:5070;branch={branch or f'z9hG4bK-{n}'};rport",
        "Max-Forwards: 70",
        f"From: <sip:a@{source}>;tag=f{n}",
        f"To: {to}",
        f"Call-ID: {call_id or f'c{n}'}",
        f"CSeq: 1 {cseq_method or method}",
        f"Contact: <sip:a@{source}:5070>",
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Peer:
    """A raw UDP socket at ``host``:5070 that keeps every response it gets."""

    def __init__(self, sock: DatagramSocket) -> None:
        self.sock = sock
        self.responses: list[Response] = []

    async def send(self, *datagrams: bytes) -> None:
        for data in datagrams:
            await self.sock.sendto(data, (SERVER, 5060))

    async def collect(self, seconds: float = 1.0) -> list[Response]:
        """The responses arriving within ``seconds`` (virtual)."""
        with trio.move_on_after(seconds):
            while True:
                data, _ = await self.sock.recvfrom()
                message = parse_message(data)
                assert isinstance(message, Response)
                self.responses.append(message)
        return self.responses

    def statuses(self) -> list[int]:
        return [r.status_code for r in self.responses]


@asynccontextmanager
async def served(
    net: FakeNetwork, limits: Limits, handler: Any = None, **kwargs: Any
) -> AsyncIterator[Stack]:
    async def ok(incoming: IncomingRequest) -> None:
        await incoming.respond(200)

    async with open_stack(
        [("UDP", SERVER, 5060), ("TCP", SERVER, 5060)],
        backend=net.backend(SERVER),
        handler=handler or ok,
        limits=limits,
        rng=random.Random(3),
        **kwargs,
    ) as stack:
        yield stack


async def peer(net: FakeNetwork, host: str) -> Peer:
    return Peer(await net.backend(host).open_udp(host, 5070))


async def test_source_over_its_rate_gets_503_with_retry_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    limits = Limits(request_rate=10.0, request_burst=5, retry_after=7)
    async with served(net, limits) as stack:
        flood, other = await peer(net, FLOOD), await peer(net, OTHER)
        await flood.send(*(raw(n) for n in range(8)))
        await flood.collect()
        assert sorted(flood.statuses()) == [200] * 5 + [503] * 3
        refused = [r for r in flood.responses if r.status_code == 503]
        assert all(r.headers.get("Retry-After") == "7" for r in refused)
        assert all(r.to.tag for r in refused)  # §8.2.6.2: a To tag, like any final answer
        # No transaction was made for the refused ones (the 5 answered linger, Timer J).
        assert stack.statistics().server_transactions == 5
        assert stack.admission.counters["rate"] == 3
        # Retransmissions of admitted requests are no new requests: absorbed, not counted.
        await flood.send(*(raw(n) for n in range(5)))
        await flood.collect()
        assert flood.statuses().count(200) == 10 and stack.admission.counters["rate"] == 3
        # Other sources are not affected.
        await other.send(raw(100, source=OTHER))
        assert (await other.collect())[0].status_code == 200
        # The source was told to retry after 7 s: it is held that long (3 s have passed)...
        await trio.sleep(2.5)
        flood.responses.clear()
        await flood.send(raw(200))
        await flood.collect(0.1)
        assert flood.statuses() == [503]
        # ... and each request meanwhile starts the hold again; a quiet source is served
        # (its bucket full again half a second later at 10/s).
        await trio.sleep(7.5)
        flood.responses.clear()
        await flood.send(*(raw(n) for n in range(300, 305)))
        await flood.collect()
        assert flood.statuses() == [200] * 5


async def test_ack_and_cancel_of_a_live_transaction_are_never_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    ringing: list[IncomingRequest] = []

    async def ring(incoming: IncomingRequest) -> None:
        if incoming.method == "INVITE":
            ringing.append(incoming)
            await incoming.respond(180)
            await incoming.wait_cancelled()
        else:
            await incoming.respond(200)

    limits = Limits(request_rate=1.0, request_burst=1)
    async with served(net, limits, ring) as stack:
        flood = await peer(net, FLOOD)
        await flood.send(raw(1, "INVITE"))
        await flood.collect(0.1)
        assert flood.statuses() == [180]  # (100 Trying is not sent before 200 ms)
        # The bucket is empty now; the CANCEL of that INVITE still gets its 200 and the 487.
        await flood.send(raw(1, "CANCEL", branch="z9hG4bK-1"))
        await flood.collect(0.4)  # (before Timer G resends the 487)
        assert sorted(flood.statuses()) == [180, 200, 487]
        # The ACK for the 487 matches the transaction (Timer G stops resending the 487), and
        # an ACK for a 2xx goes to the TU: neither is counted nor answered.
        await flood.send(raw(1, "ACK", branch="z9hG4bK-1"), raw(9, "ACK", to_tag="t"))
        before = len(flood.responses)
        await flood.collect(5.0)
        assert len(flood.responses) == before and stack.admission.counters["rate"] == 0


async def test_a_source_that_ignores_retry_after_is_dropped_before_parsing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    limits = Limits(request_rate=10.0, request_burst=5)
    async with served(net, limits) as stack:
        flood, other = await peer(net, FLOOD), await peer(net, OTHER)
        await flood.send(*(raw(n) for n in range(1000)))
        await flood.collect()
        # 5 served, 5 answered 503 (its 503 budget), then silence: no amplification.
        assert sorted(flood.statuses()) == [200] * 5 + [503] * 5
        assert stack.admission.counters["answered"] == 5
        dropped = stack.transport_layer.counters["datagrams_dropped"]
        assert dropped >= 980  # never parsed
        await other.send(raw(1, source=OTHER))
        assert (await other.collect())[0].status_code == 200
        # A sustained flood is held as long as it goes on: nothing served, at most the 503
        # budget (10/s) answered; served again ``retry_after`` (5 s) after it stops.
        flood.responses.clear()
        for tick in range(50):  # 100 requests/s for 5 s
            await flood.send(*(raw(10_000 + 10 * tick + n) for n in range(10)))
            await trio.sleep(0.1)
        await flood.collect()
        assert flood.statuses().count(200) == 0 and flood.statuses().count(503) <= 55
        await trio.sleep(4.0)  # the flood stopped 5 s ago
        flood.responses.clear()
        await flood.send(raw(20_000))
        assert (await flood.collect())[0].status_code == 200


async def test_a_held_source_cannot_open_connections_either(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    limits = Limits(request_rate=10.0, request_burst=5)
    async with served(net, limits) as stack:
        flood = await peer(net, FLOOD)
        await flood.send(*(raw(n) for n in range(100)))  # over its rate and its 503 budget
        await flood.collect(0.05)
        layer = stack.transport_layer
        stream = await net.backend(FLOOD).connect_tcp(SERVER, 5060)
        with trio.fail_after(1):
            assert await stream.receive_some(100) == b""  # closed at once, nothing read
        assert layer.counters["connections_refused"] == 1 and layer._gate.open == 0
        # Others still connect; and so does the source once its hold is over.
        other = await net.backend(OTHER).connect_tcp(SERVER, 5060)
        await trio.sleep(6.0)
        again = await net.backend(FLOOD).connect_tcp(SERVER, 5060)
        await again.send_all(raw(500).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
        with trio.fail_after(1):
            assert (await again.receive_some(65536)).startswith(b"SIP/2.0 200")
        assert layer._gate.open == 2
        await other.aclose()
        await again.aclose()


async def test_overloaded_application_queue_gets_503_and_recovers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    release = trio.Event()

    async def slow(incoming: IncomingRequest) -> None:
        await release.wait()
        await incoming.respond(200)

    limits = Limits(max_queued_requests=3, request_rate=None)
    async with served(net, limits, slow) as stack:
        flood = await peer(net, FLOOD)
        await flood.send(*(raw(n) for n in range(5)))
        await flood.collect(0.1)
        assert flood.statuses() == [503, 503]  # 3 wait for the application
        assert flood.responses[0].headers.get("Retry-After") == "5"
        assert stack.statistics().handlers == 3
        # A request inside a dialog (To tag) is still taken under overload: it ends calls.
        await flood.send(raw(10, "BYE", to_tag="x"))
        await trio.sleep(0.1)
        assert stack.statistics().handlers == 4
        release.set()
        await flood.collect(0.5)
        assert sorted(flood.statuses()) == [200] * 4 + [503] * 2
        flood.responses.clear()
        await flood.send(raw(20))  # the load is gone: served again
        assert (await flood.collect())[0].status_code == 200
        assert stack.admission.counters["queue"] == 2


async def test_under_soft_overload_heavy_sources_are_refused_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    release = trio.Event()

    async def slow_invites(incoming: IncomingRequest) -> None:
        if incoming.method == "INVITE":
            await release.wait()
        await incoming.respond(200)

    limits = Limits(max_queued_requests=10, request_rate=1.0, request_burst=40)
    async with served(net, limits, slow_invites) as stack:
        flood, light = await peer(net, FLOOD), await peer(net, OTHER)
        # 25 quick requests: the flood has used over half its burst, it is "heavy".
        for group in range(5):
            await flood.send(*(raw(5 * group + n) for n in range(5)))
            await flood.collect(0.01)
        assert flood.statuses() == [200] * 25
        flood.responses.clear()
        # Its INVITEs wait for the application: from half the backlog bound (5) on, refused.
        await flood.send(*(raw(100 + n, "INVITE") for n in range(8)))
        await flood.collect(0.1)
        assert flood.statuses() == [503] * 3 and stack.statistics().handlers == 5
        # A light source still gets in, up to the full bound (10).
        await light.send(*(raw(200 + n, "INVITE", source=OTHER) for n in range(6)))
        await light.collect(0.1)
        assert light.statuses() == [503] and stack.statistics().handlers == 10
        assert stack.admission.counters["queue"] == 4
        release.set()
        await light.collect(0.5)
        assert light.statuses().count(200) == 5


async def test_full_transaction_table_gets_503_until_transactions_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    limits = Limits(max_transactions=4, request_rate=None)
    async with served(net, limits) as stack:
        flood = await peer(net, FLOOD)
        await flood.send(*(raw(n) for n in range(6)))
        await flood.collect()
        assert sorted(flood.statuses()) == [200] * 4 + [503] * 2
        assert stack.admission.counters["transactions"] == 2
        # The answered ones linger for Timer J (64*T1 = 32 s over UDP), then free their place.
        await trio.sleep(32)
        flood.responses.clear()
        await flood.send(raw(10))
        assert (await flood.collect())[0].status_code == 200


async def test_event_loop_lag_sheds_new_requests_then_recovers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    limits = Limits(max_loop_lag=0.5, request_rate=None)
    async with served(net, limits) as stack:
        flood = await peer(net, FLOOD)
        await flood.send(raw(1))
        await flood.collect(0.15)  # with traffic, the lag monitor wakes every 0.1 s
        autojump_clock.jump(1.0)  # as if the loop were blocked for a second
        await flood.send(raw(2), raw(3, "BYE", to_tag="x"))
        await flood.collect(0.05)
        assert flood.statuses() == [200, 503, 200]  # the in-dialog BYE is still taken
        assert stack.admission.counters["lag"] == 1
        await trio.sleep(0.3)  # the next measurements find the loop on time again
        await flood.send(raw(4))
        await flood.collect(0.5)
        assert flood.statuses()[-1] == 200 and stack.admission.lag < 0.5


async def test_user_agent_over_max_dialogs_answers_503(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    limits = Limits(max_dialogs=2, request_rate=None)
    async with (
        open_user_agent(
            [("UDP", SERVER, 5060)], aor=f"sip:bob@{SERVER}", backend=net.backend(SERVER),
            limits=limits, rng=random.Random(1),
        ) as bob,
        trio.open_nursery() as nursery,
    ):  # fmt: skip

        async def answer_all() -> None:
            async for incoming in bob.incoming_calls():
                await incoming.accept()

        nursery.start_soon(answer_all)
        flood = await peer(net, FLOOD)
        for n in range(3):
            await flood.send(raw(n, "INVITE"))
            await flood.collect(0.1)
        finals = [s for s in flood.statuses() if s >= 200]
        assert finals == [200, 200, 503] and len(bob.calls) == 2
        # An OPTIONS is no dialog: still answered.
        await flood.send(raw(5))
        await flood.collect(0.1)
        assert flood.statuses()[-1] == 200
        assert bob.stack.admission.counters["dialogs"] == 1
        nursery.cancel_scope.cancel()
