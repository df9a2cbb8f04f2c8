"""A small, bounded flood on real loopback sockets (issue #10; the heavy one is in
tests/attack, ``nox -s attack``): one second of INVITEs at full speed from a second process
while a legitimate caller places calls. The flood gets its burst and is then held (503, then
dropped unread); the caller's calls all complete; the server answers at once afterwards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trio

from trio_sip import Limits
from trio_sip.ua import IncomingCall, open_user_agent

REPO = Path(__file__).resolve().parent.parent.parent
SERVER, FLOODER, CALLER = "127.0.0.1", "127.0.0.2", "127.0.0.3"


async def test_one_second_flood_leaves_legitimate_calls_alone() -> None:
    limits = Limits()  # the defaults: 50 new requests/s per source, burst 100
    answered: dict[str, int] = {}
    with trio.fail_after(60):
        async with (
            open_user_agent([("UDP", SERVER, 0)], aor=f"sip:bob@{SERVER}") as bob,
            open_user_agent([("UDP", CALLER, 0)], aor=f"sip:alice@{CALLER}") as alice,
            trio.open_nursery() as nursery,
        ):
            port = bob.stack.listening[0][1][1]

            async def answer(incoming: IncomingCall) -> None:
                call = await incoming.accept()
                host = incoming.request.vias[0].host
                answered[host] = answered.get(host, 0) + 1
                await call.wait_ended()

            async def answer_all() -> None:
                async for incoming in bob.incoming_calls():
                    nursery.start_soon(answer, incoming)

            nursery.start_soon(answer_all)
            flooder = await trio.lowlevel.open_process(
                [sys.executable, str(REPO / "tests/attack/flooder.py"), SERVER, str(port),
                 FLOODER, "1.0"],
                stdout=subprocess.PIPE,
            )  # fmt: skip
            completed = 0
            try:
                for _ in range(5):  # during the flood, then after it
                    async with alice.call(f"sip:bob@{SERVER}:{port}"):
                        completed += 1
            finally:
                with trio.move_on_after(10):
                    await flooder.wait()
                if flooder.returncode is None:
                    flooder.kill()
            assert flooder.stdout is not None
            sent = int((await flooder.stdout.receive_some()).split()[1])
            # A new request after the flood is answered at once.
            with trio.fail_after(5):
                async with alice.call(f"sip:bob@{SERVER}:{port}"):
                    completed += 1
            nursery.cancel_scope.cancel()
    assert completed == 6 and answered[CALLER] == 6
    admission = bob.stack.admission.counters
    dropped = bob.stack.transport_layer.counters["datagrams_dropped"]
    print(
        f"\nflood: {sent:,} INVITEs sent; {answered.get(FLOODER, 0)} answered as calls, "
        f"{admission['answered']} answered 503, {dropped:,} dropped unparsed; "
        f"{completed} legitimate calls completed"
    )
    assert admission["rate"] >= 1
    # Its burst and what its rate refilled while the burst was handled; nothing afterwards.
    assert limits.request_rate is not None
    assert answered.get(FLOODER, 0) <= limits.request_burst + 4 * limits.request_rate
