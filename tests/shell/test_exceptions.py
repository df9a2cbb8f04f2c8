"""What leaves the public ``open_*`` context managers (docs/errors.md): the block's exception
as itself, one internal failure as itself, ``KeyboardInterrupt`` and ``Cancelled`` untouched,
and a group of several real failures as a group."""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import trio
import trio.testing

from trio_sip import (
    EndpointConfig,
    open_endpoint,
    open_proxy,
    open_stack,
    open_transport_layer,
    open_user_agent,
)
from trio_sip._groups import collapse
from trio_sip.testing import FakeNetwork

HOST = "10.0.0.1"


class Boom(Exception):
    pass


class Internal(Exception):
    pass


def _managers() -> dict[str, Callable[[FakeNetwork], AbstractAsyncContextManager[Any]]]:
    listen = [("UDP", HOST, 5060)]
    return {
        "open_stack": lambda net: open_stack(listen, backend=net.backend(HOST)),
        "open_transport_layer": lambda net: open_transport_layer(backend=net.backend(HOST)),
        "FakeNetwork.open_layer": lambda net: net.open_layer(HOST),
        "open_user_agent": lambda net: open_user_agent(
            listen, aor=f"sip:alice@{HOST}", backend=net.backend(HOST)
        ),
        "open_endpoint": lambda net: open_endpoint(
            EndpointConfig(), listen=listen, backend=net.backend(HOST), rng=random.Random(1)
        ),
        "open_proxy": lambda net: open_proxy(
            listen, domain="example.com", backend=net.backend(HOST)
        ),
    }


MANAGERS = _managers()


@pytest.mark.parametrize("name", MANAGERS)
async def test_the_blocks_exception_leaves_as_itself(
    name: str, autojump_clock: trio.testing.MockClock
) -> None:
    with pytest.raises(Boom) as caught:
        async with MANAGERS[name](FakeNetwork()):
            await trio.sleep(1)
            raise Boom("mine")
    assert type(caught.value) is Boom and str(caught.value) == "mine"
    assert caught.value.__context__ is None  # no group hidden in the traceback either


@pytest.mark.parametrize("name", MANAGERS)
async def test_keyboard_interrupt_passes_through_untouched(
    name: str, autojump_clock: trio.testing.MockClock
) -> None:
    interrupt = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt) as caught:
        async with MANAGERS[name](FakeNetwork()):
            await trio.sleep(1)
            raise interrupt
    assert caught.value is interrupt


@pytest.mark.parametrize("name", MANAGERS)
async def test_cancelled_passes_through_to_its_scope(
    name: str, autojump_clock: trio.testing.MockClock
) -> None:
    seen: list[BaseException] = []
    with trio.move_on_after(5) as scope:
        try:
            async with MANAGERS[name](FakeNetwork()):
                await trio.sleep_forever()
        except BaseException as exc:
            seen.append(exc)
            raise
    assert scope.cancelled_caught
    assert [type(exc) for exc in seen] == [trio.Cancelled]


@pytest.mark.parametrize("name", MANAGERS)
async def test_a_group_raised_by_the_block_stays_that_group(
    name: str, autojump_clock: trio.testing.MockClock
) -> None:
    async def fail(exc: Exception) -> None:
        raise exc

    first, second = Boom("one"), Boom("two")
    with pytest.raises(ExceptionGroup) as caught:
        async with MANAGERS[name](FakeNetwork()), trio.open_nursery() as nursery:
            nursery.start_soon(fail, first)
            nursery.start_soon(fail, second)
    assert {id(e) for e in caught.value.exceptions} == {id(first), id(second)}


async def test_one_internal_failure_leaves_as_itself(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def crash() -> None:
        await trio.sleep(1)
        raise Internal("a task of the agent failed")

    with pytest.raises(Internal):
        async with MANAGERS["open_user_agent"](FakeNetwork()) as ua:
            ua._nursery.start_soon(crash)
            await trio.sleep_forever()
    with pytest.raises(Internal):
        async with MANAGERS["open_endpoint"](FakeNetwork()) as endpoint:
            endpoint._nursery.start_soon(crash)
            await trio.sleep_forever()


async def test_the_blocks_exception_keeps_internal_failures_as_its_context(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def crash() -> None:
        raise Internal("at the same time")

    with pytest.raises(Boom) as caught:
        async with MANAGERS["open_user_agent"](FakeNetwork()) as ua:
            ua._nursery.start_soon(crash)
            raise Boom("mine")
    context = caught.value.__context__
    assert isinstance(context, BaseExceptionGroup)
    assert [type(e) for e in context.exceptions] == [Internal]


async def test_several_internal_failures_stay_a_group(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def crash(n: int) -> None:
        raise Internal(n)

    with pytest.raises(ExceptionGroup) as caught:
        async with MANAGERS["open_user_agent"](FakeNetwork()) as ua:
            ua._nursery.start_soon(crash, 1)
            ua._nursery.start_soon(crash, 2)
            await trio.sleep_forever()
    assert sorted(e.args[0] for e in caught.value.exceptions) == [1, 2]


def test_collapse_picks_the_one_real_failure() -> None:
    real = Internal("x")
    assert collapse(ExceptionGroup("g", [real]), None) is real
    interrupt = KeyboardInterrupt()
    group = BaseExceptionGroup("g", [Internal(1), interrupt])
    chosen = collapse(group, None)
    assert chosen is interrupt
    assert isinstance(chosen.__context__, BaseExceptionGroup)
    two = ExceptionGroup("g", [Internal(1), Internal(2)])
    assert collapse(two, None) is two


async def test_the_blocks_exception_inside_a_call_or_dial_leaves_as_itself(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from .test_ua_calls import ALICE, BOB_URI, answer_next, two_agents

    net = FakeNetwork()
    net.set_link(ALICE, "10.0.0.2", delay=0.01)
    net.set_link("10.0.0.2", ALICE, delay=0.01)
    async with two_agents(net) as (alice, bob), trio.open_nursery() as nursery:
        nursery.start_soon(answer_next, bob)
        with pytest.raises(Boom):
            async with alice.call(BOB_URI) as call:
                await call.wait_answered()
                raise Boom("in the call")
        assert call.end_reason is not None  # and the call was hung up on the way out
