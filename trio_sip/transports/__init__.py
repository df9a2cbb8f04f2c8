"""The Trio transport layer: UDP, TCP and TLS flows, listeners and the flow pool.

General layout: :mod:`.base` holds the interfaces (``Flow``, flow events, ``TransportConfig``,
``NetworkBackend``) and the RFC 3261 §18 routing rules; :mod:`.udp`, :mod:`.stream` and
:mod:`.tls` implement the flows (:mod:`.udp_socket`: the real UDP socket and its ICMP error
queue); :mod:`.binding` decides which local address a message leaves from and is named by;
:mod:`.tcp` is the real-socket backend; :mod:`.pool` is the
``TransportLayer`` that owns them. See docs/transports.md.
"""

from __future__ import annotations

from .base import Address as Address
from .base import DatagramSocket as DatagramSocket
from .base import Flow as Flow
from .base import FlowEvent as FlowEvent
from .base import FlowFailed as FlowFailed
from .base import NetworkBackend as NetworkBackend
from .base import PongReceived as PongReceived
from .base import TransportConfig as TransportConfig
from .base import choose_transport as choose_transport
from .base import map_exceptions as map_exceptions
from .base import response_destination as response_destination
from .base import stamp_via as stamp_via
from .pool import FlowPool as FlowPool
from .pool import OnMessage as OnMessage
from .pool import TransportLayer as TransportLayer
from .pool import open_transport_layer as open_transport_layer
from .stream import StreamFlow as StreamFlow
from .tcp import TrioBackend as TrioBackend
from .tls import client_context as client_context
from .tls import require_tls as require_tls
from .udp import UdpClientFlow as UdpClientFlow
from .udp import UdpServerFlow as UdpServerFlow

__all__ = [
    "Address",
    "DatagramSocket",
    "Flow",
    "FlowEvent",
    "FlowFailed",
    "FlowPool",
    "NetworkBackend",
    "OnMessage",
    "PongReceived",
    "StreamFlow",
    "TransportConfig",
    "TransportLayer",
    "TrioBackend",
    "UdpClientFlow",
    "UdpServerFlow",
    "choose_transport",
    "client_context",
    "map_exceptions",
    "open_transport_layer",
    "require_tls",
    "response_destination",
    "stamp_via",
]
