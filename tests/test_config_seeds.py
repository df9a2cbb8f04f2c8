"""The SipEndpoint.config snippets of the source documents, loaded as they are written.

Every XML block of seeds 001, 002 and 003 (``$TRIO_SIP_SEEDS``, else ``../shared/seeds``
beside the repository; the seeds are read where they are, never copied here) is cut out of the
seed's text by this test and loaded verbatim: a lone ``<domain>``, a ``<domain>`` whose end tag
the sample left out, ``server=" SipServer2:port2"`` with its leading space. The settings the
blocks hold then take effect on the wire, in virtual time on the in-memory network:
``sip_transaction_timeout=4000`` (seed 002), ``reg_interval`` per proxy section (seed 001) and
``reregister_in_seconds`` (seed 001: the REGISTER Expires, hence when the binding is refreshed).
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest
import trio
import trio.testing

from trio_sip.config import ConfigError, ConfigErrors, ConnectionConfig, loads_xml
from trio_sip.endpoint import open_endpoint
from trio_sip.proto.message import Request, Response
from trio_sip.proto.registration import refresh_delay
from trio_sip.testing import FakeNetwork

from .conftest import REPO
from .shell.endpoint_support import ALICE, SITE_A, SITE_B, Site, first_sends

#: How many XML blocks each seed holds (seed 003 is seed 001 with its code samples lost in the
#: PDF conversion: its text announces them, none is there).
BLOCKS = {"001": 2, "002": 1, "003": 0}
#: The placeholders of seed 001's Basic block, as real values for a test (spaces kept).
REAL = {"SipServer1:port1": f"{SITE_A}:5060", "SipServer2:port2": f"{SITE_B}:5060"}
REAL |= {"Protocol1": "UDP", "Protocol2": "UDP"}


def seeds_dir() -> Path:
    env = os.environ.get("TRIO_SIP_SEEDS")
    root = Path(env) if env else REPO.parent / "shared" / "seeds"
    if not root.is_dir():
        raise RuntimeError(f"seeds not found at {root}: set TRIO_SIP_SEEDS")
    return root


def xml_blocks(number: str) -> list[str]:
    """The fenced code blocks of seed ``number`` that hold XML, as written."""
    (path,) = seeds_dir().glob(f"{number}_*.txt")
    text = path.read_text(encoding="utf-8")
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
    outside = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
    # No XML escapes the fences (a line of XML outside a block would be missed).
    assert not re.search(r"^\s*<[A-Za-z/]", outside, re.M), path
    return [block for block in fenced if block.lstrip().startswith("<")]


def real(block: str) -> str:
    for placeholder, value in REAL.items():
        block = block.replace(placeholder, value)
    return block


@pytest.fixture(scope="module")
def seed_blocks() -> dict[str, list[str]]:
    return {number: xml_blocks(number) for number in BLOCKS}


def test_every_xml_block_of_the_seeds_is_found(seed_blocks: dict[str, list[str]]) -> None:
    assert {number: len(blocks) for number, blocks in seed_blocks.items()} == BLOCKS
    basic, proxies = seed_blocks["001"]
    assert basic.lstrip().startswith('<Container name ="Basic">')
    assert proxies.lstrip().startswith('<domain name="proxies">')
    (policy,) = seed_blocks["002"]
    assert "</domain>" not in policy  # the sample ends without it


def test_seed_001_basic_block_placeholders_are_errors_naming_attribute_and_value(
    seed_blocks: dict[str, list[str]],
) -> None:
    basic = seed_blocks["001"][0]
    with pytest.raises(ConfigErrors) as exc:
        loads_xml(basic)
    # port1 cannot be a port and Protocol1 is no transport: each named where it is written.
    assert [(e.setting, e.value) for e in exc.value.errors] == [
        ("Basic/Connectivity[0]/server", "SipServer1:port1"),
        ("Basic/Connectivity[0]/protocol", "Protocol1"),
        ("Basic/Connectivity[1]/server", "SipServer2:port2"),
        ("Basic/Connectivity[1]/protocol", "Protocol2"),
    ]
    assert "port 1..65535" in exc.value.errors[0].allowed
    assert "one of UDP, TCP, TLS" in exc.value.errors[1].allowed


def test_seed_001_basic_block_with_real_values_loads_spaces_and_all(
    seed_blocks: dict[str, list[str]],
) -> None:
    block = real(seed_blocks["001"][0])
    assert f'server=" {SITE_B}:5060" protocol=" UDP"' in block  # the seed's spaces are kept
    for strict in (False, True):
        loaded = loads_xml(block, strict=strict)
        assert loaded.warnings == ()
        assert [(c.id, c.user, c.server, c.transport) for c in loaded.config.connections] == [
            ("proxy0", "DN1", f"{SITE_A}:5060", "UDP"),
            ("proxy1", "DN2", f"{SITE_B}:5060", "UDP"),
        ]


def test_seed_001_proxies_block_alone_and_in_place(seed_blocks: dict[str, list[str]]) -> None:
    basic, proxies = seed_blocks["001"]
    # Alone (no Connectivity): the per-connection settings are kept for connections defined
    # elsewhere, e.g. the command line's --server (tests/test_cli_config.py).
    loaded = loads_xml(proxies, strict=True)
    assert loaded.warnings == () and loaded.config.connections == ()
    assert loaded.connection_settings == ({"reg_interval": 10}, {"reg_interval": 20})
    mine = [ConnectionConfig(id=s, user="5001", server=s) for s in ("a.example", "b.example")]
    assert [c.reg_interval for c in loaded.configure_connections(mine)] == [10, 20]
    # Where the SDK has it: in the Genesys container, after the Basic one.
    document = f'{real(basic)}<Container name="Genesys">\n{proxies}</Container>\n'
    loaded = loads_xml(document, strict=True)
    assert loaded.warnings == ()
    assert [c.reg_interval for c in loaded.config.connections] == [10, 20]


def test_seed_002_policy_block_sets_the_transaction_timeout(
    seed_blocks: dict[str, list[str]],
) -> None:
    (policy,) = seed_blocks["002"]
    wrapped = f'<Container name="Genesys">\n{policy}'  # the end of the file closes both
    for document in (policy, wrapped):
        loaded = loads_xml(document, strict=True)
        assert loaded.warnings == ()
        assert loaded.config.sip_transaction_timeout == 4000
        assert loaded.config.timer_config().timer_b == 4.0
    # Pasted before more of the file, the missing </domain> is an error that says so.
    with pytest.raises(ConfigError) as exc:
        loads_xml(f'<Container name="Genesys">\n{policy}</Container>\n')
    assert exc.value.value == "line 6, column 3"
    assert "<domain> opened on line 2 is not closed" in exc.value.allowed


def sdk_file(seed_blocks: dict[str, list[str]], *, proxy0: str = "", endpoint: str = "") -> str:
    """The three blocks where the SDK has them (placeholders replaced by the test's sites),
    with ``proxy0`` and ``endpoint`` settings added to those sections."""
    basic, proxies = seed_blocks["001"]
    (policy,) = seed_blocks["002"]
    proxies = proxies.replace('value="10"/>', f'value="10"/>{proxy0}')
    policy = policy.replace('value="4000"/>', f'value="4000"/>{endpoint}')
    return f'{real(basic)}<Container name="Genesys">\n{proxies}{policy}</domain>\n</Container>\n'


async def test_seed_timeout_and_reg_interval_on_the_wire(
    autojump_clock: trio.testing.MockClock, seed_blocks: dict[str, list[str]]
) -> None:
    """Both sites blackholed: every REGISTER times out after 4 s (seed 002) and is tried again
    reg_interval later, 10 s at site A and 20 s at site B (seed 001)."""
    config = loads_xml(sdk_file(seed_blocks), strict=True).config
    net = FakeNetwork()
    for site in (SITE_A, SITE_B):
        net.partition(ALICE, site)
    async with open_endpoint(
        config, backend=net.backend(ALICE), listen=[("UDP", ALICE, 5060)],
        rng=random.Random(1), retry_initial=60, retry_max=60,  # reg_interval alone sets the pace
    ) as alice:  # fmt: skip
        await trio.sleep(60)
        reasons = {c.id: c.reason for c in alice.connections.values()}
    assert first_sends(net, "REGISTER", ALICE, SITE_A) == [0.0, 14.0, 28.0, 42.0, 56.0]
    assert first_sends(net, "REGISTER", ALICE, SITE_B) == [0.0, 24.0, 48.0]
    assert reasons == {"proxy0": "408 Request Timeout", "proxy1": "408 Request Timeout"}


async def test_reregister_in_seconds_is_the_register_expires(
    autojump_clock: trio.testing.MockClock, seed_blocks: dict[str, list[str]]
) -> None:
    """proxy0 re-registers every 120 s, proxy1 at the endpoint-wide 300 s: each REGISTER asks
    for that Expires and the refresh goes out 32 s (64*T1) before it runs out."""
    document = sdk_file(
        seed_blocks,
        proxy0='<setting name="reregister_in_seconds" value="120"/>',
        endpoint='<setting name="reregister_in_seconds" value="300"/>',
    )
    loaded = loads_xml(document, strict=True)
    config = loaded.config
    assert [(c.expires, c.reg_interval) for c in config.connections] == [(120, 10), (300, 20)]
    assert loaded.connection_defaults == {"expires": 300}
    net = FakeNetwork()
    async with trio.open_nursery() as nursery:
        sites = [Site(net, host, nursery) for host in (SITE_A, SITE_B)]
        for site in sites:
            await site.start()
        async with open_endpoint(
            config, backend=net.backend(ALICE), listen=[("UDP", ALICE, 5060)],
            rng=random.Random(1),
        ) as alice:  # fmt: skip
            await alice.wait_registered()
            await trio.sleep(400)
        nursery.cancel_scope.cancel()
    assert refresh_delay(120) == 88.0 and refresh_delay(300) == 268.0
    for site, expires, times in [
        (SITE_A, 120, [0.0, 88.0, 176.0, 264.0, 352.0]),
        (SITE_B, 300, [0.0, 268.0]),
    ]:
        registers = {  # the first send of each REGISTER: CSeq -> (time, Expires)
            p.message.cseq.seq: (p.time, p.message.headers.get("Expires"))
            for p in reversed(net.packets(transport="UDP"))
            if p.src[0] == ALICE and p.dst[0] == site and isinstance(p.message, Request)
        }
        # Every refresh asks for the configured Expires; the last REGISTER unregisters (0).
        assert sorted(registers.values()) == [(t, str(expires)) for t in times] + [(400.0, "0")]
        granted = [  # what the registrar granted to each refresh
            p.message.headers.get("Contact", "")
            for p in net.packets(transport="UDP")
            if p.src[0] == site
            and isinstance(p.message, Response)
            and registers[p.message.cseq.seq][1] != "0"
        ]
        assert len(granted) == len(times)
        assert all(f"expires={expires}" in contact for contact in granted), granted
