"""Calls per second a UAS answers on one core: trio-sip against sippy, same run, same sipp.

What one run does (``python -m benchmarks uas``):

* The load generator is sipp (Debian ``sip-tester``) with its built-in ``-sn uac`` scenario:
  INVITE with SDP, 100/180 optional, 200, ACK, a pause of ``PAUSE_MS``, BYE, 200.  It runs on
  loopback, pinned to one core; the UAS under test runs in its own process pinned to the other.
* Each UAS is one of ``benchmarks/peers/trio_sip_uas.py`` (``ua``: the public user-agent API;
  ``stack``: the transaction layer) or ``benchmarks/peers/sippy_uas.py`` (sippy's
  ``SipTransactionManager`` + ``UA``).  All answer the same way: 180, 200 with an SDP answer,
  absorb the ACK, 200 to the BYE.
* For each UAS, rates step up geometrically (a fresh UAS process per step) until one is not
  sustained, then bisect twice between the last sustained and the first failed rate.  A step
  sends ``rate * step_seconds`` calls at ``-r rate``.  A rate is **sustained** when >= 99% of
  the calls succeed, sipp's retransmissions stay <= 1% of the calls, and sipp's achieved call
  rate is >= 95% of the target.
* Also reported per step: the UAS process's CPU time (user + system, from /proc) per call:
  a less noisy number than the highest sustained rate on a shared machine.

Target: trio-sip's highest sustained rate >= 4x sippy's.  Benchmarks report; nothing here
fails the run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PAUSE_MS = 1000
TARGET_RATIO = 4.0
SUCCESS_MIN = 0.99
RETRANS_MAX = 0.01
RATE_MIN = 0.95
START_RATES = (50, 100, 200, 400, 800, 1600, 3200)

#: The compiled build's UAS: ``-P`` puts no script/cwd directory in front of ``sys.path`` and the
#: repository root goes at the *end* (for ``benchmarks`` only), so the installed trio_sip (a
#: ``TRIO_SIP_COMPILE=1`` wheel) is imported; the peer exits at once if it is not compiled.
_COMPILED_BOOT = (
    f"import sys; sys.path.append({str(ROOT)!r}); "
    "from benchmarks.peers.trio_sip_uas import main; main(sys.argv[1:], compiled=True)"
)

#: label -> (stack name for --only, argv after the Python executable)
UASES: dict[str, tuple[str, list[str]]] = {
    "trio-sip (ua)": ("trio-sip", ["-m", "benchmarks.peers.trio_sip_uas", "ua"]),
    "trio-sip (stack)": ("trio-sip", ["-m", "benchmarks.peers.trio_sip_uas", "stack"]),
    "trio-sip-mypyc (ua)": ("trio-sip-mypyc", ["-P", "-c", _COMPILED_BOOT, "ua"]),
    "trio-sip-mypyc (stack)": ("trio-sip-mypyc", ["-P", "-c", _COMPILED_BOOT, "stack"]),
    "sippy": ("sippy", ["-m", "benchmarks.peers.sippy_uas"]),
}


# -- helpers shared with memory_bench --------------------------------------------------------


def find_sipp() -> tuple[str | None, str | None]:
    """(sipp path, None) or (None, why not).  Installs Debian's sip-tester when root."""
    path = shutil.which("sipp")
    if path is not None:
        return path, None
    sys.path.insert(0, str(ROOT))
    try:
        from tests.interop.peers import ensure_debian_packages

        return ensure_debian_packages("sip-tester")["sip-tester"], None
    except BaseException as exc:  # pytest.skip / pytest.fail raise BaseException subclasses
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return None, f"sipp unavailable: {type(exc).__name__}: {exc}"


def free_port(host: str = HOST) -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def cores() -> tuple[int | None, int | None]:
    """(core for the server, core for the load generator); None when we cannot pin."""
    try:
        available = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None, None
    if len(available) < 2:
        return None, None
    return available[-1], available[0]


def pin(pid: int, core: int | None) -> None:
    if core is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {core})


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def start_server(argv: list[str], core: int | None, *, env: dict[str, str] | None = None) -> Any:
    """Start a UAS process; return (Popen, port) once it printed ``READY <port>``."""
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    pin(proc.pid, core)
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if sel.select(timeout=20):
            line = proc.stdout.readline().decode().strip()
            if line.startswith("READY "):
                return proc, int(line.split()[1])
    stop(proc)
    err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
    raise RuntimeError(f"UAS {argv} did not start: {err}")


def stop(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """Stop a process we started, by its PID: SIGTERM, then SIGKILL after ``grace``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace)


def sipp_stats(csv_path: Path) -> dict[str, float]:
    """The last line of sipp's ``-trace_stat`` CSV, as {column: value} for the numeric ones."""
    lines = [line for line in csv_path.read_text().splitlines() if line.strip()]
    header, last = lines[0].split(";"), lines[-1].split(";")
    stats: dict[str, float] = {}
    for name, value in zip(header, last, strict=False):
        with contextlib.suppress(ValueError):
            # the time columns are "date<TAB>time<TAB>epoch": keep the epoch
            stats[name] = float(value.split("\t")[-1])
    return stats


def sipp_argv(
    sipp: str, port: int, workdir: Path, *, rate: float, calls: int, pause_ms: int, extra: list[str]
) -> list[str]:
    return [
        sipp,
        f"{HOST}:{port}",
        "-sn",
        "uac",
        "-i",
        HOST,
        "-p",
        str(free_port()),
        "-cp",
        str(free_port()),
        "-mp",
        str(free_port()),
        "-r",
        f"{rate:g}",
        "-m",
        str(calls),
        "-d",
        str(pause_ms),
        "-timeout",
        f"{int(calls / rate + pause_ms / 1000 + 40)}s",
        "-timeout_error",
        "-nostdin",
        "-trace_stat",
        "-stf",
        str(workdir / "stat.csv"),
        "-fd",
        "1",
        "-trace_err",
        *extra,
    ]


def run_sipp(argv: list[str], workdir: Path, core: int | None, deadline: float) -> int:
    """Run sipp to completion (killed by PID at ``deadline`` seconds); its exit status."""
    with (workdir / "sipp.out").open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        pin(proc.pid, core)
        try:
            return proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            stop(proc, grace=2)
            return -1


# -- the benchmark -------------------------------------------------------------------------------


def _step(
    sipp: str, server_argv: list[str], rate: float, step_seconds: float, workdir: Path
) -> dict[str, Any]:
    server_core, sipp_core = cores()
    calls = max(50, int(rate * step_seconds))
    lifetime = calls / rate + PAUSE_MS / 1000 + 120
    proc, port = start_server([*server_argv, HOST, str(free_port()), f"{lifetime:g}"], server_core)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        argv = sipp_argv(
            sipp,
            port,
            workdir,
            rate=rate,
            calls=calls,
            pause_ms=PAUSE_MS,
            extra=["-recv_timeout", "10s", "-pause_msg_ign"],
        )
        cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
        code = run_sipp(argv, workdir, sipp_core, deadline=calls / rate + PAUSE_MS / 1000 + 60)
        cpu = cpu_seconds(proc.pid) - cpu0
        wall = time.monotonic() - wall0
        alive = proc.poll() is None
    finally:
        stop(proc)
    try:
        stats = sipp_stats(workdir / "stat.csv")
    except (OSError, IndexError) as exc:
        return {"rate": rate, "calls": calls, "sustained": False, "error": f"no sipp stats: {exc}"}
    ok = int(stats.get("SuccessfulCall(C)", 0))
    failed = int(stats.get("FailedCall(C)", 0))
    retrans = int(stats.get("Retransmissions(C)", 0))
    # Calls sent per second: the run's length (sipp's clock) less the last call's pause.  sipp
    # slows down when its open-call limit (-l, default 3 x rate x call length) fills up.
    elapsed = stats.get("CurrentTime", 0.0) - stats.get("StartTime", 0.0)
    achieved = calls / max(elapsed - PAUSE_MS / 1000, 1e-3)
    sustained = (
        ok >= SUCCESS_MIN * calls
        and retrans <= RETRANS_MAX * calls
        and achieved >= RATE_MIN * rate
        and alive
    )
    return {
        "rate": rate,
        "calls": calls,
        "successful": ok,
        "failed": failed,
        "retransmissions": retrans,
        "achieved_rate": achieved,
        "sipp_exit": code,
        "server_alive": alive,
        "server_cpu_s": cpu,
        "server_cpu_us_per_call": cpu / max(ok, 1) * 1e6,
        "server_cpu_share": cpu / wall if wall else 0.0,
        "sustained": sustained,
    }


def _search(
    label: str, sipp: str, argv: list[str], step_seconds: float, workdir: Path, budget: float
) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    started = time.monotonic()

    def step(rate: float) -> bool:
        result = _step(sipp, argv, rate, step_seconds, workdir / f"{label}-{rate:g}")
        steps.append(result)
        mark = "ok" if result["sustained"] else "NOT sustained"
        detail = result.get("error") or (
            f"{result['successful']}/{result['calls']} ok, {result['retransmissions']} retrans, "
            f"achieved {result['achieved_rate']:.0f}/s, "
            f"UAS cpu {result['server_cpu_us_per_call']:.0f} us/call "
            f"({result['server_cpu_share']:.0%} of a core)"
        )
        print(f"  {label:<23} {rate:>7g} calls/s: {mark:<13} {detail}", file=sys.stderr)
        return bool(result["sustained"])

    best, worst = 0.0, None
    for rate in START_RATES:
        if time.monotonic() - started > budget:
            break
        if step(rate):
            best = rate
        else:
            worst = rate
            break
    if worst is not None and best:
        for _ in range(2):
            if time.monotonic() - started > budget:
                break
            middle = round((best + worst) / 2)
            if step(middle):
                best = middle
            else:
                worst = middle
    sustained_steps = [s for s in steps if s["sustained"]]
    cpu = [s["server_cpu_us_per_call"] for s in sustained_steps]
    return {
        "max_sustained_rate": best,
        "first_failed_rate": worst,
        "cpu_us_per_call": min(cpu) if cpu else None,
        "steps": steps,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Step each UAS up to its highest sustained rate; print the table and the ratios."""
    started = time.monotonic()
    only = {s.strip().lower() for s in (getattr(args, "only", None) or "").split(",") if s.strip()}
    step_seconds = max(2.0, 2 * float(getattr(args, "seconds", 2.0)))
    sipp, why = find_sipp()
    result: dict[str, Any] = {
        "load_generator": "sipp -sn uac",
        "pause_ms": PAUSE_MS,
        "step_seconds": step_seconds,
        "criteria": {
            "success_min": SUCCESS_MIN,
            "retransmissions_max_per_call": RETRANS_MAX,
            "achieved_rate_min": RATE_MIN,
        },
        "target_ratio": TARGET_RATIO,
        "cores": dict(zip(("server", "sipp"), cores(), strict=True)),
        "uases": {},
    }
    if sipp is None:
        print(f"uas benchmark skipped: {why}")
        result["skipped"] = why
        return result
    result["sipp"] = (
        subprocess.run([sipp, "-v"], capture_output=True, text=True, check=False)
        .stdout.strip()
        .splitlines()[0]
    )
    with tempfile.TemporaryDirectory(prefix="uas-bench-") as tmp:
        for label, (stack, argv) in UASES.items():
            if only and stack.lower() not in only:
                continue
            if stack == "sippy" and importlib.util.find_spec("sippy") is None:
                result["uases"][label] = {"unavailable": "sippy is not installed"}
                continue
            try:
                result["uases"][label] = _search(label, sipp, argv, step_seconds, Path(tmp), 600)
            except (RuntimeError, OSError) as exc:
                result["uases"][label] = {"unavailable": f"{type(exc).__name__}: {exc}"}
    _report(result)
    print(f"({time.monotonic() - started:.0f} s)")
    return result


def _report(result: dict[str, Any]) -> None:
    print(
        f"UAS calls/s on one core: sipp -sn uac, {result['pause_ms']} ms calls, "
        f"{result['step_seconds']:g} s per step, sustained = >= 99% ok and <= 1% retransmissions"
    )
    print(f"{'UAS':<24} {'max sustained calls/s':>22} {'first failed':>13} {'UAS CPU/call':>13}")
    uases = result["uases"]
    for label, r in uases.items():
        if "unavailable" in r:
            print(f"{label:<24} UNAVAILABLE: {r['unavailable']}")
            continue
        failed = f"{r['first_failed_rate']:g}" if r["first_failed_rate"] else "-"
        cpu = f"{r['cpu_us_per_call']:.0f} us" if r["cpu_us_per_call"] else "-"
        print(f"{label:<24} {r['max_sustained_rate']:>22g} {failed:>13} {cpu:>13}")
    peer = uases.get("sippy", {})
    ratios: dict[str, Any] = {}
    for label in uases:
        if label == "sippy":
            continue
        ours = uases.get(label, {})
        if not ours.get("max_sustained_rate") or not peer.get("max_sustained_rate"):
            continue
        rate_ratio = ours["max_sustained_rate"] / peer["max_sustained_rate"]
        cpu_ratio = (
            peer["cpu_us_per_call"] / ours["cpu_us_per_call"]
            if ours.get("cpu_us_per_call") and peer.get("cpu_us_per_call")
            else None
        )
        ratios[label] = {"rate_ratio": rate_ratio, "cpu_ratio": cpu_ratio}
        verdict = "MET" if rate_ratio >= result["target_ratio"] else "MISSED"
        cpu_text = f"; CPU per call, sippy's / ours: {cpu_ratio:.2f}x" if cpu_ratio else ""
        print(
            f"{label} / sippy: {rate_ratio:.2f}x calls/s{cpu_text}; "
            f"target >= {result['target_ratio']:g}x: {verdict}"
        )
    result["ratios"] = ratios


if __name__ == "__main__":
    run(argparse.Namespace(seconds=2.0, only=None))
