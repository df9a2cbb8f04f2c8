"""The interop matrix as data: peer x scenario -> how to run the cell (or why it cannot be run).

Rows are real third-party peers started on loopback by the test: three softphones driven
through one small interface (tests/interop/phone.py: linphonec, baresip, twinkle), sipp (a
scripted tester), Kamailio over UDP, TCP and TLS (a registrar + proxy between two of our user
agents) and dnsmasq (DNS). Columns are what a user of trio-sip relies on. ``CELLS`` maps each
(peer, scenario) to a :class:`Cell`: the coroutine that runs it, or the reason it does not
apply ("n-a"), and the reason it is expected to fail ("xfail"), if any.
tests/interop/test_matrix.py runs every cell; tests/interop/matrix_report.py prints the table
and writes docs/interop.md from the results.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import attrs
import trio

from trio_sip.proto.location import LocationService
from trio_sip.proxy import open_proxy
from trio_sip.ua import Call, CallState, EndReason, Held, Retrieved, UserAgent, open_user_agent

from .baresip import BaresipPhone
from .linphonec import Linphonec
from .peers import assert_loopback, free_port
from .phone import Account, Phone, running_phone
from .sipp import wait_udp_bound
from .twinkle import Twinkle

SCENARIOS = {
    "calls_serve": "the peer calls `trio-sip serve`",
    "calls_ua": "the peer calls our user agent",
    "ua_calls": "our user agent calls the peer",
    "hold_by_ua": "our UA holds and retrieves the peer",
    "hold_by_peer": "the peer holds and retrieves our UA",
    "bye_by_ua": "our UA hangs up (BYE)",
    "bye_by_peer": "the peer hangs up (BYE)",
    "cancel_ringing": "our UA cancels while the peer rings",
    "digest_401": "REGISTER challenged with 401 and answered",
    "digest_407": "INVITE challenged with 407 by a proxy and answered",
    "over_mtu": "our UA sends the peer an INVITE over the MTU (RFC 3261 §18.1.1)",
    "via_our_proxy": "our proxy between two third-party peers",
}

HOST = assert_loopback("127.0.0.1")
PROXY_HOST = assert_loopback("127.0.0.61")
#: The proxy's domain is its address: no phone ever asks a DNS server (nothing leaves loopback).
DOMAIN = PROXY_HOST
PASSWORDS = {
    "alice": "wonderland",
    "bob": "builder",
    "carol": "cheshire",
    "dave": "rabbit",
    "uas": "answering",
}
PHONES: dict[str, type[Phone]] = {
    "linphonec": Linphonec,
    "baresip": BaresipPhone,
    "twinkle": Twinkle,
}
#: via_our_proxy: who the row's phone calls through our proxy.
PARTNER = {"linphonec": "baresip", "baresip": "twinkle", "twinkle": "linphonec"}
#: The size of the padded INVITE of ``over_mtu`` (RFC 3261 §18.1.1: within 200 bytes of a 1500
#: byte path MTU, a request goes over a congestion-controlled transport).
BIG = 1600


@attrs.define
class Ctx:
    """What a cell gets: its peer's name and a work directory."""

    peer: str
    workdir: Path

    @contextlib.asynccontextmanager
    async def phone(
        self, name: str | None = None, user: str = "carol", account: Account | None = None
    ) -> AsyncIterator[Phone]:
        kind = PHONES[name or self.peer]
        phone = kind(self.workdir / f"{kind.name}-{user}", HOST, free_port(HOST), user, account)
        async with running_phone(phone):
            yield phone


Scenario = Callable[[Ctx], Awaitable[None]]


@attrs.frozen
class Cell:
    run: Scenario | None = None
    na: str = ""
    xfail: str = ""


@contextlib.asynccontextmanager
async def our_ua(user: str = "alice") -> AsyncIterator[UserAgent]:
    listen = [("UDP", HOST, 0), ("TCP", HOST, 0)]
    async with open_user_agent(listen, aor=f"sip:{user}@{HOST}") as ua:
        yield ua


def ua_uri(ua: UserAgent, user: str = "alice") -> str:
    host, port = ua.stack.listening[0][1][:2]
    return f"sip:{user}@{host}:{port}"


async def first_incoming(ua: UserAgent, *, ring: bool = True) -> Call:
    async for incoming in ua.incoming_calls():
        if ring:
            await incoming.ring()
        return await incoming.accept()
    raise AssertionError("the agent closed before a call came")


@contextlib.asynccontextmanager
async def answered_call_to(ua: UserAgent, phone: Phone) -> AsyncIterator[Call]:
    """Our UA calls the phone (which answers by itself); yields the answered call, hangs up
    when left."""
    await phone.auto_answer(True)
    await trio.sleep(0.2)
    async with ua.call(phone.uri) as call:
        with trio.fail_after(15):
            ok = await call.wait_answered()
        assert ok.status_code == 200, ok
        await phone.wait("answered")
        yield call


async def wait_event(call: Call, kind: type, timeout: float = 10.0) -> object:
    with trio.fail_after(timeout):
        async for event in call.events:
            if isinstance(event, kind):
                return event
    raise AssertionError(f"{call!r} ended without a {kind.__name__}")


# -- phone scenarios ----------------------------------------------------------------------------


async def phone_calls_serve(ctx: Ctx) -> None:
    port = free_port(HOST)
    argv = [sys.executable, "-m", "trio_sip", "serve", "--listen", f"{HOST}:{port}", "--calls",
            "1", "--transaction-timeout-ms", "4000"]  # fmt: skip
    async with ctx.phone() as phone, trio.open_nursery() as nursery:
        done: list[subprocess.CompletedProcess[bytes]] = []

        async def serve() -> None:
            done.append(await trio.run_process(argv, capture_stdout=True, check=False))

        nursery.start_soon(serve)
        await wait_udp_bound((HOST, port), timeout=15)  # `trio-sip serve` is listening
        phone.mark()
        await phone.dial(f"sip:serve@{HOST}:{port}")
        await phone.wait("answered", 15)
        await trio.sleep(0.5)
        await phone.hangup()
        with trio.fail_after(15):  # `--calls 1`: serve exits once the call has ended
            while not done:
                await trio.sleep(0.1)
        out = done[0].stdout.decode()
        assert done[0].returncode == 0, out
        assert "1 calls answered and ended" in out, out
        await phone.wait("ended", 15)


async def phone_calls_ua(ctx: Ctx) -> None:
    async with our_ua() as ua, ctx.phone() as phone:
        await phone.dial(ua_uri(ua))
        with trio.fail_after(15):
            call = await first_incoming(ua)
        await phone.wait("answered")
        await trio.sleep(0.5)
        await phone.hangup()
        with trio.fail_after(10):
            ended = await call.wait_ended()
        assert ended.reason is EndReason.REMOTE_HANGUP, ended


async def phone_ua_calls(ctx: Ctx) -> None:
    async with our_ua() as ua, ctx.phone() as phone:
        async with answered_call_to(ua, phone) as call:
            assert call.remote_sdp is not None and call.remote_sdp.media, call.remote_sdp
        assert call.state is CallState.ENDED


async def phone_bye_by_ua(ctx: Ctx) -> None:
    async with our_ua() as ua, ctx.phone() as phone:
        async with answered_call_to(ua, phone) as call:
            await trio.sleep(0.5)
            with trio.fail_after(10):
                await call.hangup()
        ended = await call.wait_ended()
        assert ended.reason is EndReason.LOCAL_HANGUP, ended
        assert ended.response is not None and ended.response.status_code == 200, ended
        await phone.wait("ended")


async def phone_bye_by_peer(ctx: Ctx) -> None:
    async with our_ua() as ua, ctx.phone() as phone:
        async with answered_call_to(ua, phone) as call:
            await trio.sleep(0.5)
            await phone.hangup()
            with trio.fail_after(10):
                ended = await call.wait_ended()
        assert ended.reason is EndReason.REMOTE_HANGUP, ended


async def phone_hold_by_ua(ctx: Ctx) -> None:
    async with our_ua() as ua, ctx.phone() as phone, answered_call_to(ua, phone) as call:
        with trio.fail_after(10):
            held = await call.hold()
        assert held.status_code == 200, held
        assert call.remote_sdp is not None
        assert call.remote_sdp.media[0].direction in ("recvonly", "inactive"), call.remote_sdp
        with trio.fail_after(10):
            back = await call.retrieve()
        assert back.status_code == 200, back
        direction = call.remote_sdp.media[0].direction
        assert direction in ("sendrecv", None), call.remote_sdp  # none: sendrecv


async def phone_hold_by_peer(ctx: Ctx) -> None:
    async with our_ua() as ua, ctx.phone() as phone:
        await phone.dial(ua_uri(ua))
        with trio.fail_after(15):
            call = await first_incoming(ua)
        await phone.wait("answered")
        await trio.sleep(0.5)
        await phone.hold()
        held = await wait_event(call, Held)
        assert isinstance(held, Held) and held.by_remote, held
        await trio.sleep(0.5)
        await phone.resume()
        back = await wait_event(call, Retrieved)
        assert isinstance(back, Retrieved) and back.by_remote, back
        await phone.hangup()
        with trio.fail_after(10):
            await call.wait_ended()


async def phone_cancel_ringing(ctx: Ctx) -> None:
    async with our_ua() as ua, ctx.phone() as phone:
        await phone.auto_answer(False)
        async with ua.call(phone.uri) as call:
            await phone.wait("incoming", 15)
            with trio.fail_after(10):
                while call.state is not CallState.RINGING:
                    await trio.sleep(0.05)
        ended = await call.wait_ended()
        assert ended.reason is EndReason.CANCELLED, ended
        assert ended.response is not None and ended.response.status_code == 487, ended
        await phone.wait("ended")


@contextlib.asynccontextmanager
async def our_proxy(*, credentials: bool) -> AsyncIterator[tuple[LocationService, int]]:
    location = LocationService()
    port = free_port(PROXY_HOST)
    async with open_proxy(
        [("UDP", PROXY_HOST, port), ("TCP", PROXY_HOST, port)],
        domain=DOMAIN,
        location_service=location,
        credentials=PASSWORDS if credentials else None,
        aliases=[PROXY_HOST, f"{PROXY_HOST}:{port}"],
    ):
        yield location, port


def registered(location: LocationService, user: str) -> list[str]:
    return [str(b.contact) for b in location.lookup(f"sip:{user}@{DOMAIN}", trio.current_time())]


async def phone_digest_401(ctx: Ctx) -> None:
    async with our_proxy(credentials=True) as (location, port):
        account = Account(PROXY_HOST, port, "carol", PASSWORDS["carol"], DOMAIN)
        async with ctx.phone(account=account) as phone:
            await phone.register()
            with trio.fail_after(15):
                while not registered(location, "carol"):
                    await trio.sleep(0.1)
            (contact,) = registered(location, "carol")
            assert "127.0.0.1" in contact, contact


async def phone_digest_407(ctx: Ctx) -> None:
    async with our_proxy(credentials=True) as (location, port), our_ua("bob") as ua:
        location.add_static(f"sip:bob@{DOMAIN}", ua_uri(ua, "bob"))
        account = Account(PROXY_HOST, port, "carol", PASSWORDS["carol"], DOMAIN)
        async with ctx.phone(account=account) as phone:
            await phone.register()
            with trio.fail_after(15):
                while not registered(location, "carol"):
                    await trio.sleep(0.1)
            await phone.dial(f"sip:bob@{DOMAIN}:{port}")
            with trio.fail_after(15):
                call = await first_incoming(ua)
            # It got through the proxy, which challenges every INVITE (proxy_auth="all").
            assert call.dialog is not None
            await phone.wait("answered")
            await phone.hangup()
            with trio.fail_after(10):
                ended = await call.wait_ended()
            assert ended.reason is EndReason.REMOTE_HANGUP, ended


async def phone_over_mtu(ctx: Ctx) -> None:
    async with our_ua() as ua, ctx.phone() as phone:
        await phone.auto_answer(True)
        await trio.sleep(0.2)
        pad = ("X-Pad", "x" * BIG)
        async with ua.call(phone.uri, headers=[pad]) as call:
            with trio.fail_after(15):
                ok = await call.wait_answered()
            assert ok.status_code == 200, ok
            await phone.wait("answered")


async def phone_via_our_proxy(ctx: Ctx) -> None:
    partner = PARTNER[ctx.peer]
    async with our_proxy(credentials=False) as (location, port):
        me = Account(PROXY_HOST, port, "carol", "x", DOMAIN)
        them = Account(PROXY_HOST, port, "dave", "x", DOMAIN)
        async with (
            ctx.phone(account=me) as phone,
            ctx.phone(partner, user="dave", account=them) as other,
        ):
            await phone.register()
            await other.register()
            with trio.fail_after(15):
                while not (registered(location, "carol") and registered(location, "dave")):
                    await trio.sleep(0.1)
            await other.auto_answer(True)
            await trio.sleep(0.2)
            await phone.dial(f"sip:dave@{DOMAIN}:{port}")
            await other.wait("answered", 15)
            await phone.wait("answered", 15)
            await trio.sleep(0.5)
            await phone.hangup()
            await other.wait("ended", 10)


PHONE_SCENARIOS: dict[str, Scenario] = {
    "calls_serve": phone_calls_serve,
    "calls_ua": phone_calls_ua,
    "ua_calls": phone_ua_calls,
    "hold_by_ua": phone_hold_by_ua,
    "hold_by_peer": phone_hold_by_peer,
    "bye_by_ua": phone_bye_by_ua,
    "bye_by_peer": phone_bye_by_peer,
    "cancel_ringing": phone_cancel_ringing,
    "digest_401": phone_digest_401,
    "digest_407": phone_digest_407,
    "over_mtu": phone_over_mtu,
    "via_our_proxy": phone_via_our_proxy,
}

CELLS: dict[tuple[str, str], Cell] = {
    (peer, name): Cell(run) for peer in PHONES for name, run in PHONE_SCENARIOS.items()
}


def _servers() -> None:
    from . import matrix_servers as srv

    not_a_phone = "Kamailio is a registrar and proxy: it places and answers no call"
    for transport in ("UDP", "TCP", "TLS"):
        peer = f"kamailio-{transport.lower()}"
        for name in SCENARIOS:
            if name in ("calls_serve", "calls_ua"):
                CELLS[(peer, name)] = Cell(na=not_a_phone)
            elif name == "digest_407":
                CELLS[(peer, name)] = Cell(
                    na="the test Kamailio challenges REGISTER only (401);"
                    " 407 is shown by our proxy in the phone rows"
                )
            elif name == "via_our_proxy":
                CELLS[(peer, name)] = Cell(na="Kamailio is itself the proxy between our two UAs")
            else:
                CELLS[(peer, name)] = Cell(srv.kamailio_cell(transport, name))
    sipp_na = (
        "not scripted for sipp here (its XML scenarios run fixed message sequences): the XML"
        " suites test_sipp_transactions.py and test_proxy_sipp.py cover these transactions"
    )
    scripted = {
        "calls_serve",
        "calls_ua",
        "ua_calls",
        "bye_by_ua",
        "bye_by_peer",
        "over_mtu",
        "hold_by_ua",
        "cancel_ringing",
        "digest_401",
        "via_our_proxy",
    }
    for name in SCENARIOS:
        CELLS[("sipp", name)] = Cell(srv.sipp_cell(name)) if name in scripted else Cell(na=sipp_na)
    for name in SCENARIOS:
        CELLS[("dnsmasq", name)] = (
            Cell(srv.dnsmasq_ua_calls)
            if name == "ua_calls"
            else Cell(na="dnsmasq is a DNS server: its cell is a call found by SRV and A records")
        )


_servers()
