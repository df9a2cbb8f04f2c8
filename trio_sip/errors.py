"""Every exception trio-sip defines, in one module (docs/errors.md).

Everything the stack raises on purpose derives from :class:`SipError`.

* :class:`ProtocolError` says somebody broke the SIP rules. It carries ``status_hint``, the
  status a server should answer with (400 by default; 416, 420, 481, 483, 505, 513, ...).

  * :class:`LocalProtocolError`: *we* (the application) tried something illegal.
  * :class:`RemoteProtocolError`: the peer sent something illegal.

    * :class:`ParseError`: the bytes are not a well-formed SIP message. ``status_code`` is
      the status a UAS answers with (or 0 for a response, which is dropped, never answered).
    * :class:`Rejection`: a well-formed request refused for its meaning (``check_request``),
      with the headers the answer carries.

  * :class:`SdpError`: a malformed session description.

* :class:`ConfigError` (also a :class:`ValueError`): a configuration value is out of range. The
  message names the setting, the value and what is allowed. :class:`ConfigErrors`: several.
* :class:`TransactionError`: a client transaction ended without a final response:
  :class:`TransactionTimeoutError` (Timer B/F or ``sip_transaction_timeout``) or
  :class:`TransportError` (the transport failed, RFC 3261 §17.1.4 / §17.2.4).
* :class:`NotCancelled`: a server transaction ended without a CANCEL, so ``wait_cancelled()``
  can no longer return.
* :class:`AuthenticationFailed`, :class:`DnsError`, :class:`StoreUnavailable`,
  :class:`CallFailed`, :class:`RegistrationFailed`, :class:`SubscriptionError`: a digest
  challenge that cannot be answered, a name that resolves to nothing, a location store that
  does not answer, a call, registration or subscription that failed.

The split between Local and Remote follows h11: the core raises Local internally and the single
receive boundary re-raises peer faults as Remote.

This module imports nothing from trio-sip at run time (the sans-I/O core imports it:
tests/test_layering.py). The modules that defined these classes before import them from here,
so each is one object under its old names too (``trio_sip.proto.errors.ParseError``,
``trio_sip.ua.CallFailed``, ``trio_sip.dns.DnsError``, ...).
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: this module stays a leaf at run time
    from .proto.message import Response

__all__ = [
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
]


class SipError(Exception):
    """Base class of every exception trio-sip raises on purpose."""


# ---------------------------------------------------------------------- protocol rules


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


class Rejection(RemoteProtocolError):
    """Why a request is refused: answer ``status_hint`` with ``headers`` added."""

    def __init__(
        self, msg: str, *, status_hint: int = 400, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        super().__init__(msg, status_hint=status_hint)
        self.headers: tuple[tuple[str, str], ...] = tuple(headers)

    @property
    def status_code(self) -> int:
        """The status to answer with (same as ``status_hint``)."""
        return self.status_hint


class SdpError(ProtocolError):
    """A malformed session description (``status_hint`` 400 Bad Request)."""


# ---------------------------------------------------------------------- configuration


class ConfigError(SipError, ValueError):
    """A configuration value is invalid; the message names the setting and the allowed range."""

    def __init__(self, setting: str, value: object, allowed: str) -> None:
        super().__init__(f"{setting}={value!r} is not allowed: {allowed}")
        self.setting = setting
        self.value = value
        self.allowed = allowed


class ConfigErrors(ConfigError):
    """Several configuration problems at once.

    ``setting``, ``value`` and ``allowed`` are those of the first problem, so code that handles a
    single :class:`ConfigError` keeps working; ``errors`` lists every problem in order.
    """

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        if not errors:
            raise ValueError("ConfigErrors needs at least one error")
        first = errors[0]
        super().__init__(first.setting, first.value, first.allowed)
        self.errors: tuple[ConfigError, ...] = tuple(errors)
        if len(self.errors) > 1:
            lines = "".join(f"\n  {err}" for err in self.errors)
            self.args = (f"{len(self.errors)} configuration errors:{lines}",)


# ---------------------------------------------------------------------- transactions


class TransactionError(SipError):
    """A client transaction ended without a final response."""


class TransactionTimeoutError(TransactionError):
    """No final response before Timer B / Timer F (bounded by ``sip_transaction_timeout``)."""


class TransportError(TransactionError):
    """The transport failed while the transaction was using it (§17.1.4, §17.2.4)."""


class HandshakeTimeout(TransportError):
    """An accepted connection's TLS handshake did not complete in time (``Limits``'
    handshake bound; the transports close the connection, no application sees it)."""


class NotCancelled(SipError):
    """``wait_cancelled()``: the server transaction ended without a CANCEL (none can match it
    any more, RFC 3261 §9.2)."""


# ---------------------------------------------------------------------- services


class AuthenticationFailed(SipError):
    """Authentication cannot go on: no usable challenge, no credentials, or they were refused."""

    def __init__(self, msg: str, *, realm: str | None = None) -> None:
        super().__init__(msg)
        self.realm = realm


class DnsError(SipError):
    """A name could not be resolved to any target; ``name`` says which, ``reason`` why."""

    def __init__(self, name: str, reason: str, *, timed_out: bool = False) -> None:
        super().__init__(f"cannot resolve {name}: {reason}")
        self.name = name
        self.reason = reason
        self.timed_out = timed_out


class StoreUnavailable(SipError):
    """The location store did not answer (unreachable, timed out, too much contention): the
    registrar and the proxy answer 503 with Retry-After, and try again on the next request."""


# ---------------------------------------------------------------------- user agent


class CallFailed(SipError):
    """The call was not answered: ``response`` is the final 3xx-6xx (None after a timeout or
    transport failure on every target, or a cancellation before any response)."""

    def __init__(self, response: Response | None, reason: str = "") -> None:
        what = f"{response.status_code} {response.reason}" if response is not None else reason
        super().__init__(f"call failed: {what}")
        self.response = response
        self.reason = reason or what


class RegistrationFailed(SipError):
    """``wait_registered()`` saw the attempt fail: ``reason`` (and the final ``response``)."""

    def __init__(self, reason: str, response: Response | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.response = response


class SubscriptionError(SipError):
    """``wait_active()`` saw the subscription fail or end."""


# ---------------------------------------------------------------------- command line


class Interrupted(Exception):
    """A ``trio-sip`` command was cancelled by ``signum`` (after its cleanup).

    Internal to the CLI (not in ``__all__``): :func:`trio_sip.cli.main` catches it and exits
    with :attr:`status`; it never reaches an application."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def status(self) -> int:
        return 128 + self.signum
