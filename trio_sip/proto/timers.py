"""Transaction timer configuration: T1, T2, T4, the transaction timeout, and Timers A-M.

Theory of operation
-------------------
RFC 3261 §17 defines three base values and derives every transaction timer from them (the
table in §A, "Table of Timer Values"):

    T1  500 ms  "an estimate of the round-trip time (RTT)"          §17.1.1.1
    T2  4 s     "the maximum retransmit interval for non-INVITE
                 requests and INVITE responses"                     §17.1.2.2
    T4  5 s     "maximum duration a message will remain in the
                 network"                                           §17.1.2.2

:class:`TimerConfig` is a frozen value holding those three (in seconds) plus
``sip_transaction_timeout`` (milliseconds, 1..32000), which caps Timer B and Timer F: with
4000 an unanswered request fails after 4 seconds instead of 64*T1 = 32 seconds. There are no
globals (unlike sipgo's ``SetTimers``): each machine is handed the value it should use.

Timers D, I, J and K are zero over reliable transports ("Timer D ... 0s for TCP/SCTP"), so the
derived values come from :meth:`TimerConfig.timers`, which takes ``reliable``. The
``timer_a`` ... ``timer_m`` properties give the unreliable (UDP) values, the RFC's headline
numbers. Timer M (RFC 6026 §8.4) and Timer L (RFC 6026 §8.7) are both 64*T1.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from .errors import ConfigError

__all__ = ["MAX_TRANSACTION_TIMEOUT_MS", "TIMER_TABLE", "TimerConfig", "Timers"]

#: The largest allowed ``sip_transaction_timeout`` (64 * the default T1, in milliseconds).
MAX_TRANSACTION_TIMEOUT_MS = 32000

#: Timer D for unreliable transports: "at least 32 seconds" (§17.1.1.2), independent of T1.
TIMER_D_UNRELIABLE = 32.0

#: (timer, :class:`Timers` field, meaning, RFC section): the table docs/transactions.md shows.
TIMER_TABLE: tuple[tuple[str, str, str, str], ...] = (
    ("A", "a", "INVITE request retransmit interval, doubling (UDP only)", "RFC 3261 §17.1.1.2"),
    ("B", "b", "INVITE transaction timeout (Calling state)", "RFC 3261 §17.1.1.2"),
    ("D", "d", "Wait time for response retransmits (client INVITE)", "RFC 3261 §17.1.1.2"),
    ("E", "e", "Non-INVITE request retransmit interval, capped at T2 (UDP)", "RFC 3261 §17.1.2.2"),
    ("F", "f", "Non-INVITE transaction timeout", "RFC 3261 §17.1.2.2"),
    ("G", "g", "INVITE final response retransmit interval, capped at T2 (UDP)", "RFC 3261 §17.2.1"),
    ("H", "h", "Wait time for ACK receipt", "RFC 3261 §17.2.1"),
    ("I", "i", "Wait time for ACK retransmits", "RFC 3261 §17.2.1"),
    ("J", "j", "Wait time for non-INVITE request retransmits", "RFC 3261 §17.2.2"),
    ("K", "k", "Wait time for response retransmits (client non-INVITE)", "RFC 3261 §17.1.2.2"),
    ("L", "l", "Wait time for accepted INVITE request retransmits", "RFC 6026 §8.7"),
    ("M", "m", "Wait time for retransmissions of 2xx responses", "RFC 6026 §8.4"),
)


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(name, value, "a finite number of seconds > 0")
    if value <= 0:
        raise ConfigError(name, value, "a finite number of seconds > 0")


def _validate(config: Any) -> None:
    # ``config`` is untyped on purpose: in the compiled build a read of a field typed float or
    # int checks the type and would raise TypeError where ConfigError is the answer.
    _check_positive("t1", config.t1)
    _check_positive("t2", config.t2)
    _check_positive("t4", config.t4)
    if config.t2 < config.t1:
        raise ConfigError("t2", config.t2, f"seconds >= t1 ({config.t1})")
    timeout = config.sip_transaction_timeout
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int)
        or not 1 <= timeout <= MAX_TRANSACTION_TIMEOUT_MS
    ):
        raise ConfigError(
            "sip_transaction_timeout",
            timeout,
            f"an integer number of milliseconds in 1..{MAX_TRANSACTION_TIMEOUT_MS}",
        )


@attrs.frozen(slots=True)
class Timers:
    """Timers A-M in seconds for one transport kind (see :meth:`TimerConfig.timers`)."""

    a: float
    b: float
    d: float
    e: float
    f: float
    g: float
    h: float
    i: float
    j: float
    k: float
    l: float  # noqa: E741 - the RFC's name
    m: float


@attrs.frozen(slots=True)
class TimerConfig:
    """T1/T2/T4 in seconds and ``sip_transaction_timeout`` in milliseconds.

    Raises :class:`~trio_sip.proto.errors.ConfigError` naming the setting and the allowed
    range: t1, t2, t4 must be finite and > 0, t2 >= t1, and ``sip_transaction_timeout`` an
    integer in 1..32000.
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    sip_transaction_timeout: int = MAX_TRANSACTION_TIMEOUT_MS

    def __attrs_post_init__(self) -> None:
        _validate(self)

    @property
    def transaction_timeout(self) -> float:
        """``sip_transaction_timeout`` in seconds."""
        return self.sip_transaction_timeout / 1000

    def timers(self, *, reliable: bool, retransmit_interval: float | None = None) -> Timers:
        """Timers A-M for a reliable (TCP/TLS) or unreliable (UDP) transport.

        ``retransmit_interval`` is one transaction's own T1 (JAIN-SIP's
        ``setRetransmitTimer``): A, E and G are that value, B and F
        min(64 * it, ``sip_transaction_timeout``), H 64 * it. D, I, J, K, L and M wait for the
        peer's retransmissions, which the peer paces with its own T1: they do not change.
        """
        t1, t4 = self.t1, self.t4
        own = t1 if retransmit_interval is None else retransmit_interval
        limit = min(64 * own, self.transaction_timeout)
        return Timers(
            a=own,
            b=limit,
            d=0.0 if reliable else TIMER_D_UNRELIABLE,
            e=own,
            f=limit,
            g=own,
            h=64 * own,
            i=0.0 if reliable else t4,
            j=0.0 if reliable else 64 * t1,
            k=0.0 if reliable else t4,
            l=64 * t1,
            m=64 * t1,
        )

    # The unreliable-transport values, by the RFC's names.

    @property
    def timer_a(self) -> float:
        """INVITE request retransmit interval, UDP only (§17.1.1.2): T1."""
        return self.t1

    @property
    def timer_b(self) -> float:
        """INVITE transaction timeout (§17.1.1.2): min(64*T1, sip_transaction_timeout)."""
        return min(64 * self.t1, self.transaction_timeout)

    @property
    def timer_d(self) -> float:
        """Wait for response retransmissions (§17.1.1.2): 32 s on UDP, 0 on TCP/TLS."""
        return TIMER_D_UNRELIABLE

    @property
    def timer_e(self) -> float:
        """Non-INVITE request retransmit interval, UDP only (§17.1.2.2): T1."""
        return self.t1

    @property
    def timer_f(self) -> float:
        """Non-INVITE transaction timeout (§17.1.2.2): min(64*T1, sip_transaction_timeout)."""
        return min(64 * self.t1, self.transaction_timeout)

    @property
    def timer_g(self) -> float:
        """INVITE response retransmit interval (§17.2.1): T1."""
        return self.t1

    @property
    def timer_h(self) -> float:
        """Wait time for ACK receipt (§17.2.1): 64*T1."""
        return 64 * self.t1

    @property
    def timer_i(self) -> float:
        """Wait time for ACK retransmissions (§17.2.1): T4 on UDP, 0 on TCP/TLS."""
        return self.t4

    @property
    def timer_j(self) -> float:
        """Wait time for non-INVITE request retransmissions (§17.2.2): 64*T1 on UDP, 0 else."""
        return 64 * self.t1

    @property
    def timer_k(self) -> float:
        """Wait time for response retransmissions (§17.1.2.2): T4 on UDP, 0 on TCP/TLS."""
        return self.t4

    @property
    def timer_l(self) -> float:
        """Wait time for accepted INVITE request retransmissions (RFC 6026 §8.7): 64*T1."""
        return 64 * self.t1

    @property
    def timer_m(self) -> float:
        """Wait time for retransmissions of 2xx responses (RFC 6026 §8.4): 64*T1."""
        return 64 * self.t1
