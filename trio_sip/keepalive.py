"""Keep-alive loops on Trio: NULL CRLF keep-alives to any host:port, RFC 5626 pings on flows.

Theory of operation
-------------------
The timing lives in the core (:mod:`trio_sip.proto.keepalive`); this module only runs those
machines. Each loop is one task in the owner's nursery with its own cancel scope, started with
``nursery.start`` so that it is running when the call returns, and cancelled (never leaked)
when disabled, when the flow dies or when the owner closes.

*NULL keep-alive* (:meth:`KeepAlives.send_sip_keepalive`, the equivalent of the
``SendSipKeepAlive(host, port, enable, seconds)`` call of SIP endpoint SDKs): a bare CRLF to a
host and port every N seconds, sent from the SIP listening socket when there is one, because
that is the NAT binding incoming requests need. Enabling an active loop again just changes its
period; disabling stops it. A failed send (ICMP unreachable, say) is counted and logged, and the
loop goes on: a keep-alive exists precisely for the moments when the path is flaky.

*RFC 5626 §4.4.1 keep-alive* (:meth:`KeepAlives.watch_flow`): CRLFCRLF pings on a TCP/TLS flow;
a pong must come back within 10 seconds or the flow is aborted with a :class:`TransportError`,
so every transaction and registration watching it fails over at once.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import socket
from collections.abc import Awaitable, Callable

import attrs
import trio

from .dns import DnsError
from .proto.errors import ConfigError, TransportError
from .proto.keepalive import (
    DEFAULT_PONG_TIMEOUT,
    FlowDead,
    KeepAliveOutput,
    NullKeepAlive,
    PongReceived,
    SendKeepAlive,
    StreamKeepAlive,
    validate_period,
)
from .transports import Flow, FlowFailed, TransportLayer
from .transports import PongReceived as FlowPong

__all__ = ["KeepAliveStatistics", "KeepAlives", "resolve_host"]

logger = logging.getLogger("trio_sip.keepalive")

Address = tuple[str, int]
HostResolver = Callable[[str], Awaitable[str]]


async def resolve_host(host: str) -> str:
    """An IP literal as it is; a name through the system resolver (its first address)."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare)
        return bare
    except ValueError:
        pass
    try:
        infos = await trio.socket.getaddrinfo(bare, None, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as exc:
        raise DnsError(bare, f"keep-alive host does not resolve ({exc})") from None
    if not infos:
        raise DnsError(bare, "keep-alive host has no address")
    return str(infos[0][4][0])


def _check_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError("port", port, "an integer from 1 to 65535")
    return port


@attrs.frozen(slots=True)
class KeepAliveStatistics:
    """What is running: NULL loops by destination with their period, and watched flows."""

    null_loops: dict[Address, float]
    watched_flows: int
    sent: int
    failed_sends: int


@attrs.define(slots=True, eq=False)
class _Loop:
    machine: NullKeepAlive | StreamKeepAlive
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    wakeup: trio.Event = attrs.field(factory=trio.Event)


class KeepAlives:
    """The keep-alive loops of one transport layer, each supervised in ``nursery``."""

    def __init__(
        self,
        layer: TransportLayer,
        nursery: trio.Nursery,
        *,
        resolve: HostResolver = resolve_host,
        rng: random.Random | None = None,
    ) -> None:
        self._layer = layer
        self._nursery = nursery
        self._resolve = resolve
        self._rng = rng if rng is not None else random.Random()
        self._null: dict[Address, _Loop] = {}
        self._flows: dict[Flow, _Loop] = {}
        self._sent = 0
        self._failed_sends = 0

    # -- NULL keep-alives -----------------------------------------------------------------

    async def send_sip_keepalive(
        self, host: str, port: int, enable: bool = True, seconds: float = 30.0
    ) -> None:
        """Start, re-time or stop the CRLF keep-alive to ``host:port``.

        Raises :class:`ConfigError` for an empty host, a port outside 1..65535 or a period
        that is not a positive number of seconds, and :class:`~trio_sip.errors.DnsError` for a
        host that does not resolve; in every error case nothing is left running for that
        destination.
        """
        if not isinstance(host, str) or not host.strip():
            raise ConfigError("host", host, "a host name or IP address")
        port = _check_port(port)
        if not enable:
            resolved = await self._resolve_quietly(host)
            for candidate in {(host, port), (resolved, port)}:
                loop = self._null.pop(candidate, None)  # type: ignore[arg-type]
                if loop is not None:
                    self._stop(loop)
            return
        period = validate_period(seconds, "seconds")
        address = (await self._resolve(host), port)
        loop = self._null.get(address)
        if loop is not None:
            assert isinstance(loop.machine, NullKeepAlive)
            loop.machine.set_period(period, trio.current_time())
            loop.wakeup.set()
            return
        loop = _Loop(NullKeepAlive(period))
        self._null[address] = loop
        try:
            await self._nursery.start(self._run_null, address, loop)
        except BaseException:
            self._null.pop(address, None)
            raise

    async def _resolve_quietly(self, host: str) -> str | None:
        try:
            return await self._resolve(host)
        except DnsError:
            return None

    async def _run_null(
        self, address: Address, loop: _Loop, *, task_status: trio.TaskStatus[None]
    ) -> None:
        machine = loop.machine
        assert isinstance(machine, NullKeepAlive)
        try:
            with loop.scope:
                outputs = machine.start(trio.current_time())
                task_status.started()
                while True:
                    for out in outputs:
                        await self._send_null(address, out)
                    loop.wakeup = trio.Event()
                    with trio.move_on_at(machine.deadline or trio.current_time()):
                        await loop.wakeup.wait()
                    outputs = machine.handle_timer(trio.current_time())
        finally:
            if self._null.get(address) is loop:
                del self._null[address]

    async def _send_null(self, address: Address, out: KeepAliveOutput) -> None:
        if not isinstance(out, SendKeepAlive):
            return
        try:
            flow = await self._layer.datagram_flow(address)
            await flow.send(out.data)
            self._sent += 1
        except TransportError as exc:
            self._failed_sends += 1
            logger.info("keep-alive to %s:%d failed: %s", address[0], address[1], exc)

    # -- RFC 5626 keep-alives on streams --------------------------------------------------

    async def watch_flow(
        self,
        flow: Flow,
        period: float,
        *,
        pong_timeout: float = DEFAULT_PONG_TIMEOUT,
        on_dead: Callable[[Flow, TransportError], None] | None = None,
    ) -> None:
        """Ping ``flow`` every ~``period`` s (80-100 % jitter); abort it if no pong in time.

        ``on_dead`` is called when the flow is aborted for a missing pong. Watching a flow
        again changes nothing; the loop ends by itself when the flow fails or closes.
        """
        if not flow.reliable:
            raise ConfigError("flow", flow.transport, "a TCP or TLS flow (RFC 5626 CRLF pings)")
        if flow in self._flows:
            return
        machine = StreamKeepAlive(period, pong_timeout=pong_timeout, rng=self._rng)
        loop = _Loop(machine)
        self._flows[flow] = loop
        try:
            await self._nursery.start(self._run_stream, flow, loop, on_dead)
        except BaseException:
            self._flows.pop(flow, None)
            raise

    def unwatch_flow(self, flow: Flow) -> None:
        loop = self._flows.pop(flow, None)
        if loop is not None:
            self._stop(loop)

    async def _run_stream(
        self,
        flow: Flow,
        loop: _Loop,
        on_dead: Callable[[Flow, TransportError], None] | None,
        *,
        task_status: trio.TaskStatus[None],
    ) -> None:
        machine = loop.machine
        assert isinstance(machine, StreamKeepAlive)

        def on_event(event: object) -> None:
            if isinstance(event, FlowPong):
                machine.handle(PongReceived(), trio.current_time())
                loop.wakeup.set()
            elif isinstance(event, FlowFailed):
                loop.scope.cancel()

        unsubscribe = flow.subscribe(on_event)
        try:
            with loop.scope:
                machine.start(trio.current_time())
                task_status.started()
                while True:
                    loop.wakeup = trio.Event()
                    with trio.move_on_at(machine.deadline or trio.current_time()):
                        await loop.wakeup.wait()
                    for out in machine.handle_timer(trio.current_time()):
                        if isinstance(out, SendKeepAlive):
                            await flow.send(out.data)
                        elif isinstance(out, FlowDead):
                            error = TransportError(
                                f"{flow.transport} flow to {flow.remote[0]}:{flow.remote[1]}: "
                                f"{out.reason}"
                            )
                            if on_dead is not None:
                                on_dead(flow, error)
                            await flow.abort(error)
                            return
        except TransportError as exc:
            logger.info("keep-alive flow %r ended: %s", flow, exc)
        finally:
            unsubscribe()
            if self._flows.get(flow) is loop:
                del self._flows[flow]

    # -- common ---------------------------------------------------------------------------

    @staticmethod
    def _stop(loop: _Loop) -> None:
        loop.scope.cancel()

    def statistics(self) -> KeepAliveStatistics:
        return KeepAliveStatistics(
            null_loops={k: loop.machine.period for k, loop in self._null.items()},
            watched_flows=len(self._flows),
            sent=self._sent,
            failed_sends=self._failed_sends,
        )

    def stop_all(self) -> None:
        """Cancel every loop (the owner's nursery then reaps the tasks)."""
        for loop in [*self._null.values(), *self._flows.values()]:
            self._stop(loop)
