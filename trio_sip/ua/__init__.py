"""The user agent: calls, incoming calls, session events (docs/calls.md, docs/tutorial.md).

``open_user_agent(...)`` (or ``connect_user_agent(nursery, ...)``) gives a :class:`UserAgent`
on a Stack and a FailoverClient; ``async with ua.call(uri) as call`` places a call,
``ua.incoming_calls()`` yields :class:`IncomingCall` handles to ring, accept or reject.
"""

from __future__ import annotations

from .agent import IncomingMessage as IncomingMessage
from .agent import UserAgent as UserAgent
from .agent import connect_user_agent as connect_user_agent
from .agent import open_user_agent as open_user_agent
from .call import Call as Call
from .call import CallFailed as CallFailed
from .incoming import IncomingCall as IncomingCall
from .session import Answered as Answered
from .session import CallState as CallState
from .session import Ended as Ended
from .session import EndReason as EndReason
from .session import Failover as Failover
from .session import Held as Held
from .session import InfoReceived as InfoReceived
from .session import MessageReceived as MessageReceived
from .session import Progress as Progress
from .session import Retrieved as Retrieved
from .session import SessionEvent as SessionEvent

__all__ = [
    "Answered",
    "Call",
    "CallFailed",
    "CallState",
    "EndReason",
    "Ended",
    "Failover",
    "Held",
    "IncomingCall",
    "IncomingMessage",
    "InfoReceived",
    "MessageReceived",
    "Progress",
    "Retrieved",
    "SessionEvent",
    "UserAgent",
    "connect_user_agent",
    "open_user_agent",
]
