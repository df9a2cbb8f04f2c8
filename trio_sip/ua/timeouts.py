# Timeout events at the user agent level (seed 004, delivered, not polled).
#
# Theory of operation: ``open_user_agent`` opens its Stack with an ``on_timeout`` hook, so every
# TimeoutEvent the stack's role hears (a user agent's stack runs in ``TimeoutRole.USER_AGENT``:
# TRANSACTION on Timer B, F and H, never RETRANSMIT) reaches ``UserAgent._on_timeout``. When
# somebody listens (``open_user_agent(on_timeout=...)`` or ``ua.timeouts()``), it is wrapped as
# an AgentTimeout carrying the Call the transaction belongs to -- found by dialog id (an
# in-dialog request or response: BYE, re-INVITE, INFO, a 3-6xx to a re-INVITE), else, for an
# initial INVITE, by Call-ID among the calls that have no dialog yet -- and published through a
# TimeoutHub like the stack's. The endpoint re-publishes these with the connection id.
"""AgentTimeout: a transaction timeout of a user agent, with its call."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from trio_sip.proto.dialog import DialogId
from trio_sip.proto.message import Request
from trio_sip.proto.transaction import Side, Timeout
from trio_sip.stack import TimeoutEvent

if TYPE_CHECKING:
    from .agent import UserAgent
    from .call import Call

__all__ = ["AgentTimeout", "call_for"]


@attrs.frozen(slots=True, eq=False)
class AgentTimeout:
    """A timeout the user agent's transaction layer reported (``event``, a
    :class:`~trio_sip.stack.TimeoutEvent`) and the :class:`Call` it belongs to (None for a
    transaction outside any call: REGISTER, OPTIONS, MESSAGE, a rejected new INVITE)."""

    event: TimeoutEvent
    call: Call | None

    @property
    def timeout(self) -> Timeout:
        return self.event.timeout

    @property
    def timer(self) -> str:
        return self.event.timer

    @property
    def method(self) -> str:
        return self.event.method

    @property
    def side(self) -> Side:
        return self.event.side

    @property
    def request(self) -> Request:
        return self.event.request

    @property
    def call_id(self) -> str:
        return self.event.call_id


def call_for(ua: UserAgent, request: Request) -> Call | None:
    """The call ``request`` (sent or received by ``ua``) belongs to, if any."""
    call_id = request.call_id
    to_tag, from_tag = request.to.tag, request.from_.tag
    if to_tag and from_tag:  # in a dialog: local/remote tags depend on who sent it
        for local, remote in ((from_tag, to_tag), (to_tag, from_tag)):
            call = ua._calls.get(DialogId(call_id, local, remote))
            if call is not None:
                return call
        return None
    if request.method != "INVITE":
        return None
    for call in ua._live:  # an initial INVITE: its call has no dialog yet
        if call.dialog is None and call.call_id == call_id:
            return call
    return None
