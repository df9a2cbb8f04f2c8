"""TLS for SIP (RFC 3261 §26.2, RFC 5630 "sips:"; RFC 5922 server identity).

Theory of operation
-------------------
TLS is ``trio.SSLStream`` over whatever stream the backend made (a TCP socket, or an in-memory
stream in tests), with an ``ssl.SSLContext`` the user supplies:

* client side: ``TransportConfig.client_ssl_context``, or ``ssl.create_default_context()`` when
  none is given, so certificates **and host names are verified by default** (RFC 5922 §7.2:
  the server's identity is checked against the SIP domain). The server name sent (SNI) and
  checked is the target's ``hostname`` (the domain the request was resolved from), else its
  address.
* server side: ``TransportConfig.server_ssl_context`` is required to listen on TLS.

The handshake is done before the flow is handed out, so a bad certificate or a plaintext peer
surfaces as :class:`~trio_sip.proto.errors.TransportError` from ``connect`` (and, on the server
side, as a logged, dropped connection; an accepted connection's handshake is bounded by
``Limits.tls_handshake_timeout``). A ``sips:`` URI must only be reached over TLS
(RFC 3261 §26.2.2, RFC 5630 §3): :func:`require_tls` is the check.
"""

from __future__ import annotations

import math
import ssl

import trio

from trio_sip.errors import HandshakeTimeout
from trio_sip.proto.errors import TransportError
from trio_sip.proto.target import Target

from .base import map_exceptions

__all__ = ["HandshakeTimeout", "client_context", "require_tls", "wrap_client", "wrap_server"]


def client_context(cafile: str | None = None) -> ssl.SSLContext:
    """A verifying client context (system CAs, or ``cafile``): the default for TLS targets."""
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)


def require_tls(scheme: str, target: Target) -> None:
    """Raise ``TransportError`` when a ``sips:`` URI would be reached over a non-TLS target."""
    if scheme.lower() == "sips" and target.transport.upper() != "TLS":
        raise TransportError(f"sips: URI requires TLS, refusing to use {target}")


async def wrap_client(
    stream: trio.abc.Stream, context: ssl.SSLContext, server_hostname: str
) -> trio.SSLStream[trio.abc.Stream]:
    """Run the client handshake over ``stream``; close it and raise ``TransportError`` on error."""
    tls = trio.SSLStream(stream, context, server_hostname=server_hostname, https_compatible=True)
    try:
        with map_exceptions(f"TLS handshake with {server_hostname}"):
            await tls.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return tls


async def wrap_server(
    stream: trio.abc.Stream,
    context: ssl.SSLContext,
    *,
    handshake_timeout: float = math.inf,
) -> trio.SSLStream[trio.abc.Stream]:
    """Run the server handshake over ``stream``; close it and raise ``TransportError`` on error,
    or :class:`HandshakeTimeout` when the handshake has not completed within
    ``handshake_timeout`` seconds (a client that connects and sends nothing, or trickles its
    ClientHello, must not hold the connection: ``Limits.tls_handshake_timeout``)."""
    tls = trio.SSLStream(stream, context, server_side=True, https_compatible=True)
    try:
        with trio.fail_after(handshake_timeout), map_exceptions("TLS handshake with client"):
            await tls.do_handshake()
    except trio.TooSlowError:
        await trio.aclose_forcefully(stream)
        raise HandshakeTimeout(
            f"TLS handshake with client: not done within {handshake_timeout:g} s"
        ) from None
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return tls
