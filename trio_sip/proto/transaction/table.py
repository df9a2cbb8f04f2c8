"""The transaction table: where each received message goes (decide only, no I/O).

Theory of operation
-------------------
The shell's dispatcher asks :meth:`TransactionTable.classify` what to do with a parsed message
and acts on the answer (httpcore's "decide, then act"):

* a response goes to the client transaction its :class:`~.keys.ClientKey` names
  (:class:`ToTransaction`), else it is :class:`Stray`: RFC 6026 §8.9 replaces §18.1.2's "passed
  to the core" with "any element other than a stateless proxy MUST silently discard" it;
* a request that matches a server transaction is a retransmission (:class:`ToTransaction`);
  so is an ACK for a 300-699 response, which matches the INVITE transaction (§17.2.3);
* an ACK that matches no transaction acknowledges a 2xx: "the ACK for a 2xx response is not
  part of the transaction" (§17.1.1.3), it goes to the TU/dialog (:class:`AckFor2xx`);
* a new CANCEL is :class:`CancelFor`: it gets a server transaction of its own (``key``) and
  names the INVITE transaction it cancels (``invite_key``, None when there is none: the UAS
  answers 481, §9.2);
* any other request is :class:`NewServerTransaction`.

The table holds machines by key. It is bounded: :meth:`add` first drops terminated machines,
and refuses with ``LocalProtocolError(status_hint=503)`` when still full.

The classifications are plain immutable classes (equal and hashable by value), not attrs
classes, so that the compiled build (mypyc) makes them native classes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from ..errors import LocalProtocolError
from ..message import Request, Response
from ..outputs import _Record
from .client_invite import ClientInviteTransaction
from .client_non_invite import ClientNonInviteTransaction
from .keys import (
    Key,
    LegacyServerKey,
    ServerKey,
    cancel_target_key,
    client_key,
    server_key,
    server_key_candidates,
)
from .server_invite import ServerInviteTransaction
from .server_non_invite import ServerNonInviteTransaction

#: The machines a table holds.
TransactionMachine = (
    ClientInviteTransaction
    | ClientNonInviteTransaction
    | ServerInviteTransaction
    | ServerNonInviteTransaction
)

__all__ = [
    "AckFor2xx",
    "CancelFor",
    "Classification",
    "NewServerTransaction",
    "Stray",
    "ToTransaction",
    "TransactionTable",
]

#: A generous default: every entry is one live exchange.
DEFAULT_MAX_SIZE = 50_000


class ToTransaction(_Record):
    """Feed the message to the existing transaction ``key``."""

    __slots__ = ("_key",)
    __match_args__: Final = ("key",)

    def __init__(self, key: Key) -> None:
        self._key: Final = key

    @property
    def key(self) -> Key:
        return self._key

    def _values(self) -> tuple[Any, ...]:
        return (self._key,)


class NewServerTransaction(_Record):
    """A new request: build a server transaction under ``key``."""

    __slots__ = ("_key",)
    __match_args__: Final = ("key",)

    def __init__(self, key: ServerKey | LegacyServerKey) -> None:
        self._key: Final = key

    @property
    def key(self) -> ServerKey | LegacyServerKey:
        return self._key

    def _values(self) -> tuple[Any, ...]:
        return (self._key,)


class AckFor2xx(_Record):
    """An ACK that matches no transaction: it acknowledges a 2xx; hand it to the dialog."""

    __slots__ = ()


class CancelFor(_Record):
    """A new CANCEL: its own server transaction ``key``; ``invite_key`` is what it cancels."""

    __slots__ = ("_invite_key", "_key")
    __match_args__: Final = ("key", "invite_key")

    def __init__(
        self, key: ServerKey | LegacyServerKey, invite_key: ServerKey | LegacyServerKey | None
    ) -> None:
        self._key: Final = key
        self._invite_key: Final = invite_key

    @property
    def key(self) -> ServerKey | LegacyServerKey:
        return self._key

    @property
    def invite_key(self) -> ServerKey | LegacyServerKey | None:
        return self._invite_key

    def _values(self) -> tuple[Any, ...]:
        return (self._key, self._invite_key)


class Stray(_Record):
    """A response no client transaction owns: drop it (RFC 6026 §8.9)."""

    __slots__ = ("_reason",)
    __match_args__: Final = ("reason",)

    def __init__(self, reason: str) -> None:
        self._reason: Final = reason

    @property
    def reason(self) -> str:
        return self._reason

    def _values(self) -> tuple[Any, ...]:
        return (self._reason,)


Classification = ToTransaction | NewServerTransaction | AckFor2xx | CancelFor | Stray


class TransactionTable:
    """Live transactions by key; classifies incoming messages."""

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.max_size = max_size
        self._machines: dict[Key, TransactionMachine] = {}

    def __len__(self) -> int:
        return len(self._machines)

    def __contains__(self, key: object) -> bool:
        return key in self._machines

    def __iter__(self) -> Iterator[Key]:
        return iter(list(self._machines))

    def get(self, key: Key) -> TransactionMachine | None:
        return self._machines.get(key)

    def add(self, key: Key, machine: TransactionMachine) -> None:
        """Register ``machine``; a live duplicate key is the caller's bug."""
        old = self._machines.get(key)
        if old is not None and not old.terminated:
            raise LocalProtocolError(f"a live transaction already uses {key!r}")
        if len(self._machines) >= self.max_size:
            self.prune()
            if len(self._machines) >= self.max_size:
                raise LocalProtocolError("the transaction table is full", status_hint=503)
        self._machines[key] = machine

    def remove(self, key: Key) -> None:
        self._machines.pop(key, None)

    def prune(self) -> list[Key]:
        """Drop every terminated machine; return their keys."""
        dead = [key for key, machine in self._machines.items() if machine.terminated]
        for key in dead:
            del self._machines[key]
        return dead

    def classify(self, message: Request | Response) -> Classification:
        """Decide where ``message`` goes. Pure: the table is not changed."""
        if isinstance(message, Response):
            ckey = client_key(message)
            if ckey in self._machines:
                return ToTransaction(ckey)
            return Stray(f"no client transaction for {ckey.method} branch {ckey.branch!r}")
        for skey in server_key_candidates(message):
            if skey in self._machines:
                return ToTransaction(skey)
        if message.method == "ACK":
            return AckFor2xx()
        key = server_key(message)
        if message.method == "CANCEL":
            target = cancel_target_key(message)
            return CancelFor(key, target if target in self._machines else None)
        return NewServerTransaction(key)
