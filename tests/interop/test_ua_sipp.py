"""Our user agent against sipp (loopback only, every run bounded).

sipp's built-in ``uac`` calls our agent (INVITE with SDP, ACK, BYE from sipp), and our agent
calls sipp's built-in ``uas`` (180, 200, our ACK and BYE).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from trio_sip.ua import Call, CallFailed, CallState, EndReason, open_user_agent

from .peers import free_port
from .sipp import ALL_CALLS_OK, SippRun, run_sipp, sipp_argv

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"


async def test_sipp_uac_calls_our_agent(tmp_path: Path) -> None:
    async with open_user_agent([("UDP", HOST, 0)], aor=f"sip:bob@{HOST}") as bob:
        (_, address) = bob.stack.listening[0]
        argv = sipp_argv(
            scenario="uac", local=(HOST, free_port(HOST)), remote=address, calls=3, timeout=30,
            extra=("-r", "5"),
        )  # fmt: skip
        calls: list[Call] = []
        async with trio.open_nursery() as nursery:

            async def answer() -> None:
                async for incoming in bob.incoming_calls():
                    assert incoming.remote_sdp is not None  # sipp offers PCMU
                    await incoming.ring()
                    calls.append(await incoming.accept())

            nursery.start_soon(answer)
            with trio.fail_after(40):
                run = await run_sipp(argv, tmp_path)
            nursery.cancel_scope.cancel()
        assert run.returncode == ALL_CALLS_OK, run.describe()
        assert len(calls) == 3
        for call in calls:
            with trio.fail_after(5):
                ended = await call.wait_ended()
            assert ended.reason is EndReason.REMOTE_HANGUP
            assert call.remote_sdp is not None and call.local_sdp is not None
            assert call.local_sdp.media[0].formats == ("0",)  # answer_for kept PCMU only
        assert bob.calls == []


async def test_our_agent_calls_sipp_uas(tmp_path: Path) -> None:
    sipp_address = (HOST, free_port(HOST))
    argv = sipp_argv(scenario="uas", local=sipp_address, calls=1, timeout=30)
    result: list[SippRun] = []
    async with (
        open_user_agent([("UDP", HOST, 0)], aor=f"sip:alice@{HOST}") as alice,
        trio.open_nursery() as nursery,
    ):

        async def sipp() -> None:
            with trio.fail_after(40):
                result.append(await run_sipp(argv, tmp_path))

        nursery.start_soon(sipp)
        destination = f"sip:service@{HOST}:{sipp_address[1]}"
        with trio.fail_after(20):
            while True:  # until sipp listens (before that: ICMP port unreachable, at once)
                try:
                    async with alice.call(destination) as call:
                        ok = await call.wait_answered()
                        assert ok.status_code == 200
                        assert call.state is CallState.ANSWERED
                        await trio.sleep(0.2)
                    break
                except CallFailed:
                    await trio.sleep(0.2)
            ended = await call.wait_ended()
            assert ended.reason is EndReason.LOCAL_HANGUP
            assert ended.response is not None and ended.response.status_code == 200
        with trio.fail_after(40):
            while not result:
                await trio.sleep(0.1)
    assert result[0].returncode == ALL_CALLS_OK, result[0].describe()
