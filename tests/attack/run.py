"""Run the wire fuzzer against one target and print its figures (issue #10).

``python -m tests.attack.run serve|proxy [--udp N] [--tcp N] [--seed S] [--out DIR]``

It re-executes itself in a private network namespace (tests/attack/process.py) and there:

* ``serve``: starts ``trio-sip serve`` (UDP and TCP on 127.0.0.1:5060), places a real call,
  takes the server's settled RSS and descriptors, fuzzes it over UDP (``--udp`` datagrams,
  dialogs included) then TCP (``--tcp`` messages), hangs up the dialogs the fuzzer opened,
  places a real call that must complete, waits (at most ``--settle`` s) until no transaction or
  call is left, and takes RSS and descriptors again;
* ``proxy``: the same against a proxy/registrar (``open_proxy`` with credentials, trusted
  sources 127.0.3.0/24, on 127.0.0.1:5060) in front of a ``trio-sip serve`` callee registered
  with digest as alice@fuzz.test; the probes are OPTIONS to alice through the proxy, and the
  final call is Bob's, authenticated, to Alice.

The default seed is fixed (``--seed``, printed), so a run reproduces. A finding (a target
exited, stopped answering probes, wrote a traceback, or sent something unparsable) stops the
run: the window of messages before it is saved under ``--out``, replayed one message at a time
against fresh targets to find the one after which it happens, and that message is saved as
``crasher-*.bin`` for tests/data/crashers/. The exit status is 0 when all went well, 1 on a
finding or a failed check, 77 when no network namespace can be made. ``--json FILE`` writes
the figures as JSON.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from .fuzzwire import Figures, Finding, Plan, Sent, TcpFuzzer, UdpFuzzer
from .peers import place_call, register_binding
from .process import (
    TargetProcess,
    in_netns,
    loopback_up,
    netns_available,
    reexec_in_netns,
    start_proxy,
    start_serve,
    udp_counters,
)
from .seeds import CAPTURE_HOSTS, DOMAIN, PASSWORDS, captured_seeds, corpus_seeds

HOST, PORT, CALLEE_PORT = "127.0.0.1", 5060, 5070
CALLER = "127.0.0.2"
SOURCES = [f"127.0.1.{i}" for i in range(1, 33)]
TRUSTED = [f"127.0.3.{i}" for i in range(1, 9)]
PROBE = "127.0.2.1"
DEFAULT_SEED = 20_260_310
#: Growth of Python's allocated blocks allowed from the end of the warm-up to the end (objects
#: kept); the RSS bound is ``--rss-tolerance`` (the allocators keep some of their high-water
#: mark, which depends on how many transactions were in flight at once).
BLOCKS_TOLERANCE = 0.10


def say(line: str) -> None:
    print(f"FUZZ {line}", flush=True)


@attrs.define
class Setup:
    """The running targets of one campaign and how to talk to them."""

    procs: list[TargetProcess]
    plan: Plan
    final_call: Callable[[], str]
    #: A digest REGISTER at the end (the proxy/registrar): its final status.
    final_register: Callable[[], int] | None = None
    baseline_tracebacks: dict[str, int] = attrs.field(factory=dict)

    def alive(self) -> str | None:
        for p in self.procs:
            if not p.alive():
                return f"exit: {p.name} ended with status {p.popen.returncode}"
            if p.tracebacks > self.baseline_tracebacks.get(p.name, 0):
                return f"traceback in {p.name}'s stderr: {' | '.join(p.traceback_text[-6:])}"
        return None

    def stop(self) -> dict[str, int]:
        return {p.name: p.stop() for p in self.procs}


def setup_serve(out: Path, patience: float, t1_ms: int | None = None) -> Setup:
    serve = start_serve(out, HOST, PORT, t1_ms=t1_ms).wait_listening()
    uri = f"sip:serve@{HOST}:{PORT}"
    hosts = {
        CAPTURE_HOSTS["proxy"].encode(): HOST.encode(),
        CAPTURE_HOSTS["alice"].encode(): HOST.encode(),
        CAPTURE_HOSTS["bob"].encode(): SOURCES[0].encode(),
    }
    plan = Plan(
        target=(HOST, PORT),
        uris=[uri.encode(), f"sip:{HOST}:{PORT}".encode(), b"sip:serve@127.0.0.1"],
        sources=SOURCES,
        probe_source=PROBE,
        probe_uri=uri,
        dialog_uri=uri,
        hosts=hosts,
        patience=patience,
    )
    return Setup([serve], plan, lambda: place_call(uri, CALLER))


def setup_proxy(out: Path, patience: float, t1_ms: int | None = None) -> Setup:
    callee = start_serve(out, HOST, CALLEE_PORT, name="callee", t1_ms=t1_ms)
    proxy = start_proxy(
        out, HOST, PORT, domain=DOMAIN, users=PASSWORDS, trusted=["127.0.3.0/24"], t1_ms=t1_ms
    )
    callee.wait_listening(), proxy.wait_listening()

    registrations = itertools.count()

    def register() -> int:
        return register_binding(
            (HOST, PORT),
            CALLER,
            user="alice",
            password=PASSWORDS["alice"],
            domain=DOMAIN,
            contact=f"sip:alice@{HOST}:{CALLEE_PORT}",
            call_id=f"fuzz-reg-{next(registrations)}@{CALLER}",
        )

    status = register()
    if status != 200:
        raise RuntimeError(f"alice's REGISTER got {status}")
    alice = f"sip:alice@{DOMAIN}"
    hosts = {
        f"{CAPTURE_HOSTS['proxy']}:5060".encode(): f"{HOST}:{PORT}".encode(),
        f"{CAPTURE_HOSTS['alice']}:5060".encode(): f"{HOST}:{CALLEE_PORT}".encode(),
        CAPTURE_HOSTS["bob"].encode(): SOURCES[0].encode(),
    }
    plan = Plan(
        target=(HOST, PORT),
        uris=[
            alice.encode(),
            alice.encode(),
            f"sip:bob@{DOMAIN}".encode(),
            f"sip:{HOST}:{PORT}".encode(),
            f"sip:alice@{HOST}:{PORT}".encode(),
        ],
        sources=[*SOURCES[:24], *TRUSTED],
        probe_source=TRUSTED[-1],
        probe_uri=alice,
        dialog_uri=alice,
        hosts=hosts,
        patience=patience,
        role="proxy",
    )

    def final_call() -> str:
        return place_call(
            alice,
            CALLER,
            aor=f"sip:bob@{DOMAIN}",
            password=PASSWORDS["bob"],
            outbound_proxy=f"sip:{HOST}:{PORT}",
        )

    return Setup([callee, proxy], plan, final_call, register)


SETUPS = {"serve": setup_serve, "proxy": setup_proxy}


def live(setup: Setup) -> dict[str, int]:
    """What the targets still hold: transactions, stack tasks, calls, proxy contexts."""
    held: collections.Counter[str] = collections.Counter()
    for p in setup.procs:
        s = p.stats()
        for k in ("client_transactions", "server_transactions", "tasks"):
            held[f"{p.name} {k}"] += s["stack"][k]
        held[f"{p.name} calls"] += s.get("calls", 0)
        held[f"{p.name} proxy contexts"] += s.get("proxy", {}).get("contexts", 0)
    return {k: v for k, v in held.items() if v}


def settle(setup: Setup, seconds: float) -> tuple[float, dict[str, int]]:
    """Wait until no transaction, call or proxy context is left (bounded); seconds waited and
    what is still held (empty: nothing)."""
    start = time.monotonic()
    held = live(setup)
    while held and time.monotonic() - start < seconds:
        time.sleep(1.0)
        held = live(setup)
    return time.monotonic() - start, held


def save_window(finding: Finding, where: Path) -> None:
    where.mkdir(parents=True, exist_ok=True)
    for i, sent in enumerate(finding.window):
        (where / f"{i:04d}-{sent.transport.lower()}-{sent.source}.bin").write_bytes(sent.data)
    (where / "what.txt").write_text(
        f"{finding.kind} ({finding.transport}): {finding.detail}\n"
        + "".join(
            f"{i:04d} {s.transport} src#{s.source} group {s.group}: {s.what}\n"
            for i, s in enumerate(finding.window)
        )
    )


def replay(setup: Setup, sent: list[Sent], probe: bool) -> str | None:
    """Send ``sent`` to fresh targets in ``setup``, one message at a time with a probe after
    each if ``probe``; what went wrong after which index ("index: what"), or None."""
    figures, rng = Figures(), random.Random(0)
    udp = UdpFuzzer(setup.plan, [b""], rng, figures, setup.alive)
    tcp = TcpFuzzer(setup.plan, [b""], rng, figures, setup.alive)
    try:
        for i, item in enumerate(sent):
            if item.transport == "UDP":
                udp.send(item.source % len(udp.socks), item.data, item.what)
            else:
                tcp.write(item.source % len(tcp.conns), item.data, item.what)
            if probe or i == len(sent) - 1:
                found = (udp if item.transport == "UDP" else tcp).check()
                if found is None:
                    time.sleep(0.3)  # a traceback reaches the stderr reader a little later
                    wrong = setup.alive()
                    if wrong is not None:
                        return f"{i}: {wrong}"
                else:
                    return f"{i}: {found.kind}: {found.detail}"
        return None
    finally:
        udp.close()
        tcp.close()


def minimise(name: str, finding: Finding, out: Path, patience: float) -> list[Path]:
    """Find the message of ``finding.window`` after which the target fails; save it (or the
    dialog or prefix it needs) as crasher files. Returns the files written."""
    window = finding.window
    setup = SETUPS[name](out / "minimise", min(patience, 5.0), None)
    try:
        result = replay(setup, window, probe=True)
    finally:
        setup.stop()
    if result is None:
        say(f"minimise: the window of {len(window)} messages did not reproduce one by one")
        return []
    index = int(result.split(":", 1)[0])
    culprit = window[index]
    say(f"minimise: fails after message {index} of {len(window)} ({culprit.what}): {result}")
    group = [s for s in window[: index + 1] if culprit.group >= 0 and s.group == culprit.group]
    for candidate in ([culprit], group or [culprit], window[: index + 1]):
        setup = SETUPS[name](out / "minimise", min(patience, 5.0), None)
        try:
            again = replay(setup, candidate, probe=False)
        finally:
            setup.stop()
        if again is not None:
            files = []
            for i, item in enumerate(candidate):
                path = out / f"crasher-{finding.kind}-{item.transport.lower()}-{i:02d}.bin"
                path.write_bytes(item.data)
                files.append(path)
            say(f"minimise: {len(candidate)} message(s) reproduce it: {[str(f) for f in files]}")
            return files
    return []


def campaign(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    capture = threading.Thread(target=captured_seeds)  # while the targets start
    capture.start()
    setup = SETUPS[args.target](out, args.patience, args.t1_ms)
    capture.join()
    report: dict[str, Any] = {"target": args.target, "seed": args.seed, "ok": False}
    seeds = [*corpus_seeds(), *captured_seeds()]
    say(
        f"{args.target}: seed {args.seed}, {len(seeds)} seed messages, "
        f"udp {args.udp}, tcp {args.tcp}, probe every {setup.plan.probe_every}"
    )
    try:
        report["first_call"] = setup.final_call()
        cold = {p.name: p.stats() for p in setup.procs}
        setup.baseline_tracebacks = {p.name: p.tracebacks for p in setup.procs}
        kernel0 = udp_counters()
        figures, rng = Figures(), random.Random(args.seed)
        udp = UdpFuzzer(setup.plan, seeds, rng, figures, setup.alive)
        tcp = TcpFuzzer(setup.plan, seeds, rng, figures, setup.alive)
        start = time.monotonic()
        warmup = min(args.udp // 2 if args.warmup is None else args.warmup, args.udp)
        finding = udp.run(warmup, say) if warmup else None
        warm = cold
        if finding is None and warmup:
            # Two rounds alike: the first sets the allocator's working set (its high-water
            # mark, which it keeps), the leak check compares the end of the second with it.
            report["warmup_cleanup_byes"] = udp.hang_up_all()
            pause = time.monotonic()
            report["warmup_settle_seconds"] = round(settle(setup, args.settle)[0], 1)
            warm = {p.name: p.stats() for p in setup.procs}
            start += time.monotonic() - pause
        if finding is None and args.udp > warmup:
            finding = udp.run(args.udp, say)
        report["udp_seconds"] = round(time.monotonic() - start, 1)
        if finding is None and args.tcp:
            finding = tcp.run(args.tcp, say)
        report["fuzz_seconds"] = round(time.monotonic() - start, 1)
        report["cleanup_byes"] = udp.hang_up_all() if finding is None else 0
        udp.close()
        tcp.close()
        kernel1 = udp_counters()
        report["figures"] = attrs.asdict(figures)
        for i, (request, answer, status) in enumerate(figures.sample_misses):
            (out / f"sample-miss-{i:02d}-deserved-{status}-request.bin").write_bytes(request)
            if answer is not None:
                (out / f"sample-miss-{i:02d}-answer.bin").write_bytes(answer)
        for i, (transport, request, answer) in enumerate(figures.bad_examples):
            (out / f"bad-answer-{i:02d}-{transport.lower()}-answer.bin").write_bytes(answer)
            if request is not None:
                (out / f"bad-answer-{i:02d}-{transport.lower()}-request.bin").write_bytes(request)
        report["kernel_udp_drops"] = kernel1["RcvbufErrors"] - kernel0["RcvbufErrors"]
        if finding is not None:
            report["finding"] = {
                "kind": finding.kind,
                "transport": finding.transport,
                "detail": finding.detail,
                "window": len(finding.window),
            }
            save_window(finding, out / "window")
            say(f"FINDING {finding.kind} over {finding.transport}: {finding.detail}")
            for p in setup.procs:
                say(f"{p.name} stderr tail: " + " | ".join(list(p.tail)[-15:]))
            setup.stop()
            if not args.no_minimise:
                report["crashers"] = [
                    str(f) for f in minimise(args.target, finding, out, args.patience)
                ]
            return report
        try:
            report["final_call"] = setup.final_call()
        except Exception as exc:
            report["final_call"] = f"FAILED: {exc!r}"
        if setup.final_register is not None:
            try:
                report["final_register"] = setup.final_register()
            except Exception as exc:
                report["final_register"] = f"FAILED: {exc!r}"
        waited, held = settle(setup, args.settle)
        report["settle_seconds"], report["held_after_settle"] = round(waited, 1), held
        report["settle_limit"] = args.settle
        after = {p.name: p.stats() for p in setup.procs}
        report["processes"] = {
            p.name: {
                "rss_kb": [cold[p.name]["rss_kb"], warm[p.name]["rss_kb"], after[p.name]["rss_kb"]],
                "peak_rss_kb": after[p.name]["peak_rss_kb"],
                "blocks": [cold[p.name]["blocks"], warm[p.name]["blocks"], after[p.name]["blocks"]],
                "fds": [cold[p.name]["fds"], warm[p.name]["fds"], after[p.name]["fds"]],
                "faults": after[p.name].get("faults", {}),
                "fault_log_lines": dict(p.fault_lines),
                "fault_examples": p.fault_examples,
                "log_lines": dict(p.log_lines),
                "tracebacks": p.tracebacks,
                "stack": after[p.name]["stack"],
                **({"proxy": after[p.name]["proxy"]} if "proxy" in after[p.name] else {}),
                **({"calls": after[p.name]["calls"]} if "calls" in after[p.name] else {}),
            }
            for p in setup.procs
        }
        report["alive_at_end"] = setup.alive()
    finally:
        report["exit_status"] = setup.stop()
    for p in setup.procs:
        report.setdefault("processes", {}).get(p.name, {})["tracebacks"] = p.tracebacks
    report["ok"] = check(report, args.rss_tolerance) == []
    return report


def check(report: dict[str, Any], tolerance: float) -> list[str]:
    """What is wrong with a finished run (empty: nothing)."""
    wrong = []
    bad = report.get("figures", {}).get("bad_answers", 0)
    if bad:
        wrong.append(f"{bad} answers from the target do not parse (bad-answer-*.bin)")
    if report.get("alive_at_end") is not None:
        wrong.append(f"not alive at the end: {report['alive_at_end']}")
    if not str(report.get("final_call", "")).startswith("answered"):
        wrong.append(f"final call: {report.get('final_call')}")
    if report.get("final_register", 200) != 200:
        wrong.append(f"final REGISTER: {report['final_register']}")
    if report.get("settle_limit") and report.get("held_after_settle"):
        wrong.append(
            f"still held {report['settle_limit']} s after the end: {report['held_after_settle']}"
        )
    samples = report.get("figures", {}).get("samples", {})
    if samples.get("wrong") or samples.get("unanswered"):
        wrong.append(
            f"sampled requests that deserved a 4xx: {samples.get('wrong', 0)} answered "
            f"otherwise, {samples.get('unanswered', 0)} unanswered (sample-miss-*.bin)"
        )
    for name, p in report.get("processes", {}).items():
        if p["tracebacks"]:
            wrong.append(f"{name}: {p['tracebacks']} traceback(s) in stderr")
        _, warm, end = p["rss_kb"]
        if tolerance and end > warm * (1 + tolerance):
            wrong.append(
                f"{name}: RSS {warm} -> {end} KiB after the warm-up, over +{tolerance:.0%}"
            )
        _, warm, end = p["blocks"]
        if tolerance and end > warm * (1 + BLOCKS_TOLERANCE) + 2000:
            wrong.append(f"{name}: Python's allocated blocks {warm} -> {end} after the warm-up")
        fd0, _, fd1 = p["fds"]
        if tolerance and fd1 > fd0 + 2:
            wrong.append(f"{name}: open descriptors {fd0} -> {fd1}")
    return wrong


def print_figures(report: dict[str, Any]) -> None:
    f = report.get("figures", {})
    sent = f.get("sent", {})
    say(
        f"sent: {sent.get('UDP', 0)} UDP datagrams, {sent.get('TCP', 0)} TCP messages, "
        f"{f.get('bytes_sent', 0)} bytes; send errors {f.get('send_errors', {})}; "
        f"kernel UDP receive-buffer drops {report.get('kernel_udp_drops')}"
    )
    say(
        f"TCP: {f.get('tcp_connections', 0)} connections, {f.get('tcp_closed_by_target', 0)} "
        "closed by the target"
    )
    answers = dict(sorted(f.get("answers", {}).items()))
    classes: collections.Counter[str] = collections.Counter()
    for key, n in answers.items():
        transport, status = key.split()
        classes[f"{transport} {status[0]}xx"] += n
    say(f"answered by class: {dict(sorted(classes.items()))}")
    samples = f.get("samples", {})
    say(
        f"sampled check: {samples.get('sampled', 0)} sampled datagrams, "
        f"{samples.get('deserving', 0)} deserved an answer, {samples.get('right', 0)} got a 4xx "
        f"(or the parser's 505/513), {samples.get('wrong', 0)} another status, "
        f"{samples.get('unanswered', 0)} none"
    )
    say(
        f"answers by status: {answers}; requests from the target: {f.get('requests_back', {})}; "
        f"unparsable answers: {f.get('bad_answers', 0)}"
    )
    say(
        f"dialogs: {f.get('dialogs', 0)} ({f.get('established', 0)} answered 2xx, "
        f"{f.get('cancel_races', 0)} CANCEL races), cleanup BYEs {report.get('cleanup_byes')}"
    )
    dropped = {
        f"{name} {kind}": n
        for name, p in report.get("processes", {}).items()
        for kind, n in p["faults"].items()
        if kind in ("unanswerable-request", "malformed-response")
    }
    say(
        f"dropped: {report.get('kernel_udp_drops')} datagrams by the kernel (full receive "
        f"buffer); by the targets, counted as faults: {dropped}; sampled requests that "
        f"deserved an answer and got none: {samples.get('unanswered', 0)}"
    )
    say(f"mutations: {dict(sorted(f.get('ops', {}).items()))}")
    probe = f.get("probe_seconds") or [0.0]
    say(
        f"probes: {len(probe)} answered, median {statistics.median(probe) * 1000:.1f} ms, "
        f"max {max(probe) * 1000:.0f} ms"
    )
    say(
        f"duration: UDP {report.get('udp_seconds')} s, UDP+TCP {report.get('fuzz_seconds')} s "
        f"(without the warm-up's settling, {report.get('warmup_settle_seconds')} s); settled "
        f"after {report.get('settle_seconds')} s; {report.get('total_seconds')} s in all"
    )
    for name, p in report.get("processes", {}).items():
        say(
            f"{name}: faults {p['faults']}; fault log lines {p['fault_log_lines']}; "
            f"tracebacks {p['tracebacks']}"
        )
        (cold, warm, end), fds = p["rss_kb"], p["fds"]
        say(
            f"{name}: RSS (settled, KiB) {cold} at the start, {warm} after the warm-up, {end} "
            f"at the end (peak {p['peak_rss_kb']}); open fds {fds[0]}, {fds[1]}, {fds[2]}"
        )
        blocks = p["blocks"]
        say(f"{name}: Python's allocated blocks {blocks[0]}, {blocks[1]}, {blocks[2]}")
        say(f"{name}: stack {p['stack']}" + (f"; proxy {p['proxy']}" if "proxy" in p else ""))
        say(
            f"{name}: log lines {p['log_lines']}"
            + (f"; calls left {p['calls']}" if "calls" in p else "")
        )
    say(
        f"first call: {report.get('first_call')}; final call: {report.get('final_call')}; "
        f"final REGISTER: {report.get('final_register', '-')}; "
        f"exit status on SIGTERM {report.get('exit_status')}"
    )
    say(f"held after settling: {report.get('held_after_settle')}")
    for line in check(report, report.get("rss_tolerance", 0.0)):
        say(f"CHECK FAILED: {line}")
    say(f"result: {'ok' if report.get('ok') else 'FAILED'}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.attack.run", description=__doc__)
    parser.add_argument("target", choices=sorted(SETUPS))
    parser.add_argument("--udp", type=int, default=20_000, help="UDP datagrams (default 20,000)")
    parser.add_argument("--tcp", type=int, default=5_000, help="TCP messages (default 5,000)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--patience", type=float, default=20.0, help="seconds a probe may take")
    parser.add_argument(
        "--settle",
        type=float,
        default=90.0,
        help="seconds to wait for no transaction, call or context left (0: no wait, no check)",
    )
    parser.add_argument(
        "--t1-ms", type=int, default=None, help="the targets' T1 (T2, T4: 8, 10 times it)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="UDP datagrams (of --udp) before the RSS baseline (default: half; 0: none)",
    )
    parser.add_argument(
        "--rss-tolerance",
        type=float,
        default=0.25,
        help="RSS growth allowed after the warm-up, a fraction (0: no check)",
    )
    parser.add_argument("--out", default=None, help="where windows and crashers go")
    parser.add_argument("--json", default=None, help="write the figures here")
    parser.add_argument("--no-minimise", action="store_true")
    args = parser.parse_args(argv)
    if not in_netns():
        why = netns_available()
        if why is not None:
            print(f"FUZZ SKIP: no private network namespace: {why}", flush=True)
            return 77
        return reexec_in_netns(argv)
    loopback_up()
    out = Path(args.out or tempfile.mkdtemp(prefix="trio-sip-fuzz-"))
    out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    report = campaign(args, out)
    report["total_seconds"] = round(time.monotonic() - began, 1)
    report["rss_tolerance"] = args.rss_tolerance
    print_figures(report)
    say(f"output in {out}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
