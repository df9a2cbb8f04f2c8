"""Transaction torture: 10,000 concurrent transactions through 20% loss, in virtual time.

Every client transaction must either get its final response or time out, and at exactly the
instants RFC 3261 §17.1 allows: the request goes out on the Timer A/E schedule up to the
answer (0, 0.5, 1.5, 3.5, ... s; Timer E capped at T2 = 4 s), the answer is the first final
response that got through, and an unanswered one fails at 32 s (Timer B/F). Afterwards the
stacks hold no task, transaction or flow.
"""

from __future__ import annotations

import re
from collections import defaultdict

import pytest
import trio
import trio.testing

from trio_sip import Limits
from trio_sip.proto.errors import TransactionTimeoutError
from trio_sip.stack import IncomingRequest
from trio_sip.testing import FakeNetwork

from .stack_support import CLIENT, SERVER, make_request, stack_pair

pytestmark = pytest.mark.slow

COUNT = 10_000
DELAY = 0.01
BRANCH = re.compile(rb"branch=(z9hG4bK\w+)")


def schedule(method: str, until: float) -> list[float]:
    """When the client sends its request (UDP, default timers), up to ``until``."""
    times, t, interval = [], 0.0, 0.5
    while t <= until + 1e-9:
        times.append(t)
        t += interval
        interval = interval * 2 if method == "INVITE" else min(interval * 2, 4.0)
    return times


async def test_ten_thousand_transactions_with_loss(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork(seed=20)
    net.set_link(CLIENT, SERVER, loss=0.2, delay=DELAY)

    async def handler(incoming: IncomingRequest) -> None:
        # Non-2xx for INVITE: its reliability is the transaction layer's (RFC 6026).
        await incoming.respond(486 if incoming.method == "INVITE" else 200)

    outcomes: dict[str, tuple[str, float]] = {}
    # 10,000 requests at once from one address: far over the default per-source rate and
    # application backlog (admission control would answer 503: not what is tested here).
    unlimited = {"limits": Limits(request_rate=None, max_queued_requests=COUNT)}
    async with stack_pair(net, handler, server_kw=unlimited) as (client, server, target):

        async def one(n: int) -> None:
            method = "INVITE" if n % 2 else "OPTIONS"
            async with client.send_request(make_request(method, call_id=f"t{n}"), target) as tx:
                branch = tx.key.branch
                try:
                    response = await tx.wait_final()
                except TransactionTimeoutError:
                    outcomes[branch] = ("timeout", trio.current_time())
                else:
                    outcomes[branch] = (str(response.status_code), trio.current_time())

        async with trio.open_nursery() as nursery:
            for n in range(COUNT):
                nursery.start_soon(one, n)
            await trio.testing.wait_all_tasks_blocked()
            live = client.statistics().client_transactions
            assert live == COUNT, live  # all of them at once

        assert len(outcomes) == COUNT
        requests: dict[str, list[float]] = defaultdict(list)
        finals: dict[str, float] = {}
        methods: dict[str, str] = {}
        for packet in net.captured:
            match = BRANCH.search(packet.data)
            assert match is not None
            branch = match.group(1).decode()
            head = packet.data[:8]
            if head.startswith((b"INVITE", b"OPTIONS")):
                requests[branch].append(packet.time)
                methods[branch] = head.split(b" ")[0].decode()
            elif head.startswith(b"SIP/2.0") and packet.fate == "delivered":
                finals.setdefault(branch, packet.time + DELAY)
        kinds: dict[str, int] = defaultdict(int)
        for branch, (outcome, when) in outcomes.items():
            method = methods[branch]
            kinds[outcome] += 1
            if outcome == "timeout":
                assert when == 32.0 and branch not in finals
                assert requests[branch] == pytest.approx(schedule(method, 32.0))
            else:
                assert outcome == ("486" if method == "INVITE" else "200")
                assert when == pytest.approx(finals[branch])
                assert requests[branch] == pytest.approx(schedule(method, when - 2 * DELAY))
        assert kinds["200"] + kinds["486"] + kinds["timeout"] == COUNT
        assert kinds["200"] > 0.99 * COUNT / 2 and kinds["486"] > 0.99 * COUNT / 2
        assert len(net.packets(fate="lost")) > 0.15 * len(net.captured)

        # Timers D/K/H/I (<= 32 s) and the idle timeout of the UDP flow (120 s) run out.
        await trio.sleep(200)
        for stack in (client, server):
            stats = stack.statistics()
            assert (stats.client_transactions, stats.server_transactions) == (0, 0)
            assert (stats.tasks, stats.handlers, stats.flows) == (0, 0, 0)
