"""A SIP site: registrar + RFC 3261 §16 proxy (stateful or stateless) on the Stack.

``open_proxy(listen, *, domain, ...)`` gives a running :class:`ProxySite` (docs/proxy.md). The
decisions are in :mod:`trio_sip.proto.proxy` and :mod:`trio_sip.proto.location`; REGISTER
handling is :class:`trio_sip.registrar.Registrar`.
"""

from __future__ import annotations

from trio_sip.proto.location import Binding as Binding
from trio_sip.proto.location import LocationService as LocationService
from trio_sip.registrar import Registrar as Registrar

from ._site import TIMER_C as TIMER_C
from ._site import ProxySite as ProxySite
from ._site import ProxyStatistics as ProxyStatistics
from ._site import open_proxy as open_proxy

__all__ = [
    "TIMER_C",
    "Binding",
    "LocationService",
    "ProxySite",
    "ProxyStatistics",
    "Registrar",
    "open_proxy",
]
