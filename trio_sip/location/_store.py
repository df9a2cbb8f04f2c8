# The location store protocol: RFC 3261 §10.3 ("the registrar ... MUST ... update the
# location service"; the §10.3 step 7 commit is all or nothing) for a location service that
# may live outside the process and be shared by several registrars.
#
# Theory of operation: the REGISTER rules are pure (``proto.location.plan_register``): given
# the bindings of one AOR, the store's clock and the total of bindings, they say what to answer
# and what the AOR's bindings become. A store only reads and commits: ``update(aor, change)``
# gives ``change`` the AOR's current bindings (expired ones left out) and commits what it
# returns as one change, never over an update that came in between (the store retries
# ``change`` on what is there now instead: ``change`` must be pure). Times are the store's own
# clock (seconds): the process's clock for the memory store, the Redis server's for Redis, so
# every node of a cluster agrees on when a binding expires.
"""LocationStore (the protocol), StoreUnavailable, register_change."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from ..errors import StoreUnavailable as StoreUnavailable
from ..proto.location import Binding, BindingRules, Planned, plan_register
from ..proto.message import Request

__all__ = ["Change", "LocationStore", "StoreUnavailable", "register_change"]

#: ``change(current, now, total)``: the AOR's current bindings (contact key -> Binding), the
#: store's time and its count of expiring bindings -> what to answer and commit. Pure: a store
#: may call it again after a conflicting update.
Change = Callable[[Mapping[str, Binding], float, int], Planned]


class LocationStore(Protocol):
    """Where bindings live (module comment; docs/scaling.md). Every method may raise
    :class:`StoreUnavailable`."""

    async def lookup(self, aor: str) -> list[Binding]:
        """The current bindings of ``aor``, highest q first (none: ``[]``)."""
        ...

    async def update(self, aor: str, change: Change) -> Planned:
        """Apply ``change`` to ``aor``'s bindings as one atomic change; returns what it
        planned (its ``updated`` was committed unless None)."""
        ...

    async def count(self) -> int:
        """How many bindings are current."""
        ...

    async def aclose(self) -> None:
        """Let go of connections (the bindings stay where they are)."""
        ...


def register_change(request: Request, aor: str, rules: BindingRules) -> Change:
    """The :data:`Change` a REGISTER makes to ``aor`` (§10.3 steps 6-8, ``plan_register``)."""

    def change(current: Mapping[str, Binding], now: float, total: int) -> Planned:
        return plan_register(request, aor, current, now, rules=rules, total=total)

    return change
