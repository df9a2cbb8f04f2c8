"""JAIN-SIP's timeout table (``javax.sip.Timeout``, seed 004) as data the machines obey.

Theory of operation
-------------------
For each :class:`TimeoutRole`, each side (client, server) and each kind of method (INVITE,
non-INVITE), one :class:`TimeoutRule` row says who retransmits (the stack, the application or
nobody), on which timer, and which of JAIN-SIP's two timeouts the application *hears*:
RETRANSMIT ("the underlying retransmit timer has expired so an application can resend the
message") and TRANSACTION ("the underlying transaction has expired"). A machine reads its row
once, when it is built (:func:`timeout_rule`), and its timer handlers do what the row says: a
retransmission timer sends (``Transmit``) when the stack retransmits and reports
(``RetransmitTimeout``) when the application hears it; a timeout timer always ends the machine
(``Terminated(TIMEOUT)``: nothing lives on unbounded) and reports ``TransactionTimeout`` only
when the row says the application hears it. docs/transactions.md shows :data:`TIMEOUT_TABLE`,
rendered by :func:`render_markdown`; tests/proto/test_timeout_table.py drives every row.

The role names and the seed's:

* ``USER_AGENT`` is the seed's "User Agent with No Retransmission": "an application can
  configure an implementation to handle all retransmissions ... Therefore a Timeout of this
  type [RETRANSMIT] will not be passed to the application", and "a TRANSACTION Timeout will be
  fired to the application on any transaction that expires including an Invite transaction".
* ``USER_AGENT_APP_RETRANSMIT`` is the seed's "User Agent": "Retransmissions on Invite
  transactions are the responsibility of the application ... All other retransmissions are
  handled by the underlying implementation. Therefore the application will only receive this
  Timeout type specific to Invite transactions", and "the application will only recieve
  TRANSACTION Timeout events on transactions that are not Invite transactions". An INVITE
  transaction of either side reports RETRANSMIT on each Timer A (client: the INVITE) or Timer
  G (server: a 300-699 response) instead of resending; the application resends with
  ``ApplicationRetransmit``. Timer B / H still end the machine, silently.
* ``STATELESS_PROXY``: "it keeps no transaction state ... an application will not receive
  Timeout.RETRANSMIT events ... will not receive Timeout.TRANSACTION events". No machine.
* ``STATEFUL_PROXY``: "The underlying implementation will handle the retransmissions of all
  messages it sends and the application will not receive Timeout.RETRANSMIT events, however
  the application will get notified of Timeout.TRANSACTION events. As an Invite transaction is
  end to end a stateful proxy will not handle the retransmissions of messages on an Invite
  transaction, unless it decides to respond to the Invite transaction, in essence becoming an
  User Agent Server", and likewise "will not handle transaction timeouts on an Invite
  transaction, unless it decides to respond".

Reconciling the stateful proxy with RFC 3261
--------------------------------------------
RFC 3261 makes only the 2xx and its ACK end to end: "Since 2xx is retransmitted end-to-end"
(§13.3.1.4) -- the UAS core retransmits it and the proxy forwards each copy (RFC 6026 §8.7:
the proxy's transaction absorbs them, "since any downstream UAS cores that accepted the request
have taken responsibility for reliability"). The INVITE request itself goes hop by hop: "A
stateful proxy MUST create a new client transaction for this request as described in Section
17.1" (§16.6 step 10), and that transaction "MUST start timer A" over an unreliable transport
(§17.1.1.2); the caller's own retransmissions stop at the proxy's server transaction, which
answers them with its last provisional (§17.2.1), so an INVITE lost on the proxy's next hop
would never be sent again if the proxy did not retransmit it. And "3-6xx responses are
delivered hop-by-hop. When issuing a 3-6xx response, the element is effectively acting as a
UAS, issuing its own response" (§16.7 step 6).

Decision: the wire follows RFC 3261 and what the application hears follows the seed.

* Client INVITE: the stack retransmits the INVITE (Timer A, §17.1.1.2). The application hears
  no RETRANSMIT and no TRANSACTION: Timer B ends the transaction without a
  ``TransactionTimeout``; the proxy core learns that the branch ended without a final response
  (the handle ends with a plain ``TransactionError``) and, per §16.7 step 6, "If there are no
  final responses in the context, the proxy MUST send a 408 (Request Timeout)".
* Server INVITE: a 2xx is end to end (no retransmission, no timeout, in every role). A 3-6xx
  is the proxy responding as a UAS (§16.7), which the seed says "should behave as described by
  the User Agent semantics above bearing in mind the retransmission property of the underlying
  implementation": the proxy's stack retransmits everything, so that is the ``USER_AGENT``
  row -- the stack retransmits it (Timer G) and the application hears Timer H as TRANSACTION.
* Non-INVITE (both sides): as the seed says, the stack retransmits and TRANSACTION is heard.

Server non-INVITE transactions retransmit nothing on a timer (the last response is re-sent
when the request is retransmitted, §17.2.2) and never expire (there is no such timer in
§17.2.2: the TU answers), in every role.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "JAIN_NAMES",
    "TIMEOUT_TABLE",
    "Retransmitter",
    "Side",
    "Timeout",
    "TimeoutRole",
    "TimeoutRule",
    "render_markdown",
    "stateful_rules",
    "timeout_rule",
]


class TimeoutRole(enum.Enum):
    """Who retransmits, and which timeouts are reported (JAIN-SIP's ``Timeout`` semantics);
    the full table is :data:`TIMEOUT_TABLE`."""

    #: JAIN's "User Agent with No Retransmission": the stack retransmits everything; the
    #: application hears TRANSACTION timeouts (B, F, H) on every kind of transaction, never
    #: RETRANSMIT.
    USER_AGENT = "user-agent"
    #: JAIN's "User Agent": INVITE transactions report RETRANSMIT on each Timer A / G tick and
    #: do not resend (the application feeds ApplicationRetransmit()); TRANSACTION timeouts are
    #: heard on non-INVITE transactions only.
    USER_AGENT_APP_RETRANSMIT = "user-agent-app-retransmit"
    #: The stack retransmits; TRANSACTION timeouts except on forwarded INVITEs (Timer B).
    STATEFUL_PROXY = "stateful-proxy"
    #: No transaction state at all: the shell forwards without building machines.
    STATELESS_PROXY = "stateless-proxy"


class Side(enum.Enum):
    """Which end of a transaction: the client sends the request, the server answers it."""

    CLIENT = "client"
    SERVER = "server"


class Retransmitter(enum.Enum):
    """Who retransmits a transaction's messages."""

    STACK = "the stack"
    APPLICATION = "the application"
    NOBODY = "nobody"


class Timeout(enum.Enum):
    """JAIN-SIP's ``javax.sip.Timeout`` kinds."""

    #: "the underlying retransmit timer has expired so an application can resend the message"
    RETRANSMIT = "RETRANSMIT"
    #: "the underlying transaction has expired"
    TRANSACTION = "TRANSACTION"


#: The seed's name for each role.
JAIN_NAMES: Final[dict[TimeoutRole, str]] = {
    TimeoutRole.USER_AGENT: "User Agent with No Retransmission",
    TimeoutRole.USER_AGENT_APP_RETRANSMIT: "User Agent",
    TimeoutRole.STATEFUL_PROXY: "Stateful Proxy",
    TimeoutRole.STATELESS_PROXY: "Stateless Proxy",
}


class TimeoutRule:
    """One row of the table: a role, a side and a kind of method, and what happens.

    ``retransmit_timer`` is the timer that paces retransmissions ("A", "E", "G"; "" when
    nothing is retransmitted on a timer), ``timeout_timer`` the one that ends a transaction
    that got no answer ("B", "F", "H"; "" when nothing expires). ``hears_retransmit`` and
    ``hears_transaction`` say whether the application is told (RETRANSMIT, TRANSACTION).
    """

    __slots__ = (
        "hears_retransmit",
        "hears_transaction",
        "invite",
        "retransmit_timer",
        "retransmits",
        "role",
        "side",
        "timeout_timer",
    )

    def __init__(
        self,
        role: TimeoutRole,
        side: Side,
        invite: bool,
        *,
        retransmits: Retransmitter,
        retransmit_timer: str,
        hears_retransmit: bool,
        timeout_timer: str,
        hears_transaction: bool,
    ) -> None:
        self.role: Final = role
        self.side: Final = side
        self.invite: Final = invite
        self.retransmits: Final = retransmits
        self.retransmit_timer: Final = retransmit_timer
        self.hears_retransmit: Final = hears_retransmit
        self.timeout_timer: Final = timeout_timer
        self.hears_transaction: Final = hears_transaction

    @property
    def method(self) -> str:
        return "INVITE" if self.invite else "non-INVITE"

    @property
    def heard(self) -> tuple[Timeout, ...]:
        """The timeouts the application hears, in JAIN-SIP's terms."""
        kinds = (Timeout.RETRANSMIT, Timeout.TRANSACTION)
        return tuple(k for k, on in zip(kinds, self.flags, strict=True) if on)

    @property
    def flags(self) -> tuple[bool, bool]:
        return (self.hears_retransmit, self.hears_transaction)

    def __repr__(self) -> str:
        return (
            f"TimeoutRule({self.role.name}, {self.side.value} {self.method}: "
            f"{self.retransmits.name} retransmits ({self.retransmit_timer or '-'}), "
            f"hears {[k.name for k in self.heard]})"
        )


_S, _A, _N = Retransmitter.STACK, Retransmitter.APPLICATION, Retransmitter.NOBODY
_C, _V = Side.CLIENT, Side.SERVER
_UA, _APP = TimeoutRole.USER_AGENT, TimeoutRole.USER_AGENT_APP_RETRANSMIT
_SF, _SL = TimeoutRole.STATEFUL_PROXY, TimeoutRole.STATELESS_PROXY

#: (role, side, INVITE?, who retransmits, on which timer, RETRANSMIT heard, timeout timer,
#: TRANSACTION heard) for every row. See the module comment for the reasons.
_ROWS: Final = (
    (_UA, _C, True, _S, "A", False, "B", True),
    (_UA, _C, False, _S, "E", False, "F", True),
    (_UA, _V, True, _S, "G", False, "H", True),
    (_UA, _V, False, _S, "", False, "", False),
    (_APP, _C, True, _A, "A", True, "B", False),
    (_APP, _C, False, _S, "E", False, "F", True),
    (_APP, _V, True, _A, "G", True, "H", False),
    (_APP, _V, False, _S, "", False, "", False),
    (_SF, _C, True, _S, "A", False, "B", False),
    (_SF, _C, False, _S, "E", False, "F", True),
    (_SF, _V, True, _S, "G", False, "H", True),
    (_SF, _V, False, _S, "", False, "", False),
    (_SL, _C, True, _N, "", False, "", False),
    (_SL, _C, False, _N, "", False, "", False),
    (_SL, _V, True, _N, "", False, "", False),
    (_SL, _V, False, _N, "", False, "", False),
)

#: The table: one :class:`TimeoutRule` per role, side and kind of method.
TIMEOUT_TABLE: Final[tuple[TimeoutRule, ...]] = tuple(
    TimeoutRule(
        role,
        side,
        invite,
        retransmits=who,
        retransmit_timer=retransmit_timer,
        hears_retransmit=hears_retransmit,
        timeout_timer=timeout_timer,
        hears_transaction=hears_transaction,
    )
    for (
        role,
        side,
        invite,
        who,
        retransmit_timer,
        hears_retransmit,
        timeout_timer,
        hears_transaction,
    ) in _ROWS
)

_RULES: Final[dict[tuple[TimeoutRole, Side, bool], TimeoutRule]] = {
    (rule.role, rule.side, rule.invite): rule for rule in TIMEOUT_TABLE
}


def timeout_rule(role: TimeoutRole, side: Side, invite: bool) -> TimeoutRule:
    """The row for ``role``, ``side`` and an INVITE (``invite``) or non-INVITE transaction."""
    return _RULES[(role, side, invite)]


def stateful_rules(side: Side, invite: bool) -> tuple[TimeoutRule, ...]:
    """The rows of one kind of machine for the roles that build machines, in the order
    USER_AGENT, USER_AGENT_APP_RETRANSMIT, STATEFUL_PROXY (``Machine._rules()``)."""
    return tuple(timeout_rule(role, side, invite) for role in (_UA, _APP, _SF))


#: The note beside a row in docs/transactions.md.
_WHY: Final[dict[tuple[TimeoutRole, Side, bool], str]] = {
    (_SF, _C, True): "RFC 3261 §16.6 step 10 and §17.1.1.2 for the wire, the seed for the report",
    (_SF, _V, True): "a 3-6xx is the proxy answering as a UAS (§16.7): `USER_AGENT` semantics",
}


def _cell(timer: str, heard: bool, silent: str) -> str:
    if heard:
        return f"yes, on Timer {timer}"
    if timer and silent:
        return f"no: Timer {timer} {silent}"
    return "no"


def render_markdown() -> str:
    """:data:`TIMEOUT_TABLE` as the Markdown table docs/transactions.md embeds."""
    lines = [
        "| Role (JAIN name) | Side | Method | Who retransmits | RETRANSMIT heard "
        "| TRANSACTION heard | Note |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for rule in TIMEOUT_TABLE:
        who = rule.retransmits.value
        if rule.retransmit_timer:
            who += f", on Timer {rule.retransmit_timer}"
        elif rule.retransmits is Retransmitter.STACK:
            who += ", when the request is retransmitted"
        note = _WHY.get((rule.role, rule.side, rule.invite), "")
        if rule.retransmits is Retransmitter.NOBODY:
            note = "no transaction state (§16.11)"
        elif not rule.timeout_timer:
            note = "no retransmission timer, nothing expires (§17.2.2)"
        lines.append(
            f"| `{rule.role.name}` ({JAIN_NAMES[rule.role]}) | {rule.side.value} | {rule.method} "
            f"| {who} | {_cell(rule.retransmit_timer, rule.hears_retransmit, '')} "
            f"| {_cell(rule.timeout_timer, rule.hears_transaction, 'ends it silently')} "
            f"| {note} |"
        )
    return "\n".join(lines)
