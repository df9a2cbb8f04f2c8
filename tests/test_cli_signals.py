"""Ctrl-C and SIGTERM on every ``trio-sip`` command, sent as real signals to a subprocess.

Each test starts the command, waits for the line that shows it is doing its work, sends the
signal and checks what a user sees (one line on stderr, exit status 130 for SIGINT, 143 for
SIGTERM) and that the cleanup reached the wire: the registrar lost the binding (REGISTER with
Expires: 0), the peer of a call got the BYE.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from trio_sip import EndReason, IncomingRequest, open_stack, open_user_agent
from trio_sip.proto.location import LocationService
from trio_sip.proxy import open_proxy

#: Every wait here is bounded; these bounds are generous for a loaded machine.
START = 30.0
EXIT = 20.0


class Command:
    """``python -m trio_sip ARGV`` with its stdout read line by line."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._buffer = b""

    async def wait_for(self, text: str) -> str:
        """Read stdout until a line contains ``text``; return that line."""
        assert self.process.stdout is not None
        with trio.fail_after(START):
            while True:
                while b"\n" in self._buffer:
                    raw, self._buffer = self._buffer.split(b"\n", 1)
                    line = raw.decode()
                    self.lines.append(line)
                    if text in line:
                        return line
                chunk = await self.process.stdout.receive_some(65536)
                assert chunk, f"{text!r} never came; stdout: {self.lines}"
                self._buffer += chunk

    async def interrupt(self, signum: int = signal.SIGINT) -> tuple[int, list[str]]:
        """Send ``signum``; return the exit status and the stderr lines."""
        self.process.send_signal(signum)
        assert self.process.stderr is not None
        err = b""
        with trio.fail_after(EXIT):
            while chunk := await self.process.stderr.receive_some(65536):
                err += chunk
            status = await self.process.wait()
        return status, err.decode().strip().splitlines()


@asynccontextmanager
async def command(*argv: str) -> AsyncIterator[Command]:
    """The running command; killed on the way out if it is still running (a failed test)."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "trio_sip", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        yield Command(process)
    finally:
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
            for pipe in (process.stdout, process.stderr):
                if pipe is not None:
                    await pipe.aclose()


async def test_serve_sigterm_hangs_up_the_live_call_and_exits_143() -> None:
    async with (
        open_user_agent(aor="sip:caller@127.0.0.1") as caller,
        command("serve", "--listen", "UDP:127.0.0.1:0") as serve,
    ):
        line = await serve.wait_for("serving on udp:")
        port = int(line.rsplit(":", 1)[1])
        async with caller.call(f"sip:serve@127.0.0.1:{port}") as call:
            with trio.fail_after(START):
                await call.wait_answered()
            await serve.wait_for("answered")
            status, err = await serve.interrupt(signal.SIGTERM)
            with trio.fail_after(EXIT):
                ended = await call.wait_ended()
    assert (status, err) == (143, ["trio-sip: terminated"])
    assert ended.reason is EndReason.REMOTE_HANGUP  # serve's BYE reached us


async def test_register_ctrl_c_unregisters_and_exits_130() -> None:
    location = LocationService()
    async with open_proxy(
        [("UDP", "127.0.0.1", 0)], domain="example.com", location_service=location
    ) as site:
        server = f"127.0.0.1:{site.address[1]}"
        async with command("register", "--server", server, "--user", "alice@example.com") as reg:
            await reg.wait_for("-> REGISTERED")
            assert location.lookup("sip:alice@example.com", trio.current_time())
            status, err = await reg.interrupt(signal.SIGINT)
        bindings = location.lookup("sip:alice@example.com", trio.current_time())
    assert (status, err) == (130, ["trio-sip: interrupted"])
    assert bindings == []  # the REGISTER with Expires: 0 reached the registrar before the exit


async def test_call_ctrl_c_sends_bye_and_exits_130() -> None:
    async with open_user_agent(aor="sip:bob@127.0.0.1") as bob, trio.open_nursery() as nursery:
        port = bob.stack.listening[0][1][1]

        async def answer() -> None:
            async for incoming in bob.incoming_calls():
                await incoming.accept()
                return

        nursery.start_soon(answer)
        async with command("call", f"sip:bob@127.0.0.1:{port}", "--hangup-after", "600") as call:
            await call.wait_for("ANSWERED")
            (bobs_call,) = bob.calls
            status, err = await call.interrupt(signal.SIGINT)
        with trio.fail_after(EXIT):
            ended = await bobs_call.wait_ended()
    assert (status, err) == (130, ["trio-sip: interrupted"])
    assert ended.reason is EndReason.REMOTE_HANGUP  # the caller's BYE reached bob


async def test_keepalive_and_options_exit_on_a_signal() -> None:
    async def answer(incoming: IncomingRequest) -> None:
        await incoming.respond(200)

    async with open_stack([("UDP", "127.0.0.1", 0)], handler=answer) as uas:
        port = str(uas.listening[0][1][1])
        async with (
            command("options", f"sip:127.0.0.1:{port}", "--count", "1000", "--interval", "0.2")
            as options,
            command("keepalive", "127.0.0.1", port, "--period", "0.2") as keepalive,
        ):  # fmt: skip
            await options.wait_for("#1 200 OK")
            await keepalive.wait_for("(sent)")
            assert await options.interrupt(signal.SIGINT) == (130, ["trio-sip: interrupted"])
            assert await keepalive.interrupt(signal.SIGTERM) == (143, ["trio-sip: terminated"])


async def test_demo_ctrl_c_exits_130_without_a_traceback() -> None:
    async with command("demo") as demo:
        await demo.wait_for("Registering alice and bob")
        assert await demo.interrupt(signal.SIGINT) == (130, ["trio-sip: interrupted"])
