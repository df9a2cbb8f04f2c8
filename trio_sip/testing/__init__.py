"""The public test kit: an in-memory network, a transport conformance suite and fake DNS.

* :class:`FakeNetwork` (:mod:`.network`): simulated hosts with per-link loss, delay, jitter
  (reordering), partitions and refusals, and a capture of everything sent; deterministic under
  trio's ``MockClock``. Its layers are real :class:`~trio_sip.transports.TransportLayer` objects.
* :func:`check_transport` (:mod:`.conformance`): the suite every transport must pass.
* :class:`FakeResolver` (:mod:`.dns`): DNS answers from a table.
"""

from __future__ import annotations

from .conformance import check_transport as check_transport
from .conformance import make_request as make_request
from .dns import FakeResolver as FakeResolver
from .network import FakeBackend as FakeBackend
from .network import FakeNetwork as FakeNetwork
from .network import LinkConfig as LinkConfig
from .network import Packet as Packet

__all__ = [
    "FakeBackend",
    "FakeNetwork",
    "FakeResolver",
    "LinkConfig",
    "Packet",
    "check_transport",
    "make_request",
]
