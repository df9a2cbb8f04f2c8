"""The wire fuzzer (tests/attack/run.py) against ``trio-sip serve`` and a proxy/registrar.

* ``test_wire_fuzz_serve_and_proxy`` (``attack``, ``nox -s attack``): both targets, each in a
  private network namespace, at the same time (the settling waits overlap): 20,000 UDP
  datagrams and 5,000 TCP messages each, an OPTIONS probe every 100, every 5th mutated
  datagram's answer checked (tests/attack/expect.py), a real call before and after (and a
  REGISTER at the proxy), no transaction left 90 s after the end, RSS, Python's allocated
  blocks and descriptors compared between the end of the first half and the end of the run.
  ``TRIO_SIP_ATTACK=short``: 3,000 + 600, no RSS bound. A few minutes; the figures are
  printed (``FUZZ ...`` lines; docs/security.md, "Fuzzing").
* ``test_short_wire_fuzz`` (default suite): the same harness with 300 datagrams and 100 TCP
  messages per target (T1 at 50 ms, so that everything drains within 20 s), so a regression
  shows on every run.
* The mutator's own tests: deterministic for a seed, bounded, and what it builds is what it
  says.

Skipped when no network namespace can be made (``unshare --net`` as root, or with
``--map-root-user``): the fuzzer's messages name arbitrary addresses, and the namespace is what
keeps them on this machine. With ``TRIO_SIP_REQUIRE_PEERS=1`` such a skip of the attack test
is a failure (tests/conftest.py).
"""

from __future__ import annotations

import functools
import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from trio_sip.proto.message import Request
from trio_sip.proto.parse import parse_message
from trio_sip.proto.validate import check_request

from .conftest import attack_mode
from .mutator import OPERATORS, Mutator, dialog_request, retarget
from .process import REPO, netns_available, netns_command
from .seeds import captured_seeds, corpus_seeds


def start(target: str, args: list[str], where: Path) -> subprocess.Popen[str]:
    out = ["--out", str(where / target), "--json", str(where / f"{target}.json")]
    argv, env = netns_command([target, *out, *args])
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env
    )


def run_both(args: list[str], where: Path, timeout: float) -> dict[str, dict[str, Any]]:
    """Both targets at once; their reports (the figures are printed)."""
    why = netns_available()
    if why is not None:
        pytest.skip(f"no private network namespace: {why}")
    procs = {target: start(target, args, where) for target in ("serve", "proxy")}
    outputs = {}
    try:
        for target, proc in procs.items():
            outputs[target] = proc.communicate(timeout=timeout)[0]
    finally:
        for proc in procs.values():
            proc.kill()
    for target, output in outputs.items():
        print(f"---- {target} ----\n{output}")
    for target, proc in procs.items():
        assert proc.returncode == 0, f"{target}:\n{outputs[target][-3000:]}"
    return {t: json.loads((where / f"{t}.json").read_text()) for t in procs}


def assert_survived(report: dict[str, Any], udp: int, tcp: int) -> None:
    """What every run must show (run.py's own check made the exit status 0; this says it
    again, readably): all sent, probes answered throughout, every answer parsable, no
    traceback, a real call (and, at the proxy, a digest REGISTER) completed afterwards, nothing
    left held once the timers ran, and every sampled request that deserved a 4xx got one."""
    figures = report["figures"]
    assert figures["sent"]["UDP"] >= udp and figures["sent"]["TCP"] >= tcp
    assert figures["probes"] >= (udp + tcp) // 100
    assert figures["bad_answers"] == 0
    assert report["final_call"].startswith("answered")
    assert report.get("final_register", 200) == 200
    assert report["held_after_settle"] == {}
    for process in report["processes"].values():
        assert process["tracebacks"] == 0
        assert process["stack"]["server_transactions"] == 0
        assert process["stack"]["client_transactions"] == 0
    samples = figures["samples"]
    assert samples["deserving"] > 0
    assert samples["right"] == samples["deserving"], samples


@pytest.mark.attack
def test_wire_fuzz_serve_and_proxy(tmp_path: Path) -> None:
    full = attack_mode() == "full"
    udp, tcp = (20_000, 5_000) if full else (3_000, 600)
    args = ["--udp", str(udp), "--tcp", str(tcp)]
    args += [] if full else ["--rss-tolerance", "0"]
    reports = run_both(args, tmp_path, timeout=1200)
    for report in reports.values():
        assert_survived(report, udp, tcp)


def test_short_wire_fuzz(tmp_path: Path) -> None:
    """The default suite's variant: 400 inputs per target, seed 20260310 (run.py's default),
    T1 at 50 ms so that the transactions' timers (64*T1) run out within the 20 s allowed."""
    args = ["--udp", "300", "--tcp", "100", "--warmup", "0", "--rss-tolerance", "0"]
    args += ["--settle", "20", "--t1-ms", "50"]
    reports = run_both(args, tmp_path, timeout=300)
    for report in reports.values():
        assert_survived(report, 300, 100)


# -- the mutator ---------------------------------------------------------------------------------


@functools.cache
def seeds() -> list[bytes]:
    return [*corpus_seeds(), *captured_seeds()]


def test_the_same_seed_gives_the_same_messages() -> None:
    def draw(seed: int) -> list[bytes]:
        mutator = Mutator(seeds(), random.Random(seed))
        return [mutator.mutate(seeds()[i % len(seeds())])[0] for i in range(300)]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_each_operator_changes_messages_within_bounds(name: str) -> None:
    rng = random.Random(1)
    changed = 0
    for data in seeds():
        out = OPERATORS[name](rng, data, seeds())
        assert isinstance(out, bytes) and len(out) <= 3 * len(data) + 70_000
        changed += out != data
    assert changed >= len(seeds()) // 3, f"{name} changed {changed} of {len(seeds())}"


def test_retarget_points_a_seed_at_the_target_and_back_at_the_sender() -> None:
    rng = random.Random(3)
    invite = next(s for s in captured_seeds() if s.startswith(b"INVITE "))
    seen = set()
    for n in range(50):
        out = retarget(
            invite,
            rng,
            uri=b"sip:serve@127.0.0.1:5060",
            sent_by=b"127.0.1.7:4000",
            transport=b"TCP",
            unique=b".f%d" % n,
        )
        message = parse_message(out)
        assert isinstance(message, Request)
        seen.add((message.uri_text, message.vias[0].transport, message.call_id.endswith(f".f{n}")))
    assert ("sip:serve@127.0.0.1:5060", "TCP", True) in seen  # most of the time
    assert any(uri != "sip:serve@127.0.0.1:5060" for uri, _, _ in seen)  # not always


def test_dialog_requests_are_well_formed() -> None:
    for method in ("INVITE", "ACK", "BYE", "CANCEL", "INFO", "UPDATE"):
        data = dialog_request(
            method,
            uri="sip:serve@127.0.0.1:5060",
            via="SIP/2.0/UDP 127.0.1.1:4000;branch=z9hG4bK1",
            from_="<sip:fuzz@127.0.1.1>;tag=1",
            to="<sip:serve@127.0.0.1>;tag=2",
            call_id="c@h",
            cseq=3,
            contact="<sip:fuzz@127.0.1.1:4000>",
            routes=["<sip:127.0.0.1:5060;lr>"],
        )
        message = parse_message(data)
        assert isinstance(message, Request) and message.method == method
        assert check_request(message, role="uas") is None
