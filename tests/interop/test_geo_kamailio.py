"""The geo-redundant endpoint against two real Kamailio sites on two loopback addresses.

Each Kamailio (tests/interop/kamailio.py: registrar with digest users + record-routing proxy)
is started by the test and stopped by PID. Alice and Bob register at both; site A is killed,
Alice's connection to it turns unavailable and a call dialled on it falls over to site B;
site A is started again (an empty location table, as after any Kamailio restart) and Alice's
connection registers there again, which Kamailio's own ``ul.dump`` confirms.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import pytest
import trio

from trio_sip.config import ConnectionConfig, EndpointConfig
from trio_sip.endpoint import ConnectionEvent, ConnectionStatus, Endpoint, open_endpoint

from .kamailio import Kamailio, running_kamailio
from .peers import free_port

pytestmark = pytest.mark.interop

HOSTS = {"a": "127.0.0.31", "b": "127.0.0.32"}
USERS = {"alice": "wonderland", "bob": "builder"}
CS = ConnectionStatus


def config(user: str, ports: dict[str, int]) -> EndpointConfig:
    return EndpointConfig(
        sip_transaction_timeout=2000,
        connections=[
            ConnectionConfig(
                id=name, user=f"{user}@example.com", server=f"{HOSTS[name]}:{ports[name]}",
                password=USERS[user], reg_interval=5, expires=60,
            )
            for name in HOSTS
        ],
    )  # fmt: skip


def registered(kamailio: Kamailio, user: str) -> list[str]:
    return [b.address for b in kamailio.bindings() if b.aor == user]


async def answer_all(endpoint: Endpoint) -> None:
    async for incoming in endpoint.incoming_calls():
        await incoming.ring()
        await incoming.accept()


async def test_endpoint_survives_a_kamailio_site(tmp_path: Path) -> None:
    ports = {name: free_port(host) for name, host in HOSTS.items()}
    events: list[ConnectionEvent] = []
    with contextlib.ExitStack() as sites:
        site_a = contextlib.ExitStack()
        sites.callback(site_a.close)
        kam_a = site_a.enter_context(
            running_kamailio(tmp_path / "a1", USERS, host=HOSTS["a"], port=ports["a"])
        )
        kam_b = sites.enter_context(
            running_kamailio(tmp_path / "b", USERS, host=HOSTS["b"], port=ports["b"])
        )
        options = {"retry_initial": 0.5, "retry_max": 2.0, "rng": random.Random()}
        async with (
            open_endpoint(config("alice", ports), on_status=events.append, **options) as alice,
            open_endpoint(config("bob", ports), **options) as bob,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(answer_all, bob)
            with trio.fail_after(15):
                await alice.wait_registered()
                await bob.wait_registered()
            for kamailio in (kam_a, kam_b):
                (contact,) = registered(kamailio, "alice")
                assert contact.startswith("sip:alice@127.0.0.1:") and ";line=" in contact
            with trio.fail_after(15):
                async with alice.dial("a", "bob") as call:
                    await call.wait_answered()
                    assert call.connection_id == "a"
                    (bob_call,) = bob.calls
                    assert bob_call.connection_id == "a"  # answered on the connection it came on

            site_a.close()  # kill site A
            with trio.fail_after(15):
                async with alice.dial("a", "bob") as call:
                    await call.wait_answered()
                    assert call.connections_tried == ["a", "b"]
                    assert call.connection_id == "b"
            status_a = alice.connections["a"]
            assert status_a.status is CS.UNAVAILABLE
            assert status_a.reason.startswith("transport error:") and "refused" in status_a.reason
            down = [e for e in events if e.connection_id == "a" and e.new is CS.UNAVAILABLE]
            assert len(down) == 1

            kam_a = site_a.enter_context(
                running_kamailio(tmp_path / "a2", USERS, host=HOSTS["a"], port=ports["a"])
            )
            with trio.fail_after(15):
                await alice.wait_registered("a")
            assert events[-1].connection_id == "a" and events[-1].new is CS.REGISTERED
            assert len(registered(kam_a, "alice")) == 1
            nursery.cancel_scope.cancel()
