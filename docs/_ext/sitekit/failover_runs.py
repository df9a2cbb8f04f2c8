"""Failover timelines recorded from real runs, for the pictures in failover.md.

Each scenario runs the production code (:class:`trio_sip.failover.FailoverClient` over real
:func:`trio_sip.open_stack` stacks) on :class:`trio_sip.testing.FakeNetwork` in virtual time
(trio's ``MockClock``), with ``sip_transaction_timeout=4000`` and a 10 ms one-way delay, and
records every datagram the network carried: when, from where, to where, what, and its fate
(delivered, blackholed, refused). Nothing is drawn by hand: the picture is the capture.

``python docs/_ext/sitekit/failover_runs.py OUT.json`` writes the runs as JSON.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import trio
import trio.testing

from trio_sip.failover import FailoverClient
from trio_sip.proto.errors import SipError
from trio_sip.proto.message import Request
from trio_sip.proto.retry import RequestKind
from trio_sip.proto.timers import TimerConfig
from trio_sip.stack import IncomingRequest, open_stack
from trio_sip.testing import FakeNetwork
from trio_sip.testing.dns import FakeResolver

UA = "10.0.0.1"
PROXIES = ["10.0.1.1", "10.0.1.2", "10.0.1.3"]
NAMES = {UA: "UA", PROXIES[0]: "P1", PROXIES[1]: "P2", PROXIES[2]: "P3"}
DELAY = 0.010
TIMEOUT_MS = 4000


def _request(method: str) -> Request:
    return Request(
        method,
        "sip:bob@proxy.example.test",
        [
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@example.test>;tag=a1"),
            (
                "To",
                "<sip:bob@example.test>;tag=b1" if method == "BYE" else "<sip:bob@example.test>",
            ),
            ("Call-ID", f"timeline-{method}"),
            ("CSeq", f"1 {method}"),
            ("Contact", f"<sip:alice@{UA}>"),
        ],
    )


def _label(data: bytes) -> str:
    line = data.split(b"\r\n", 1)[0].decode("ascii", "replace")
    if line.startswith("SIP/2.0 "):
        return line[8:11]  # the status code
    return line.split(" ", 1)[0] or "CRLF"


Scenario = Callable[[FakeNetwork, FailoverClient], Awaitable[str]]


async def _refused(net: FakeNetwork, client: FailoverClient) -> str:
    net.refuse(PROXIES[0], 5060)
    async with client.invite(_request("INVITE"), "sip:proxy.example.test") as attempts:
        async for response in attempts:
            if response.status_code >= 200:
                return f"{response.status_code} from {NAMES[attempts.target.host]}"
    return "no final response"


async def _blackholed(net: FakeNetwork, client: FailoverClient) -> str:
    net.partition(UA, PROXIES[0])
    async with client.invite(_request("INVITE"), "sip:proxy.example.test") as attempts:
        async for response in attempts:
            if response.status_code >= 200:
                return f"{response.status_code} from {NAMES[attempts.target.host]}"
    return "no final response"


async def _unavailable(net: FakeNetwork, client: FailoverClient) -> str:
    result = await client.request(_request("OPTIONS"), "sip:proxy.example.test")
    return f"{result.response.status_code} from {NAMES[result.target.host]}"


async def _bye_cycling(net: FakeNetwork, client: FailoverClient) -> str:
    for proxy in PROXIES:
        net.partition(UA, proxy)
    try:
        await client.request(_request("BYE"), "sip:proxy.example.test", kind=RequestKind.BYE)
    except SipError as exc:
        return f"gave up at {trio.current_time():.1f} s: {type(exc).__name__}"
    return "answered"


#: name: (title, what the run shows, scenario)
SCENARIOS: dict[str, tuple[str, str, Scenario]] = {
    "refused": (
        "Refused: P1's port is closed",
        "INVITE to P1 is refused (ICMP port unreachable, one round trip); P2 answers at once.",
        _refused,
    ),
    "blackholed": (
        "Blackholed: P1 is silent",
        "INVITE to P1 is retransmitted (Timer A) until sip_transaction_timeout (4 s); then P2.",
        _blackholed,
    ),
    "503": (
        "503 Service Unavailable from P1",
        "P1 answers 503 with Retry-After: the request goes to P2 at once; P1 is held.",
        _unavailable,
    ),
    "bye-cycling": (
        "BYE cycling: every proxy silent",
        "A BYE cycles through P1, P2, P3 every 4 s until 32 s after its first attempt.",
        _bye_cycling,
    ),
}


async def _answer(incoming: IncomingRequest) -> None:
    if incoming.method == "INVITE":
        await incoming.respond(180)
    await incoming.respond(200)


async def _answer_503(incoming: IncomingRequest) -> None:
    await incoming.respond(503, headers=[("Retry-After", "120")])


async def _run(name: str) -> dict[str, Any]:
    title, caption, scenario = SCENARIOS[name]
    net = FakeNetwork(seed=1)
    for proxy in PROXIES:
        net.set_link(UA, proxy, delay=DELAY)
    resolver = FakeResolver({"proxy.example.test": PROXIES})
    timers = TimerConfig(sip_transaction_timeout=TIMEOUT_MS)
    first_handler = _answer_503 if name == "503" else _answer
    async with (
        open_stack(
            [("UDP", PROXIES[0], 5060)], backend=net.backend(PROXIES[0]), handler=first_handler
        ),
        open_stack([("UDP", PROXIES[1], 5060)], backend=net.backend(PROXIES[1]), handler=_answer),
        open_stack([("UDP", PROXIES[2], 5060)], backend=net.backend(PROXIES[2]), handler=_answer),
        open_stack([("UDP", UA, 5060)], backend=net.backend(UA), timer_config=timers) as ua,
    ):
        client = FailoverClient(ua, resolver=resolver, rng=random.Random(1))
        start = trio.current_time()
        outcome = await scenario(net, client)
        end = trio.current_time() - start
    events = [
        {
            "time": round(p.time - start, 6),
            "arrival": round(p.time - start + (DELAY if p.fate == "delivered" else 0.0), 6),
            "src": NAMES.get(p.src[0], p.src[0]),
            "dst": NAMES.get(p.dst[0], p.dst[0]),
            "what": _label(p.data),
            "fate": p.fate,
        }
        for p in net.packets()
        if p.time - start <= end + 1e-9
    ]
    return {
        "name": name,
        "title": title,
        "caption": caption,
        "outcome": outcome,
        "duration": round(end, 6),
        "sip_transaction_timeout": TIMEOUT_MS,
        "one_way_delay": DELAY,
        "events": events,
    }


def record(name: str) -> dict[str, Any]:
    """One scenario's run, in virtual time (instant in wall-clock time)."""
    result: dict[str, Any] = trio.run(
        _run, name, clock=trio.testing.MockClock(autojump_threshold=0)
    )
    return result


def record_all() -> list[dict[str, Any]]:
    return [record(name) for name in SCENARIOS]


if __name__ == "__main__":
    runs = record_all()
    text = json.dumps(runs, indent=1)
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as out:
            out.write(text + "\n")
    else:
        print(text)
