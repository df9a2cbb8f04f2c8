"""The proxy site over real UDP sockets on loopback: register and a call between two stacks."""

from __future__ import annotations

import trio

from trio_sip.proto.message import Response
from trio_sip.proto.target import Target
from trio_sip.proxy import open_proxy
from trio_sip.stack import open_stack

from .test_proxy_support import DOMAIN, Phone, in_dialog, register, request

HOST = "127.0.0.1"


async def test_call_through_the_proxy_over_udp() -> None:
    callee, caller = Phone(HOST), Phone(HOST)
    with trio.fail_after(10):
        async with (
            open_proxy([("UDP", HOST, 0)], domain=DOMAIN) as proxy,
            open_stack([("UDP", HOST, 0)], handler=callee.handler, on_stray=callee.on_stray) as bob,
            open_stack([("UDP", HOST, 0)], handler=caller.handler) as alice,
        ):
            to_proxy = Target("UDP", *proxy.address)
            callee.port = bob.listening[0][1][1]
            contact = f"<sip:bob@{HOST}:{callee.port}>"
            ok = await bob.request(register("bob", HOST, contact=contact), to_proxy)
            assert ok.status_code == 200
            assert ok.headers["Contact"] == f"{contact};expires=3600"
            port = alice.listening[0][1][1]
            invite = request("INVITE", f"sip:bob@{DOMAIN}", headers=())
            invite = invite.evolve(
                headers=invite.headers.replace("Contact", f"<sip:alice@{HOST}:{port}>")
            )
            async with alice.send_request(invite, to_proxy) as tx:
                statuses = [e.status_code async for e in tx if isinstance(e, Response)]
                answer = tx.final_response
            assert statuses[-2:] == [180, 200] and answer is not None
            host, pport = proxy.address
            assert answer.headers["Record-Route"] == proxy.record_route_value(invite)
            assert answer.headers["Record-Route"].startswith(f"<sip:{host}:{pport};lr;dlg=")
            await alice.send_stateless(in_dialog("ACK", invite, answer, 1), to_proxy)
            bye = await alice.request(in_dialog("BYE", invite, answer, 2), to_proxy)
            assert bye.status_code == 200
            assert [r.method for r in (i.request for i in callee.received)] == ["INVITE", "BYE"]
            assert "Route" not in callee.requests("BYE")[0].headers
            assert [getattr(m, "method", None) for m in callee.strays] == ["ACK"]
            assert proxy.statistics().forwarded_requests == 3
        assert proxy.statistics().stack.tasks == 0
