"""Our user agent against Kamailio (registrar + record-routing proxy) on loopback.

Kamailio is started by the test with its own config (tests/interop/kamailio.py) and stopped
by PID; bindings are checked with ``kamcmd ul.dump``, i.e. from Kamailio's own point of view.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio

from trio_sip.proto.registration import RegistrationState
from trio_sip.proto.target import Target
from trio_sip.stack import open_stack
from trio_sip.ua.registration import RegistrationFailed, Registrations

from .kamailio import Kamailio, running_kamailio

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"
USERS = {"alice": "wonderland", "bob": "builder"}


def alice_bindings(kamailio: Kamailio) -> list[tuple[str, int]]:
    return [(b.address, b.cseq) for b in kamailio.bindings() if b.aor == "alice"]


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_digest_registration_at_kamailio_refreshes_on_time_and_unregisters(
    tmp_path: Path, transport: str
) -> None:
    with running_kamailio(tmp_path, USERS) as kamailio:
        async with (
            open_stack([(transport, HOST, 0)], rng=random.Random()) as stack,
            trio.open_nursery() as nursery,
        ):
            (_, (_, port)) = stack.listening[0]
            suffix = "" if transport == "UDP" else ";transport=tcp"
            contact = f"sip:alice@{HOST}:{port}{suffix}"
            registrations = Registrations(stack, nursery)
            with trio.fail_after(10):
                reg = await registrations.register(
                    "<sip:alice@example.com>",
                    Target(transport, *kamailio.address),
                    contact=f"<{contact}>",
                    expires=10,
                    credentials=("alice", USERS["alice"]),
                )
                await reg.wait_registered()
            registered_at = trio.current_time()
            first = alice_bindings(kamailio)
            assert [address for address, _ in first] == [contact]
            assert reg.statistics().granted == 10
            # Refresh due at max(10 - 32, 10 / 2) = 5 s after each 2xx: watch Kamailio's CSeq.
            refreshes: list[float] = []
            last_cseq = first[0][1]
            with trio.fail_after(15):
                while len(refreshes) < 2:
                    await trio.sleep(0.2)
                    now = alice_bindings(kamailio)
                    assert now, "the binding expired at Kamailio"
                    if now[0][1] != last_cseq:
                        refreshes.append(trio.current_time() - registered_at)
                        last_cseq = now[0][1]
            assert 4.5 <= refreshes[0] <= 6.0, refreshes
            assert 9.5 <= refreshes[1] <= 11.0, refreshes
            assert reg.state is RegistrationState.REGISTERED
            assert reg.statistics().failures == 0
            with trio.fail_after(10):
                await reg.aclose()
            assert alice_bindings(kamailio) == []
            assert reg.statistics().state is RegistrationState.UNREGISTERED
            nursery.cancel_scope.cancel()


async def test_wrong_password_at_kamailio_is_a_failed_registration(tmp_path: Path) -> None:
    with running_kamailio(tmp_path, USERS) as kamailio:
        async with (
            open_stack([("UDP", HOST, 0)]) as stack,
            trio.open_nursery() as nursery,
        ):
            (_, (_, port)) = stack.listening[0]
            registrations = Registrations(stack, nursery)
            reg = await registrations.register(
                "<sip:alice@example.com>",
                Target("UDP", *kamailio.address),
                contact=f"<sip:alice@{HOST}:{port}>",
                credentials=("alice", "not the password"),
                reg_interval=0,
            )
            with trio.fail_after(10), pytest.raises(RegistrationFailed, match="401"):
                await reg.wait_registered()
            assert reg.state is RegistrationState.FAILED
            assert alice_bindings(kamailio) == []
            nursery.cancel_scope.cancel()
