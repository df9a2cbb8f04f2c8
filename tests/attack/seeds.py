"""Seed messages for the wire fuzzer: the conformance corpus, and a real exchange captured.

* :func:`corpus_seeds`: every message of the RFC 4475 / RFC 5118 / basic corpus
  (``$TRIO_SIP_CORPUS`` or ``../shared/corpus``; read in place, never copied into the repo).
* :func:`captured_seeds`: what trio-sip itself sends in a registration and calls, captured in
  process: a proxy/registrar (``open_proxy`` with credentials) and two user agents on the
  in-memory network (trio_sip.testing.FakeNetwork: the production transport layer over fake
  sockets), in virtual time. Alice registers (401, REGISTER with Authorization, 200); Bob
  calls her through the proxy (407, INVITE with Proxy-Authorization, 100, 180, 200, ACK),
  puts her on hold (re-INVITE), sends INFO and hangs up (BYE); a second call is cancelled
  (CANCEL, 487, ACK); an OPTIONS and a MESSAGE; then a direct call without the proxy. Every
  datagram, request and response, is a seed. The hosts are ``CAPTURE_HOSTS``: the fuzzer
  replaces them with the target's and its own addresses.
"""

from __future__ import annotations

import functools
import random

import trio
import trio.testing

from tests.conftest import corpus_root, load_manifest
from trio_sip.proto.auth import CredentialStore
from trio_sip.proto.location import LocationService
from trio_sip.proxy import open_proxy
from trio_sip.testing import FakeNetwork
from trio_sip.ua import IncomingCall, UserAgent, open_user_agent

__all__ = ["CAPTURE_HOSTS", "DOMAIN", "captured_seeds", "corpus_seeds"]

DOMAIN = "fuzz.test"
#: role -> the address it had in the capture (proxy, the callee, the caller).
CAPTURE_HOSTS = {"proxy": "10.9.0.1", "alice": "10.9.0.2", "bob": "10.9.0.3"}
PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret"}


def corpus_seeds() -> list[bytes]:
    """The corpus messages, in manifest order."""
    manifest = load_manifest()
    return [
        (corpus_root() / case["file"]).read_bytes()
        for group in ("rfc4475", "rfc5118", "basic")
        for case in manifest[group].values()
    ]


async def _answer(ua: UserAgent) -> None:
    """Alice: the first call is answered, the second only rings (Bob cancels it)."""
    number = 0
    async for incoming in ua.incoming_calls():
        number += 1
        await incoming.ring()
        if number == 2:
            await incoming.wait_cancelled()
            continue
        await _accept(incoming)


async def _accept(incoming: IncomingCall) -> None:
    await incoming.accept()


async def _exchange(net: FakeNetwork) -> None:
    proxy_host, alice_host, bob_host = (CAPTURE_HOSTS[k] for k in ("proxy", "alice", "bob"))
    rng = random.Random(2024)
    location = LocationService()
    async with (
        open_proxy(
            [("UDP", proxy_host, 5060)],
            domain=DOMAIN,
            location_service=location,
            backend=net.backend(proxy_host),
            credentials=PASSWORDS,
            rng=random.Random(1),
        ) as site,
        open_user_agent(
            [("UDP", alice_host, 5060)],
            aor=f"sip:alice@{DOMAIN}",
            backend=net.backend(alice_host),
            credentials=CredentialStore(default=("alice", PASSWORDS["alice"])),
            rng=rng,
        ) as alice,
        open_user_agent(
            [("UDP", bob_host, 5060)],
            aor=f"sip:bob@{DOMAIN}",
            backend=net.backend(bob_host),
            credentials=CredentialStore(default=("bob", PASSWORDS["bob"])),
            rng=rng,
        ) as bob,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(_answer, alice)
        proxy = f"sip:{proxy_host}:{site.address[1]}"
        await alice.register(proxy, expires=600)
        async with bob.call(f"sip:alice@{DOMAIN}", outbound_proxy=proxy) as call:
            await call.wait_answered()
            await call.hold()
            await call.send_info(b"Signal=5\r\nDuration=160\r\n", "application/dtmf-relay")
            await call.hangup()
        async with bob.call(f"sip:alice@{DOMAIN}", outbound_proxy=proxy) as call:
            await trio.sleep(0.5)  # ringing; leaving the block cancels
        await bob.options(f"sip:alice@{proxy_host}:{site.address[1]}")
        await bob.send_message(f"sip:{alice_host}:5060", "hello")
        nursery.cancel_scope.cancel()


@functools.cache
def captured_seeds() -> tuple[bytes, ...]:
    """Every datagram of the exchange above (see the module docstring), deduplicated, in
    order."""
    net = FakeNetwork(seed=3)
    trio.run(_exchange, net, clock=trio.testing.MockClock(autojump_threshold=0))
    seen: dict[bytes, None] = {}
    for packet in net.packets(transport="UDP"):
        if packet.data.strip():
            seen.setdefault(packet.data, None)
    return tuple(seen)
