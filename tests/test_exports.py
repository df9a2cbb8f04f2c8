"""The public surface, pinned (trio's ``test_exports.py``): ``__all__`` of ``trio_sip``,
``trio_sip.proto``, ``trio_sip.errors`` and ``trio_sip.testing``.

Every exported name exists, is listed once and is not private, and each ``__all__`` equals the
reviewed list below, so an accidental addition or removal fails here. Public names are a
promise (COMMON.md): adding one is a decision, made by adding it to the list in the same
commit; removing one needs a deprecation first.

For whoever merges: branches that add exports on purpose (e.g. wp-scale's ``Worker``,
``WorkerEvent``, ``current_worker``, ``run_workers``, ``serve_workers``) add them to the list
here too; a merge that leaves this test red means the list needs the new names, after review.

Also: every exception class trio-sip defines lives in :mod:`trio_sip.errors` (issue #13), and
the names it had before (``trio_sip.ua.CallFailed``, ``trio_sip.dns.DnsError``, ...) are the
very same objects.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType
from typing import Final

import pytest

import trio_sip
import trio_sip.errors
import trio_sip.proto
import trio_sip.testing

TOP_LEVEL: Final = frozenset(
    {
        "AbsoluteUri",
        "AgentTimeout",
        "answer_for",
        "Answered",
        "Attempt",
        "audio_offer",
        "AuthenticationFailed",
        "Blacklist",
        "Call",
        "CallEvent",
        "CallFailed",
        "CallState",
        "check_request",
        "check_response",
        "ClientTransaction",
        "ConfigError",
        "ConfigErrors",
        "connect_user_agent",
        "Connection",
        "ConnectionConfig",
        "ConnectionEvent",
        "ConnectionStatus",
        "CredentialStore",
        "CSeq",
        "current_worker",
        "DigestClient",
        "DnsError",
        "DnspythonResolver",
        "Ended",
        "Endpoint",
        "EndpointCall",
        "EndpointConfig",
        "EndpointTimeout",
        "EndReason",
        "Failover",
        "FailoverClient",
        "FailoverResult",
        "Flow",
        "FlowFailed",
        "Headers",
        "Held",
        "IncomingCall",
        "IncomingEndpointCall",
        "IncomingMessage",
        "IncomingRequest",
        "InfoReceived",
        "InviteAttempts",
        "KeepAlives",
        "Limits",
        "load_config",
        "LocalProtocolError",
        "LocationService",
        "LocationStore",
        "make_error_response",
        "make_response",
        "MemoryLocationStore",
        "MessageReceived",
        "NameAddress",
        "NEED_DATA",
        "new_branch",
        "new_call_id",
        "new_tag",
        "NotCancelled",
        "Notifier",
        "open_endpoint",
        "open_location_store",
        "open_proxy",
        "open_redis_store",
        "open_stack",
        "open_transport_layer",
        "open_user_agent",
        "parse_message",
        "parse_sdp",
        "parse_uri",
        "ParseError",
        "PING",
        "PONG",
        "Progress",
        "ProtocolError",
        "ProxySite",
        "ProxyStatistics",
        "reason_phrase",
        "RedisLocationStore",
        "Registrar",
        "RegistrationEvent",
        "RegistrationFailed",
        "Registrations",
        "Rejection",
        "RemoteProtocolError",
        "Request",
        "RequestKind",
        "Resolver",
        "Response",
        "RetransmitTimeoutEvent",
        "Retrieved",
        "run_workers",
        "SdpError",
        "serve_workers",
        "SessionDescription",
        "SessionEvent",
        "SipError",
        "SipUri",
        "Stack",
        "StackStatistics",
        "StoreUnavailable",
        "StreamFramer",
        "SubscriptionError",
        "Subscriptions",
        "Target",
        "TelUri",
        "TimeoutEvent",
        "TimeoutRole",
        "TimerConfig",
        "TransactionError",
        "TransactionTimeoutError",
        "TransactionTimeoutEvent",
        "TransportConfig",
        "TransportError",
        "TransportLayer",
        "UaRegistration",
        "UaSubscription",
        "UserAgent",
        "Via",
        "Worker",
        "WorkerEvent",
    }
)

PROTO: Final = frozenset(
    {
        "AbsoluteUri",
        "AckFor2xx",
        "AckResender",
        "AckWait",
        "answer_for",
        "answer_subscribe",
        "ApplicationRetransmit",
        "audio_offer",
        "AuthenticationFailed",
        "Binding",
        "Blacklist",
        "BlacklistStatistics",
        "build_ack",
        "build_bye",
        "build_cancel",
        "build_info",
        "build_message",
        "build_notify",
        "build_reinvite",
        "build_request",
        "cancel_target_key",
        "CancelFor",
        "Challenge",
        "check_request",
        "check_response",
        "client_key",
        "ClientInviteState",
        "ClientInviteTransaction",
        "ClientNonInviteState",
        "ClientNonInviteTransaction",
        "ConfigError",
        "Credentials",
        "CredentialStore",
        "CSeq",
        "decide",
        "Deliver",
        "Dialog",
        "DialogId",
        "DialogSet",
        "DialogState",
        "DigestClient",
        "Failure",
        "FailureReason",
        "FlowDead",
        "forward_request",
        "GiveUp",
        "glare_retry_delay",
        "Headers",
        "is_compiled",
        "KeepAliveState",
        "Limits",
        "LocalProtocolError",
        "LocationService",
        "make_error_response",
        "make_response",
        "MediaDescription",
        "MediaType",
        "Message",
        "MessageReceived",
        "NameAddress",
        "NaptrRecord",
        "NEED_DATA",
        "new_branch",
        "new_call_id",
        "new_tag",
        "NewServerTransaction",
        "NextDestination",
        "NullKeepAlive",
        "Params",
        "parse_challenge",
        "parse_credentials",
        "parse_message",
        "parse_name_addr",
        "parse_sdp",
        "parse_uri",
        "ParseError",
        "PING",
        "Planner",
        "PONG",
        "PongReceived",
        "ProtocolError",
        "ProxyIdentity",
        "RateLimiter",
        "reason_phrase",
        "Registration",
        "RegistrationState",
        "Rejection",
        "RemoteProtocolError",
        "Request",
        "RequestFailed",
        "RequestKind",
        "Response",
        "ResponseContext",
        "ResponseReceived",
        "Retransmitter",
        "RetransmitTimeout",
        "RetryAfter",
        "RetryLater",
        "RetryNext",
        "SdpError",
        "SendKeepAlive",
        "SendRequest",
        "SendResponse",
        "serialize",
        "server_key",
        "ServerInviteState",
        "ServerInviteTransaction",
        "ServerNonInviteState",
        "ServerNonInviteTransaction",
        "SessionDescription",
        "Side",
        "SipError",
        "SipUri",
        "SrvRecord",
        "StateChanged",
        "Stray",
        "StreamFramer",
        "StreamKeepAlive",
        "Subscription",
        "SubscriptionState",
        "Target",
        "TelUri",
        "Terminated",
        "TerminationReason",
        "Timeout",
        "timeout_rule",
        "TIMEOUT_TABLE",
        "TimeoutRole",
        "TimeoutRule",
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
        "TrustedSources",
        "Uri",
        "UriParts",
        "validate_request",
        "verify",
        "Via",
        "WILDCARD",
    }
)

ERRORS: Final = frozenset(
    {
        "AuthenticationFailed",
        "CallFailed",
        "ConfigError",
        "ConfigErrors",
        "DnsError",
        "LocalProtocolError",
        "NotCancelled",
        "ParseError",
        "ProtocolError",
        "RegistrationFailed",
        "Rejection",
        "RemoteProtocolError",
        "SdpError",
        "SipError",
        "StoreUnavailable",
        "SubscriptionError",
        "TransactionError",
        "TransactionTimeoutError",
        "TransportError",
    }
)

TESTING: Final = frozenset(
    {
        "check_transport",
        "FakeBackend",
        "FakeNetwork",
        "FakeResolver",
        "LinkConfig",
        "make_request",
        "Packet",
    }
)

PINNED: Final[dict[str, frozenset[str]]] = {
    "trio_sip": TOP_LEVEL,
    "trio_sip.proto": PROTO,
    "trio_sip.errors": ERRORS,
    "trio_sip.testing": TESTING,
}


@pytest.mark.parametrize("name", list(PINNED))
def test_every_exported_name_exists_once_and_is_public(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), [n for n in exported if exported.count(n) > 1]
    assert [n for n in exported if n.startswith("_")] == []
    assert [n for n in exported if not hasattr(module, n)] == []


@pytest.mark.parametrize("name", list(PINNED))
def test_exports_equal_the_reviewed_list(name: str) -> None:
    exported = set(importlib.import_module(name).__all__)
    added, removed = sorted(exported - PINNED[name]), sorted(PINNED[name] - exported)
    assert (added, removed) == ([], []), (
        f"{name}.__all__ changed: added {added}, removed {removed}; "
        "review the change and update the list in tests/test_exports.py"
    )


def test_every_exception_class_lives_in_trio_sip_errors() -> None:
    """Walk every module of the package: an exception class is defined in trio_sip.errors,
    and wherever else its name is bound it is the same object."""
    elsewhere: list[str] = []
    seen = 0
    for info in pkgutil.walk_packages(trio_sip.__path__, "trio_sip."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra (coredis) that is not installed
            continue
        for attr, value in vars(module).items():
            ours = isinstance(value, type) and value.__module__.startswith("trio_sip")
            if ours and issubclass(value, BaseException):
                seen += 1
                if value.__module__ != "trio_sip.errors":
                    elsewhere.append(f"{info.name}.{attr} ({value.__module__})")
                else:
                    assert getattr(trio_sip.errors, value.__name__) is value
    assert elsewhere == []
    assert seen > 20  # the walk did find the re-exported names


def test_exceptions_reachable_under_their_old_names_are_the_same_objects() -> None:
    import trio_sip.cli._signals
    import trio_sip.config
    import trio_sip.dns
    import trio_sip.location
    import trio_sip.proto.auth
    import trio_sip.proto.errors
    import trio_sip.proto.sdp
    import trio_sip.proto.validate
    import trio_sip.ua

    e = trio_sip.errors
    old: list[tuple[ModuleType, str]] = [
        *((trio_sip.proto.errors, n) for n in trio_sip.proto.errors.__all__),
        (trio_sip.proto.sdp, "SdpError"),
        (trio_sip.proto.auth, "AuthenticationFailed"),
        (trio_sip.proto.validate, "Rejection"),
        (trio_sip.dns, "DnsError"),
        (trio_sip.location, "StoreUnavailable"),
        (trio_sip.config, "ConfigErrors"),
        (trio_sip.ua, "CallFailed"),
        (trio_sip.ua, "RegistrationFailed"),
        (trio_sip.ua, "SubscriptionError"),
        (trio_sip.cli._signals, "Interrupted"),
    ]
    for module, name in old:
        assert getattr(module, name) is getattr(e, name), (module.__name__, name)


def test_the_errors_module_imports_nothing_of_trio_sip_at_run_time() -> None:
    """trio_sip.errors is a leaf: the sans-I/O core imports it (tests/test_layering.py)."""
    tree = ast.parse(Path(trio_sip.errors.__file__).read_text())
    for node in tree.body:  # module level; the TYPE_CHECKING block is an `if`, not an import
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module is not None, ast.dump(node)
            assert not node.module.startswith("trio_sip"), node.module
        elif isinstance(node, ast.Import):
            assert all(not a.name.startswith("trio_sip") for a in node.names)


def test_one_class_per_name_for_the_former_duplicates() -> None:
    """PongReceived and SendResponse were each defined twice (issue #13)."""
    import trio_sip.proto.keepalive
    import trio_sip.proto.outputs
    import trio_sip.proto.subscription
    import trio_sip.transports

    assert trio_sip.transports.PongReceived is trio_sip.proto.keepalive.PongReceived
    assert trio_sip.proto.PongReceived is trio_sip.proto.keepalive.PongReceived
    assert trio_sip.proto.subscription.SendResponse is trio_sip.proto.outputs.SendResponse
    assert trio_sip.proto.SendResponse is trio_sip.proto.outputs.SendResponse
