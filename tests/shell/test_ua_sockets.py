"""The same call flow over real UDP sockets on loopback: UA to UA."""

from __future__ import annotations

import trio

from trio_sip.ua import Call, CallState, EndReason, open_user_agent

from .test_ua_calls import answer_next


async def test_call_over_real_udp_loopback() -> None:
    with trio.fail_after(10):
        async with (
            open_user_agent([("UDP", "127.0.0.1", 0)], aor="sip:alice@127.0.0.1") as alice,
            open_user_agent([("UDP", "127.0.0.1", 0)], aor="sip:bob@127.0.0.1") as bob,
            trio.open_nursery() as nursery,
        ):
            bob_calls: list[Call] = []

            async def answer() -> None:
                bob_calls.append(await answer_next(bob))

            nursery.start_soon(answer)
            async with alice.call(str(bob.contact.uri)) as call:
                ok = await call.wait_answered()
                assert ok.status_code == 200
                await call.hold()
                assert bob_calls[0].remote_sdp is not None
                assert bob_calls[0].remote_sdp.media_direction(0) == "sendonly"
                await call.retrieve()
                assert bob_calls[0].remote_sdp.media_direction(0) == "sendrecv"
            assert call.state is CallState.ENDED
            assert (await bob_calls[0].wait_ended()).reason is EndReason.REMOTE_HANGUP
            assert (await alice.options(str(bob.contact.uri))).status_code == 200
