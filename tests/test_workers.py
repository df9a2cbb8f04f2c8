"""``trio-sip serve --workers N`` and trio_sip.workers, on real sockets and processes.

A supervisor binds one SO_REUSEPORT socket per worker and holds them; the kernel picks a
worker per 4-tuple. These tests check what docs/workers.md says: the port answers while a
worker is killed and restarted, a caller's dialog stays with its worker, a request from another
address can reach a worker that does not hold the dialog (481), ICMP errors follow the hash,
and SIGTERM to the supervisor ends every worker.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.hostile import request
from trio_sip.proto.message import Response
from trio_sip.proto.parse import parse_message
from trio_sip.workers import bind_shared

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SO_REUSEPORT and IP_RECVERR as on Linux"
)
HOST = "127.0.0.1"
#: Every wait in these tests is bounded by this (seconds).
WAIT = 20.0


class Supervisor:
    """``python -m trio_sip serve --workers N ...`` with its output collected by a thread."""

    def __init__(self, *argv: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trio_sip", "serve", *argv],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, pattern: str, count: int = 1) -> list[re.Match[str]]:
        """The first ``count`` matches of ``pattern`` in the output (waits up to WAIT s)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + WAIT
        with self._changed:
            while True:
                found = [m for m in map(regex.search, self.lines) if m]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                assert left > 0, f"no {count} x {pattern!r} in:\n" + "\n".join(self.lines)
                self._changed.wait(left)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _start(workers: int, *extra: str) -> tuple[Supervisor, int, dict[int, int]]:
    """A supervisor on a free UDP port once every worker listens: (it, port, index -> pid)."""
    sup = Supervisor("--workers", str(workers), "--listen", f"UDP:{HOST}:0", *extra)
    port = int(sup.wait_for(r"^serving on udp:127\.0\.0\.1:(\d+)$")[0].group(1))
    started = sup.wait_for(r"worker (\d+) \(pid (\d+)\) started", workers)
    sup.wait_for(r"w\d +serving on udp:.* \(shared\)", workers)
    return sup, port, {int(m.group(1)): int(m.group(2)) for m in started}


def _exchange(sock: socket.socket, data: bytes, port: int) -> Response:
    """Send the request ``data`` (again every 0.5 s, as a UDP client would) until its final
    response comes back (responses to earlier requests are skipped); that response."""
    sent = parse_message(data)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        sock.sendto(data, (HOST, port))
        sock.settimeout(0.5)
        try:
            while True:
                message = parse_message(sock.recv(65535))
                assert isinstance(message, Response)
                if (
                    message.status_code >= 200
                    and message.call_id == sent.call_id
                    and message.cseq == sent.cseq
                ):
                    return message
        except TimeoutError:
            continue
    raise AssertionError(f"no answer from port {port}")


def _options(sock: socket.socket, port: int, number: int) -> Response:
    src = sock.getsockname()
    data = request((HOST, port), src, method="OPTIONS", branch=f"z9hG4bK-opt-{number}",
                   call_id=f"opt-{number}-{src[1]}@test")  # fmt: skip
    return _exchange(sock, data, port)


def _gone(pid: int) -> bool:
    """True when ``pid`` has ended (no process, or a zombie nobody reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def _wait_gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if all(map(_gone, pids)):
            return True
        time.sleep(0.05)
    return False


def test_a_killed_worker_is_restarted_and_the_port_keeps_answering() -> None:
    sup, port, pids = _start(2)
    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(16)]
    try:
        for client in clients:
            client.bind((HOST, 0))
        assert [_options(c, port, 1).status_code for c in clients] == [200] * 16
        os.kill(pids[0], signal.SIGKILL)
        sup.wait_for(rf"worker 0 \(pid {pids[0]}\) died: SIGKILL; restarting")
        # At once, while worker 0 restarts: its share of the datagrams waits in its socket,
        # which the supervisor holds, and its successor answers them.
        assert [_options(c, port, 2).status_code for c in clients] == [200] * 16
        restarted = sup.wait_for(r"worker 0 \(pid (\d+)\) started", 2)[1]
        new_pid = int(restarted.group(1))
        assert new_pid != pids[0] and not _gone(new_pid)
        assert [_options(c, port, 3).status_code for c in clients] == [200] * 16
        assert sup.proc.poll() is None
        sup.proc.send_signal(signal.SIGTERM)
        assert sup.proc.wait(WAIT) == 128 + signal.SIGTERM
        assert _wait_gone([new_pid, pids[1]])
        sup.wait_for(rf"worker 1 \(pid {pids[1]}\) stopped")
    finally:
        for client in clients:
            client.close()
        sup.stop()


def test_ctrl_c_stops_every_worker_and_exits_130() -> None:
    """SIGINT to the supervisor (Ctrl-C; the workers are in their own process group, so only
    the supervisor gets it): every worker is stopped, one line, exit 130, as every command."""
    sup, port, pids = _start(2)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.bind((HOST, 0))
            assert _options(client, port, 1).status_code == 200
        sup.proc.send_signal(signal.SIGINT)
        assert sup.proc.wait(WAIT) == 128 + signal.SIGINT
        assert _wait_gone(list(pids.values()))
        sup.wait_for(r"worker 0 \(pid \d+\) stopped")
        sup.wait_for(r"worker 1 \(pid \d+\) stopped")
        assert sup.lines[-1] == "trio-sip: interrupted", sup.lines
        assert not any("Traceback" in line for line in sup.lines), sup.lines
    finally:
        sup.stop()


async def test_sigterm_to_the_supervisor_hangs_up_the_workers_calls_and_exits_143() -> None:
    """16 calls up from 16 source ports, spread over two workers; SIGTERM to the supervisor:
    each worker gets SIGTERM and hangs up its calls (every caller gets a BYE), the supervisor
    exits 143 with one line."""
    import trio

    from trio_sip import EndReason, open_user_agent

    sup, port, _ = await trio.to_thread.run_sync(_start, 2, "--quiet", "--report-every", "0.3")
    answered: list[int] = []
    ended: list[EndReason] = []

    async def held_call(number: int) -> None:
        async with (
            open_user_agent([("UDP", HOST, 0)], aor=f"sip:c{number}@{HOST}") as ua,
            ua.call(f"sip:serve@{HOST}:{port}") as call,
        ):
            await call.wait_answered()
            answered.append(number)
            ended.append((await call.wait_ended()).reason)

    try:
        with trio.fail_after(WAIT):
            async with trio.open_nursery() as nursery:
                for number in range(16):
                    nursery.start_soon(held_call, number)
                while len(answered) < 16:
                    await trio.sleep(0.05)
                while sum(_answered_per_worker(sup).values()) < 16:  # their next reports
                    await trio.sleep(0.05)
                per_worker = _answered_per_worker(sup)
                sup.proc.send_signal(signal.SIGTERM)
        status = await trio.to_thread.run_sync(sup.proc.wait, WAIT)
        await trio.to_thread.run_sync(sup.wait_for, r"^trio-sip: terminated$")
    finally:
        sup.stop()
    assert status == 128 + signal.SIGTERM
    assert ended == [EndReason.REMOTE_HANGUP] * 16  # the workers' BYEs
    assert min(per_worker.get(w, 0) for w in "01") > 0, per_worker  # both held calls


def _answered_per_worker(sup: Supervisor) -> dict[str, int]:
    """Worker index -> its calls answered so far, from each worker's latest count line."""
    reports = [m for m in map(re.compile(r"w(\d+) +(\d+) answered").search, sup.lines) if m]
    return {m.group(1): int(m.group(2)) for m in reports}


def _call(sock: socket.socket, port: int, number: int) -> tuple[str, str]:
    """INVITE and ACK from ``sock``; the dialog's (Call-ID, To with its tag)."""
    src = sock.getsockname()
    call_id = f"call-{number}-{src[1]}@test"
    invite = request((HOST, port), src, branch=f"z9hG4bK-inv-{number}", call_id=call_id)
    ok = _exchange(sock, invite, port)
    assert ok.status_code == 200, ok
    ack = request((HOST, port), src, method="ACK", branch=f"z9hG4bK-ack-{number}",
                  call_id=call_id, to=str(ok.to))  # fmt: skip
    sock.sendto(ack, (HOST, port))
    return call_id, str(ok.to)


def _bye(sock: socket.socket, port: int, call_id: str, to: str, seq: int) -> int:
    src = sock.getsockname()
    branch = f"z9hG4bK-bye-{seq}-{src[1]}-{call_id.partition('@')[0]}"
    bye = request((HOST, port), src, method="BYE", branch=branch,
                  call_id=call_id, to=to, seq=seq)  # fmt: skip
    return _exchange(sock, bye, port).status_code


def test_a_dialog_stays_with_its_worker_and_a_bye_from_elsewhere_may_get_481() -> None:
    """Calls from 16 source ports, two workers: every BYE from the caller's own address ends
    its call (200), and the calls were spread over both workers. A BYE for one of those dialogs
    sent from another port reaches the other worker about half the time: it holds no such
    dialog and answers 481 (docs/workers.md); the dialog then still ends from its own port."""
    sup, port, _ = _start(2, "--quiet", "--report-every", "0.3")
    callers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(16)]
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        stranger.bind((HOST, 0))
        for caller in callers:
            caller.bind((HOST, 0))
        for number, caller in enumerate(callers):
            call_id, to = _call(caller, port, number)
            assert _bye(caller, port, call_id, to, 2) == 200
        counts = sup.wait_for(r"w([01]) +(\d+) answered, (\d+) ended", 0)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:  # the next report of each worker
            lines = [m for m in map(re.compile(r"w([01]) +(\d+) answered").search, sup.lines) if m]
            counts = {m.group(1): int(m.group(2)) for m in lines}
            if sum(counts.values()) == 16:
                break
            time.sleep(0.1)
        assert sum(counts.values()) == 16 and min(counts.get(w, 0) for w in "01") > 0, counts
        statuses = []
        for number in range(100, 120):  # bounded: both answers are almost sure within 20
            caller = callers[number % 16]
            call_id, to = _call(caller, port, number)
            status = _bye(stranger, port, call_id, to, 2)
            statuses.append(status)
            if status == 481:
                assert _bye(caller, port, call_id, to, 3) == 200
            if 481 in statuses and 200 in statuses:
                break
        assert set(statuses) == {200, 481}, statuses
    finally:
        for sock in [*callers, stranger]:
            sock.close()
        sup.stop()


def test_icmp_error_reaches_the_socket_the_peer_hashes_to() -> None:
    """Two SO_REUSEPORT sockets with IP_RECVERR, as two workers have. For each of 8 peers: the
    socket that the peer's datagrams reach is the one that gets the ICMP port-unreachable for
    a datagram sent to the peer, whichever of the two sockets sent it."""
    listeners, sockets = bind_shared([("UDP", HOST, 0)], 2)
    try:
        port = listeners[0].port
        for sock in sockets:
            sock.setblocking(False)
        for number in range(8):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
                peer.bind((HOST, 0))
                peer_address = peer.getsockname()
                peer.sendto(b"hello %d" % number, (HOST, port))
                owner = _which_receives(sockets, b"hello %d" % number)
            # The peer's port is closed now: each socket sends to it once.
            for sender in sockets:
                sender.sendto(b"are you there", peer_address)
                got = _which_error(sockets, peer_address)
                assert got == owner, (number, sockets.index(sender), got, owner)
    finally:
        for sock in sockets:
            sock.close()


def _which_receives(sockets: list[socket.socket], data: bytes) -> int:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for index, sock in enumerate(sockets):
            try:
                got, _ = sock.recvfrom(65535, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            assert got == data
            return index
        time.sleep(0.01)
    raise AssertionError("no socket received the datagram")


def _which_error(sockets: list[socket.socket], destination: tuple[str, int]) -> int:
    """The index of the socket whose error queue gets an error for ``destination``."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for index, sock in enumerate(sockets):
            try:
                _, _, _, address = sock.recvmsg(0, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            assert address[:2] == destination
            return index
        time.sleep(0.01)
    raise AssertionError(f"no ICMP error for {destination}")


#: A worker program: a user agent on the shared sockets until the file ``argv[1]`` exists
#: (bounded: 60 s), then exit 0.
WORKER = """
import os, sys, trio
from trio_sip.ua import open_user_agent
from trio_sip.workers import current_worker

async def main():
    worker = current_worker()
    async with open_user_agent(worker.listen, aor="sip:w@127.0.0.1", backend=worker.backend):
        with trio.move_on_after(60):
            while not os.path.exists(sys.argv[1]):
                await trio.sleep(0.05)

trio.run(main)
"""


async def test_serve_workers_runs_until_every_worker_is_done(tmp_path: Path) -> None:
    """The API: two workers on a port the supervisor picked, each an ``open_user_agent`` with
    ``current_worker().backend``; both answer OPTIONS through the one port (sent before they
    are up: the datagrams wait in the shared sockets), exit 0 when told to, are not
    restarted, and ``serve_workers`` returns."""
    import trio

    from trio_sip.ua import open_user_agent
    from trio_sip.workers import WorkerEvent, serve_workers

    events: list[WorkerEvent] = []
    done = tmp_path / "done"
    with trio.fail_after(3 * WAIT):  # two Python processes starting on a loaded machine
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                lambda task_status: serve_workers(
                    [sys.executable, "-c", WORKER, str(done)], [("UDP", HOST, 0)], 2,
                    on_event=events.append, task_status=task_status,
                )
            )  # fmt: skip
            (listener,) = listeners
            assert listener.port != 0 and len(listener.fds) == 2
            async with open_user_agent([("UDP", HOST, 0)], aor="sip:t@127.0.0.1") as ua:
                answers = [await ua.options(f"sip:w@{HOST}:{listener.port}") for _ in range(4)]
            done.touch()
    assert [r.status_code for r in answers] == [200] * 4
    kinds = sorted((e.kind, e.index) for e in events)
    assert kinds == [("exited", 0), ("exited", 1), ("started", 0), ("started", 1)], events


async def test_serve_workers_refuses_a_bad_count() -> None:
    from trio_sip.errors import ConfigError
    from trio_sip.workers import serve_workers

    for bad in (0, -1, True):
        with pytest.raises(ConfigError, match="workers"):
            await serve_workers([sys.executable, "-c", "pass"], [("UDP", HOST, 0)], bad)


@pytest.mark.parametrize("bad", ["0", "-1", "257"])
def test_serve_refuses_a_bad_worker_count_naming_the_option(bad: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trio_sip", "serve", "--workers", bad, "--listen", f"UDP:{HOST}:0"],
        capture_output=True, text=True, timeout=WAIT, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"trio-sip serve: --workers={bad} is not allowed: an integer from 1 to 256"
    ], result.stderr


#: A worker that writes what ``current_worker()`` told it to ``argv[1]`` + its index, exits 0.
REPORTER = """
import sys
from trio_sip import Worker, current_worker

w = current_worker()
with open(sys.argv[1] + str(w.index), "w") as out:
    out.write(f"{isinstance(w, Worker)} {w.index} {w.count} {w.listen[0][0]} {w.listen[0][2]}")
"""


def test_run_workers_starts_each_worker_with_its_index_and_returns_zero(tmp_path: Path) -> None:
    from trio_sip import Worker, WorkerEvent, current_worker, run_workers

    assert current_worker() is None  # this process was not started by a supervisor
    events: list[object] = []
    status = run_workers(
        [sys.executable, "-c", REPORTER, str(tmp_path / "w")], [("UDP", HOST, 0)], 2,
        on_event=events.append,
    )  # fmt: skip
    assert status == 0
    assert all(isinstance(e, WorkerEvent) for e in events)
    kinds = sorted((e.kind, e.index) for e in events if isinstance(e, WorkerEvent))
    assert kinds == [("exited", 0), ("exited", 1), ("started", 0), ("started", 1)]
    reports = [(tmp_path / f"w{i}").read_text().split() for i in range(2)]
    assert [r[:4] for r in reports] == [["True", "0", "2", "UDP"], ["True", "1", "2", "UDP"]]
    assert reports[0][4] == reports[1][4] != "0"  # one port, the one the supervisor bound
    assert not isinstance(current_worker(), Worker)
