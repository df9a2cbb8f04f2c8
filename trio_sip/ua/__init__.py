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
from .paths import ProxyList as ProxyList
from .registration import RegistrationEvent as RegistrationEvent
from .registration import RegistrationFailed as RegistrationFailed
from .registration import Registrations as Registrations
from .registration import RegistrationStatistics as RegistrationStatistics
from .registration import UaRegistration as UaRegistration
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
from .subscription import Notification as Notification
from .subscription import Notifier as Notifier
from .subscription import ServerSubscription as ServerSubscription
from .subscription import SubscriptionError as SubscriptionError
from .subscription import SubscriptionEvent as SubscriptionEvent
from .subscription import Subscriptions as Subscriptions
from .subscription import UaSubscription as UaSubscription
from .timeouts import AgentTimeout as AgentTimeout

__all__ = [
    "Subscriptions",
    "UaSubscription",
    "SubscriptionEvent",
    "SubscriptionError",
    "Notification",
    "Notifier",
    "ServerSubscription",
    "Registrations",
    "UaRegistration",
    "RegistrationEvent",
    "RegistrationFailed",
    "RegistrationStatistics",
    "AgentTimeout",
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
    "ProxyList",
    "Retrieved",
    "SessionEvent",
    "UserAgent",
    "connect_user_agent",
    "open_user_agent",
]
