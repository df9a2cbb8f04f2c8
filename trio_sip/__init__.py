"""trio-sip: a SIP signalling stack for Trio.

The public API is what this module exports (``__all__``); ``trio_sip.proto`` is the sans-I/O core,
``trio_sip.errors`` the exception tree and ``trio_sip.testing`` the test kit.
"""

from __future__ import annotations

from .config import ConnectionConfig as ConnectionConfig
from .config import EndpointConfig as EndpointConfig
from .config import load_config as load_config
from .dns import DnspythonResolver as DnspythonResolver
from .dns import Resolver as Resolver
from .errors import AuthenticationFailed as AuthenticationFailed
from .errors import ConfigError as ConfigError
from .errors import ConfigErrors as ConfigErrors
from .errors import DnsError as DnsError
from .errors import LocalProtocolError as LocalProtocolError
from .errors import NotCancelled as NotCancelled
from .errors import ParseError as ParseError
from .errors import ProtocolError as ProtocolError
from .errors import RemoteProtocolError as RemoteProtocolError
from .errors import SdpError as SdpError
from .errors import SipError as SipError
from .errors import SubscriptionError as SubscriptionError
from .errors import TransactionError as TransactionError
from .errors import TransactionTimeoutError as TransactionTimeoutError
from .errors import TransportError as TransportError
from .failover import Attempt as Attempt
from .failover import FailoverClient as FailoverClient
from .failover import FailoverResult as FailoverResult
from .failover import InviteAttempts as InviteAttempts
from .keepalive import KeepAlives as KeepAlives
from .proto.auth import CredentialStore as CredentialStore
from .proto.auth import DigestClient as DigestClient
from .proto.blacklist import Blacklist as Blacklist
from .proto.fields import CSeq as CSeq
from .proto.fields import Via as Via
from .proto.headers import Headers as Headers
from .proto.ids import new_branch as new_branch
from .proto.ids import new_call_id as new_call_id
from .proto.ids import new_tag as new_tag
from .proto.limits import Limits as Limits
from .proto.message import Request as Request
from .proto.message import Response as Response
from .proto.message import make_error_response as make_error_response
from .proto.message import make_response as make_response
from .proto.message import reason_phrase as reason_phrase
from .proto.parse import NEED_DATA as NEED_DATA
from .proto.parse import PING as PING
from .proto.parse import PONG as PONG
from .proto.parse import StreamFramer as StreamFramer
from .proto.parse import parse_message as parse_message
from .proto.retry import RequestKind as RequestKind
from .proto.sdp import SessionDescription as SessionDescription
from .proto.sdp import answer_for as answer_for
from .proto.sdp import audio_offer as audio_offer
from .proto.sdp import parse_sdp as parse_sdp
from .proto.target import Target as Target
from .proto.timers import TimerConfig as TimerConfig
from .proto.transaction import TimeoutRole as TimeoutRole
from .proto.uri import AbsoluteUri as AbsoluteUri
from .proto.uri import NameAddress as NameAddress
from .proto.uri import SipUri as SipUri
from .proto.uri import TelUri as TelUri
from .proto.uri import parse_uri as parse_uri
from .proto.validate import Rejection as Rejection
from .proto.validate import check_request as check_request
from .proto.validate import check_response as check_response
from .stack import ClientTransaction as ClientTransaction
from .stack import IncomingRequest as IncomingRequest
from .stack import RetransmitTimeoutEvent as RetransmitTimeoutEvent
from .stack import Stack as Stack
from .stack import StackStatistics as StackStatistics
from .stack import TimeoutEvent as TimeoutEvent
from .stack import TransactionTimeoutEvent as TransactionTimeoutEvent
from .stack import open_stack as open_stack
from .transports import Flow as Flow
from .transports import FlowFailed as FlowFailed
from .transports import TransportConfig as TransportConfig
from .transports import TransportLayer as TransportLayer
from .transports import open_transport_layer as open_transport_layer
from .ua import AgentTimeout as AgentTimeout
from .ua import Answered as Answered
from .ua import Call as Call
from .ua import CallFailed as CallFailed
from .ua import CallState as CallState
from .ua import Ended as Ended
from .ua import EndReason as EndReason
from .ua import Failover as Failover
from .ua import Held as Held
from .ua import IncomingCall as IncomingCall
from .ua import IncomingMessage as IncomingMessage
from .ua import InfoReceived as InfoReceived
from .ua import MessageReceived as MessageReceived
from .ua import Progress as Progress
from .ua import Retrieved as Retrieved
from .ua import SessionEvent as SessionEvent
from .ua import UserAgent as UserAgent
from .ua import connect_user_agent as connect_user_agent
from .ua import open_user_agent as open_user_agent
from .workers import Worker as Worker
from .workers import WorkerEvent as WorkerEvent
from .workers import current_worker as current_worker
from .workers import run_workers as run_workers
from .workers import serve_workers as serve_workers

__version__ = "0.1.0.dev0"

from .endpoint import CallEvent as CallEvent
from .endpoint import Connection as Connection
from .endpoint import ConnectionEvent as ConnectionEvent
from .endpoint import ConnectionStatus as ConnectionStatus
from .endpoint import Endpoint as Endpoint
from .endpoint import EndpointCall as EndpointCall
from .endpoint import EndpointTimeout as EndpointTimeout
from .endpoint import IncomingEndpointCall as IncomingEndpointCall
from .endpoint import open_endpoint as open_endpoint
from .location import LocationStore as LocationStore
from .location import MemoryLocationStore as MemoryLocationStore
from .location import RedisLocationStore as RedisLocationStore
from .location import StoreUnavailable as StoreUnavailable
from .location import open_location_store as open_location_store
from .location import open_redis_store as open_redis_store
from .proto.location import LocationService as LocationService
from .proxy import ProxySite as ProxySite
from .proxy import ProxyStatistics as ProxyStatistics
from .proxy import open_proxy as open_proxy
from .registrar import Registrar as Registrar
from .ua import Notifier as Notifier
from .ua import RegistrationEvent as RegistrationEvent
from .ua import RegistrationFailed as RegistrationFailed
from .ua import Registrations as Registrations
from .ua import Subscriptions as Subscriptions
from .ua import UaRegistration as UaRegistration
from .ua import UaSubscription as UaSubscription

__all__ = [
    "open_endpoint",
    "Endpoint",
    "EndpointCall",
    "EndpointTimeout",
    "IncomingEndpointCall",
    "Connection",
    "ConnectionStatus",
    "ConnectionEvent",
    "CallEvent",
    "LocationService",
    "LocationStore",
    "MemoryLocationStore",
    "RedisLocationStore",
    "open_location_store",
    "open_redis_store",
    "Registrar",
    "open_proxy",
    "ProxySite",
    "ProxyStatistics",
    "Registrations",
    "UaRegistration",
    "RegistrationEvent",
    "RegistrationFailed",
    "Subscriptions",
    "UaSubscription",
    "Notifier",
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
    "Retrieved",
    "SessionEvent",
    "UserAgent",
    "connect_user_agent",
    "open_user_agent",
    "Attempt",
    "FailoverClient",
    "FailoverResult",
    "InviteAttempts",
    "RequestKind",
    "ClientTransaction",
    "IncomingRequest",
    "RetransmitTimeoutEvent",
    "Stack",
    "StackStatistics",
    "TimeoutEvent",
    "TransactionTimeoutEvent",
    "open_stack",
    "NEED_DATA",
    "PING",
    "PONG",
    "Rejection",
    "check_request",
    "check_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "CSeq",
    "Via",
    "KeepAlives",
    "Flow",
    "FlowFailed",
    "TransportConfig",
    "TransportLayer",
    "open_transport_layer",
    "Worker",
    "WorkerEvent",
    "current_worker",
    "run_workers",
    "serve_workers",
    "AbsoluteUri",
    "AuthenticationFailed",
    "Blacklist",
    "ConfigError",
    "ConfigErrors",
    "ConnectionConfig",
    "CredentialStore",
    "DigestClient",
    "DnsError",
    "DnspythonResolver",
    "EndpointConfig",
    "Headers",
    "LocalProtocolError",
    "NameAddress",
    "NotCancelled",
    "ParseError",
    "ProtocolError",
    "RemoteProtocolError",
    "Request",
    "Resolver",
    "Response",
    "SdpError",
    "SessionDescription",
    "SipError",
    "SubscriptionError",
    "SipUri",
    "StoreUnavailable",
    "StreamFramer",
    "Target",
    "TelUri",
    "TimeoutRole",
    "Limits",
    "TimerConfig",
    "TransactionError",
    "TransactionTimeoutError",
    "TransportError",
    "answer_for",
    "audio_offer",
    "load_config",
    "make_error_response",
    "make_response",
    "parse_message",
    "parse_sdp",
    "parse_uri",
    "reason_phrase",
]
