"""trio_sip.proto: the sans-I/O SIP core.

Plain Python (stdlib + attrs): bytes, events and the current time go in; messages, actions and
deadlines come out. Nothing here imports trio, socket, ssl or dns, reads a clock or does I/O.
"""

from __future__ import annotations

from .auth import AuthenticationFailed as AuthenticationFailed
from .auth import Challenge as Challenge
from .auth import Credentials as Credentials
from .auth import CredentialStore as CredentialStore
from .auth import DigestClient as DigestClient
from .auth import parse_challenge as parse_challenge
from .auth import parse_credentials as parse_credentials
from .auth import verify as verify
from .blacklist import Blacklist as Blacklist
from .blacklist import BlacklistStatistics as BlacklistStatistics
from .blacklist import FailureReason as FailureReason
from .dialog import Dialog as Dialog
from .dialog import DialogId as DialogId
from .dialog import DialogSet as DialogSet
from .dialog import DialogState as DialogState
from .dialog import glare_retry_delay as glare_retry_delay
from .dialog_requests import AckResender as AckResender
from .dialog_requests import AckWait as AckWait
from .dialog_requests import NextDestination as NextDestination
from .dialog_requests import build_ack as build_ack
from .dialog_requests import build_bye as build_bye
from .dialog_requests import build_cancel as build_cancel
from .dialog_requests import build_info as build_info
from .dialog_requests import build_message as build_message
from .dialog_requests import build_reinvite as build_reinvite
from .dialog_requests import build_request as build_request
from .errors import ConfigError as ConfigError
from .errors import LocalProtocolError as LocalProtocolError
from .errors import ParseError as ParseError
from .errors import ProtocolError as ProtocolError
from .errors import RemoteProtocolError as RemoteProtocolError
from .errors import SipError as SipError
from .errors import TransactionError as TransactionError
from .errors import TransactionTimeoutError as TransactionTimeoutError
from .errors import TransportError as TransportError
from .fields import CSeq as CSeq
from .fields import MediaType as MediaType
from .fields import RetryAfter as RetryAfter
from .fields import Via as Via
from .headers import Headers as Headers
from .ids import new_branch as new_branch
from .ids import new_call_id as new_call_id
from .ids import new_tag as new_tag
from .keepalive import FlowDead as FlowDead
from .keepalive import KeepAliveState as KeepAliveState
from .keepalive import NullKeepAlive as NullKeepAlive
from .keepalive import PongReceived as PongReceived
from .keepalive import SendKeepAlive as SendKeepAlive
from .keepalive import StreamKeepAlive as StreamKeepAlive
from .limits import Limits as Limits
from .location import Binding as Binding
from .location import LocationService as LocationService
from .message import Message as Message
from .message import Request as Request
from .message import Response as Response
from .message import make_error_response as make_error_response
from .message import make_response as make_response
from .message import reason_phrase as reason_phrase
from .outputs import ApplicationRetransmit as ApplicationRetransmit
from .outputs import Deliver as Deliver
from .outputs import MessageReceived as MessageReceived
from .outputs import RetransmitTimeout as RetransmitTimeout
from .outputs import SendResponse as SendResponse
from .outputs import Terminated as Terminated
from .outputs import TerminationReason as TerminationReason
from .outputs import TransactionTimeout as TransactionTimeout
from .outputs import Transmit as Transmit
from .outputs import TransportErrorOccurred as TransportErrorOccurred
from .outputs import TransportFailed as TransportFailed
from .parse import NEED_DATA as NEED_DATA
from .parse import PING as PING
from .parse import PONG as PONG
from .parse import StreamFramer as StreamFramer
from .parse import parse_message as parse_message
from .proxy import ProxyIdentity as ProxyIdentity
from .proxy import ResponseContext as ResponseContext
from .proxy import forward_request as forward_request
from .proxy import validate_request as validate_request
from .rate import RateLimiter as RateLimiter
from .rate import TrustedSources as TrustedSources
from .registration import Registration as Registration
from .registration import RegistrationState as RegistrationState
from .registration import RequestFailed as RequestFailed
from .registration import ResponseReceived as ResponseReceived
from .registration import SendRequest as SendRequest
from .registration import StateChanged as StateChanged
from .resolve import NaptrRecord as NaptrRecord
from .resolve import Planner as Planner
from .resolve import SrvRecord as SrvRecord
from .resolve import UriParts as UriParts
from .retry import Failure as Failure
from .retry import GiveUp as GiveUp
from .retry import RequestKind as RequestKind
from .retry import RetryLater as RetryLater
from .retry import RetryNext as RetryNext
from .retry import decide as decide
from .sdp import MediaDescription as MediaDescription
from .sdp import SdpError as SdpError
from .sdp import SessionDescription as SessionDescription
from .sdp import answer_for as answer_for
from .sdp import audio_offer as audio_offer
from .sdp import parse_sdp as parse_sdp
from .serialize import serialize as serialize
from .subscription import Subscription as Subscription
from .subscription import SubscriptionState as SubscriptionState
from .subscription import answer_subscribe as answer_subscribe
from .subscription import build_notify as build_notify
from .target import Target as Target
from .timers import TimerConfig as TimerConfig
from .timers import Timers as Timers
from .transaction import TIMEOUT_TABLE as TIMEOUT_TABLE
from .transaction import AckFor2xx as AckFor2xx
from .transaction import CancelFor as CancelFor
from .transaction import ClientInviteState as ClientInviteState
from .transaction import ClientInviteTransaction as ClientInviteTransaction
from .transaction import ClientNonInviteState as ClientNonInviteState
from .transaction import ClientNonInviteTransaction as ClientNonInviteTransaction
from .transaction import NewServerTransaction as NewServerTransaction
from .transaction import Retransmitter as Retransmitter
from .transaction import ServerInviteState as ServerInviteState
from .transaction import ServerInviteTransaction as ServerInviteTransaction
from .transaction import ServerNonInviteState as ServerNonInviteState
from .transaction import ServerNonInviteTransaction as ServerNonInviteTransaction
from .transaction import Side as Side
from .transaction import Stray as Stray
from .transaction import Timeout as Timeout
from .transaction import TimeoutRole as TimeoutRole
from .transaction import TimeoutRule as TimeoutRule
from .transaction import ToTransaction as ToTransaction
from .transaction import TransactionTable as TransactionTable
from .transaction import cancel_target_key as cancel_target_key
from .transaction import client_key as client_key
from .transaction import server_key as server_key
from .transaction import timeout_rule as timeout_rule
from .uri import WILDCARD as WILDCARD
from .uri import AbsoluteUri as AbsoluteUri
from .uri import NameAddress as NameAddress
from .uri import Params as Params
from .uri import SipUri as SipUri
from .uri import TelUri as TelUri
from .uri import Uri as Uri
from .uri import parse_name_addr as parse_name_addr
from .uri import parse_uri as parse_uri
from .validate import Rejection as Rejection
from .validate import check_request as check_request
from .validate import check_response as check_response

__all__ = [
    "ProxyIdentity",
    "ResponseContext",
    "forward_request",
    "validate_request",
    "RateLimiter",
    "TrustedSources",
    "Binding",
    "LocationService",
    "Dialog",
    "DialogId",
    "DialogSet",
    "DialogState",
    "glare_retry_delay",
    "AckResender",
    "AckWait",
    "build_ack",
    "build_bye",
    "build_cancel",
    "build_info",
    "build_message",
    "build_reinvite",
    "build_request",
    "Registration",
    "RegistrationState",
    "RequestFailed",
    "ResponseReceived",
    "SendRequest",
    "StateChanged",
    "Subscription",
    "SubscriptionState",
    "answer_subscribe",
    "build_notify",
    "Failure",
    "GiveUp",
    "RequestKind",
    "RetryLater",
    "RetryNext",
    "decide",
    "AbsoluteUri",
    "AckFor2xx",
    "ApplicationRetransmit",
    "AuthenticationFailed",
    "Blacklist",
    "BlacklistStatistics",
    "CSeq",
    "CancelFor",
    "Challenge",
    "ClientInviteState",
    "ClientInviteTransaction",
    "ClientNonInviteState",
    "ClientNonInviteTransaction",
    "ConfigError",
    "CredentialStore",
    "Credentials",
    "Deliver",
    "DigestClient",
    "FailureReason",
    "FlowDead",
    "Headers",
    "KeepAliveState",
    "LocalProtocolError",
    "MediaDescription",
    "MediaType",
    "Message",
    "MessageReceived",
    "NEED_DATA",
    "NameAddress",
    "NaptrRecord",
    "NewServerTransaction",
    "NextDestination",
    "NullKeepAlive",
    "PING",
    "PONG",
    "Params",
    "ParseError",
    "Planner",
    "PongReceived",
    "ProtocolError",
    "Rejection",
    "RemoteProtocolError",
    "Request",
    "Response",
    "RetransmitTimeout",
    "Retransmitter",
    "RetryAfter",
    "SdpError",
    "SendKeepAlive",
    "SendResponse",
    "ServerInviteState",
    "ServerInviteTransaction",
    "ServerNonInviteState",
    "ServerNonInviteTransaction",
    "SessionDescription",
    "Side",
    "SipError",
    "SipUri",
    "SrvRecord",
    "Stray",
    "StreamFramer",
    "StreamKeepAlive",
    "Target",
    "TelUri",
    "Terminated",
    "TerminationReason",
    "TIMEOUT_TABLE",
    "Timeout",
    "TimeoutRole",
    "TimeoutRule",
    "Limits",
    "TimerConfig",
    "Timers",
    "ToTransaction",
    "TransactionError",
    "TransactionTable",
    "TransactionTimeout",
    "TransactionTimeoutError",
    "Transmit",
    "TransportError",
    "TransportErrorOccurred",
    "TransportFailed",
    "Uri",
    "UriParts",
    "Via",
    "WILDCARD",
    "answer_for",
    "audio_offer",
    "cancel_target_key",
    "check_request",
    "check_response",
    "client_key",
    "make_error_response",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_challenge",
    "parse_credentials",
    "parse_message",
    "parse_name_addr",
    "parse_sdp",
    "parse_uri",
    "reason_phrase",
    "serialize",
    "server_key",
    "timeout_rule",
    "verify",
    "is_compiled",
]

# The core modules (message layer, transactions, validation) a TRIO_SIP_COMPILE=1 build
# compiles with mypyc: the list in pyproject.toml, [tool.hatch.build.targets.wheel.hooks.custom]
# (docs/messages.md, "Compiled core"). Submodules of proto are named with dots.
_COMPILED_MODULES = (
    "abnf",
    "fields",
    "headers",
    "ids",
    "message",
    "outputs",
    "parse",
    "serialize",
    "timers",
    "transaction.client_invite",
    "transaction.client_non_invite",
    "transaction.keys",
    "transaction.machine",
    "transaction.server_invite",
    "transaction.server_non_invite",
    "transaction.table",
    "transaction.timeouts",
    "uri",
    "uri_parts",
    "validate",
)


def is_compiled() -> bool:
    """True if the message layer in use is the mypyc-compiled build (``TRIO_SIP_COMPILE=1``).

    False for the default pure-Python install, and if any of the compiled modules was loaded
    from its ``.py`` file instead of its extension module.
    """
    import importlib

    for name in _COMPILED_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        if not (getattr(module, "__file__", None) or "").endswith((".so", ".pyd")):
            return False
    return True
