"""The proxy site over real UDP sockets on loopback: register and a call between two stacks."""

from __future__ import annotations

import trio

from trio_sip.proto.message import Response
from trio_sip.proto.target import Target
from trio_sip.proxy import open_proxy
from trio_sip.stack import open_stack

from .proxy_support import DOMAIN, Phone, in_dialog, register, request

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


async def test_routes_back_at_the_site_over_udp_cost_one_hop_each() -> None:
    # Issue #10: Route values pointing back at the site with Max-Forwards 255 made one
    # internal hop (a parse, two transactions) per value. Ten such datagrams over real UDP:
    # ten INVITEs reach the callee, each the site's only transaction pair for it, and a
    # request to a third party from the same socket is refused (403), never sent.
    callee = Phone(HOST)
    with trio.fail_after(20):
        async with (
            open_proxy([("UDP", HOST, 0)], domain=DOMAIN) as proxy,
            open_stack([("UDP", HOST, 0)], handler=callee.handler, on_stray=callee.on_stray) as bob,
        ):
            host, pport = proxy.address
            callee.port = bob.listening[0][1][1]
            proxy.location.add_static(f"sip:bob@{DOMAIN}", f"sip:bob@{HOST}:{callee.port}")
            routes = ", ".join(f"<sip:{host}:{pport};lr;n={i}>" for i in range(40))
            sock = trio.socket.socket(type=trio.socket.SOCK_DGRAM)
            await sock.bind((HOST, 0))
            port = sock.getsockname()[1]

            def invite(i: int, uri: str) -> bytes:
                return (
                    f"INVITE {uri} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP {HOST}:{port};branch=z9hG4bKloop{i};rport\r\n"
                    f"Route: {routes}\r\nMax-Forwards: 255\r\n"
                    f"From: <sip:alice@{DOMAIN}>;tag=l{i}\r\nTo: <{uri}>\r\n"
                    f"Call-ID: loop-{i}\r\nCSeq: 1 INVITE\r\n"
                    f"Contact: <sip:alice@{HOST}:{port}>\r\nContent-Length: 0\r\n\r\n"
                ).encode()

            for i in range(10):
                await sock.sendto(invite(i, f"sip:bob@{DOMAIN}"), (host, pport))
            await sock.sendto(invite(99, "sip:900@192.0.2.9"), (host, pport))
            statuses: dict[str, int] = {}
            while len([s for s in statuses.values() if s >= 200]) < 11:
                data, _ = await sock.recvfrom(65536)
                text = data.decode()
                call = text.split("Call-ID: ", 1)[1].split("\r\n", 1)[0]
                statuses[call] = max(statuses.get(call, 0), int(text.split(" ", 2)[1]))
            sock.close()
            assert statuses.pop("loop-99") == 403
            assert set(statuses.values()) == {200}
            assert len(callee.requests("INVITE")) == 10
            assert all("Route" not in r.headers for r in callee.requests("INVITE"))
            stats = proxy.statistics()
            assert stats.stack.server_transactions <= 11 and stats.forwarded_requests == 10
