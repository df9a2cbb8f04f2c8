"""Public exception tree (re-exports the core's errors; shell errors join here)."""

from __future__ import annotations

from .dns import DnsError as DnsError
from .location import StoreUnavailable as StoreUnavailable
from .proto.auth import AuthenticationFailed as AuthenticationFailed
from .proto.errors import ConfigError as ConfigError
from .proto.errors import LocalProtocolError as LocalProtocolError
from .proto.errors import NotCancelled as NotCancelled
from .proto.errors import ParseError as ParseError
from .proto.errors import ProtocolError as ProtocolError
from .proto.errors import RemoteProtocolError as RemoteProtocolError
from .proto.errors import SipError as SipError
from .proto.errors import TransactionError as TransactionError
from .proto.errors import TransactionTimeoutError as TransactionTimeoutError
from .proto.errors import TransportError as TransportError
from .proto.sdp import SdpError as SdpError
from .ua.call import CallFailed as CallFailed

__all__ = [
    "CallFailed",
    "AuthenticationFailed",
    "DnsError",
    "SdpError",
    "StoreUnavailable",
    "ConfigError",
    "LocalProtocolError",
    "NotCancelled",
    "ParseError",
    "ProtocolError",
    "RemoteProtocolError",
    "SipError",
    "TransactionError",
    "TransactionTimeoutError",
    "TransportError",
]
