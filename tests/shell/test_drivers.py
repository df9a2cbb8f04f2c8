"""The task-free driving of transactions: drivers.TimerQueue, dropped views, the sync UDP path."""

from __future__ import annotations

import socket

import trio
import trio.testing

from trio_sip.drivers import TimerQueue
from trio_sip.proto.message import Request, make_response
from trio_sip.proto.parse import parse_message
from trio_sip.stack import IncomingRequest, open_stack
from trio_sip.stack._core import _BufferedSystemRandom
from trio_sip.testing import FakeNetwork

from .stack_support import CLIENT, make_request, stack_pair


async def test_timer_queue_fires_live_entries_at_their_deadlines(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fired: list[tuple[str, float, float]] = []
    dead = {"b"}

    def fire(item: str, deadline: float, now: float) -> None:
        fired.append((item, deadline, now))

    queue: TimerQueue[str] = TimerQueue(fire, lambda item, deadline: item not in dead)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue.serve)
        await trio.testing.wait_all_tasks_blocked()
        queue.push(2.0, "a")
        queue.push(1.0, "b")  # dead: never fired
        queue.push(0.5, "c")
        queue.push(2.0, "d")  # same deadline as "a": after it
        await trio.sleep(3)
        assert fired == [("c", 0.5, 0.5), ("a", 2.0, 2.0), ("d", 2.0, 2.0)]
        nursery.cancel_scope.cancel()


async def test_timer_queue_prune_drops_dead_tops_without_waking(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wakes = 0

    def fire(item: str, deadline: float, now: float) -> None:
        nonlocal wakes
        wakes += 1

    dead: set[str] = set()
    queue: TimerQueue[str] = TimerQueue(fire, lambda item, deadline: item not in dead)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue.serve)
        await trio.testing.wait_all_tasks_blocked()
        for n in range(10):
            queue.push(0.2 + n / 100, f"trying{n}")
        queue.push(32.0, "linger")
        dead.update(f"trying{n}" for n in range(10))
        queue.prune()
        assert len(queue) == 1  # only the live entry is left
        await trio.sleep(1)
        assert wakes == 0
        await trio.sleep(40)
        assert wakes == 1
        nursery.cancel_scope.cancel()


async def test_lingering_transaction_drops_views_that_parse_again_equal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[IncomingRequest] = []

    async def handler(incoming: IncomingRequest) -> None:
        seen.append(incoming)
        await incoming.respond(200)

    net = FakeNetwork()
    async with stack_pair(net, handler) as (client, server, target):
        response = await client.request(make_request("OPTIONS", call_id="views"), target)
        assert response.status_code == 200
        await trio.testing.wait_all_tasks_blocked()
        (incoming,) = seen
        request = incoming.request
        assert request._vias is None and request._from is None  # dropped: Timer J lingers
        assert request.from_.tag == "alice1" and request.call_id == "views"
        assert request.vias[0].host == CLIENT
        assert server.statistics().server_transactions == 1
        assert server.statistics().tasks == 0


def test_make_response_shares_the_request_views_unless_headers_replace_them() -> None:
    raw = (
        b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKabc\r\n"
        b"From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n"
        b"Call-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    request = parse_message(raw)
    assert isinstance(request, Request)
    vias = request.vias
    response = make_response(request, 200, to_tag="t")
    assert response.vias is vias
    assert response.to.tag == "t" and request.to.tag is None
    other = make_response(request, 200, headers=[("Via", "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKx")])
    assert [v.host for v in other.vias] == ["192.0.2.1", "192.0.2.9"]
    again = parse_message(bytes(response))
    assert (again.to.tag, again.vias[0].branch, again.cseq.seq) == ("t", "z9hG4bKabc", 1)


def test_buffered_system_random_bits() -> None:
    rng = _BufferedSystemRandom()
    values = [rng.getrandbits(60) for _ in range(2000)]  # crosses a 4 KB refill
    assert all(0 <= v < 2**60 for v in values)
    assert len(set(values)) == len(values)
    assert max(v.bit_length() for v in values) == 60
    assert {rng.getrandbits(1) for _ in range(64)} == {0, 1}


async def test_udp_responses_leave_synchronously_from_the_listener() -> None:
    async def handler(incoming: IncomingRequest) -> None:
        await incoming.respond(200)

    async with open_stack([("UDP", "127.0.0.1", 0)], handler=handler) as stack:
        (_, (host, port)) = stack.listening[0]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            me = sock.getsockname()
            for n in range(2):
                request = make_request("OPTIONS", call_id=f"sync{n}")
                via = f"SIP/2.0/UDP {me[0]}:{me[1]};branch=z9hG4bKsync{n}"
                request = request.evolve(headers=request.headers.prepend("Via", via))
                sock.sendto(bytes(request), (host, port))
            with trio.fail_after(5):
                got = []
                while len(got) < 2:
                    await trio.lowlevel.wait_readable(sock)
                    got.append(parse_message(sock.recv(65535)))
        assert sorted(m.call_id for m in got) == ["sync0", "sync1"]
        await trio.testing.wait_all_tasks_blocked()
        listener = stack.transport_layer._udp_listeners[0]
        assert listener.flow_for(me) is listener.flow_for(me)  # one flow per peer address
        assert listener.flow_for(me).sync_send
        assert stack.statistics().tasks == 0
