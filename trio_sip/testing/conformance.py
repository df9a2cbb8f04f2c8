"""``check_transport``: the behaviour every transport implementation must show.

Theory of operation
-------------------
Modelled on trio's ``check_two_way_stream`` (``trio.testing._check_streams``): one async
suite, parametrised by factories, run against UDP, TCP and TLS on real sockets and against
:class:`~trio_sip.testing.network.FakeNetwork`. It drives two transport layers the way the
transaction layer will and checks what RFC 3261 §18 requires of a transport:

1. ``listen`` reports a bound address through ``nursery.start``;
2. ``connect`` returns a flow with the right transport, reliability and remote address, and
   reuses it (also under concurrent connects, §18.1.1 / RFC 5923);
3. a request arrives parsed, once, with ``received``/``rport`` stamped in its top Via
   (§18.2.1, RFC 3581 §4), on a flow whose remote is the client's local address;
4. ``send_response`` on that flow gets the response back to the client's flow (§18.2.2), and
   several messages on one flow arrive in order;
5. closing a flow tells its watchers (``FlowFailed``), makes ``send`` raise
   ``TransportError``, and the next ``connect`` opens a fresh flow;
6. closing the layers leaves no flow and no listener.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import trio

from trio_sip.proto.errors import TransportError
from trio_sip.proto.message import Request, Response, make_response
from trio_sip.proto.target import Target, is_reliable
from trio_sip.transports.base import Flow, FlowEvent, FlowFailed, Message
from trio_sip.transports.pool import TransportLayer

__all__ = ["check_transport", "make_request"]

OpenLayer = Callable[[], AbstractAsyncContextManager[TransportLayer]]
#: How long (trio clock) the suite waits for any one message.
WAIT = 5.0


def make_request(transport: str, *, seq: int = 1, call_id: str = "conformance-1") -> Request:
    """An OPTIONS request whose Via names an unresolvable sent-by and asks for ``rport``."""
    return Request(
        "OPTIONS",
        "sip:server@example.com",
        [
            ("Via", f"SIP/2.0/{transport} client.invalid:5060;branch=z9hG4bK-c{seq};rport"),
            ("Max-Forwards", "70"),
            ("From", "<sip:client@example.com>;tag=c1"),
            ("To", "<sip:server@example.com>"),
            ("Call-ID", call_id),
            ("CSeq", f"{seq} OPTIONS"),
        ],
    )


class _Inbox:
    def __init__(self) -> None:
        self.send, self.receive = trio.open_memory_channel[tuple[Message, Flow]](math.inf)

    def __call__(self, message: Message, flow: Flow) -> None:
        self.send.send_nowait((message, flow))

    async def get(self) -> tuple[Message, Flow]:
        with trio.fail_after(WAIT):
            return await self.receive.receive()


async def check_transport(
    open_client: OpenLayer, open_server: OpenLayer, transport: str, host: str
) -> None:
    """Run the suite: the server listens on ``(transport, host, 0)``, the client connects."""
    client_inbox, server_inbox = _Inbox(), _Inbox()
    async with open_server() as server, open_client() as client, trio.open_nursery() as nursery:
        server.on_message = server_inbox
        client.on_message = client_inbox

        # 1. listen
        address = await nursery.start(server.listen, transport, host, 0)
        assert address[1] != 0, f"listen reported no port: {address}"
        assert (transport, address) in server.listening

        # 2. connect, reuse (also concurrent)
        target = Target(transport, address[0], address[1])
        flow = await client.connect(target)
        assert (flow.transport, flow.remote) == (transport, address), flow
        assert flow.reliable == is_reliable(transport), flow
        assert flow.state == "OPEN", flow
        assert await client.connect(target) is flow, "connect did not reuse the open flow"
        results: list[Flow] = []

        async def connect_again() -> None:
            results.append(await client.connect(target))

        async with trio.open_nursery() as inner:
            inner.start_soon(connect_again)
            inner.start_soon(connect_again)
        assert results == [flow, flow], "concurrent connects did not share the flow"

        # 3. request in, Via stamped
        await flow.send(bytes(make_request(transport)))
        request, server_flow = await server_inbox.get()
        assert isinstance(request, Request) and request.method == "OPTIONS", request
        via = request.vias[0]
        assert via.received == flow.local[0], f"received={via.received}, client at {flow.local}"
        assert via.rport == flow.local[1], f"rport={via.rport}, client at {flow.local}"
        assert server_flow.remote == flow.local, (server_flow, flow)
        assert server_flow.transport == transport, server_flow

        # 4. response back on the same path; order kept
        used = await server.send_response(make_response(request, 200), server_flow)
        assert used.remote == flow.local, used
        response, response_flow = await client_inbox.get()
        assert isinstance(response, Response) and response.status_code == 200, response
        assert response.call_id == "conformance-1"
        assert response_flow is flow, (response_flow, flow)
        for seq in (2, 3, 4):
            await flow.send(bytes(make_request(transport, seq=seq)))
        for seq in (2, 3, 4):
            message, _ = await server_inbox.get()
            assert message.cseq.seq == seq, f"expected CSeq {seq}, got {message.cseq.seq}"

        # 5. close: watchers told, send fails, connect opens a new flow
        events: list[FlowEvent] = []
        flow.subscribe(events.append)
        await flow.aclose()
        assert flow.state == "CLOSED", flow
        assert [type(e) for e in events] == [FlowFailed], events
        try:
            await flow.send(b"x")
        except TransportError:
            pass
        else:
            raise AssertionError("send on a closed flow did not raise TransportError")
        fresh = await client.connect(target)
        assert fresh is not flow and fresh.state == "OPEN", fresh
        nursery.cancel_scope.cancel()

    # 6. nothing left
    for layer in (client, server):
        assert layer.flows == [], layer
        assert layer.listening == [], layer
