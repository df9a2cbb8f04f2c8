"""The accept side of the transport layer: one task per accepted TCP/TLS connection.

Theory of operation
-------------------
:class:`_Accepting` is a mixin of :class:`~trio_sip.transports.pool.TransportLayer` (its
attributes are the layer's). :meth:`_Accepting._accepted` is the task the accept loop starts
for each connection: it counts the connection in the layer's
:class:`~trio_sip.transports.accept.ConnectionGate` (over a cap, or from a source the stack's
admission control holds: closed at once, counted, one log line per interval), runs the TLS
handshake within ``Limits.tls_handshake_timeout``, then the flow's reader
(:meth:`StreamFlow.serve <trio_sip.transports.stream.StreamFlow.serve>`, which applies the
stream timeouts and size limits). The stream is closed and the gate released when it ends.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import trio

from trio_sip.proto.errors import TransportError
from trio_sip.proto.limits import Limits

from .accept import ConnectionGate, LogThrottle
from .base import Address, Flow, Message, NetworkBackend, TransportConfig, format_address, logger
from .stream import StreamFlow, StreamPolicy
from .tls import HandshakeTimeout, wrap_server

if TYPE_CHECKING:
    from .pool import FlowPool


class _Accepting:
    """Accepted connections (a TransportLayer mixin; see the module comment)."""

    backend: NetworkBackend
    config: TransportConfig
    limits: Limits
    counters: Counter[str]
    admit_source: Callable[[str], bool] | None
    _gate: ConnectionGate
    _throttle: LogThrottle
    _policy: StreamPolicy
    _pool: FlowPool
    _closed: bool
    _scope: Callable[[], AbstractContextManager[trio.CancelScope]]
    _message_received: Callable[[Message, Flow], None]

    async def _accepted(self, transport: str, stream: trio.abc.Stream) -> None:
        """The task of one accepted connection: admission (caps, flooding sources), the TLS
        handshake (bounded), then the flow's reader; the stream is closed when it ends."""
        try:
            local, remote = self.backend.stream_addresses(stream)
        except OSError as exc:  # already reset by the peer
            logger.debug("dropping incoming %s connection: %s", transport, exc)
            await trio.aclose_forcefully(stream)
            return
        host = remote[0]
        refused = self._gate.admit(host)
        if refused is None and self.admit_source is not None and not self.admit_source(host):
            self._gate.release(host)
            refused = "a source held by admission control"
        if refused is not None:
            self._refuse_connection(transport, remote, refused)
            await trio.aclose_forcefully(stream)
            return
        try:
            with self._scope():
                if transport == "TLS":
                    assert self.config.server_ssl_context is not None
                    timeout = self.limits.tls_handshake_timeout
                    try:
                        stream = await wrap_server(
                            stream, self.config.server_ssl_context, handshake_timeout=timeout
                        )
                    except TransportError as exc:
                        if isinstance(exc, HandshakeTimeout):
                            self.counters["tls_handshake_timeouts"] += 1
                        logger.info("dropping incoming TLS connection from %s: %s", host, exc)
                        return
                flow = StreamFlow(
                    transport, stream, local, remote, accepted=True, policy=self._policy
                )
                if self._closed:  # accepted while the layer was closing
                    await flow.aclose()
                    return
                self._pool.add(flow)
                await flow.serve(self._message_received)
        finally:
            self._gate.release(host)
            await trio.aclose_forcefully(stream)

    def _refuse_connection(self, transport: str, remote: Address, why: str) -> None:
        self.counters["connections_refused"] += 1
        self._throttle.log(
            logging.WARNING,
            f"refused-{why}",
            "closing a new %s connection from %s at once (%s; %s)",
            transport,
            format_address(remote),
            why,
            self._gate,
        )
