"""One test suite for every LocationStore: the memory store (virtual time, default suite) and
the Redis store (a redis-server of our own on loopback, real time; marked ``cluster``).

Each test gets two "nodes": two stores over the same bindings (one LocationService, or two
coredis clients on one Redis), as two proxy nodes of a cluster have. A REGISTER (§10.3) is
what nodes apply, so the tests speak REGISTER: add, refresh, remove one, ``*``, expiry, the
bounds of ``Limits``, and two nodes racing on one AOR.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import trio
import trio.testing

from trio_sip import Limits
from trio_sip.location import (
    LocationStore,
    MemoryLocationStore,
    RedisLocationStore,
    open_redis_store,
    register_change,
)
from trio_sip.proto.location import BindingRules, LocationService
from trio_sip.proto.message import Request

from .proxy_support import register

AOR = "sip:bob@example.com"
KINDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=[pytest.mark.interop, pytest.mark.cluster]),
]
_seq = itertools.count(1)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock(kind: str) -> trio.testing.MockClock | None:
    """Virtual time for the memory store; Redis keeps time on its own (real) clock."""
    return trio.testing.MockClock(autojump_threshold=0) if kind == "memory" else None


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.cluster.redis_server import running_redis

    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
async def nodes(
    kind: str, request: pytest.FixtureRequest, clock: object
) -> AsyncIterator[tuple[LocationStore, LocationStore]]:
    if kind == "memory":
        service = LocationService()
        yield MemoryLocationStore(service), MemoryLocationStore(service)
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"test-{uuid.uuid4().hex[:8]}:"  # each test its own keys
    async with (
        open_redis_store(url, prefix=prefix) as a,
        open_redis_store(url, prefix=prefix) as b,
    ):
        yield a, b


def rules(**limits: int) -> BindingRules:
    return BindingRules(min_expires=1, limits=Limits(**limits))


async def apply(store: LocationStore, req: Request, **limits: int) -> tuple[int, list[str]]:
    planned = await store.update(AOR, register_change(req, AOR, rules(**limits)))
    outcome = planned.outcome
    return outcome.status, [v for k, v in outcome.headers if k == "Contact"]


def reg(host: str, expires: int | None = 60, **kw: object) -> Request:
    kw.setdefault("seq", next(_seq))
    return register("bob", host, expires=expires, **kw)  # type: ignore[arg-type]


async def contacts(store: LocationStore) -> list[str]:
    return [b.contact for b in await store.lookup(AOR)]


async def test_add_refresh_and_lookup_from_the_other_node(
    nodes: tuple[LocationStore, LocationStore],
) -> None:
    a, b = nodes
    assert await b.lookup(AOR) == [] and await b.count() == 0
    status, listed = await apply(a, reg("10.0.0.1", 60, call_id="c1"))
    assert status == 200 and listed == ["<sip:bob@10.0.0.1:5060>;expires=60"]
    assert await contacts(b) == ["sip:bob@10.0.0.1:5060"]  # the other node sees it
    # A refresh from the other node (same Call-ID, higher CSeq) changes the interval only.
    status, listed = await apply(b, reg("10.0.0.1", 120, call_id="c1"))
    assert status == 200 and listed == ["<sip:bob@10.0.0.1:5060>;expires=120"]
    (binding,) = await a.lookup(AOR)
    assert binding.call_id == "c1" and await a.count() == 1
    # §10.3 step 7: the same Call-ID with a CSeq that is not higher is refused, nothing changes.
    status, _ = await apply(a, reg("10.0.0.1", 0, call_id="c1", seq=1))
    assert status == 400 and await contacts(b) == ["sip:bob@10.0.0.1:5060"]


async def test_remove_one_and_wildcard(nodes: tuple[LocationStore, LocationStore]) -> None:
    a, b = nodes
    for host in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        assert (await apply(a, reg(host, call_id=f"c-{host}")))[0] == 200
    assert len(await contacts(b)) == 3
    status, listed = await apply(b, reg("10.0.0.2", 0, call_id="c-10.0.0.2"))
    assert status == 200 and len(listed) == 2
    assert sorted(await contacts(a)) == ["sip:bob@10.0.0.1:5060", "sip:bob@10.0.0.3:5060"]
    # "*" needs Expires: 0 (§10.2.2), then removes every binding.
    star = reg("x", 60, call_id="other", contact="*")
    assert (await apply(a, star))[0] == 400 and len(await contacts(b)) == 2
    status, listed = await apply(a, reg("x", 0, call_id="other", contact="*"))
    assert status == 200 and listed == []
    assert await b.lookup(AOR) == [] and await b.count() == 0


async def test_bindings_expire_on_the_stores_clock(
    nodes: tuple[LocationStore, LocationStore],
) -> None:
    a, b = nodes
    assert (await apply(a, reg("10.0.0.1", 1, call_id="short")))[0] == 200
    assert (await apply(a, reg("10.0.0.2", 30, call_id="long")))[0] == 200
    assert await b.count() == 2
    await trio.sleep(1.3)
    # Never served past its expiry, by either node.
    assert await contacts(b) == ["sip:bob@10.0.0.2:5060"] and await a.count() == 1
    status, listed = await apply(b, reg("10.0.0.3", 1, call_id="third"))
    assert status == 200 and len(listed) == 2


async def test_bounds_per_aor_and_in_all(nodes: tuple[LocationStore, LocationStore]) -> None:
    a, b = nodes
    limits = {"max_bindings_per_aor": 2}
    assert (await apply(a, reg("10.0.0.1", call_id="1"), **limits))[0] == 200
    assert (await apply(b, reg("10.0.0.2", call_id="2"), **limits))[0] == 200
    status, _ = await apply(a, reg("10.0.0.3", call_id="3"), **limits)
    assert status == 403 and len(await contacts(b)) == 2  # nothing committed
    # Refreshes and removals still work at the bound.
    assert (await apply(b, reg("10.0.0.1", 90, call_id="1"), **limits))[0] == 200
    # The total, across AORs: 503 with Retry-After (§21.5.4).
    other = register("carol", "10.0.0.9", expires=60, seq=next(_seq))
    planned = await a.update(
        "sip:carol@example.com",
        register_change(other, "sip:carol@example.com", rules(max_bindings=2)),
    )
    assert planned.outcome.status == 503 and ("Retry-After", "5") in planned.outcome.headers
    assert await b.count() == 2


async def test_two_nodes_racing_on_one_aor_lose_nothing(
    nodes: tuple[LocationStore, LocationStore],
) -> None:
    """20 REGISTERs at once for one AOR, half through each node, each its own contact: every
    one of them is committed (no read-modify-write lost), and the bound still holds."""
    a, b = nodes
    statuses: list[int] = []

    async def one(store: LocationStore, i: int) -> None:
        status, _ = await apply(store, reg(f"10.0.1.{i}", call_id=f"race-{i}"), **bound)
        statuses.append(status)

    bound = {"max_bindings_per_aor": 20}
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(one, a if i % 2 else b, i)
    assert statuses == [200] * 20
    if isinstance(a, RedisLocationStore) and isinstance(b, RedisLocationStore):
        assert a.conflicts + b.conflicts > 0  # they did race, and the loser retried
    assert sorted(await contacts(a)) == sorted(f"sip:bob@10.0.1.{i}:5060" for i in range(20))
    # One more goes over the bound whichever node takes it.
    assert (await apply(b, reg("10.0.2.1", call_id="extra"), **bound))[0] == 403


@pytest.mark.interop
@pytest.mark.cluster
async def test_redis_commit_is_refused_over_a_newer_version(redis_url: str) -> None:
    """The compare-and-set itself: a commit prepared from an old read is refused once the
    other node has committed, and update() then starts again from what is there."""
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    async with (
        open_redis_store(redis_url, prefix=prefix) as a,
        open_redis_store(redis_url, prefix=prefix) as b,
    ):
        assert isinstance(a, RedisLocationStore)
        calls: list[int] = []
        first = register_change(reg("10.0.0.1", call_id="a"), AOR, rules())

        def change_a(current, now, total):  # type: ignore[no-untyped-def]
            calls.append(len(current))
            return first(current, now, total)

        # Node B commits between A's read and A's commit: run A's change inside B's update?
        # No: interleave by hand. A reads, B commits, A's commit (old version) is refused.
        now, total, current, version = await a._snapshot(AOR, total=True)
        assert (await apply(b, reg("10.0.0.2", call_id="b")))[0] == 200
        planned = first(current, now, total)
        assert planned.updated is not None
        from trio_sip.location._redis import _encode

        args = [version, "v-a", AOR, *_encode(planned.updated)]
        assert await a._call(a._commit, [a._key(AOR), a._index], args) == 0
        # update() retries on what is there now: both bindings survive.
        await a.update(AOR, change_a)
        assert calls == [1]
        assert len(await contacts(b)) == 2
