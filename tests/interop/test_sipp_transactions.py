"""Our transaction layer against sipp (loopback only, every run bounded).

sipp as UAC (built-in ``uac``: INVITE/ACK/BYE; OPTIONS retransmitted with the same branch;
OPTIONS through sipp's simulated packet loss) against our server side, and sipp as UAS
(built-in ``uas``) answering our client side's INVITE, ACK (sent statelessly) and BYE.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import trio

from trio_sip.proto.errors import TransportError
from trio_sip.proto.message import Request, Response
from trio_sip.proto.target import Target
from trio_sip.proto.transaction import ServerInviteState
from trio_sip.stack import IncomingRequest, open_stack
from trio_sip.transports import Flow

from .peers import free_port
from .sipp import (
    ALL_CALLS_OK,
    INVITE_REJECTED,
    OPTIONS,
    run_sipp,
    sipp_argv,
    write_scenario,
)

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"


class Server:
    """Our server side: counts what the handler and the stray hook see."""

    def __init__(self, reject: int | None = None) -> None:
        self.reject = reject
        self.handled: Counter[str] = Counter()
        self.strays: Counter[str] = Counter()
        self.incoming: list[IncomingRequest] = []

    async def handler(self, incoming: IncomingRequest) -> None:
        self.handled[incoming.method] += 1
        self.incoming.append(incoming)
        if self.reject is not None:
            await incoming.respond(self.reject)
        elif incoming.method == "INVITE":
            await incoming.respond(180)
            _, (host, port) = incoming.flow.transport, incoming.flow.local
            await incoming.respond(200, headers=[("Contact", f"<sip:bob@{host}:{port}>")])
        else:
            await incoming.respond(200)

    def on_stray(self, message: Request | Response, flow: Flow) -> None:
        name = message.method if isinstance(message, Request) else str(message.status_code)
        self.strays[name] += 1


async def _serve_sipp(
    tmp_path: Path, scenario: str | Path, calls: int, *extra: str, server: Server | None = None
) -> Server:
    server = server or Server()
    async with open_stack(
        [("UDP", HOST, 0)], handler=server.handler, on_stray=server.on_stray
    ) as stack:
        (_, address) = stack.listening[0]
        argv = sipp_argv(
            scenario=scenario,
            local=(HOST, free_port(HOST)),
            remote=address,
            calls=calls,
            timeout=30,
            extra=("-r", "10", *extra),
        )
        with trio.fail_after(40):
            run = await run_sipp(argv, tmp_path)
        assert run.returncode == ALL_CALLS_OK, run.describe()
        assert stack.statistics().handlers == 0
    return server


async def test_sipp_uac_invite_ack_bye(tmp_path: Path) -> None:
    server = await _serve_sipp(tmp_path, "uac", 5)
    assert server.handled == {"INVITE": 5, "BYE": 5}
    assert server.strays == {"ACK": 5}  # ACKs for 2xx are not part of the transaction


async def test_sipp_rejected_invites_through_packet_loss(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path, "invite_486", INVITE_REJECTED)
    server = Server(reject=486)
    await _serve_sipp(tmp_path, scenario, 20, "-lost", "5", server=server)
    # Lost INVITEs and 486s were retransmitted; each INVITE reached the handler once.
    assert server.handled == {"INVITE": 20}
    assert server.strays == {}  # every ACK matched its INVITE transaction
    # Every transaction got its ACK (Confirmed, or already Terminated by Timer I).
    states = {incoming.state for incoming in server.incoming}
    assert states <= {ServerInviteState.CONFIRMED, ServerInviteState.TERMINATED}, states


async def test_sipp_options_through_packet_loss(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path, "options", OPTIONS)
    server = await _serve_sipp(tmp_path, scenario, 30, "-lost", "10")
    # sipp retransmitted what it "lost"; every retransmission was absorbed by our server.
    assert server.handled == {"OPTIONS": 30}


def _invite(sipp: tuple[str, int], contact: tuple[str, int], call_id: str) -> Request:
    host, port = sipp
    return Request(
        "INVITE",
        f"sip:service@{host}:{port}",
        [
            ("Max-Forwards", "70"),
            ("From", "<sip:trio@127.0.0.1>;tag=trio1"),
            ("To", f"<sip:service@{host}:{port}>"),
            ("Call-ID", call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", f"<sip:trio@{contact[0]}:{contact[1]}>"),
        ],
    )


def _in_dialog(method: str, invite: Request, ok: Response, seq: int) -> Request:
    """ACK (§13.2.2.4) or BYE (§15.1.1) inside the dialog the 200 created."""
    uri = ok.contacts[0].uri if ok.contacts else invite.uri
    return Request(
        method,
        str(uri),
        [
            ("Max-Forwards", "70"),
            ("From", invite.headers["From"]),
            ("To", ok.headers["To"]),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{seq} {method}"),
        ],
    )


async def test_sipp_uas_answers_our_client(tmp_path: Path) -> None:
    sipp_address = (HOST, free_port(HOST))
    argv = sipp_argv(scenario="uas", local=sipp_address, calls=1, timeout=30)
    strays: list[Request | Response] = []
    async with (
        open_stack([("UDP", HOST, 0)], on_stray=lambda m, f: strays.append(m)) as stack,
        trio.open_nursery() as nursery,
    ):
        result: list[object] = []

        async def sipp() -> None:
            with trio.fail_after(40):
                result.append(await run_sipp(argv, tmp_path))

        nursery.start_soon(sipp)
        target = Target("UDP", *sipp_address)
        (_, contact) = stack.listening[0]
        with trio.fail_after(20):
            while True:  # until sipp listens (before that: ICMP port unreachable, at once)
                try:
                    async with stack.send_request(
                        _invite(sipp_address, contact, "trio-sipp-1"), target
                    ) as tx:
                        statuses = [r.status_code async for r in tx if isinstance(r, Response)]
                        invite, ok = tx.request, tx.final_response
                    break
                except TransportError:
                    await trio.sleep(0.1)
            assert statuses[-1] == 200 and 180 in statuses
            assert ok is not None and ok.to.tag is not None
            # The ACK for a 2xx is sent outside any transaction, with a new branch.
            ack = await stack.send_stateless(_in_dialog("ACK", invite, ok, 1), target)
            assert ack.vias[0].branch != invite.vias[0].branch
            await trio.sleep(0.2)
            bye = await stack.request(_in_dialog("BYE", invite, ok, 2), target)
            assert bye.status_code == 200
        with trio.fail_after(40):
            while not result:
                await trio.sleep(0.1)
        run = result[0]
        assert getattr(run, "returncode", None) == ALL_CALLS_OK, getattr(run, "describe", str)()
        # sipp's 200 retransmissions before our ACK (if any) reached the TU, not a new tx.
        assert all(isinstance(m, Response) and m.status_code == 200 for m in strays)
