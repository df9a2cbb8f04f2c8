# A user agent receives everything its outbound proxy, its registrar or its configured proxies
# relay from their few addresses: the calls of a whole site arrive from one source. The stack's
# per-source request rate (Limits.request_rate) would throttle them all as one caller, so the
# addresses of the destinations the application configured -- ``open_user_agent(proxies=...)``,
# ``ua.call(outbound_proxy=..., proxies=...)``, ``ua.register(destination)``, an endpoint's
# servers and outbound proxies -- are added to ``stack.admission.trusted``. Numeric ones at
# once; a name once, by RFC 3263 in the background (one task per name, bounded in time), with
# the addresses it has then. Destinations a request merely goes to (a Request-URI's host) are
# not trusted: anyone can make us call them. Overload shedding still applies (docs/security.md).
"""Trust the configured proxies' addresses (exempt from the per-source request rate)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import trio

from trio_sip.failover import Destination, FailoverClient
from trio_sip.proto.errors import SipError
from trio_sip.proto.target import Target
from trio_sip.proto.uri import SipUri

if TYPE_CHECKING:
    from trio_sip.stack._admission import Admission

__all__ = ["ProxyTrust"]

logger = logging.getLogger("trio_sip.ua")

#: Seconds a background resolution of a configured proxy's name may take.
RESOLVE_TIMEOUT = 32.0


class ProxyTrust:
    """Adds the addresses of configured destinations to ``admission.trusted``."""

    def __init__(
        self, admission: Admission, failover: FailoverClient, nursery: trio.Nursery
    ) -> None:
        self._admission = admission
        self._failover = failover
        self._nursery = nursery
        self._names: set[str] = set()  # names resolved, or being resolved

    def add(self, destinations: Iterable[Destination]) -> None:
        for destination in destinations:
            try:
                found = self._failover.targets_nowait(destination)
                if found is not None:
                    self._trust(found)
            except SipError as exc:  # the call or registration will say what is wrong
                logger.debug("configured proxy %s not trusted: %s", destination, exc)
                continue
            name = str(destination)
            if found is None and isinstance(destination, str | SipUri) and name not in self._names:
                self._names.add(name)
                self._nursery.start_soon(self._resolve, destination)

    def _trust(self, targets: Iterable[Target]) -> None:
        self._admission.trusted.add(t.host for t in targets)

    async def _resolve(self, destination: str | SipUri) -> None:
        with trio.move_on_after(RESOLVE_TIMEOUT):
            try:
                self._trust(await self._failover.targets(destination))
                return
            except SipError as exc:
                logger.info("configured proxy %s not trusted: %s", destination, exc)
        self._names.discard(str(destination))  # tried again when it is next configured
