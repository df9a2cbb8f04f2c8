"""The geo-redundant endpoint: one user agent registered at several SIP sites at once.

``async with open_endpoint(config) as endpoint`` registers every enabled connection of an
:class:`~trio_sip.config.EndpointConfig` in parallel, reports each connection's status as
:class:`ConnectionEvent` records (``endpoint.status_events()``), places calls with
``endpoint.dial(connection_id, destination)`` (falling over to another registered connection
when a site is down) and hands incoming calls out with the connection they arrived on. See
docs/endpoint.md.
"""

from __future__ import annotations

from .calls import EndpointCall as EndpointCall
from .calls import IncomingEndpointCall as IncomingEndpointCall
from .connections import Connection as Connection
from .endpoint import Endpoint as Endpoint
from .endpoint import open_endpoint as open_endpoint
from .status import CallEvent as CallEvent
from .status import ConnectionEvent as ConnectionEvent
from .status import ConnectionStatus as ConnectionStatus
from .status import StatusStream as StatusStream
from .status import retry_delay as retry_delay
from .timeouts import EndpointTimeout as EndpointTimeout

__all__ = [
    "CallEvent",
    "Connection",
    "ConnectionEvent",
    "ConnectionStatus",
    "Endpoint",
    "EndpointCall",
    "EndpointTimeout",
    "IncomingEndpointCall",
    "StatusStream",
    "open_endpoint",
    "retry_delay",
]
