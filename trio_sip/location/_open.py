"""open_location_store: a LocationStore from a URL (``memory:`` or ``redis://...``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..proto.errors import ConfigError
from ..proto.location import LocationService
from ._memory import MemoryLocationStore
from ._redis import open_redis_store
from ._store import LocationStore

__all__ = ["open_location_store"]

ALLOWED = "memory:, or redis://host:port/db (pip install trio-sip[redis])"


@asynccontextmanager
async def open_location_store(
    url: str = "memory:",
    *,
    service: LocationService | None = None,
    command_timeout: float = 1.0,
) -> AsyncIterator[LocationStore]:
    """The store ``url`` names: ``memory:`` (``service``, or a new LocationService, in this
    process) or ``redis://host:port/db`` (shared; see RedisLocationStore). Bad URLs raise
    ConfigError naming ``location``."""
    if url in ("memory:", "memory://", "memory"):
        yield MemoryLocationStore(service)
    elif url.startswith(("redis://", "rediss://", "unix://")):
        async with open_redis_store(url, command_timeout=command_timeout) as store:
            yield store
    else:
        raise ConfigError("location", url, ALLOWED)
