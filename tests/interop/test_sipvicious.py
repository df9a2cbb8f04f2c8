"""A real attacker against the site (issue #10): sipvicious (Debian ``sipvicious``: svmap,
svwar, svcrack) run against ``open_proxy`` on loopback.

* svmap finds the server and nothing else: no User-Agent or Server header to fingerprint.
* svwar cannot tell known from unknown extensions, by REGISTER, OPTIONS or INVITE: with
  credentials everyone is challenged alike; without, an extension that registered before and
  one that never did both get 480.
* svcrack does not find a password from a 50-word list (the right one is word 31) within its
  run (20 s): above ``Limits.failed_auth_rate`` (1/s after a burst of 10) the source's
  requests are dropped, and every guess sent meanwhile is lost. With the limit off it finds
  it in under a second, which is what makes this test able to fail.

Every tool runs bounded (``trio.fail_after``; the process is killed on cancellation), bound to
127.0.0.1 with 127.0.0.1 in its Via (``-b``, ``-x``). Run under the interop lock.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_sip.proto.limits import Limits
from trio_sip.proto.location import LocationService
from trio_sip.proto.message import Request
from trio_sip.proto.target import Target
from trio_sip.proxy import ProxySite, open_proxy
from trio_sip.stack import IncomingRequest, open_stack

from .peers import ensure_debian_packages, free_port

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"
DOMAIN = "example.com"
PASSWORDS = {"100": "zanzibar", "101": "correct-horse", "105": "s3cret"}


def tool(name: str) -> str:
    """svmap, svwar or svcrack (installs Debian's sipvicious on a clean root CI machine)."""
    return ensure_debian_packages("sipvicious", binaries={"sipvicious": name})["sipvicious"]


async def run(argv: list[str], seconds: float, *, stop: bool = False) -> tuple[str, float]:
    """Run a sipvicious tool (bounded): its stdout and stderr, and how long it ran. With
    ``stop`` the tool is killed after ``seconds`` (its run is that long at most); else it must
    end by itself within them."""
    start = time.monotonic()
    with tempfile.TemporaryFile() as out:
        with trio.move_on_after(seconds) as scope:
            await trio.run_process(
                argv,
                check=False,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        out.seek(0)
        text = out.read().decode(errors="replace")
    if scope.cancelled_caught and not stop:
        raise AssertionError(f"{argv[0]} did not end within {seconds} s:\n{text[-3000:]}")
    return text, time.monotonic() - start


def common(port: int) -> list[str]:
    return ["-p", str(port), "-b", HOST, "-x", HOST, "-P", str(free_port(HOST, tcp=False))]


@asynccontextmanager
async def site(**kw: Any) -> AsyncIterator[ProxySite]:
    async with open_proxy([("UDP", HOST, free_port(HOST))], domain=DOMAIN, **kw) as proxy:
        yield proxy


async def busy(incoming: IncomingRequest) -> None:
    await incoming.respond(486 if incoming.method == "INVITE" else 200)


def found(output: str) -> list[str]:
    """The extensions svwar reports (rows of its result table)."""
    rows = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].isdigit():
            rows.append(cells[0])
    return rows


async def test_svmap_sees_the_server_and_nothing_else() -> None:
    async with site(credentials=PASSWORDS) as proxy:
        port = proxy.address[1]
        output, _ = await run([tool("svmap"), *common(port), HOST], 30)
    print(output)
    rows = [line for line in output.splitlines() if f"{HOST}:{port}" in line]
    assert len(rows) == 1, output
    # No User-Agent / Server header: the fingerprint column stays "unknown".
    assert rows[0].split("|")[2].strip() == "unknown", output


@pytest.mark.parametrize("method", ["REGISTER", "OPTIONS", "INVITE"])
async def test_svwar_cannot_tell_users_apart_with_credentials(method: str) -> None:
    location = LocationService()
    async with (
        site(credentials=PASSWORDS, location_service=location) as proxy,
        open_stack([("UDP", HOST, 0)], handler=busy) as phone,
    ):
        # 101 is registered and reachable (a phone that answers 486); 100 and 105 exist but
        # are not registered; 102-104 and 106-110 do not exist.
        phone_port = phone.listening[0][1][1]
        location.add_static(f"sip:101@{DOMAIN}", f"sip:101@{HOST}:{phone_port}")
        argv = [tool("svwar"), *common(proxy.address[1]), "--force", "-m", method]
        output, took = await run([*argv, "-e", "95-110", HOST], 60)
    print(f"svwar -m {method}: {took:.1f} s\n{output}")
    assert found(output) == [], output


async def test_svwar_cannot_tell_expired_users_from_unknown_ones() -> None:
    # No credentials: INVITE reaches the location service. 102 registered and expired, 104
    # never did: both get 480 (a 404 for the never-registered gave them away).
    location = LocationService(min_expires=1)
    async with site(location_service=location) as proxy, open_stack([("UDP", HOST, 0)]) as ua:
        register = Request(
            "REGISTER", f"sip:{DOMAIN}",
            [("Max-Forwards", "70"), ("From", f"<sip:102@{DOMAIN}>;tag=r"),
             ("To", f"<sip:102@{DOMAIN}>"), ("Call-ID", "svwar-102"), ("CSeq", "1 REGISTER"),
             ("Contact", f"<sip:102@{HOST}:9>"), ("Expires", "1")],
        )  # fmt: skip
        ok = await ua.request(register, Target("UDP", *proxy.address))
        assert ok.status_code == 200
        await trio.sleep(1.5)
        assert location.lookup(f"sip:102@{DOMAIN}", trio.current_time()) == []
        argv = [tool("svwar"), *common(proxy.address[1]), "--force", "-m", "INVITE"]
        output, took = await run([*argv, "-e", "100-106", HOST], 60)
    print(f"svwar -m INVITE: {took:.1f} s\n{output}")
    assert found(output) == [], output


def dictionary(tmp_path: Path) -> Path:
    """50 words, the right one 31st."""
    words = [f"guess{i:02d}" for i in range(50)]
    words[30] = PASSWORDS["100"]
    path = tmp_path / "words.txt"
    path.write_text("\n".join(words) + "\n")
    return path


#: svcrack's run: at the default failed_auth_rate (1/s after a burst of 10) at most about
#: 10 + 20 = 30 guesses can be answered in it, and the password is word 31.
CRACK_SECONDS = 20.0


async def crack(tmp_path: Path, limits: Limits) -> tuple[str, float, ProxySite]:
    async with site(credentials=PASSWORDS, limits=limits) as proxy:
        argv = [tool("svcrack"), *common(proxy.address[1]), "-v", "-u", "100"]
        words = str(dictionary(tmp_path))
        output, took = await run([*argv, "-d", words, HOST], CRACK_SECONDS, stop=True)
        return output, took, proxy


async def test_svcrack_finds_nothing_within_its_run(tmp_path: Path) -> None:
    output, took, proxy = await crack(tmp_path, Limits())
    stats = proxy.statistics()
    assert stats.auth is not None
    print(
        f"svcrack with the default failed_auth_rate (1/s, burst 10): ran {took:.1f} s, "
        f"{stats.auth.failures} guesses answered, {stats.dropped} requests dropped\n"
        f"{output[-2000:]}"
    )
    assert stats.auth.authenticated == 0  # the site never accepted a guess
    assert PASSWORDS["100"] not in output, output[-3000:]
    assert stats.auth.failures <= 10 + int(took) + 1  # the burst, then one a second
    assert stats.dropped > 0


async def test_svcrack_control_without_the_limit(tmp_path: Path) -> None:
    output, took, proxy = await crack(tmp_path, Limits(failed_auth_rate=None))
    print(f"svcrack with failed_auth_rate=None: {took:.1f} s\n{output[-2000:]}")
    assert PASSWORDS["100"] in output, output[-3000:]  # so the test above can fail
    assert took < CRACK_SECONDS / 2
    stats = proxy.statistics()
    assert stats.dropped == 0 and stats.auth is not None and stats.auth.authenticated >= 1
