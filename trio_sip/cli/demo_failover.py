"""``trio-sip demo --part failover``: proxy failover on loopback, with no external server.

Three embedded proxies share one port on 127.0.0.2, 127.0.0.3 and 127.0.0.4, as the three
addresses of one proxy name would: the first drops every packet (a blackhole, as a dead host
behind a firewall looks), the second has nothing listening (the kernel answers with ICMP port
unreachable) and the third answers. A user agent places a call through them: it waits the
configured ``sip_transaction_timeout`` on the blackhole, leaves the refusing proxy in
milliseconds, and is answered by the third; the next call goes straight to the third, because
both failures are on the blacklist. The timeline is printed as it happens, next to what the
RFC 3261 default timeout (32 s) would have cost.
"""

from __future__ import annotations

import argparse
import random
import socket
from typing import TextIO

import trio

from ..failover import Attempt, FailoverClient
from ..proto.dialog import Dialog
from ..proto.dialog_requests import build_ack, build_bye
from ..proto.ids import new_branch, new_call_id, new_tag
from ..proto.message import Request
from ..proto.sdp import answer_for, audio_offer, parse_sdp
from ..proto.target import Target
from ..proto.timers import TimerConfig
from ..stack import IncomingRequest, Stack, open_stack

PROXIES = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class _Clock:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.zero = trio.current_time()

    def restart(self) -> None:
        self.zero = trio.current_time()

    def say(self, text: str) -> None:
        elapsed = trio.current_time() - self.zero
        print(f"  {elapsed:8.3f} s  {text}", file=self.out, flush=True)


async def _answer(incoming: IncomingRequest) -> None:
    """The live proxy: answers calls itself (180, 200 with an SDP answer), BYE and OPTIONS."""
    request = incoming.request
    if request.method == "INVITE":
        await incoming.respond(180)
        local = audio_offer("127.0.0.4", 40000, session_id=4242)
        body = bytes(answer_for(parse_sdp(request.body), local)) if request.body else b""
        contact = [("Contact", "<sip:proxy@127.0.0.4>"), ("Content-Type", "application/sdp")]
        await incoming.respond(200, headers=contact, body=body)
    else:
        await incoming.respond(200)


def _invite(uri: str, rng: random.Random, sdp: bytes) -> Request:
    return Request(
        "INVITE",
        uri,
        [
            ("Max-Forwards", "70"),
            ("To", f"<{uri}>"),
            ("From", f"<sip:alice@127.0.0.1>;tag={new_tag(rng)}"),
            ("Call-ID", new_call_id(rng, "trio-sip-demo")),
            ("CSeq", "1 INVITE"),
            ("Contact", "<sip:alice@127.0.0.1>"),
            ("Content-Type", "application/sdp"),
        ],
        body=sdp,
    )


async def _call(
    ua: Stack, client: FailoverClient, targets: list[Target], clock: _Clock, rng: random.Random
) -> float:
    """Place one call (INVITE with failover, ACK, BYE); return when it was answered."""
    invite = _invite("sip:bob@demo.example", rng, bytes(audio_offer("127.0.0.1", 30000, rng=rng)))
    clock.say(f"INVITE -> {targets[0]} (the blacklist's first choice)")

    def on_attempt(attempt: Attempt) -> None:
        clock.say(f"failing over: INVITE -> {attempt.target}")

    async with client.invite(invite, targets, on_attempt=on_attempt) as attempts:
        async for response in attempts:
            clock.say(f"<- {response.status_code} {response.reason} from {attempts.target}")
            if response.status_code >= 200:
                final = response
                answered = trio.current_time() - clock.zero
                break
        for attempt in attempts.attempts[:-1]:
            print(f"             ({attempt.target}: {attempt.outcome})", file=clock.out)
        sent = attempts.transaction.request
        flow = attempts.transaction.flow
    dialog = Dialog.from_uac(sent, final, rng=rng)
    via = f"SIP/2.0/UDP {flow.local[0]}:{flow.local[1]};branch={new_branch(rng)};rport"
    await ua.send_stateless(build_ack(dialog, sent, via=via), flow=flow, new_via=False)
    clock.say("ACK ->  (call up)")
    await trio.sleep(0.2)
    bye = build_bye(dialog, via="SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKplaceholder")
    bye = bye.evolve(headers=bye.headers.remove("Via"))
    answer = await ua.request(bye, attempts.target)
    clock.say(f"BYE -> <- {answer.status_code} {answer.reason}  (call over)")
    return answered


async def run(args: argparse.Namespace, out: TextIO) -> int:
    """The proxy-failover timeline (three addresses of one proxy, two broken)."""
    timeout_ms = args.transaction_timeout_ms
    timers = TimerConfig(sip_transaction_timeout=timeout_ms)
    port = _free_port(PROXIES[2])
    blackhole_host, refusing_host, live_host = PROXIES[1], PROXIES[0], PROXIES[2]
    print("trio-sip demo: one proxy name, three addresses, two of them broken\n", file=out)
    print(f"  {blackhole_host}:{port}  drops every packet (blackhole)", file=out)
    print(f"  {refusing_host}:{port}  nothing listening (ICMP port unreachable)", file=out)
    print(f"  {live_host}:{port}  answers", file=out)
    print(f"  sip_transaction_timeout = {timeout_ms} ms\n", file=out, flush=True)
    rng = random.Random()
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as blackhole:
        await blackhole.bind((blackhole_host, port))
        async with (
            open_stack([("UDP", live_host, port)], handler=_answer) as _proxy,
            open_stack(timer_config=timers) as ua,
        ):
            client = FailoverClient(ua, rng=rng)
            targets = [Target("UDP", h, port) for h in (blackhole_host, refusing_host, live_host)]
            clock = _Clock(out)
            print("Call 1:", file=out)
            first = await _call(ua, client, targets, clock, rng)
            print("\nCall 2 (the blacklist remembers both failures):", file=out)
            clock.restart()
            ordered = await client.targets(targets)
            second = await _call(ua, client, ordered, clock, rng)
            now = trio.current_time()
            print("\nBlacklist:", file=out)
            for entry in client.blacklist.statistics(now).entries:
                transport, host, entry_port = entry.key
                print(
                    f"  {transport.lower()}:{host}:{entry_port}  penalty {entry.penalty:.2f}"
                    f" ({entry.reason.value}), fades out in {entry.expires - now:.0f} s",
                    file=out,
                )
    default = TimerConfig().timer_b
    print(
        f"\nCall 1 was answered after {first:.3f} s (the RFC default timeout would have spent"
        f" {default:.0f} s on the blackhole alone); call 2 was answered after"
        f" {second * 1000:.1f} ms.",
        file=out,
    )
    return 0
