"""``open_location_store`` and the ``LocationStore`` protocol as a user meets them: a proxy
reads and commits its bindings through whatever store it is given (one from a URL, or one
written to the protocol), and a bad URL is a ConfigError naming ``location``. In-memory
network, virtual time."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_sip import (
    ConfigError,
    LocationService,
    LocationStore,
    MemoryLocationStore,
    open_location_store,
    open_proxy,
)
from trio_sip.location import Change
from trio_sip.proto.location import Binding, Planned
from trio_sip.testing import FakeNetwork

from .proxy_support import ALICE, BOB, DOMAIN, PROXY, TO_PROXY, Phone, phone_stack, register
from .proxy_support import request as proxy_request

AOR = f"sip:bob@{DOMAIN}"


class Journal(LocationStore):
    """A store written to the protocol: keeps the bindings in another store and writes down
    every call the proxy makes."""

    def __init__(self, inner: LocationStore) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []
        self.closed = False

    async def lookup(self, aor: str) -> list[Binding]:
        self.calls.append(("lookup", aor))
        return await self.inner.lookup(aor)

    async def update(self, aor: str, change: Change) -> Planned:
        self.calls.append(("update", aor))
        return await self.inner.update(aor, change)

    async def count(self) -> int:
        return await self.inner.count()

    async def aclose(self) -> None:
        self.closed = True


async def register_then_reach_bob(net: FakeNetwork, store: LocationStore) -> None:
    phone = Phone(BOB)
    async with (
        open_proxy(
            [("UDP", PROXY, 5060)], domain=DOMAIN, backend=net.backend(PROXY), location_store=store
        ),
        phone_stack(net, phone) as bob,
        phone_stack(net, Phone(ALICE)) as alice,
    ):
        assert (await bob.request(register("bob", BOB), TO_PROXY)).status_code == 200
        ok = await alice.request(proxy_request("OPTIONS", AOR), TO_PROXY)
        assert ok.status_code == 200 and len(phone.requests("OPTIONS")) == 1


async def test_a_memory_url_opens_a_store_over_the_service_given(
    autojump_clock: trio.testing.MockClock,
) -> None:
    service = LocationService()
    async with open_location_store("memory:", service=service) as store:
        assert isinstance(store, MemoryLocationStore) and await store.count() == 0
        await register_then_reach_bob(FakeNetwork(), store)
        # The binding went to the service we passed (shared by every store over it).
        (binding,) = await store.lookup(AOR)
        assert binding.contact == f"sip:bob@{BOB}:5060"
        assert service.count(trio.current_time()) == 1
        other = MemoryLocationStore(service)
        assert [b.contact for b in await other.lookup(AOR)] == [binding.contact]


async def test_a_store_written_to_the_protocol_is_what_the_proxy_uses(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = Journal(MemoryLocationStore())
    await register_then_reach_bob(FakeNetwork(), journal)
    # The REGISTER committed through update(), the OPTIONS found Bob through lookup().
    assert journal.calls == [("update", AOR), ("lookup", AOR)]
    assert await journal.count() == 1


@pytest.mark.parametrize("url", ["mysql://db/1", "", "memcache:"])
async def test_a_bad_location_url_is_a_config_error_naming_location(url: str) -> None:
    with pytest.raises(ConfigError, match="memory:") as raised:
        async with open_location_store(url):
            pytest.fail("a store was opened")  # pragma: no cover
    assert (raised.value.setting, raised.value.value) == ("location", url)
