"""trio-sip UASes for the ``uas`` and ``memory`` benchmarks: every call is rung and answered.

Run as a process: ``python -m benchmarks.peers.trio_sip_uas KIND HOST PORT LIFETIME`` (the
source tree), or through :func:`main` with ``compiled=True`` (the installed compiled build, see
``benchmarks/uas_bench.py``), where ``KIND`` is

* ``ua``: the simplest correct UAS on the public user-agent API: an ``open_user_agent``
  incoming-call loop that rings (180) and accepts (200 with ``answer_for(offer)``); the agent
  itself absorbs the ACK (its 2xx/ACK machine) and answers the BYE 200.
* ``stack``: the transaction layer only (``open_stack``): a handler answers an INVITE 180,
  then 200 with a fixed SDP answer and our Contact, and resends the 2xx at T1, 2*T1, ...
  (capped at T2, for at most 64*T1) until the ACK arrives through ``on_stray`` (the TU's job,
  RFC 6026); BYE (and anything else) gets 200.  No dialog state beyond a Call-ID -> Event map.

It prints ``READY <port>`` once listening, and exits after ``LIFETIME`` seconds at the latest
(the benchmark kills it by PID earlier).
"""

from __future__ import annotations

import sys
from typing import Any

import trio

from trio_sip import Limits
from trio_sip.proto.message import Request, Response
from trio_sip.stack import IncomingRequest, open_stack
from trio_sip.transports.base import Flow
from trio_sip.ua import open_user_agent

ANSWER = (
    "v=0\r\n"
    "o=- 1 1 IN IP4 {host}\r\n"
    "s=-\r\n"
    "c=IN IP4 {host}\r\n"
    "t=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=sendrecv\r\n"
)

T1, T2 = 0.5, 4.0
#: The benchmark's sipp places every call from one address, far over the default per-source
#: request rate (a protection for exposed services, docs/security.md): turned off here.
LIMITS = Limits(request_rate=None)


async def serve_ua(
    host: str, port: int, backend: Any = None, *, task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    """The user-agent UAS (runs until cancelled); ``backend``: a FakeNetwork's, for tests."""
    async with open_user_agent(
        [("UDP", host, port)], aor=f"sip:bench@{host}", backend=backend, limits=LIMITS
    ) as ua:
        task_status.started(ua.stack.listening[0][1][1])
        async for incoming in ua.incoming_calls():
            await incoming.ring()
            await incoming.accept()


async def serve_stack(host: str, port: int, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """The transaction-layer UAS (runs until cancelled)."""
    acks: dict[str, trio.Event] = {}
    body = ANSWER.format(host=host).encode()

    def on_stray(message: Request | Response, flow: Flow) -> None:
        if isinstance(message, Request) and message.method == "ACK":
            event = acks.pop(message.call_id, None)
            if event is not None:
                event.set()

    async def handler(incoming: IncomingRequest) -> None:
        if incoming.method != "INVITE":
            await incoming.respond(200)
            return
        contact = ("Contact", f"<sip:bench@{host}:{port}>")
        await incoming.respond(180, headers=[contact])
        acked = acks[incoming.request.call_id] = trio.Event()
        ok = await incoming.respond(
            200, headers=[contact, ("Content-Type", "application/sdp")], body=body
        )
        interval, waited = T1, 0.0
        while waited < 64 * T1:
            with trio.move_on_after(interval):
                await acked.wait()
                return
            waited += interval
            interval = min(2 * interval, T2)
            await incoming.respond(ok)
        acks.pop(incoming.request.call_id, None)

    async with open_stack(
        [("UDP", host, port)], handler=handler, on_stray=on_stray, limits=LIMITS
    ) as stack:
        port = stack.listening[0][1][1]
        task_status.started(port)
        await trio.sleep_forever()


SERVERS = {"ua": serve_ua, "stack": serve_stack}


async def _main(kind: str, host: str, port: int, lifetime: float) -> None:
    with trio.move_on_after(lifetime):
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(SERVERS[kind], host, port)
            print(f"READY {bound}", flush=True)


def main(argv: list[str], *, compiled: bool = False) -> None:
    """``KIND HOST PORT LIFETIME``; ``compiled``: refuse to run unless the imported core is the
    mypyc-compiled build (the ``trio-sip-mypyc`` rows of the benchmark)."""
    if compiled:
        from trio_sip.proto import is_compiled

        if not is_compiled():
            sys.exit("the imported trio_sip core is not the compiled build")
    trio.run(_main, argv[0], argv[1], int(argv[2]), float(argv[3]))


if __name__ == "__main__":
    main(sys.argv[1:])
