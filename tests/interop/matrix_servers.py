"""Matrix cells for the peers that are not phones: Kamailio (UDP, TCP, TLS) between two of our
endpoints, sipp's built-in scenarios, and dnsmasq naming ``trio-sip serve``.

Kamailio is a registrar + proxy (tests/interop/kamailio.py): its cells are calls between two
endpoints registered at it with digest (401), over the row's transport, every request of the
dialog record-routed through it. sipp runs its built-in ``uac`` / ``uas`` (no re-INVITE, no
CANCEL, no digest in them: those cells are n-a, the scripted XML suites in
tests/interop/test_sipp_transactions.py and test_proxy_sipp.py cover the transaction side).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import dns.message
import dns.query
import trio

from trio_sip.config import ConnectionConfig, EndpointConfig
from trio_sip.endpoint import Endpoint, EndpointCall, open_endpoint
from trio_sip.ua import EndReason, Held, Retrieved, open_user_agent

from .kamailio import REALM, running_kamailio
from .peers import assert_loopback, ensure_debian_packages, free_port, running_peer
from .sipp import ALL_CALLS_OK, run_sipp, sipp_argv, wait_udp_bound

HOST = assert_loopback("127.0.0.1")
USERS = {"alice": "wonderland", "bob": "builder"}
BIG = 1600


@contextlib.asynccontextmanager
async def two_endpoints(
    workdir: Path, transport: str
) -> AsyncIterator[tuple[Endpoint, Endpoint, object]]:
    tls = None
    extra: dict[str, str] = {}
    if transport == "TLS":
        from .test_cli_tls_kamailio import Files

        files = Files(workdir / "pki")
        tls = (files.cert, files.key)
        extra = {"tls_ca_file": str(files.ca), "tls_cert_file": str(files.cert),
                 "tls_key_file": str(files.key)}  # fmt: skip
    with running_kamailio(workdir / "kamailio", USERS, tls=tls) as kam:
        port = kam.tls_port if transport == "TLS" else kam.port

        def config(user: str) -> EndpointConfig:
            return EndpointConfig(
                sip_transaction_timeout=4000, **extra,  # type: ignore[arg-type]
                connections=[ConnectionConfig(
                    id="k", user=f"{user}@{REALM}", server=f"{HOST}:{port}", transport=transport,
                    password=USERS[user], expires=60,
                )],
            )  # fmt: skip

        async with open_endpoint(config("alice")) as alice, open_endpoint(config("bob")) as bob:
            with trio.fail_after(15):
                await alice.wait_registered()
                await bob.wait_registered()
            yield alice, bob, kam


async def answer_one(bob: Endpoint, *, accept: bool = True) -> EndpointCall | None:
    async for incoming in bob.incoming_calls():
        await incoming.ring()
        if not accept:
            with trio.fail_after(15):
                await incoming.wait_cancelled()
            return None
        return await incoming.accept()
    return None


async def wait_kind(call: EndpointCall, kind: type, timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        async for record in call.events:
            if isinstance(record.event, kind):
                return


def kamailio_cell(transport: str, scenario: str):  # type: ignore[no-untyped-def]
    async def run(ctx: object) -> None:
        workdir: Path = ctx.workdir  # type: ignore[attr-defined]
        async with two_endpoints(workdir, transport) as (alice, bob, kam), trio.open_nursery() as n:
            if scenario == "digest_401":
                users = {b.aor for b in kam.bindings()}  # type: ignore[attr-defined]
                assert {"alice", "bob"} <= users, users
                return
            got: list[EndpointCall | None] = []

            async def answer() -> None:
                got.append(await answer_one(bob, accept=scenario != "cancel_ringing"))

            n.start_soon(answer)
            headers = [("X-Pad", "x" * BIG)] if scenario == "over_mtu" else []
            async with alice.dial("k", "bob", headers=headers) as call:
                if scenario == "cancel_ringing":
                    with trio.fail_after(15):
                        while call.state.value != "ringing":
                            await trio.sleep(0.05)
                    # leaving the block cancels
                else:
                    with trio.fail_after(15):
                        await call.wait_answered()
                        while not got:
                            await trio.sleep(0.05)
                    other = got[0]
                    assert other is not None
                    if scenario == "hold_by_ua":
                        assert (await call.hold()).status_code == 200
                        assert (await call.retrieve()).status_code == 200
                        await wait_kind(other, Retrieved)
                    elif scenario == "hold_by_peer":
                        assert (await other.hold()).status_code == 200
                        await wait_kind(call, Held)
                        assert (await other.retrieve()).status_code == 200
                        await wait_kind(call, Retrieved)
                    elif scenario == "bye_by_peer":
                        await other.hangup()
                        with trio.fail_after(10):
                            ended = await call.wait_ended()
                        assert ended.reason is EndReason.REMOTE_HANGUP, ended
                    elif scenario in ("bye_by_ua", "ua_calls", "over_mtu"):
                        await call.hangup()
                        with trio.fail_after(10):
                            ended = await other.wait_ended()
                        assert ended.reason is EndReason.REMOTE_HANGUP, ended
            if scenario == "cancel_ringing":
                ended = await call.wait_ended()
                assert ended.reason is EndReason.CANCELLED, ended
                with trio.fail_after(10):
                    while not got:
                        await trio.sleep(0.05)
            n.cancel_scope.cancel()

    return run


# -- sipp ---------------------------------------------------------------------------------------


def sipp_cell(scenario: str):  # type: ignore[no-untyped-def]
    async def run(ctx: object) -> None:
        workdir: Path = ctx.workdir  # type: ignore[attr-defined]
        if scenario == "calls_serve":
            port = free_port(HOST)
            argv = [sys.executable, "-m", "trio_sip", "serve", "--listen", f"{HOST}:{port}",
                    "--calls", "2"]  # fmt: skip
            async with trio.open_nursery() as n:
                served: list[subprocess.CompletedProcess[bytes]] = []

                async def serve() -> None:
                    served.append(await trio.run_process(argv, capture_stdout=True, check=False))

                n.start_soon(serve)
                await wait_udp_bound((HOST, port), timeout=15)
                sipp = sipp_argv(scenario="uac", local=(HOST, free_port(HOST)),
                                 remote=(HOST, port), calls=2, timeout=30)  # fmt: skip
                with trio.fail_after(40):
                    result = await run_sipp(sipp, workdir)
                    while not served:
                        await trio.sleep(0.1)
            assert result.returncode == ALL_CALLS_OK, result.describe()
            assert served[0].returncode == 0, served[0].stdout
            return
        if scenario in ("digest_401", "via_our_proxy"):
            await sipp_through_our_proxy(workdir, scenario)
            return
        async with open_user_agent([("UDP", HOST, 0)], aor=f"sip:alice@{HOST}") as ua:
            if scenario in ("hold_by_ua", "cancel_ringing"):
                await ua_calls_sipp_script(ua, workdir, scenario)
                return
            if scenario in ("calls_ua", "bye_by_peer"):
                address = ua.stack.listening[0][1]
                argv = sipp_argv(scenario="uac", local=(HOST, free_port(HOST)), remote=address,
                                 calls=1, timeout=30)  # fmt: skip
                async with trio.open_nursery() as n:
                    calls = []

                    async def answer() -> None:
                        async for incoming in ua.incoming_calls():
                            await incoming.ring()
                            calls.append(await incoming.accept())

                    n.start_soon(answer)
                    with trio.fail_after(40):
                        result = await run_sipp(argv, workdir)
                    n.cancel_scope.cancel()
                assert result.returncode == ALL_CALLS_OK, result.describe()
                (call,) = calls
                ended = await call.wait_ended()
                assert ended.reason is EndReason.REMOTE_HANGUP, ended
                return
            # ua_calls, bye_by_ua, over_mtu: our UA calls sipp's uas (UDP only: -t u1).
            address = (HOST, free_port(HOST))
            argv = sipp_argv(scenario="uas", local=address, calls=1, timeout=30)
            headers = [("X-Pad", "x" * BIG)] if scenario == "over_mtu" else []
            async with trio.open_nursery() as n:
                results = []

                async def sipp() -> None:
                    results.append(await run_sipp(argv, workdir))

                n.start_soon(sipp)
                await wait_udp_bound(address)
                with trio.fail_after(20):
                    async with ua.call(f"sip:service@{HOST}:{address[1]}", headers=headers) as call:
                        assert (await call.wait_answered()).status_code == 200
                        await trio.sleep(0.2)
                    ended = await call.wait_ended()
                    assert ended.reason is EndReason.LOCAL_HANGUP, ended
                with trio.fail_after(40):
                    while not results:
                        await trio.sleep(0.1)
            assert results[0].returncode == ALL_CALLS_OK, results[0].describe()

    return run


# -- dnsmasq ------------------------------------------------------------------------------------


async def dnsmasq_ua_calls(ctx: object) -> None:
    """Our UA calls ``sip:serve@serve.matrix.test``: dnsmasq's SRV record gives the port of a
    ``trio-sip serve`` that is not 5060, its A record the address."""
    workdir: Path = ctx.workdir  # type: ignore[attr-defined]
    from trio_sip.dns import DnspythonResolver

    dns_host = assert_loopback("127.0.0.62")
    serve_port = free_port(HOST)
    dns_port = free_port(dns_host)
    conf = workdir / "dnsmasq.conf"
    workdir.mkdir(parents=True, exist_ok=True)
    conf.write_text(
        f"host-record=node.matrix.test,{HOST}\n"
        f"srv-host=_sip._udp.matrix.test,node.matrix.test,{serve_port},10,0\n"
        "local=/matrix.test/\n"
    )
    binary = ensure_debian_packages("dnsmasq")["dnsmasq"]
    argv = [binary, "--keep-in-foreground", f"--conf-file={conf}", "--no-resolv", "--no-hosts",
            "--bind-interfaces", f"--listen-address={dns_host}", f"--port={dns_port}",
            "--pid-file=", "--log-facility=-", "--log-queries", "--user=root"]  # fmt: skip

    def ready() -> bool:
        query = dns.message.make_query("node.matrix.test", "A")
        return bool(dns.query.udp(query, dns_host, port=dns_port, timeout=0.2).answer)

    serve = [sys.executable, "-m", "trio_sip", "serve", "--listen", f"{HOST}:{serve_port}",
             "--calls", "1"]  # fmt: skip
    with running_peer("dnsmasq", argv, workdir=workdir, ready=ready) as peer:
        resolver = DnspythonResolver([dns_host], port=dns_port)
        async with (
            open_user_agent([("UDP", HOST, 0)], aor=f"sip:alice@{HOST}", resolver=resolver) as ua,
            trio.open_nursery() as n,
        ):
            n.start_soon(lambda: trio.run_process(serve, capture_stdout=True, check=False))
            await wait_udp_bound((HOST, serve_port), timeout=15)
            with trio.fail_after(20):
                async with ua.call("sip:serve@matrix.test") as call:
                    assert (await call.wait_answered()).status_code == 200
    log = peer.log_tail(100)
    assert "query[SRV] _sip._udp.matrix.test" in log, log


#: sipp UAS that rings and waits for the CANCEL (200 to it, 487 to the INVITE, the ACK).
CANCELLED_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="ring until cancelled">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:uas@[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]></send>
  <recv request="CANCEL"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]></send>
  <send><![CDATA[
      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: [cseq] INVITE
      Content-Length: 0
    ]]></send>
  <recv request="ACK"/>
</scenario>
"""


async def ua_calls_sipp_script(ua: object, workdir: Path, scenario: str) -> None:
    """Our UA calls a sipp UAS running an XML script: ``hold_by_ua`` (the soak's UAS: 200, any
    re-INVITEs, BYE) or ``cancel_ringing`` (180, then CANCEL, 487)."""
    from tests.soak.sites import UAS_XML

    from .sipp import write_scenario

    xml = UAS_XML if scenario == "hold_by_ua" else CANCELLED_XML
    path = write_scenario(workdir, scenario, xml)
    address = (HOST, free_port(HOST))
    argv = sipp_argv(scenario=path, local=address, calls=1, timeout=30)
    async with trio.open_nursery() as n:
        results = []

        async def sipp() -> None:
            results.append(await run_sipp(argv, workdir))

        n.start_soon(sipp)
        await wait_udp_bound(address)
        with trio.fail_after(20):
            async with ua.call(f"sip:uas@{HOST}:{address[1]}") as call:  # type: ignore[attr-defined]
                if scenario == "cancel_ringing":
                    while call.state.value != "ringing":
                        await trio.sleep(0.05)
                else:
                    assert (await call.wait_answered()).status_code == 200
                    assert (await call.hold()).status_code == 200
                    assert call.remote_sdp is not None
                    assert (await call.retrieve()).status_code == 200
            ended = await call.wait_ended()
            if scenario == "cancel_ringing":
                assert ended.reason is EndReason.CANCELLED, ended
                assert ended.response is not None and ended.response.status_code == 487, ended
            else:
                assert ended.reason is EndReason.LOCAL_HANGUP, ended
        with trio.fail_after(40):
            while not results:
                await trio.sleep(0.1)
    assert results[0].returncode == ALL_CALLS_OK, results[0].describe()


async def sipp_through_our_proxy(workdir: Path, scenario: str) -> None:
    """``digest_401``: sipp registers at our registrar (401, then digest; the soak's REGISTER
    scenario); ``via_our_proxy``: sipp's built-in uac calls sipp's built-in uas through our
    proxy (the uas bound statically to its AOR)."""
    from tests.soak.sites import REGISTER_XML

    from .matrix import DOMAIN, PASSWORDS, our_proxy
    from .sipp import write_scenario

    async with our_proxy(credentials=scenario == "digest_401") as (location, port):
        proxy = (DOMAIN, port)
        if scenario == "digest_401":
            contact = f"{HOST}:{free_port(HOST)}"
            # 60 s: our registrar's Min-Expires (30 s gets 423 Interval Too Brief)
            xml = REGISTER_XML.format(
                realm=DOMAIN, contact=contact, password=PASSWORDS["uas"], expires=60
            )
            path = write_scenario(workdir, "register", xml)
            argv = sipp_argv(
                scenario=path, local=(HOST, free_port(HOST)), remote=proxy, calls=1, timeout=10
            )
            with trio.fail_after(20):
                result = await run_sipp(argv, workdir)
            assert result.returncode == ALL_CALLS_OK, result.describe()
            bound = [
                str(b.contact) for b in location.lookup(f"sip:uas@{DOMAIN}", trio.current_time())
            ]
            assert bound == [f"sip:uas@{contact}"], bound
            return
        uas = (HOST, free_port(HOST))
        location.add_static(f"sip:service@{DOMAIN}", f"sip:service@{uas[0]}:{uas[1]}")
        uas_argv = sipp_argv(scenario="uas", local=uas, calls=1, timeout=30)
        uac_argv = sipp_argv(
            scenario="uac",
            local=(HOST, free_port(HOST)),
            remote=proxy,
            calls=1,
            timeout=30,
            extra=("-s", "service", "-pause_msg_ign"),
        )
        async with trio.open_nursery() as n:
            results = {}

            async def run(name: str, argv: list[str]) -> None:
                results[name] = await run_sipp(argv, workdir / name)

            n.start_soon(run, "uas", uas_argv)
            await wait_udp_bound(uas)
            with trio.fail_after(40):
                await run("uac", uac_argv)
                while "uas" not in results:
                    await trio.sleep(0.1)
        for name in ("uac", "uas"):
            assert results[name].returncode == ALL_CALLS_OK, results[name].describe()
