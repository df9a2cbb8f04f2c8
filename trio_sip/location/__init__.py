"""Location stores: where a registrar keeps its bindings and a proxy finds them.

A :class:`LocationStore` is a small async protocol (docs/scaling.md): ``lookup(aor)``,
``update(aor, change)`` (one REGISTER's changes, atomically), ``count()`` and ``aclose()``.
:class:`MemoryLocationStore` keeps them in this process (a ``LocationService``, the default);
:class:`RedisLocationStore` (``pip install trio-sip[redis]``) in a Redis server shared by
several proxy nodes. :func:`open_location_store` opens either from a URL (``memory:``,
``redis://host:port/db``).
"""

from __future__ import annotations

from ._memory import MemoryLocationStore as MemoryLocationStore
from ._open import open_location_store as open_location_store
from ._redis import RedisLocationStore as RedisLocationStore
from ._redis import open_redis_store as open_redis_store
from ._store import Change as Change
from ._store import LocationStore as LocationStore
from ._store import StoreUnavailable as StoreUnavailable
from ._store import register_change as register_change

__all__ = [
    "Change",
    "LocationStore",
    "MemoryLocationStore",
    "RedisLocationStore",
    "StoreUnavailable",
    "open_location_store",
    "open_redis_store",
    "register_change",
]
