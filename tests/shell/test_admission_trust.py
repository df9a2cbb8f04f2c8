"""Sources the stack is configured to trust are exempt from the per-source request rate
(issue #10): a proxy's ``trusted`` front, a user agent's configured proxies, an endpoint's server
(its name resolved first) are served above ``request_rate`` while any other source sending the
same is held with 503 + Retry-After. ``request_rate=0`` turns the rate off. Virtual time on the
in-memory network; raw datagrams play the front and the flooder."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from tests.shell.test_admission import SERVER, Peer, peer, raw, served
from trio_sip import Limits
from trio_sip.config import ConnectionConfig, EndpointConfig
from trio_sip.endpoint import open_endpoint
from trio_sip.errors import ConfigError
from trio_sip.proxy import open_proxy
from trio_sip.stack import IncomingRequest, Stack
from trio_sip.testing import FakeNetwork
from trio_sip.testing.dns import FakeResolver
from trio_sip.ua import open_user_agent

FRONT, STRANGER = "10.0.0.30", "10.0.0.66"
#: Three seconds at 100 new requests a second: twice the default rate, three times its burst.
RATE, SECONDS = 100, 3


async def front_and_stranger(net: FakeNetwork, stack: Stack, front: str) -> tuple[Peer, Peer]:
    """The front and a stranger each send RATE requests/s for SECONDS; both collect."""
    ours, theirs = await peer(net, front), await peer(net, STRANGER)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ours.collect, SECONDS + 2.0)
        nursery.start_soon(theirs.collect, SECONDS + 2.0)
        for n in range(RATE * SECONDS):
            await ours.send(raw(n, source=front))
            await theirs.send(raw(n, source=STRANGER))
            await trio.sleep(1 / RATE)
    return ours, theirs


def check(stack: Stack, ours: Peer, theirs: Peer) -> None:
    """Every request of the front answered by the application (a 200, or the proxy's 480 for
    a user with no binding), none refused; the stranger held after its burst."""
    limits = stack.limits
    assert limits.request_rate is not None
    sent = RATE * SECONDS
    assert len(ours.responses) == sent and 503 not in ours.statuses()
    assert stack.admission.counters["trusted_over_rate"] > 0
    # The stranger: its burst and its rate until the bucket is empty, then held (503 +
    # Retry-After, then silence): nothing more is served once it was refused.
    statuses = theirs.statuses()
    assert 503 in statuses and 503 not in statuses[: limits.request_burst]
    first = statuses.index(503)
    assert first <= limits.request_burst + limits.request_rate * SECONDS
    assert set(statuses[first:]) == {503} and len(statuses) <= sent
    assert all(r.headers.get("Retry-After") for r in theirs.responses if r.status_code == 503)


async def test_proxy_trusted_front_above_the_rate_is_served_a_stranger_is_held(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with open_proxy(
        [("UDP", SERVER, 5060)], domain="example.test", backend=net.backend(SERVER),
        rng=random.Random(5), trusted=[f"{FRONT}/31"],
    ) as site:  # fmt: skip
        stack = site.stack
        assert FRONT in stack.admission.trusted and STRANGER not in stack.admission.trusted
        ours, theirs = await front_and_stranger(net, stack, FRONT)
        check(stack, ours, theirs)


async def test_user_agent_configured_proxy_above_the_rate_is_served(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with open_user_agent(
        [("UDP", SERVER, 5060)], aor=f"sip:bob@{SERVER}", backend=net.backend(SERVER),
        rng=random.Random(6), proxies=[f"sip:{FRONT}:5070"],
    ) as ua:  # fmt: skip
        ours, theirs = await front_and_stranger(net, ua.stack, FRONT)
        check(ua.stack, ours, theirs)


async def test_user_agent_trusts_the_outbound_proxy_of_a_call_and_a_registrar(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Only what the application configured is trusted, not where a request goes."""
    net = FakeNetwork()
    async with open_user_agent(
        [("UDP", SERVER, 5060)], aor=f"sip:bob@{SERVER}", backend=net.backend(SERVER),
        rng=random.Random(7),
    ) as ua:  # fmt: skip
        trusted = ua.stack.admission.trusted
        assert not trusted
        await ua.register("10.0.0.40:5060", expires=60)
        with trio.move_on_after(0.5):  # nobody answers: only the configuration matters here
            async with ua.call("sip:carol@10.0.0.50", outbound_proxy="10.0.0.41"):
                pass
        assert "10.0.0.40" in trusted and "10.0.0.41" in trusted
        assert "10.0.0.50" not in trusted  # a Request-URI's host: anyone can make us call it


async def test_endpoint_server_name_resolved_then_served_above_the_rate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    resolver = FakeResolver({"site.example.test": [FRONT]})
    config = EndpointConfig(
        connections=[
            ConnectionConfig(id="a", server="site.example.test:5070", user="bob", expires=0)
        ]
    )
    async with open_endpoint(
        config, backend=net.backend(SERVER), resolver=resolver, rng=random.Random(8),
        listen=[("UDP", SERVER, 5060)],
    ) as endpoint:  # fmt: skip
        stack = endpoint.ua.stack
        await trio.sleep(1.0)  # the name resolved in the background
        assert FRONT in stack.admission.trusted
        ours, theirs = await front_and_stranger(net, stack, FRONT)
        check(stack, ours, theirs)


async def test_overload_still_sheds_a_trusted_source_always_with_a_503(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Trust lifts the rate, not the bounds: a full backlog refuses the front too, and it gets
    a 503 for each request (the 503 budget that silences a stranger does not apply to it).
    The soft bounds (half the backlog, ``max_loop_lag``) refuse heavy sources only; a trusted
    source is never one."""
    net = FakeNetwork()
    release = trio.Event()

    async def slow(incoming: IncomingRequest) -> None:
        await release.wait()
        await incoming.respond(200)

    limits = Limits(max_queued_requests=10, request_rate=10.0, request_burst=5)
    async with served(net, limits, slow) as stack:
        stack.admission.trusted.add([FRONT])
        ours, theirs = await peer(net, FRONT), await peer(net, STRANGER)
        await ours.send(*(raw(n, source=FRONT) for n in range(60)))
        await ours.collect(0.5)
        # Far above the rate, the front is still no "heavy" source (it relays many users):
        # refused at the full backlog, not from half of it.
        assert stack.statistics().handlers == 10
        assert ours.statuses() == [503] * 50  # each refused request answered
        await theirs.send(*(raw(n, source=STRANGER) for n in range(60)))
        await theirs.collect(0.5)
        assert stack.statistics().handlers == 10  # the bound holds
        assert len(theirs.responses) <= 5  # the stranger: its 503 budget, then silence
        release.set()
        await ours.collect(0.5)
        assert ours.statuses().count(200) == 10


async def test_request_rate_zero_turns_the_per_source_rate_off(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with open_user_agent(
        [("UDP", SERVER, 5060)], aor=f"sip:bob@{SERVER}", backend=net.backend(SERVER),
        rng=random.Random(9), limits=Limits(request_rate=0),
    ) as ua:  # fmt: skip
        ours, theirs = await front_and_stranger(net, ua.stack, FRONT)
        sent = RATE * SECONDS
        assert ours.statuses().count(200) == theirs.statuses().count(200) == sent
        assert ua.stack.admission.counters["rate"] == 0


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), "50", True, 1e8])
def test_bad_request_rate_names_the_setting(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        Limits(request_rate=value)  # type: ignore[arg-type]
    assert info.value.setting == "request_rate"
    assert "0 or None: no limit" in str(info.value)
