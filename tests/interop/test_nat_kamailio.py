"""Incoming calls behind a real NAT, through Kamailio with nathelper (issue #11).

The endpoint (open_endpoint) lives on a "private" address behind a real NAT on loopback
(nftables source NAT with an 8 s UDP binding timer: tests/interop/nat.py); Kamailio, started
here with nathelper (``nat_uac_test``, ``fix_nated_register``, ``fix_nated_contact``: see
tests/interop/kamailio.py), stores the REGISTER's *source*, i.e. the NAT binding, and sends
incoming INVITEs there. The endpoint keeps that binding open with NULL keep-alives (seed 000)
and its client idle timeout is 2 s. When REGISTER left from a per-destination socket (before
issue #11), that socket closed after 2 s, its binding died 8 s later while the keep-alives
refreshed another one (the SIP port's), and the call below was lost: Kamailio sent the INVITE
to the dead binding until sipp gave up (this test, run against that code, fails with sipp
timing out). Now REGISTER, keep-alives and answers all leave from the SIP port, so after 14
idle seconds sipp's call through Kamailio still reaches the endpoint.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trio

from trio_sip.config import ConnectionConfig, EndpointConfig
from trio_sip.endpoint import open_endpoint
from trio_sip.transports import TransportConfig

from .kamailio import running_kamailio
from .nat import real_nat
from .peers import assert_loopback, free_port
from .sipp import ALL_CALLS_OK, run_sipp, sipp_argv, write_scenario

pytestmark = pytest.mark.interop

PRIVATE = assert_loopback("127.0.0.41")  # the endpoint, behind the NAT
PUBLIC = assert_loopback("127.0.0.42")  # the NAT's outside address
CALLER = assert_loopback("127.0.0.43")  # sipp
SERVER = assert_loopback("127.0.0.44")  # Kamailio
#: sipp calls through Kamailio, record-route aware: INVITE, 200, ACK and BYE along the route
#: set (to the Contact of our 200, which Kamailio's fix_nated_contact made the NAT binding).
CALL = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="call through Kamailio, caller hangs up">
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
  <recv response="200" rrs="true"/>
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
  <pause milliseconds="500"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      [routes]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""
NAT_TIMEOUT = 8  # seconds a NAT binding lives without traffic
IDLE_TIMEOUT = 2.0  # the endpoint's client idle timeout (TransportConfig.idle_timeout)
KEEPALIVE = 2  # keep_alive_period


async def test_an_incoming_call_reaches_the_endpoint_behind_a_nat(tmp_path: Path) -> None:
    sip_port = free_port(PRIVATE)
    users = {"alice": "wonderland"}
    with (
        running_kamailio(tmp_path / "kamailio", users, host=SERVER, nat=True) as kamailio,
        real_nat(PRIVATE, PUBLIC, kamailio.address, sip_port, timeout=NAT_TIMEOUT) as nat,
    ):
        config = EndpointConfig(
            sip_transaction_timeout=4000,
            keep_alive_period=KEEPALIVE,
            connections=[
                ConnectionConfig(id="kam", user="alice@example.com", password="wonderland",
                                 server=f"{SERVER}:{kamailio.port}", expires=300,
                                 reg_interval=30),
            ],
        )  # fmt: skip
        answered: list[str] = []
        async with (
            open_endpoint(
                config, listen=[("UDP", PRIVATE, sip_port)],
                transport_config=TransportConfig(idle_timeout=IDLE_TIMEOUT),
            ) as endpoint,
            trio.open_nursery() as nursery,
        ):  # fmt: skip

            async def answer() -> None:
                async for incoming in endpoint.incoming_calls():
                    await incoming.accept()
                    answered.append(incoming.connection_id)

            with trio.fail_after(10):
                await endpoint.wait_registered()
            nursery.start_soon(answer)
            binding = nat.public_address(sip_port)
            assert binding is not None and binding[0] == PUBLIC, binding
            # Every per-destination socket of old, and its NAT binding, would be gone by now.
            await trio.sleep(IDLE_TIMEOUT + NAT_TIMEOUT + 4)
            assert nat.public_address(sip_port) == binding  # kept by the keep-alives
            argv = sipp_argv(
                scenario=write_scenario(tmp_path, "caller", CALL),
                local=(CALLER, free_port(CALLER)),
                remote=kamailio.address,
                timeout=20,
                extra=["-s", "alice"],
            )
            with trio.fail_after(30):
                result = await run_sipp(argv, tmp_path / "sipp")
            assert result.returncode == ALL_CALLS_OK, result.describe()
            assert answered == ["kam"]
            dump = kamailio.ul_dump()
            nursery.cancel_scope.cancel()
        counters = nat.counters()
    # The registrar stored the REGISTER's source: the NAT binding of our SIP port.
    public_host, public_port = binding
    assert re.search(rf"Received: sip:{re.escape(public_host)}:{public_port}\b", dump), dump
    assert re.search(rf"Address: sip:alice@{re.escape(PRIVATE)}:{sip_port}\b", dump), dump
    # A capture at the NAT: everything to Kamailio came from the SIP port, nothing from others.
    assert counters["from_sip_port"] > 0 and counters["from_other_ports"] == 0, counters
    # Kamailio's own log: REGISTER, our answers to the INVITE and the BYE, all from one binding.
    log = kamailio.process.log_tail(2000)
    sources = set(re.findall(r"(?:request REGISTER|reply \d+ (?:INVITE|BYE)) .*?from (\S+)", log))
    assert sources == {f"{public_host}:{public_port}"}, log
    assert re.search(r"reply 200 INVITE from", log) and re.search(r"reply 200 BYE from", log)
