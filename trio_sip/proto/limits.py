"""Resource limits: every bound that keeps one peer from taking what belongs to all.

Theory of operation
-------------------
A SIP service is scanned and fuzzed within minutes of going online (issue #10). Every place
where a peer's input could make us hold memory, CPU time, a socket or a task has a bound, and
the bounds live in one frozen value, :class:`Limits`, handed down to the parser, the transport
layer, the transaction layer, the user agent and the proxy (as :class:`TimerConfig` is). The
defaults are safe for a server exposed to the Internet and generous for real traffic; each is
documented in docs/security.md with what happens above it (a status, a drop or a close) and the
test that shows it.

Above a limit the answer is the one RFC 3261 names where there is one:

* 513 Message Too Large (§21.5.14): a message over ``max_message_size``, a header section over
  ``max_header_section``, a body over ``max_body_size``;
* 414 Request-URI Too Long (§21.4.12): a Request-URI over ``max_uri_length`` or with more than
  ``max_uri_params`` parameters;
* 400 Bad Request: more than ``max_headers`` header fields, a field over ``max_header_length``,
  more than ``max_vias`` Via or ``max_routes`` Route / Record-Route values;
* 483 Too Many Hops / 482 Loop Detected (§16.3): loops through the proxy;
* 503 Service Unavailable with Retry-After (§21.5.4): transactions, dialogs or queued requests
  in flight above their limits, a source over its request rate;
* a drop (nothing sent) where answering would amplify (a source over ``failed_auth_rate``, a
  stream over its connection limits), and for every malformed response.

This module is pure (no clock, no I/O): it only describes the bounds. The layers that own each
resource enforce them; rates are token buckets that take ``now``, as every machine does.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from .errors import ConfigError

__all__ = ["DEFAULT_LIMITS", "Limits"]


def _int_range(low: int, high: int) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(attribute.name, value, f"an integer in {low}..{high}")

    return check


def _seconds(low: float, high: float) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not low <= value <= high
        ):
            raise ConfigError(attribute.name, value, f"a number of seconds in {low:g}..{high:g}")

    return check


def _rate(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= 1e7
    ):
        raise ConfigError(
            attribute.name, value, "a rate per second in [0, 1e7] (0 or None: no limit)"
        )


_BIG = 10**9


@attrs.frozen(slots=True, kw_only=True)
class Limits:
    """Every resource bound of a stack, user agent or proxy (see the module comment and
    docs/security.md). Out-of-range values raise :class:`ConfigError` naming the setting."""

    # -- one message (parser and acceptance checks) ---------------------------------------
    #: Largest message (start line, headers and body), bytes: 513 above it. A UDP datagram is
    #: at most 65,507 bytes anyway; on streams this bounds what one connection buffers.
    max_message_size: int = attrs.field(default=65_535, validator=_int_range(1024, 16 << 20))
    #: Largest header section (start line and headers), bytes: 513 above it.
    max_header_section: int = attrs.field(default=32_768, validator=_int_range(512, 16 << 20))
    #: Largest body, bytes: 513 above it.
    max_body_size: int = attrs.field(default=32_768, validator=_int_range(0, 16 << 20))
    #: Most header fields (lines, after unfolding) in one message: 400 above it.
    max_headers: int = attrs.field(default=256, validator=_int_range(16, 100_000))
    #: Longest header field (name and value, after unfolding), bytes: 400 above it.
    max_header_length: int = attrs.field(default=8_192, validator=_int_range(256, 16 << 20))
    #: Longest Request-URI, bytes: 414 above it.
    max_uri_length: int = attrs.field(default=2_048, validator=_int_range(64, 16 << 20))
    #: Most parameters (and headers) in one URI: 414 in a Request-URI, 400 elsewhere.
    max_uri_params: int = attrs.field(default=32, validator=_int_range(4, 10_000))
    #: Most Via values in one message: 400 above it (RFC 3261 §16.3 allows 70 hops).
    max_vias: int = attrs.field(default=70, validator=_int_range(1, 10_000))
    #: Most Route or Record-Route values in one message: 400 above it.
    max_routes: int = attrs.field(default=70, validator=_int_range(1, 10_000))
    #: Longest reason phrase we send back (a peer's text echoed in a 400 is cut to this).
    max_reason_length: int = attrs.field(default=128, validator=_int_range(16, 4_096))

    # -- what is in flight (transaction layer, user agent, proxy) -------------------------
    #: Transactions (client and server, lingering ones included): 503 above it.
    max_transactions: int = attrs.field(default=50_000, validator=_int_range(1, _BIG))
    #: Dialogs a user agent holds: 503 (with Retry-After) to a new INVITE above it.
    max_dialogs: int = attrs.field(default=20_000, validator=_int_range(1, _BIG))
    #: New requests waiting for the application: 503 above it (the oldest wait longest).
    max_queued_requests: int = attrs.field(default=1_024, validator=_int_range(1, _BIG))
    #: Branches one proxied request forks into (this many contacts, highest q first): the rest
    #: are not tried.
    max_forks: int = attrs.field(default=10, validator=_int_range(1, 10_000))
    #: Bindings (Contacts) one address-of-record may hold at a registrar: 403 above it.
    max_bindings_per_aor: int = attrs.field(default=10, validator=_int_range(1, 100_000))
    #: Bindings a registrar holds in all: 503 above it.
    max_bindings: int = attrs.field(default=100_000, validator=_int_range(1, _BIG))
    #: Seconds a request's answer is put off by Retry-After when we are overloaded.
    retry_after: int = attrs.field(default=5, validator=_int_range(1, 3600))
    #: Nonces whose highest nonce-count a digest server (registrar, proxy) remembers to refuse
    #: replays: above it the earliest used is forgotten, and credentials with a nonce issued
    #: that early get a new challenge with ``stale=true`` (RFC 7616 §3.3).
    max_auth_nonces: int = attrs.field(default=65_536, validator=_int_range(16, _BIG))
    #: Seconds the event loop may lag (every task waiting that long for its turn) before new
    #: requests outside a dialog get 503 with Retry-After.
    max_loop_lag: float = attrs.field(default=0.5, validator=_seconds(0.01, 3600.0))

    # -- connections (transport layer) -----------------------------------------------------
    #: Accepted TCP/TLS connections at once: new ones are closed at once above it.
    max_connections: int = attrs.field(default=4_096, validator=_int_range(1, _BIG))
    #: Accepted TCP/TLS connections at once from one source IP address.
    max_connections_per_source: int = attrs.field(default=64, validator=_int_range(1, _BIG))
    #: Seconds a TLS handshake on an accepted connection may take before it is closed.
    tls_handshake_timeout: float = attrs.field(default=10.0, validator=_seconds(0.01, 3600.0))
    #: Seconds a message on a stream may take from its first byte to its last (slowloris).
    message_read_timeout: float = attrs.field(default=30.0, validator=_seconds(0.01, 3600.0))
    #: Seconds an accepted connection that has not carried a complete message yet may stay
    #: open (a connection that only connects).
    first_message_timeout: float = attrs.field(default=30.0, validator=_seconds(0.01, 3600.0))

    # -- rates per source IP address (token buckets; 0 or None turns one off) --------------
    #: New requests (not retransmissions, not ACKs) per second from one source address,
    #: with a burst of ``request_burst``: 503 with Retry-After above it, and the source is held
    #: ``retry_after`` seconds. Sources the stack is configured to trust (a proxy's
    #: ``trusted``, a user agent's proxies, an endpoint's servers: ``stack.admission.trusted``)
    #: are exempt; 0 or None: no per-source rate at all. (A phone sends a few a minute; a peer
    #: proxy or SBC sends for many users from one address: trust it, or raise the rate.)
    request_rate: float | None = attrs.field(default=50.0, validator=_rate)
    request_burst: int = attrs.field(default=100, validator=_int_range(1, _BIG))
    #: Failed digest authentications per second from one source address (burst
    #: ``failed_auth_burst``): further requests from it are dropped until it slows down.
    failed_auth_rate: float | None = attrs.field(default=1.0, validator=_rate)
    failed_auth_burst: int = attrs.field(default=10, validator=_int_range(1, _BIG))
    #: Source addresses tracked by the rate limiters at once (the least recently seen are
    #: forgotten first): memory stays bounded under a spoofed-source flood.
    max_tracked_sources: int = attrs.field(default=65_536, validator=_int_range(16, _BIG))

    def __attrs_post_init__(self) -> None:
        if self.max_header_section > self.max_message_size:
            raise ConfigError(
                "max_header_section",
                self.max_header_section,
                f"bytes <= max_message_size ({self.max_message_size})",
            )
        if self.max_body_size > self.max_message_size:
            raise ConfigError(
                "max_body_size",
                self.max_body_size,
                f"bytes <= max_message_size ({self.max_message_size})",
            )


#: The defaults, shared.
DEFAULT_LIMITS = Limits()
