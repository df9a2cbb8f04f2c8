"""sipp through our proxy: ``sipp -sn uac`` → our site → ``sipp -sn uas`` (loopback, bounded).

The sipp UAS does not register: it is a static binding in the site's location service. sipp's
UAC sends to ``service@<proxy>``; the proxy maps that to ``sip:service@example.com`` (its own
address is an alias of its domain), forwards the INVITE, the ACK for the 2xx and the BYE.
A sipp UAC that CANCELs a ringing call through the stateful site gets the callee's 487 (the
callee is our stack, a UA), not one made by the proxy (§16.10).
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest
import trio

from trio_sip.proto.location import LocationService
from trio_sip.proto.message import Response
from trio_sip.proto.parse import parse_message
from trio_sip.proto.transaction import TimeoutRole
from trio_sip.proxy import open_proxy
from trio_sip.stack import IncomingRequest, open_stack

from .peers import free_port
from .sipp import ALL_CALLS_OK, SippRun, run_sipp, sipp_argv, write_scenario

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"


def _udp_port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


@pytest.mark.parametrize("role", [TimeoutRole.STATEFUL_PROXY, TimeoutRole.STATELESS_PROXY])
async def test_sipp_uac_through_proxy_to_sipp_uas(tmp_path: Path, role: TimeoutRole) -> None:
    uas_port = free_port(HOST)
    location = LocationService()
    location.add_static("sip:service@example.com", f"sip:service@{HOST}:{uas_port}")
    calls = 3
    uas_argv = sipp_argv(scenario="uas", local=(HOST, uas_port), calls=calls, timeout=30)
    results: dict[str, SippRun] = {}

    async def run(name: str, argv: list[str]) -> None:
        with trio.fail_after(45):
            results[name] = await run_sipp(argv, tmp_path / name)

    async with (
        open_proxy(
            [("UDP", HOST, 0)], domain="example.com", location_service=location, role=role
        ) as proxy,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(run, "uas", uas_argv)
        with trio.fail_after(10):
            while not _udp_port_taken(uas_port):
                await trio.sleep(0.05)
        uac_argv = sipp_argv(
            scenario="uac",
            local=(HOST, free_port(HOST)),
            remote=proxy.address,
            calls=calls,
            timeout=30,
            # A stateless site forwards each response in its own task: a 180 may arrive after
            # the 200, during the pause after the ACK (docs real-peers.md: -pause_msg_ign).
            extra=("-s", "service", "-r", "5", "-pause_msg_ign"),
        )
        await run("uac", uac_argv)
        with trio.fail_after(45):
            while "uas" not in results:
                await trio.sleep(0.1)
        stats = proxy.statistics()
    assert results["uac"].returncode == ALL_CALLS_OK, results["uac"].describe()
    assert results["uas"].returncode == ALL_CALLS_OK, results["uas"].describe()
    assert stats.forwarded_requests >= 3 * calls  # INVITE, ACK, BYE per call
    if role is TimeoutRole.STATELESS_PROXY:
        assert stats.stack.client_transactions == stats.stack.server_transactions == 0


#: INVITE, CANCEL after the 180 (same branch, §9.1), 200 for the CANCEL, 487 for the INVITE,
#: ACK (the INVITE's branch, §17.1.1.3). Stateful proxy only: it answers the CANCEL itself at
#: once, so the 200 comes before the 487 (through a stateless proxy both come from the callee
#: and may cross; sipp aborts a call on a 200 after the 487, so that role is tested in virtual
#: time, tests/shell/test_proxy_fake.py).
CANCEL_AFTER_RINGING = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="CANCEL after ringing">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180"/>
  <send retrans="500">
    <![CDATA[
      CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-3]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 CANCEL
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
  <recv response="487"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-6]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <pause milliseconds="300"/>
</scenario>
"""


def _received_responses(workdir: Path, status: int) -> list[Response]:
    """The responses with ``status`` that sipp logged as received (``-trace_msg``)."""
    out: list[Response] = []
    for log in workdir.glob("*_messages.log"):
        for chunk in log.read_text(errors="replace").split(
            "----------------------------------------------- "
        )[1:]:
            head, _, body = chunk.partition("\n\n")
            if "message received" not in head:
                continue
            message = parse_message(body.strip("\n").replace("\n", "\r\n").encode() + b"\r\n\r\n")
            if isinstance(message, Response) and message.status_code == status:
                out.append(message)
    return out


async def test_sipp_uac_cancels_through_stateful_proxy(tmp_path: Path) -> None:
    # §16.10: sipp (the caller) gets 200 for its CANCEL and then the callee's 487, with the
    # callee's To tag, once per call; the callee (our stack, a UA) got the proxy's CANCEL.
    callee_port = free_port(HOST)
    location = LocationService()
    location.add_static("sip:service@example.com", f"sip:service@{HOST}:{callee_port}")
    ringing: list[IncomingRequest] = []

    async def ring_until_cancelled(incoming: IncomingRequest) -> None:
        if incoming.method != "INVITE":
            await incoming.respond(200)
            return
        ringing.append(incoming)
        await incoming.respond(180)
        await incoming.wait_cancelled()  # the stack (a UA) answers 487 itself

    calls = 2
    scenario = write_scenario(tmp_path, "cancel", CANCEL_AFTER_RINGING)
    async with (
        open_proxy([("UDP", HOST, 0)], domain="example.com", location_service=location) as proxy,
        open_stack([("UDP", HOST, callee_port)], handler=ring_until_cancelled),
    ):
        argv = sipp_argv(
            scenario=scenario,
            local=(HOST, free_port(HOST)),
            remote=proxy.address,
            calls=calls,
            timeout=30,
            extra=("-s", "service", "-trace_msg"),
        )
        with trio.fail_after(45):
            result = await run_sipp(argv, tmp_path / "uac")
        await trio.sleep(0.5)
    assert result.returncode == ALL_CALLS_OK, result.describe()
    assert len(ringing) == calls and all(i.cancelled for i in ringing)
    finals = _received_responses(tmp_path / "uac", 487)
    assert sorted(r.to.tag or "" for r in finals) == sorted(i.to_tag for i in ringing)
