"""Which local address a message leaves from, and which one our Via and Contact name.

Theory of operation
-------------------
A NAT, and a NAT-aware registrar (Kamailio's ``fix_nated_register``), remember the address a
message *came from*; a peer answers and sends new requests to the address our Via and Contact
*name*. The two must be the same (issue #11). Over UDP the layer sends through the listening
socket itself (:mod:`trio_sip.transports.udp`); these helpers cover the rest, as pure
functions of the layer's listeners:

* :func:`sent_by`: the address:port the Via names for a flow;
* :func:`stream_bind_host`: the local address a TCP/TLS connection is made from (the listener's,
  so that the source address is the one the Via names);
* :func:`refused_or_reset`: whether a failed TCP connect is the case RFC 3261 §18.1.1 retries
  over UDP;
* :func:`resolve_udp`: a host name to an address a listener can send to (ICMP errors name
  addresses, so the listener's flows are keyed by address).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable

import trio

from trio_sip.proto.errors import TransportError

from .base import Address, Flow
from .udp import UdpServerFlow

__all__ = ["WILDCARDS", "refused_or_reset", "resolve_udp", "sent_by", "stream_bind_host"]

WILDCARDS = ("", "0.0.0.0", "::")
#: What a refused or reset TCP connect raises (ICMP protocol unreachable: ENOPROTOOPT).
_REFUSED = frozenset({errno.ECONNREFUSED, errno.ECONNRESET, errno.ENOPROTOOPT})

Listening = Iterable[tuple[str, Address]]


def sent_by(listening: Listening, flow: Flow) -> Address:
    """The address:port our Via (and a Contact) names for a message sent on ``flow``: the
    listening address for the flow's transport (a wildcard one replaced by the address the
    route to the peer uses), else the flow's own local address."""
    if isinstance(flow, UdpServerFlow):
        return flow.listener.source_for(flow.remote)
    v6 = ":" in flow.local[0]
    for transport, (host, port) in listening:
        if transport == flow.transport and (":" in host) == v6:
            if host in WILDCARDS:
                return flow.local[0], port
            return host, port
    return flow.local


def stream_bind_host(listening: Listening, transport: str, remote_host: str) -> str | None:
    """The address a TCP/TLS connection to ``remote_host`` is made from: that of our listener
    for ``transport`` (else any listener) of the same family, unless it is a wildcard (then
    None: the kernel chooses); the Via and Contact name it, so the source must be it too."""
    v6 = ":" in remote_host
    other: str | None = None
    for kind, (host, _port) in listening:
        if (":" in host) != v6 or host in WILDCARDS:
            continue
        if kind == transport:
            return host
        if other is None:
            other = host
    return other


def refused_or_reset(exc: TransportError) -> bool:
    """RFC 3261 §18.1.1: "if the attempt to establish the connection generates either an ICMP
    Protocol Not Supported, or results in a TCP reset" (a refusal is a RST to the SYN)."""
    cause = exc.__cause__
    return isinstance(cause, OSError) and cause.errno in _REFUSED


async def resolve_udp(host: str, port: int, v6: bool) -> str:
    """A host name (say, a Via sent-by) to its first address of the family. Raises
    ``TransportError``."""
    family = socket.AF_INET6 if v6 else socket.AF_INET
    try:
        infos = await trio.socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as exc:
        raise TransportError(f"UDP to {host}:{port}: {exc}") from exc
    if not infos:
        raise TransportError(f"UDP to {host}:{port}: no address")
    return str(infos[0][4][0])
