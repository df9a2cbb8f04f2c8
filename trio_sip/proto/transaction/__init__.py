"""RFC 3261 §17 transactions (with RFC 6026): four sans-I/O machines, keys and the table.

Each machine follows Contract 2 (docs/architecture.md): ``start(now)``, ``handle(input, now)``,
``handle_timer(now)``, ``deadline``, ``state`` and a module-level ``TRANSITIONS`` table. The
timer values are tabulated in docs/transactions.md, and the per-role timeout semantics
(JAIN-SIP's table, seed 004) are data in ``timeouts.py`` that the machines read.
"""

from __future__ import annotations

from .client_invite import ClientInviteState as ClientInviteState
from .client_invite import ClientInviteTransaction as ClientInviteTransaction
from .client_invite import ack_for_failure as ack_for_failure
from .client_non_invite import ClientNonInviteState as ClientNonInviteState
from .client_non_invite import ClientNonInviteTransaction as ClientNonInviteTransaction
from .keys import ClientKey as ClientKey
from .keys import Key as Key
from .keys import LegacyServerKey as LegacyServerKey
from .keys import ServerKey as ServerKey
from .keys import cancel_target_key as cancel_target_key
from .keys import client_key as client_key
from .keys import server_key as server_key
from .machine import Machine as Machine
from .machine import Trigger as Trigger
from .server_invite import ServerInviteState as ServerInviteState
from .server_invite import ServerInviteTransaction as ServerInviteTransaction
from .server_non_invite import ServerNonInviteState as ServerNonInviteState
from .server_non_invite import ServerNonInviteTransaction as ServerNonInviteTransaction
from .table import AckFor2xx as AckFor2xx
from .table import CancelFor as CancelFor
from .table import Classification as Classification
from .table import NewServerTransaction as NewServerTransaction
from .table import Stray as Stray
from .table import ToTransaction as ToTransaction
from .table import TransactionTable as TransactionTable
from .timeouts import JAIN_NAMES as JAIN_NAMES
from .timeouts import TIMEOUT_TABLE as TIMEOUT_TABLE
from .timeouts import Retransmitter as Retransmitter
from .timeouts import Side as Side
from .timeouts import Timeout as Timeout
from .timeouts import TimeoutRole as TimeoutRole
from .timeouts import TimeoutRule as TimeoutRule
from .timeouts import timeout_rule as timeout_rule

__all__ = [
    "JAIN_NAMES",
    "TIMEOUT_TABLE",
    "AckFor2xx",
    "CancelFor",
    "Classification",
    "ClientInviteState",
    "ClientInviteTransaction",
    "ClientKey",
    "ClientNonInviteState",
    "ClientNonInviteTransaction",
    "Key",
    "LegacyServerKey",
    "Machine",
    "NewServerTransaction",
    "Retransmitter",
    "ServerInviteState",
    "ServerInviteTransaction",
    "ServerKey",
    "ServerNonInviteState",
    "ServerNonInviteTransaction",
    "Side",
    "Stray",
    "Timeout",
    "TimeoutRole",
    "TimeoutRule",
    "ToTransaction",
    "TransactionTable",
    "Trigger",
    "ack_for_failure",
    "cancel_target_key",
    "client_key",
    "server_key",
    "timeout_rule",
]
