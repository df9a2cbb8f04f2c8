"""Seed 002's retry paths on real sockets: two Kamailio sites, one of them blackholed.

Seed 002 (SIP Endpoint SDK, "SIP Proxy Support"): "The SIP Endpoint SDK always retries INVITE
once, regardless of the number of proxies configured"; "Initial INVITE to be retried once to a
different SIP proxy (and reported as failed in case of a double failure)"; "Mid-call INVITE for
Hold and Retrieve operations to be retried once, transparent to application code"; "Retrying a
200 OK response to an initial INVITE (answering the call) and call-terminating BYE and CANCEL
requests ... work only when the sip_transaction_timeout parameter is set to a value lower than
32000 milliseconds ... These requests are retried continuously for 32 seconds total (cycling
through the list of configured proxies), after which the call is abandoned."

Kamailio A (127.0.0.71) and B (127.0.0.72) listen on the same port and know each other's
address as their own (``alias``: a cluster sharing an identity, as the seed's proxy clusters
do), so B forwards a 200 whose top Via is A's and pops a Route naming A. A "dies" by an
nftables black hole (tests/interop/faults.py). What went on the wire is read from a packet
capture on ``lo`` (tests/interop/capture.py). sip_transaction_timeout is 2000 ms; time bounds
are generous (ordering and presence; the exact figures are the virtual-time tests').
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from trio_sip.config import ConnectionConfig, EndpointConfig
from trio_sip.endpoint import open_endpoint
from trio_sip.proto.auth import CredentialStore
from trio_sip.proto.message import Request, Response
from trio_sip.proto.target import Target
from trio_sip.proto.timers import TimerConfig
from trio_sip.ua import (
    Answered,
    Call,
    CallFailed,
    CallState,
    EndReason,
    Failover,
    UserAgent,
    open_user_agent,
)

from .capture import Capture, capture_udp
from .faults import Blackhole, blackhole
from .kamailio import Kamailio, running_kamailio
from .peers import assert_loopback, free_port
from .sipp import ALL_CALLS_OK, SippRun, run_sipp, sipp_argv, write_scenario

pytestmark = pytest.mark.interop

A, B = assert_loopback("127.0.0.71"), assert_loopback("127.0.0.72")
ALICE, BOB, SIPP = (assert_loopback(f"127.0.0.{i}") for i in (73, 74, 75))
USERS = {"alice": "wonderland", "bob": "builder"}
TIMEOUT_MS = 2000
SWITCH = TIMEOUT_MS / 1000


def common_port() -> int:
    """A port free for UDP and TCP on both site addresses."""
    for _ in range(50):
        port = free_port(A)
        with contextlib.suppress(OSError):
            for host in (B,):
                free_port_check(host, port)
            return port
    raise RuntimeError("no common free port on 127.0.0.71 and 127.0.0.72")


def free_port_check(host: str, port: int) -> None:
    import socket

    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind((host, port))


@contextlib.contextmanager
def two_sites(tmp_path: Path) -> Iterator[tuple[Kamailio, Kamailio]]:
    port = common_port()
    with (
        running_kamailio(tmp_path / "a", USERS, host=A, port=port, aliases=[(B, port)]) as kam_a,
        running_kamailio(tmp_path / "b", USERS, host=B, port=port, aliases=[(A, port)]) as kam_b,
    ):
        yield kam_a, kam_b


@contextlib.contextmanager
def scene(tmp_path: Path, *hosts: str) -> Iterator[tuple[Kamailio, Kamailio, Blackhole, Capture]]:
    """Both sites, an (empty) black hole and a capture of ``hosts``' datagrams."""
    with two_sites(tmp_path) as (kam_a, kam_b), blackhole() as hole, capture_udp(*hosts) as cap:
        yield kam_a, kam_b, hole, cap


def uri(kamailio: Kamailio) -> str:
    return f"sip:{kamailio.host}:{kamailio.port}"


@asynccontextmanager
async def agent(
    host: str, user: str, sites: tuple[Kamailio, ...], *, register: bool = True, **options: object
) -> AsyncIterator[UserAgent]:
    """Our agent at ``host`` with ``sip_transaction_timeout`` = 2000 and the sites as its
    configured proxies, registered (digest) at each site when ``register``."""
    options.setdefault("timer_config", TimerConfig(sip_transaction_timeout=TIMEOUT_MS))
    async with open_user_agent(
        [("UDP", host, 0)],
        aor=f"sip:{user}@example.com",
        credentials=CredentialStore(default=(user, USERS[user])),
        proxies=[uri(site) for site in sites],
        rng=random.Random(),
        **options,  # type: ignore[arg-type]
    ) as ua:
        if register:
            with trio.fail_after(10):
                for site in sites:
                    # No refresh during a test: a REGISTER timing out at a dead site would
                    # blacklist it, and the next request would start elsewhere (seed 002).
                    reg = await ua.register(Target("UDP", *site.address), expires=600)
                    await reg.wait_registered()
        yield ua


async def ring_then_lose(ua: UserAgent, hole: Blackhole, site: Kamailio, calls: list[Call]) -> None:
    """Answer the next call: ring (the 180 gets through), then ``site`` dies, then 200."""
    async for incoming in ua.incoming_calls():
        await incoming.ring()
        await trio.sleep(0.1)
        hole.drop("UDP", *site.address)
        calls.append(await incoming.accept())
        return


async def seen(capture: Capture, *, src: str, dst: str, what: str | int, limit: float) -> float:
    """Wait (polling every 20 ms, at most ``limit`` s) until the capture holds ``what`` (a
    method or a status) from ``src`` to ``dst``; return its capture time."""
    with trio.fail_after(limit):
        while True:
            for datagram, message in capture.sip(src=src, dst=dst):
                if _is(message, what):
                    return datagram.time
            await trio.sleep(0.02)


def times(capture: Capture, *, src: str, dst: str, what: str | int) -> list[float]:
    return [d.time for d, m in capture.sip(src=src, dst=dst) if _is(m, what)]


def _is(message: Request | Response, what: str | int) -> bool:
    if isinstance(message, Response):
        return message.status_code == what
    return message.method == what


# -- sipp as the caller: it sends everything to one address; ``setdest`` moves it to B ---------

_INVITE = """  <send retrans="500">
    <![CDATA[
      INVITE sip:bob@example.com SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@example.com>;tag=[pid]SIPpTag00[call_number]
      To: <sip:bob@example.com>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
"""

_ANSWER_BYE = """  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Content-Length: 0
    ]]>
  </send>
"""

#: The 200 comes through B (A is dead): sipp ACKs through B (the cluster), then takes our BYE.
CALLER_ACKS_THROUGH_B = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller through a two-site cluster">
{_INVITE}  <nop><action><setdest host="B_HOST" port="B_PORT" protocol="udp"/></action></nop>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@example.com>;tag=[pid]SIPpTag00[call_number]
      To: <sip:bob@example.com>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      [routes]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
{_ANSWER_BYE}</scenario>
"""

#: sipp never ACKs: it takes the 200 (and ignores its retransmissions) and leaves.
CALLER_NEVER_ACKS = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller that never ACKs">
{_INVITE}  <pause milliseconds="3000"/>
</scenario>
"""


def sipp_caller(tmp_path: Path, xml: str, site_a: Kamailio, site_b: Kamailio, limit: int
                ) -> list[str]:  # fmt: skip
    xml = xml.replace("B_HOST", site_b.host).replace("B_PORT", str(site_b.port))
    scenario = write_scenario(tmp_path, "caller", xml)
    return sipp_argv(
        scenario=scenario, local=(SIPP, free_port(SIPP)), remote=site_a.address, timeout=limit
    )


async def test_200_goes_to_the_other_site_and_the_ack_comes_back(tmp_path: Path) -> None:
    with scene(tmp_path, BOB, SIPP) as (site_a, site_b, hole, capture):
        async with agent(BOB, "bob", (site_a, site_b)) as bob, trio.open_nursery() as nursery:
            calls: list[Call] = []
            nursery.start_soon(ring_then_lose, bob, hole, site_a, calls)
            runs: list[SippRun] = []

            async def caller() -> None:
                argv = sipp_caller(tmp_path, CALLER_ACKS_THROUGH_B, site_a, site_b, 30)
                runs.append(await run_sipp(argv, tmp_path / "sipp"))

            nursery.start_soon(caller)
            first = await seen(capture, src=BOB, dst=A, what=200, limit=15)
            to_b = await seen(capture, src=BOB, dst=B, what=200, limit=15)
            await seen(capture, src=B, dst=SIPP, what=200, limit=5)  # B forwarded it
            acked = await seen(capture, src=B, dst=BOB, what="ACK", limit=10)
            (call,) = calls
            await trio.sleep(1)
            assert call.state is CallState.ANSWERED  # confirmed: no BYE for a lost ACK
            hangup = trio.current_time()
            with trio.fail_after(15):
                await call.hangup()  # our BYE: A (dead), then B
            took = trio.current_time() - hangup
            with trio.fail_after(30):
                while not runs:
                    await trio.sleep(0.05)
        assert runs[0].returncode == ALL_CALLS_OK, runs[0].describe()
    # The 200 stayed on the arrival path (A) for sip_transaction_timeout, then moved to B.
    assert SWITCH - 0.1 <= to_b - first <= SWITCH + 1.5
    assert all(t < to_b for t in times(capture, src=BOB, dst=A, what=200))
    (_, ok), *_ = [(d, m) for d, m in capture.sip(src=BOB, dst=B) if _is(m, 200)]
    assert ok.vias[0].host == A  # the same 200: A's Via on top
    late = [t for t in times(capture, src=BOB, what=200, dst=B) if t > acked + 0.2]
    assert late == []  # the ACK ended the retransmissions
    # The BYE cycled: A first (blackholed), B after the timeout; answered through B.
    byes_a, byes_b = (times(capture, src=BOB, dst=h, what="BYE") for h in (A, B))
    assert byes_a and byes_b and byes_a[0] < byes_b[0]
    assert SWITCH - 0.1 <= byes_b[0] - byes_a[0] <= SWITCH + 1.5
    assert SWITCH - 0.1 <= took < SWITCH + 3
    assert call.end_reason is not None and call.end_reason.reason is EndReason.LOCAL_HANGUP
    response = call.end_reason.response
    assert response is not None and response.status_code == 200


async def test_200_cycles_for_32_s_then_the_call_is_abandoned(tmp_path: Path) -> None:
    with scene(tmp_path, BOB, SIPP) as (site_a, site_b, hole, capture):
        async with agent(BOB, "bob", (site_a, site_b)) as bob, trio.open_nursery() as nursery:
            calls: list[Call] = []
            nursery.start_soon(ring_then_lose, bob, hole, site_a, calls)
            runs: list[SippRun] = []

            async def caller() -> None:
                argv = sipp_caller(tmp_path, CALLER_NEVER_ACKS, site_a, site_b, 30)
                runs.append(await run_sipp(argv, tmp_path / "sipp"))

            nursery.start_soon(caller)
            with trio.fail_after(50):
                while not calls:
                    await trio.sleep(0.05)
                ended = await calls[0].wait_ended()
                while not runs:
                    await trio.sleep(0.05)
    assert runs[0].returncode == ALL_CALLS_OK, runs[0].describe()
    # Abandoned without a BYE: the caller never answered us over UDP (docs/security.md).
    assert ended.reason is EndReason.NO_ACK
    assert ended.detail == (
        "no ACK within 32 s (the 2xx cycled through 2 destinations)"
        " (no BYE: the peer never answered)"
    )
    oks = sorted(
        (d.time, d.dst[0]) for d, m in capture.sip(src=BOB) if _is(m, 200) and d.dst[0] in (A, B)
    )
    start = oks[0][0]
    # A, B, A, B ... moving every 2 s (15 moves in 32 s), then nothing.
    moves = [t - start for (t, h), (_, prev) in zip(oks[1:], oks, strict=False) if h != prev]
    assert len(moves) == 15, [(round(t - start, 2), h) for t, h in oks]
    assert all(abs(m - round(m / SWITCH) * SWITCH) < 0.5 for m in moves)
    assert 30 <= oks[-1][0] - start < 33
    assert [m for _, m in capture.sip(src=BOB) if _is(m, "BYE")] == []


async def test_our_caller_moves_its_ack_to_the_other_site(tmp_path: Path) -> None:
    # Both ends ours, both with the sites as configured proxies. A dies after the 180: Bob's
    # 200 reaches Alice through B (2 s later), her ACK to A (the route set) is lost; when the
    # 200 keeps coming 2 s after her first ACK, the ACK moves to B, which hands it to Bob.
    with scene(tmp_path, ALICE, BOB) as (site_a, site_b, hole, capture):
        async with (
            agent(BOB, "bob", (site_a, site_b)) as bob,
            agent(ALICE, "alice", (site_a, site_b), register=False) as alice,
            trio.open_nursery() as nursery,
        ):
            calls: list[Call] = []
            nursery.start_soon(ring_then_lose, bob, hole, site_a, calls)
            async with alice.call("sip:bob@example.com", outbound_proxy=uri(site_a)) as call:
                with trio.fail_after(15):
                    await call.wait_answered()
                first_ack = await seen(capture, src=ALICE, dst=A, what="ACK", limit=5)
                moved_ack = await seen(capture, src=ALICE, dst=B, what="ACK", limit=15)
                await seen(capture, src=B, dst=BOB, what="ACK", limit=5)
                await trio.sleep(1)
                (bob_call,) = calls
                assert bob_call.state is CallState.ANSWERED and call.state is CallState.ANSWERED
                with trio.fail_after(15):
                    await call.hangup()  # Alice's BYE: A (dead), then B
            with trio.fail_after(5):
                ended = await bob_call.wait_ended()
    assert SWITCH - 0.1 <= moved_ack - first_ack <= 2 * SWITCH + 1.5
    first_200 = times(capture, src=BOB, dst=A, what=200)[0]
    to_b = times(capture, src=BOB, dst=B, what=200)[0]
    assert SWITCH - 0.1 <= to_b - first_200 <= SWITCH + 1.5
    assert ended.reason is EndReason.REMOTE_HANGUP  # the BYE came through B
    assert (
        times(capture, src=ALICE, dst=A, what="BYE")[0]
        < times(capture, src=ALICE, dst=B, what="BYE")[0]
    )


async def test_cancel_goes_to_the_other_site(tmp_path: Path) -> None:
    # RFC 3261 §9.1 sends a CANCEL where its INVITE went; seed 002 cycles it through the
    # cluster under a short timeout (a documented deviation). A Kamailio that has no
    # transaction for it drops it: B is seen receiving it, with the INVITE's branch.
    with scene(tmp_path, ALICE, BOB) as (site_a, site_b, hole, capture):
        async with (
            agent(BOB, "bob", (site_a,)) as bob,
            agent(ALICE, "alice", (site_a, site_b), register=False) as alice,
            trio.open_nursery() as nursery,
        ):

            async def ring() -> None:
                async for incoming in bob.incoming_calls():
                    await incoming.ring()
                    await incoming.wait_cancelled()

            nursery.start_soon(ring)
            async with alice.call("sip:bob@example.com", outbound_proxy=uri(site_a)) as call:
                await seen(capture, src=A, dst=ALICE, what=180, limit=10)
                hole.drop("UDP", *site_a.address)
            # Leaving the block waited cleanup_timeout (4 s) for the CANCEL's answer; the
            # CANCEL goes on cycling in the agent's nursery.
            assert call.end_reason is not None
            assert call.end_reason.reason is EndReason.CANCELLED
            at_b = await seen(capture, src=ALICE, dst=B, what="CANCEL", limit=10)
            nursery.cancel_scope.cancel()
    at_a = times(capture, src=ALICE, dst=A, what="CANCEL")
    assert at_a and at_a[0] < at_b
    assert SWITCH - 0.1 <= at_b - at_a[0] <= SWITCH + 1.5
    invite = next(m for _, m in capture.sip(src=ALICE, dst=A) if _is(m, "INVITE"))
    cancel = next(m for _, m in capture.sip(src=ALICE, dst=B) if _is(m, "CANCEL"))
    assert cancel.vias[0].branch == invite.vias[0].branch and cancel.call_id == invite.call_id


async def test_invite_is_retried_once_to_the_only_proxy(tmp_path: Path) -> None:
    with (
        two_sites(tmp_path) as (site_a, _site_b),
        blackhole(("UDP", *site_a.address)),
        capture_udp(ALICE) as capture,
    ):
        async with agent(ALICE, "alice", (site_a,), register=False) as alice:
            start = trio.current_time()
            async with alice.call("sip:bob@example.com", outbound_proxy=uri(site_a)) as call:
                with pytest.raises(CallFailed) as failed, trio.fail_after(15):
                    await call.wait_answered()
            took = trio.current_time() - start
            events = [event async for event in call.events]
    invites = [(d.time, m) for d, m in capture.sip(src=ALICE, dst=A) if _is(m, "INVITE")]
    call_ids = list(dict.fromkeys(m.call_id for _, m in invites))
    assert len(call_ids) == 2  # the INVITE and its one retry, to the same (only) proxy
    first = min(t for t, m in invites if m.call_id == call_ids[0])
    retry = min(t for t, m in invites if m.call_id == call_ids[1])
    assert SWITCH - 0.1 <= retry - first <= SWITCH + 1.5
    assert 2 * SWITCH - 0.1 <= took < 2 * SWITCH + 3
    assert [type(e).__name__ for e in events] == ["Failover", "Ended"]
    assert isinstance(events[0], Failover) and events[0].new_call_id == call_ids[1]
    assert "2 attempts" in failed.value.reason and "timeout" in failed.value.reason


async def test_endpoint_retries_once_then_takes_the_other_site(tmp_path: Path) -> None:
    with two_sites(tmp_path) as (site_a, site_b), blackhole() as hole:
        config = EndpointConfig(
            sip_transaction_timeout=TIMEOUT_MS,
            connections=[
                ConnectionConfig(
                    id=name, user="alice@example.com", server=f"{site.host}:{site.port}",
                    password=USERS["alice"], reg_interval=30, expires=60,
                )
                for name, site in (("a", site_a), ("b", site_b))
            ],
        )  # fmt: skip
        with capture_udp(ALICE) as capture:
            async with (
                agent(BOB, "bob", (site_b,)) as bob,
                open_endpoint(config, listen=[("UDP", ALICE, 0)], rng=random.Random()) as alice,
                trio.open_nursery() as nursery,
            ):

                async def answer() -> None:
                    async for incoming in bob.incoming_calls():
                        await incoming.accept()

                nursery.start_soon(answer)
                with trio.fail_after(10):
                    await alice.wait_registered()
                hole.drop("UDP", *site_a.address)
                async with alice.dial("a", "bob") as call:
                    with trio.fail_after(20):
                        await call.wait_answered()
                    assert call.connections_tried == ["a", "b"]
                events = [record.event async for record in call.events]
                nursery.cancel_scope.cancel()
    kinds = [type(e).__name__ for e in events]
    assert kinds[:3] == ["Failover", "Failover", "Answered"]
    retry, move, answered = events[:3]
    assert isinstance(retry, Failover) and retry.reason.startswith("timeout; trying")
    assert isinstance(move, Failover) and move.reason.startswith("connection a: 408")
    assert isinstance(answered, Answered)
    invites = [(d.time, m.call_id) for d, m in capture.sip(src=ALICE, dst=A) if _is(m, "INVITE")]
    assert len(dict.fromkeys(c for _, c in invites)) == 2  # once, then once more: A is dead
    assert any(_is(m, "INVITE") for _, m in capture.sip(src=ALICE, dst=B))


async def test_reinvite_is_retried_once_transparently(tmp_path: Path) -> None:
    # T1 = 2 s for Alice: the first re-INVITE is sent at 0 and 2 s and times out at 4 s; A
    # is back at 3 s, so the retry at 4 s (a new transaction) gets through.
    slow = TimerConfig(t1=2.0, t2=4.0, sip_transaction_timeout=4000)
    with scene(tmp_path, ALICE) as (site_a, _site_b, hole, capture):
        async with (
            agent(BOB, "bob", (site_a,)) as bob,
            agent(ALICE, "alice", (site_a,), register=False, timer_config=slow) as alice,
            trio.open_nursery() as nursery,
        ):

            async def answer() -> None:
                async for incoming in bob.incoming_calls():
                    await incoming.accept()

            nursery.start_soon(answer)
            async with alice.call("sip:bob@example.com", outbound_proxy=uri(site_a)) as call:
                with trio.fail_after(10):
                    await call.wait_answered()
                hole.drop("UDP", *site_a.address)
                start = trio.current_time()

                async def heal() -> None:
                    await trio.sleep(3.0)
                    hole.heal()

                nursery.start_soon(heal)
                with trio.fail_after(15):
                    response = await call.hold()
                took = trio.current_time() - start
                assert response.status_code == 200 and call.held
                assert call.state is CallState.ANSWERED
            events = [event async for event in call.events]
            nursery.cancel_scope.cancel()
    reinvites = [
        (d.time, m) for d, m in capture.sip(src=ALICE, dst=A) if _is(m, "INVITE") and m.to.tag
    ]
    branches = list(dict.fromkeys(m.vias[0].branch for _, m in reinvites))
    assert len(branches) == 2  # the re-INVITE and its one retry (same CSeq, new branch)
    assert len({m.cseq.seq for _, m in reinvites}) == 1
    first = min(t for t, m in reinvites if m.vias[0].branch == branches[0])
    retry = min(t for t, m in reinvites if m.vias[0].branch == branches[1])
    assert 3.9 <= retry - first <= 5.5
    assert 3.9 <= took < 8
    assert "Failover" not in [type(e).__name__ for e in events]  # transparent
