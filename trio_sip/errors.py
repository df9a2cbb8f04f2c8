"""Public exception tree (re-exports the core's errors; shell errors join here)."""

from __future__ import annotations

from .proto.errors import ConfigError as ConfigError
from .proto.errors import LocalProtocolError as LocalProtocolError
from .proto.errors import ParseError as ParseError
from .proto.errors import ProtocolError as ProtocolError
from .proto.errors import RemoteProtocolError as RemoteProtocolError
from .proto.errors import SipError as SipError
from .proto.errors import TransactionError as TransactionError
from .proto.errors import TransactionTimeoutError as TransactionTimeoutError
from .proto.errors import TransportError as TransportError

__all__ = [
    "ConfigError",
    "LocalProtocolError",
    "ParseError",
    "ProtocolError",
    "RemoteProtocolError",
    "SipError",
    "TransactionError",
    "TransactionTimeoutError",
    "TransportError",
]
