"""``trio-sip demo``: a geo-redundant endpoint on loopback, with no external server.

Two SIP sites (registrar + record-routing proxy, ``open_proxy``) run in-process on 127.0.0.11
and 127.0.0.12 for the domain geo.example. Alice's endpoint has one connection per site and
registers at both at once; so does Bob's, which answers every call. Call 1 goes through site
A. Site A is then stopped (nothing listens: the kernel answers ICMP port unreachable) and
call 2, dialled on site A's connection, falls over to site B; A's connection turns
unavailable and keeps retrying. Site A comes back, the connection registers again, and
call 3 goes through site A. Short timers keep it quick (they are printed).
``--part failover`` shows the proxy-failover timeline instead (one name, three addresses);
``--part all`` both.
"""

from __future__ import annotations

import argparse
import socket
from typing import Any, TextIO

import trio

from ..config import ConnectionConfig, EndpointConfig
from ..endpoint import Endpoint, EndpointCall, open_endpoint
from ..proto.errors import SipError
from ..proto.location import LocationService
from ..proxy import open_proxy
from . import demo_failover
from ._view import View

DOMAIN = "geo.example"
SITES = {"site-a": "127.0.0.11", "site-b": "127.0.0.12"}
RETRY_INITIAL, RETRY_MAX = 0.5, 2.0


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="geo-redundancy on loopback: two sites, one dies (no external server)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--part", choices=["geo", "failover", "all"], default="geo")
    parser.add_argument(
        "--transaction-timeout-ms",
        type=int,
        default=2000,
        metavar="MS",
        help="sip_transaction_timeout for the demo (default 2000 ms; 4000 recommended live)",
    )
    parser.set_defaults(run=run, config=None, dns_server=None, transport=None)


async def run(args: argparse.Namespace, out: TextIO) -> int:
    if args.part in ("failover", "all"):
        await demo_failover.run(args, out)
    if args.part in ("geo", "all"):
        if args.part == "all":
            print("\n" + "=" * 72 + "\n", file=out)
        await run_geo(args.transaction_timeout_ms, out)
    return 0


def _free_port(hosts: list[str]) -> int:
    """A port free on every host (UDP), so both sites can use the same one."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((hosts[0], 0))
            port = int(probe.getsockname()[1])
            try:
                for host in hosts[1:]:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                        other.bind((host, port))
            except OSError:
                continue
            return port
    raise SipError("no UDP port is free on both site addresses")


class Site:
    """One site in a cancel scope of its own, so that it can be stopped and started again
    (with its location database, as a real site's would survive)."""

    def __init__(self, name: str, host: str, port: int, nursery: trio.Nursery) -> None:
        self.name, self.host, self.port = name, host, port
        self.location = LocationService()
        self._nursery = nursery
        self._scope = trio.CancelScope()

    async def start(self) -> None:
        self._scope = trio.CancelScope()
        await self._nursery.start(self._run)

    def stop(self) -> None:
        self._scope.cancel()

    async def _run(self, *, task_status: trio.TaskStatus[None]) -> None:
        with self._scope:
            async with open_proxy(
                [("UDP", self.host, self.port)], domain=DOMAIN, location_service=self.location
            ):
                task_status.started()
                await trio.sleep_forever()


def config_for(user: str, port: int, timeout_ms: int) -> EndpointConfig:
    return EndpointConfig(
        sip_transaction_timeout=timeout_ms,
        connections=[
            ConnectionConfig(
                id=name, user=f"{user}@{DOMAIN}", server=f"{host}:{port}", reg_interval=30,
                expires=300,
            )
            for name, host in SITES.items()
        ],
    )  # fmt: skip


async def answer_calls(bob: Endpoint, view: View) -> None:
    async for incoming in bob.incoming_calls():
        view.say(f"incoming call from {incoming.caller.uri} on {incoming.connection_id}", "bob")
        await incoming.ring()
        await incoming.accept()


async def place_call(alice: Endpoint, connection: str, view: View) -> EndpointCall:
    view.say(f"dial({connection!r}, 'bob')", "alice")
    started = trio.current_time()
    async with alice.dial(connection, "bob") as call:
        await call.wait_answered()
        took = (trio.current_time() - started) * 1000
        view.say(f"answered through {call.connection_id} after {took:.1f} ms", "alice")
        await trio.sleep(0.3)
    return call


async def show_retries(endpoint: Endpoint, connection: str, view: View, seconds: float) -> None:
    """Print each failed REGISTER attempt of ``connection`` for ``seconds``."""
    seen = -1
    with trio.move_on_after(seconds):
        while True:
            registration = endpoint.connections[connection].registration
            if registration is not None:
                stats = registration.statistics()
                if stats.requests != seen and stats.state.value == "failed":
                    seen = stats.requests
                    due = (stats.next_attempt or 0) - trio.current_time()
                    view.say(f"[{connection}] REGISTER failed ({stats.reason}); "
                             f"next attempt in {due:.2f} s", "alice")  # fmt: skip
            await trio.sleep(0.02)


async def run_geo(timeout_ms: int, out: TextIO) -> None:
    port = _free_port(list(SITES.values()))
    print("trio-sip demo: one endpoint, two SIP sites, one of them dies\n", file=out)
    for name, host in SITES.items():
        print(f"  {name}: registrar + proxy for {DOMAIN} at udp:{host}:{port}", file=out)
    print(
        f"  timers: sip_transaction_timeout = {timeout_ms} ms; registration retries after"
        f" {RETRY_INITIAL:g} s, doubling, at most {RETRY_MAX:g} s (defaults: 2 s, 30 s)",
        file=out,
        flush=True,
    )
    view = View(out)
    async with trio.open_nursery() as nursery:
        sites = {name: Site(name, host, port, nursery) for name, host in SITES.items()}
        for site in sites.values():
            await site.start()
        options: dict[str, Any] = {"retry_initial": RETRY_INITIAL, "retry_max": RETRY_MAX}
        view.heading("Registering alice and bob at both sites at once:")
        async with (
            open_endpoint(
                config_for("alice", port, timeout_ms), **options,
                on_status=lambda e: view.status("alice", e),
                on_call_event=lambda e: view.call("alice", e),
            ) as alice,
            open_endpoint(
                config_for("bob", port, timeout_ms), **options,
                on_status=lambda e: view.status("bob", e),
            ) as bob,
        ):  # fmt: skip
            nursery.start_soon(answer_calls, bob, view)
            with trio.fail_after(10):
                await alice.wait_registered()
                await bob.wait_registered()
            view.heading("Call 1, through site A:")
            await place_call(alice, "site-a", view)
            view.heading("Site A goes down; call 2 is dialled on site A's connection:")
            sites["site-a"].stop()
            view.say("site A stopped (nothing listens on its address any more)")
            await place_call(alice, "site-a", view)
            conn = alice.connections["site-a"]
            view.say(f"[site-a] is {conn.status.value.upper()}: {conn.reason}", "alice")
            view.heading("Site A is retried while down; then it comes back:")
            await show_retries(alice, "site-a", view, 2.5)
            await sites["site-a"].start()
            view.say("site A started again")
            with trio.fail_after(10):
                await alice.wait_registered("site-a")
            view.heading("Call 3, through site A again:")
            await place_call(alice, "site-a", view)
            view.heading("Connections:")
            for who, endpoint in (("alice", alice), ("bob", bob)):
                for c in endpoint.connections.values():
                    view.say(f"[{c.id}] {c.status.value} ({c.reason})", who)
        nursery.cancel_scope.cancel()
    print(
        f"\nDone in {view.elapsed():.1f} s: call 2 fell over to site B, and site A's connection"
        " registered again as soon as the site answered.",
        file=out,
    )
