"""Our user agent against Kamailio (registrar + record-routing proxy) on loopback.

Kamailio is started by the test with its own config (tests/interop/kamailio.py) and stopped
by PID; bindings are checked with ``kamcmd ul.dump``, i.e. from Kamailio's own point of view.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from trio_sip.proto.auth import CredentialStore
from trio_sip.proto.registration import RegistrationState
from trio_sip.proto.target import Target
from trio_sip.stack import open_stack
from trio_sip.ua.agent import UserAgent, open_user_agent
from trio_sip.ua.registration import RegistrationFailed, Registrations, UaRegistration

from .baresip import running_baresip
from .kamailio import Kamailio, running_kamailio
from .peers import free_port
from .sipp import ALL_CALLS_OK, SippRun, run_sipp, sipp_argv, write_scenario

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"
USERS = {"alice": "wonderland", "bob": "builder"}


def alice_bindings(kamailio: Kamailio) -> list[tuple[str, int]]:
    return [(b.address, b.cseq) for b in kamailio.bindings() if b.aor == "alice"]


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_digest_registration_at_kamailio_refreshes_on_time_and_unregisters(
    tmp_path: Path, transport: str
) -> None:
    with running_kamailio(tmp_path, USERS) as kamailio:
        async with (
            open_stack([(transport, HOST, 0)], rng=random.Random()) as stack,
            trio.open_nursery() as nursery,
        ):
            (_, (_, port)) = stack.listening[0]
            suffix = "" if transport == "UDP" else ";transport=tcp"
            contact = f"sip:alice@{HOST}:{port}{suffix}"
            registrations = Registrations(stack, nursery)
            with trio.fail_after(10):
                reg = await registrations.register(
                    "<sip:alice@example.com>",
                    Target(transport, *kamailio.address),
                    contact=f"<{contact}>",
                    expires=10,
                    credentials=("alice", USERS["alice"]),
                )
                await reg.wait_registered()
            registered_at = trio.current_time()
            first = alice_bindings(kamailio)
            assert [address for address, _ in first] == [contact]
            assert reg.statistics().granted == 10
            # Refresh due at max(10 - 32, 10 / 2) = 5 s after each 2xx: watch Kamailio's CSeq.
            refreshes: list[float] = []
            last_cseq = first[0][1]
            with trio.fail_after(15):
                while len(refreshes) < 2:
                    await trio.sleep(0.2)
                    now = alice_bindings(kamailio)
                    assert now, "the binding expired at Kamailio"
                    if now[0][1] != last_cseq:
                        refreshes.append(trio.current_time() - registered_at)
                        last_cseq = now[0][1]
            assert 4.5 <= refreshes[0] <= 6.0, refreshes
            assert 9.5 <= refreshes[1] <= 11.0, refreshes
            assert reg.state is RegistrationState.REGISTERED
            assert reg.statistics().failures == 0
            with trio.fail_after(10):
                await reg.aclose()
            assert alice_bindings(kamailio) == []
            assert reg.statistics().state is RegistrationState.UNREGISTERED
            nursery.cancel_scope.cancel()


async def test_wrong_password_at_kamailio_is_a_failed_registration(tmp_path: Path) -> None:
    with running_kamailio(tmp_path, USERS) as kamailio:
        async with (
            open_stack([("UDP", HOST, 0)]) as stack,
            trio.open_nursery() as nursery,
        ):
            (_, (_, port)) = stack.listening[0]
            registrations = Registrations(stack, nursery)
            reg = await registrations.register(
                "<sip:alice@example.com>",
                Target("UDP", *kamailio.address),
                contact=f"<sip:alice@{HOST}:{port}>",
                credentials=("alice", "not the password"),
                reg_interval=0,
            )
            with trio.fail_after(10), pytest.raises(RegistrationFailed, match="401"):
                await reg.wait_registered()
            assert reg.state is RegistrationState.FAILED
            assert alice_bindings(kamailio) == []
            nursery.cancel_scope.cancel()


# -- calls through Kamailio ------------------------------------------------------------------

#: sipp as the caller: INVITE through Kamailio; after the ACK it answers our hold and retrieve
#: re-INVITEs (which come back through Kamailio, record-routed) and our BYE.
CALLER_HELD_BY_CALLEE = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="call answered, held and retrieved by the callee, who hangs up">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true">
    <!-- Kamailio record-routes the INVITE; our 200 must mirror it (RFC 3261 §12.1.1), or the
         call fails here: then the ACK and BYE would bypass the proxy. -->
    <action>
      <ereg regexp="Record-Route: [^\r\n]*;lr" search_in="msg" check_it="true" assign_to="rr"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      [routes]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv request="INVITE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 2 IN IP4 [local_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=recvonly
    ]]>
  </send>
  <recv request="ACK"/>
  <recv request="INVITE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 3 IN IP4 [local_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=sendrecv
    ]]>
  </send>
  <recv request="ACK"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <Reference variables="rr"/>
</scenario>
"""


@asynccontextmanager
async def registered_agent(
    kamailio: Kamailio, user: str = "alice"
) -> AsyncIterator[tuple[UserAgent, UaRegistration]]:
    """Our UA on loopback, registered at Kamailio with digest auth."""
    async with (
        open_user_agent(
            [("UDP", HOST, 0)],
            aor=f"sip:{user}@example.com",
            credentials=CredentialStore(default=(user, USERS[user])),
        ) as ua,
        trio.open_nursery() as nursery,
    ):
        registrations = Registrations(ua.stack, nursery, failover=ua.failover)
        with trio.fail_after(10):
            reg = await registrations.register(
                str(ua.aor),
                Target("UDP", *kamailio.address),
                contact=str(ua.contact),
                credentials=ua.credentials,
                expires=60,
            )
            await reg.wait_registered()
        yield ua, reg
        with trio.fail_after(10):
            await registrations.aclose()
        nursery.cancel_scope.cancel()


async def test_sipp_calls_our_ua_through_kamailio_we_hold_retrieve_and_hang_up(
    tmp_path: Path,
) -> None:
    with running_kamailio(tmp_path / "kamailio", USERS) as kamailio:
        async with registered_agent(kamailio) as (ua, _reg), trio.open_nursery() as nursery:
            scenario = write_scenario(tmp_path, "caller", CALLER_HELD_BY_CALLEE)
            argv = sipp_argv(
                scenario=scenario,
                local=(HOST, free_port(HOST)),
                remote=kamailio.address,
                timeout=30,
                extra=("-s", "alice"),
            )
            runs: list[SippRun] = []

            async def run() -> None:
                runs.append(await run_sipp(argv, tmp_path / "sipp"))

            nursery.start_soon(run)
            with trio.fail_after(40):
                async for incoming in ua.incoming_calls():
                    await incoming.ring()
                    call = await incoming.accept()
                    assert (await call.hold()).status_code == 200
                    held = call.held
                    assert (await call.retrieve()).status_code == 200
                    assert (held, call.held) == (True, False)
                    await call.hangup()
                    break
                while not runs:
                    await trio.sleep(0.1)
            assert runs[0].returncode == ALL_CALLS_OK, runs[0].describe()


async def test_our_ua_calls_a_sipp_uas_through_kamailio_and_hangs_up(tmp_path: Path) -> None:
    with running_kamailio(tmp_path / "kamailio", USERS) as kamailio:
        async with registered_agent(kamailio) as (ua, _reg), trio.open_nursery() as nursery:
            sipp_port = free_port(HOST)
            # sipp's built-in UAS registers nothing: bind "bob" to it in Kamailio by a
            # third-party REGISTER from our stack (authorised as bob).
            registrations = Registrations(ua.stack, nursery, failover=ua.failover)
            with trio.fail_after(10):
                bob = await registrations.register(
                    "<sip:bob@example.com>",
                    Target("UDP", *kamailio.address),
                    contact=f"<sip:bob@{HOST}:{sipp_port}>",
                    credentials=("bob", USERS["bob"]),
                )
                await bob.wait_registered()
            argv = sipp_argv(scenario="uas", local=(HOST, sipp_port), timeout=30)
            runs: list[SippRun] = []

            async def run() -> None:
                runs.append(await run_sipp(argv, tmp_path / "sipp"))

            nursery.start_soon(run)
            await trio.sleep(0.5)  # sipp binds its port
            with trio.fail_after(30):
                proxy = f"sip:{kamailio.host}:{kamailio.port}"
                async with ua.call("sip:bob@example.com", outbound_proxy=proxy) as call:
                    await call.wait_answered()
                    await trio.sleep(0.2)
                    await call.hangup()
                while not runs:
                    await trio.sleep(0.1)
            assert runs[0].returncode == ALL_CALLS_OK, runs[0].describe()
            with trio.fail_after(10):
                await bob.aclose()


async def test_our_ua_calls_baresip_through_kamailio_and_hangs_up(tmp_path: Path) -> None:
    with (
        running_kamailio(tmp_path / "kamailio", USERS) as kamailio,
        running_baresip(
            tmp_path / "baresip", user="bob", password=USERS["bob"], registrar=kamailio.address
        ) as baresip,
    ):
        assert [b.aor for b in kamailio.bindings()] == ["bob"]
        async with registered_agent(kamailio) as (ua, _reg):
            proxy = f"sip:{kamailio.host}:{kamailio.port}"
            with trio.fail_after(20):
                async with ua.call("sip:bob@example.com", outbound_proxy=proxy) as call:
                    answer = await call.wait_answered()
                    assert answer.status_code == 200
                    assert b"m=audio" in answer.body
                    await trio.sleep(1)
                    await call.hangup()
            with trio.fail_after(5):  # baresip logs the BYE it received
                while "Call with sip:alice@example.com terminated" not in baresip.log():
                    await trio.sleep(0.1)
            assert "Call established: sip:alice@example.com" in baresip.log()
