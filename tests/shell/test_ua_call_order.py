"""The stack sends a response the moment it is handed one, so the peer's ACK (or BYE) may be
back before ``respond`` returns: the dialog, the call and the ACK wait must exist by then."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from trio_sip.proto.message import Response
from trio_sip.testing import FakeNetwork
from trio_sip.ua import Call, CallState, UserAgent

from .test_ua_calls import BOB_URI, two_agents


class Watched:
    """Stands in for an IncomingRequest; records what the agent had set up when a response
    was handed over (the moment the stack would send it)."""

    def __init__(self, inner: Any, ua: UserAgent, seen: list[tuple[int, int, int, int]]) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_ua", ua)
        object.__setattr__(self, "_seen", seen)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._inner, name, value)

    async def respond(self, status: int | Response, *args: Any, **kwargs: Any) -> Response:
        code = status.status_code if isinstance(status, Response) else status
        ua = self._ua
        self._seen.append((code, len(ua.drivers), len(ua.dialogs), len(ua.calls)))
        response: Response = await self._inner.respond(status, *args, **kwargs)
        return response


async def test_ack_wait_dialog_and_call_exist_before_the_2xx_is_sent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    seen: list[tuple[int, int, int, int]] = []
    async with two_agents(net) as (alice, bob), trio.open_nursery() as nursery:
        bob_calls: list[Call] = []

        async def answer() -> None:
            async for incoming in bob.incoming_calls():
                incoming._incoming = Watched(incoming._incoming, bob, seen)  # type: ignore[assignment]
                await incoming.ring()
                bob_calls.append(await incoming.accept())
                return

        nursery.start_soon(answer)
        async with alice.call(BOB_URI) as call:
            await call.wait_answered()
            await trio.sleep(1)  # past T1: an unmatched ACK would mean a 2xx retransmission
            assert bob_calls[0].state is CallState.ANSWERED
            assert len(bob.drivers) == 0  # the ACK reached the wait, which ended
        # 180: nothing yet; 200: one ACK wait, one dialog, one call
        assert seen == [(180, 0, 0, 0), (200, 1, 1, 1)]
