"""trio_sip.proto: the sans-I/O SIP core.

Plain Python (stdlib + attrs): bytes, events and the current time go in; messages, actions and
deadlines come out. Nothing here imports trio, socket, ssl or dns, reads a clock or does I/O.
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
