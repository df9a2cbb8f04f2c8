"""The exception tree of the sans-I/O core.

Everything the stack raises on purpose derives from :class:`SipError`.

* :class:`ProtocolError` says somebody broke the SIP rules. It carries ``status_hint``, the
  status a server should answer with (400 by default; 416, 420, 481, 483, 505, 513, ...).

  * :class:`LocalProtocolError`: *we* (the application) tried something illegal.
  * :class:`RemoteProtocolError`: the peer sent something illegal.

    * :class:`ParseError`: the bytes are not a well-formed SIP message. ``status_code`` is
      the status a UAS answers with (or 0 for a response, which is dropped, never answered).

* :class:`ConfigError` (also a :class:`ValueError`): a configuration value is out of range. The
  message names the setting, the value and what is allowed.
* :class:`TransactionError`: a client transaction ended without a final response:
  :class:`TransactionTimeoutError` (Timer B/F or ``sip_transaction_timeout``) or
  :class:`TransportError` (the transport failed, RFC 3261 §17.1.4 / §17.2.4).
* :class:`NotCancelled`: a server transaction ended without a CANCEL, so ``wait_cancelled()``
  can no longer return.

The split between Local and Remote follows h11: the core raises Local internally and the single
receive boundary re-raises peer faults as Remote.
"""

from __future__ import annotations

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


class SipError(Exception):
    """Base class of every exception trio-sip raises on purpose."""


class ProtocolError(SipError):
    """A SIP rule was broken. ``status_hint`` is the status a server should answer with."""

    status_hint: int

    def __init__(self, msg: str, *, status_hint: int = 400) -> None:
        super().__init__(msg)
        self.status_hint = status_hint

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, status_hint={self.status_hint})"


class LocalProtocolError(ProtocolError):
    """The application asked for something SIP does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something SIP does not allow."""


class ParseError(RemoteProtocolError):
    """Bytes that are not a well-formed SIP message (or header value).

    ``status_code`` is what a UAS should answer (400 Bad Request, 505 Version Not Supported,
    416 Unsupported URI Scheme, 513 Message Too Large, ...). For a malformed *response* there is
    nothing to answer: the response is dropped.
    """

    @property
    def status_code(self) -> int:
        return self.status_hint


class ConfigError(SipError, ValueError):
    """A configuration value is invalid; the message names the setting and the allowed range."""

    def __init__(self, setting: str, value: object, allowed: str) -> None:
        super().__init__(f"{setting}={value!r} is not allowed: {allowed}")
        self.setting = setting
        self.value = value
        self.allowed = allowed


class TransactionError(SipError):
    """A client transaction ended without a final response."""


class TransactionTimeoutError(TransactionError):
    """No final response before Timer B / Timer F (bounded by ``sip_transaction_timeout``)."""


class TransportError(TransactionError):
    """The transport failed while the transaction was using it (§17.1.4, §17.2.4)."""


class NotCancelled(SipError):
    """``wait_cancelled()``: the server transaction ended without a CANCEL (none can match it
    any more, RFC 3261 §9.2)."""
