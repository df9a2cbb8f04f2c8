"""trio-sip: a SIP signalling stack for Trio.

The public API is what this module exports (``__all__``); ``trio_sip.proto`` is the sans-I/O core,
``trio_sip.errors`` the exception tree and ``trio_sip.testing`` the test kit.
"""

from __future__ import annotations

from .errors import ConfigError as ConfigError
from .errors import LocalProtocolError as LocalProtocolError
from .errors import ParseError as ParseError
from .errors import ProtocolError as ProtocolError
from .errors import RemoteProtocolError as RemoteProtocolError
from .errors import SipError as SipError
from .errors import TransactionError as TransactionError
from .errors import TransactionTimeoutError as TransactionTimeoutError
from .errors import TransportError as TransportError

__version__ = "0.1.0.dev0"
