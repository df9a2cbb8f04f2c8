"""Failover across three proxies behind one name, in virtual time (FakeNetwork, FakeResolver).

Every link is 10 ms one way, so a round trip is 20 ms; sip_transaction_timeout is 4000 ms
unless a test says otherwise.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_sip.failover import Attempt
from trio_sip.proto.errors import TransactionTimeoutError
from trio_sip.testing import FakeNetwork

from .failover_support import PROXIES, UA, cluster, make_request

RTT = 0.02


def blackhole_first_refuse_second(net: FakeNetwork) -> None:
    net.partition(UA, PROXIES[0])
    net.refuse(PROXIES[1], 5060)


async def test_blackhole_then_refusal_then_answer(autojump_clock: trio.testing.MockClock) -> None:
    async with cluster(configure=blackhole_first_refuse_second) as c:
        seen: list[Attempt] = []
        async with c.client.invite(
            make_request("INVITE", call_id="ha-1"),
            "sip:bob@proxy.example.test",
            on_attempt=seen.append,
        ) as attempts:
            statuses = [r.status_code async for r in attempts]
        # 4 s of silence from the first, one round trip for the second's ICMP, one round trip
        # to the third for its 180 and 200.
        assert statuses == [180, 200]
        assert trio.current_time() == pytest.approx(4.0 + RTT + RTT)
        assert attempts.target == c.target(2)
        assert [a.target.host for a in attempts.attempts] == list(PROXIES)
        assert [a.started for a in attempts.attempts] == pytest.approx([0.0, 4.0, 4.0 + RTT])
        outcomes = [a.outcome for a in attempts.attempts]
        assert outcomes[0] == "timeout"
        assert outcomes[1] is not None and outcomes[1].startswith("transport error")
        assert outcomes[2] == "200 OK"
        assert [a.target.host for a in seen] == [PROXIES[1], PROXIES[2]]
        # The same Call-ID and CSeq went to every proxy, each time with a new branch.
        sent = [p.message for p in c.net.captured if p.src[0] == UA and b"INVITE sip:" in p.data]
        assert {m.call_id for m in sent} == {"ha-1"}
        branches = {m.vias[0].branch for m in sent}
        assert len(branches) == 3

        # The next INVITE goes straight to the third.
        start = trio.current_time()
        async with c.client.invite(make_request("INVITE"), "sip:bob@proxy.example.test") as att:
            final = [r async for r in att][-1]
        assert final.status_code == 200
        assert [a.target.host for a in att.attempts] == [PROXIES[2]]
        assert trio.current_time() == pytest.approx(start + RTT)

        # Ten minutes after its failure the first is clean again and first in line.
        stats = c.client.blacklist.statistics(trio.current_time())
        assert {e.key[1] for e in stats.entries} == {PROXIES[0], PROXIES[1]}
        await trio.sleep_until(4.0 + 600.0)
        order = await c.client.targets("sip:bob@proxy.example.test")
        assert order[0].host == PROXIES[0]
        c.net.heal(UA, PROXIES[0])
        result = await c.client.request(make_request("OPTIONS"), "sip:bob@proxy.example.test")
        assert result.target.host == PROXIES[0]
        assert result.response.status_code == 200


async def test_initial_invite_double_failure_fails_the_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def two_blackholes(net: FakeNetwork) -> None:
        net.partition(UA, PROXIES[0])
        net.partition(UA, PROXIES[1])

    async with cluster(configure=two_blackholes) as c:
        with pytest.raises(TransactionTimeoutError):
            async with c.client.invite(make_request("INVITE"), "sip:bob@proxy.example.test") as att:
                async for _ in att:
                    pass
        assert trio.current_time() == 8.0
        assert [a.target.host for a in att.attempts] == [PROXIES[0], PROXIES[1]]
        assert c.proxies[2].received == []
