"""The core's exception tree: the classes live in :mod:`trio_sip.errors` (every exception
trio-sip defines is there, with the tree drawn in its docstring); this module is their name in
the core, the same objects.
"""

from __future__ import annotations

from ..errors import ConfigError as ConfigError
from ..errors import LocalProtocolError as LocalProtocolError
from ..errors import NotCancelled as NotCancelled
from ..errors import ParseError as ParseError
from ..errors import ProtocolError as ProtocolError
from ..errors import RemoteProtocolError as RemoteProtocolError
from ..errors import SipError as SipError
from ..errors import TransactionError as TransactionError
from ..errors import TransactionTimeoutError as TransactionTimeoutError
from ..errors import TransportError as TransportError

__all__ = [
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
