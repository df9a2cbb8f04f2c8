"""FlowPool decisions (pure: flows and ``now`` in, flows to close and a deadline out)."""

from __future__ import annotations

import trio
import trio.testing

from trio_sip.proto.errors import TransportError
from trio_sip.testing import FakeNetwork
from trio_sip.transports import Flow, FlowPool
from trio_sip.transports.udp import UdpClientFlow


async def make_flow(net: FakeNetwork, port: int) -> Flow:
    sock = await net.backend("10.0.0.1").open_udp("0.0.0.0", 0, ("10.0.0.2", port))
    return UdpClientFlow(sock, ("10.0.0.2", port))


async def test_decide_closes_idle_and_failed_flows_and_reports_next_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    pool = FlowPool()
    old = await make_flow(net, 1)
    await trio.sleep(10)
    young, watched, failed = [await make_flow(net, p) for p in (2, 3, 4)]
    for flow in (old, young, watched, failed):
        pool.add(flow)
    watched.subscribe(lambda event: None)
    failed._fail(TransportError("reset"))
    now = trio.current_time()
    assert repr(pool) == "<FlowPool flows: 4 (FAILED 1, OPEN 3)>"

    close, deadline = pool.decide(now, idle_timeout=15)
    assert close == [failed] and deadline == old.last_activity + 15

    close, deadline = pool.decide(now + 5, idle_timeout=15)
    assert close == [old, failed] and deadline == young.last_activity + 15

    close, deadline = pool.decide(now + 100, idle_timeout=None)
    assert close == [failed] and deadline is None


async def test_reuse_lookup_ignores_unusable_flows(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    pool = FlowPool()
    flow = await make_flow(net, 5060)
    pool.add(flow)
    assert pool.get(("UDP", "10.0.0.2", 5060)) is flow
    await flow.aclose()
    assert pool.get(("UDP", "10.0.0.2", 5060)) is None
    pool.remove(flow)
    assert len(pool) == 0 and repr(pool) == "<FlowPool flows: 0>"
