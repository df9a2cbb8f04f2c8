"""MemoryLocationStore: the LocationStore of one process, over a LocationService."""

from __future__ import annotations

import trio

from ..proto.location import Binding, LocationService, Planned
from ._store import Change

__all__ = ["MemoryLocationStore"]


class MemoryLocationStore:
    """A :class:`~trio_sip.location.LocationStore` in this process: ``service`` (a
    ``LocationService``, shared with the caller) on the Trio clock. Nothing here waits: each
    call runs to completion without a checkpoint, so ``update`` is atomic by construction."""

    def __init__(self, service: LocationService | None = None) -> None:
        self.service = service if service is not None else LocationService()

    async def lookup(self, aor: str) -> list[Binding]:
        return self.service.lookup(aor, trio.current_time())

    async def update(self, aor: str, change: Change) -> Planned:
        service, now = self.service, trio.current_time()
        planned = change(service.current(aor, now), now, service.dynamic_count(now))
        if planned.updated is not None:
            service.replace(aor, planned.updated, now)
        return planned

    async def count(self) -> int:
        return self.service.count(trio.current_time())

    async def aclose(self) -> None:
        return None
