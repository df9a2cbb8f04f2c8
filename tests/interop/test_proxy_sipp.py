"""sipp through our proxy: ``sipp -sn uac`` → our site → ``sipp -sn uas`` (loopback, bounded).

The sipp UAS does not register: it is a static binding in the site's location service. sipp's
UAC sends to ``service@<proxy>``; the proxy maps that to ``sip:service@example.com`` (its own
address is an alias of its domain), forwards the INVITE, the ACK for the 2xx and the BYE.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest
import trio

from trio_sip.proto.location import LocationService
from trio_sip.proto.transaction import TimeoutRole
from trio_sip.proxy import open_proxy

from .peers import free_port
from .sipp import ALL_CALLS_OK, SippRun, run_sipp, sipp_argv

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
            extra=("-s", "service", "-r", "5"),
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
