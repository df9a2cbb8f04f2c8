"""The small interface every softphone of the interop matrix exposes, and its process driver.

A :class:`Phone` is a real third-party SIP phone (linphonec, baresip, twinkle) run headless on
loopback by the test, driven through its own command interface (stdin, or baresip's ``cons``
UDP socket), and observed through what it prints (a log file). The matrix scenarios
(tests/interop/matrix.py) only use this interface::

    uri                       where to call the phone directly (sip:user@127.0.0.1:port)
    transports                what it listens on ({"UDP"} for a UDP-only phone)
    await dial(uri)           place a call
    await answer()            answer the ringing call
    await hangup()            BYE (or CANCEL) the current call
    await hold(); resume()    re-INVITE a=sendonly / a=sendrecv
    await auto_answer(on)     answer every call by itself
    await register()          register (digest) the account given at construction
    mark(); await wait(event) wait for an event printed since the last mark()

Events (the keys of ``PATTERNS``): ``incoming``, ``ringing`` (our INVITE got a 180),
``answered`` (a call established, either way), ``ended``, ``held`` (the phone holds or the
other side held it), ``resumed``, ``registered``. Every wait is bounded; a timeout fails the
test with the tail of the phone's log.

The process runs in its own session (process group); :meth:`Phone.stop` ends that group only.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import attrs
import trio

from .peers import assert_loopback


@attrs.frozen
class Account:
    """Where a phone registers: the registrar's address, the user, its password and domain."""

    host: str
    port: int
    user: str
    password: str
    domain: str


class PhoneError(AssertionError):
    """A phone did not do what was asked in time (the message carries its log tail)."""


class Phone:
    """Base class: a phone process driven by commands, observed through its output."""

    name: ClassVar[str] = "phone"
    #: event -> regular expression matched in the phone's output.
    PATTERNS: ClassVar[Mapping[str, str]] = {}
    #: what the phone listens on.
    transports: frozenset[str] = frozenset({"UDP"})

    def __init__(
        self, workdir: Path, host: str, port: int, user: str, account: Account | None = None
    ) -> None:
        self.workdir = workdir
        self.account = account
        self.host = assert_loopback(host)
        self.port = port
        self.user = user
        self.log_path = workdir / f"{self.name}.log"
        self._process: trio.Process | None = None
        self._mark = 0

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@{self.host}:{self.port}"

    # -- process -----------------------------------------------------------------------------

    def argv(self) -> Sequence[str]:
        raise NotImplementedError

    def env(self) -> Mapping[str, str]:
        return {}

    async def started(self) -> None:
        """Wait until the phone listens (subclasses may send setup commands)."""

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        try:
            self._process = await trio.lowlevel.open_process(
                list(self.argv()),
                cwd=self.workdir,
                env=dict(os.environ, **self.env()),
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        with trio.fail_after(20):
            await self.started()

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(Exception), trio.move_on_after(2):
            await self.quit()
            await process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # the group we created, nothing else
        with trio.move_on_after(5):
            await process.wait()

    async def quit(self) -> None:
        """Ask the phone to exit (best effort)."""

    async def command(self, line: str) -> None:
        """Send one command line to the phone's stdin."""
        if self._process is None or self._process.stdin is None:
            raise PhoneError(f"{self.name} is not running")
        await self._process.stdin.send_all(line.encode() + b"\n")

    # -- observing ---------------------------------------------------------------------------

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def mark(self) -> None:
        """Later waits only look at what the phone prints from now on."""
        self._mark = len(self.log())

    async def wait(self, event: str, timeout: float = 10.0) -> str:
        """Wait until the phone prints ``event`` (after the mark); returns the matching line and
        moves the mark past it."""
        return await self.wait_for(self.PATTERNS[event], timeout, event)

    async def wait_for(self, regex: str, timeout: float = 10.0, what: str = "") -> str:
        """Wait until the phone prints something matching ``regex`` (after the mark)."""
        pattern = re.compile(regex)
        with trio.move_on_after(timeout):
            while True:
                text = self.log()
                found = pattern.search(text, self._mark)
                if found is not None:
                    self._mark = found.end()
                    line_start = text.rfind("\n", 0, found.start()) + 1
                    line_end = text.find("\n", found.end())
                    return text[line_start : line_end if line_end >= 0 else None]
                if self._process is not None and self._process.returncode is not None:
                    break
                await trio.sleep(0.05)
        raise PhoneError(
            f"{self.name}: no {what or 'output'} ({regex!r}) within {timeout} s;"
            f" log tail:\n{self.log_tail()}"
        )

    # -- the interface (subclasses implement) ------------------------------------------------

    async def dial(self, uri: str) -> None:
        raise NotImplementedError

    async def answer(self) -> None:
        raise NotImplementedError

    async def hangup(self) -> None:
        raise NotImplementedError

    async def hold(self) -> None:
        raise NotImplementedError

    async def resume(self) -> None:
        raise NotImplementedError

    async def auto_answer(self, on: bool) -> None:
        raise NotImplementedError

    async def register(self) -> None:
        """Register ``account`` (given when the phone was made); wait for it with
        ``wait("registered")``."""
        raise NotImplementedError


@contextlib.asynccontextmanager
async def running_phone(phone: Phone) -> AsyncIterator[Phone]:
    """Start ``phone``, yield it, stop it (its own process group only)."""
    try:
        await phone.start()
        yield phone
    finally:
        with trio.CancelScope(shield=True):
            await phone.stop()
