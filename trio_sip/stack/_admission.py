# Admission control for new requests: per-source rates and overload (RFC 3261 §21.5.4, in
# the spirit of RFC 7339), issue #10.
#
# Theory of operation: the stack's receive path asks ``Admission.admit`` about every request
# that would create a server transaction (a new request, a CANCEL that matches nothing), after
# the transaction table found it is no retransmission, no ACK and no CANCEL of a live
# transaction, and before anything is built for it. A refused request gets a stateless 503 with
# Retry-After (no transaction, no dialog, no task on UDP: the answer is sent synchronously when
# the socket takes it), or nothing when even answering would feed a flood. In order:
#
# 1. the source's request rate (``request_rate`` / ``request_burst``, a token bucket per source
#    address, ``proto/rate.py``); every new request counts, in-dialog ones included. A source
#    over it is told to retry after ``retry_after`` seconds and is *held* that long: all its new
#    requests are refused until then, and the hold starts again with each request it sends
#    meanwhile (RFC 3261 §21.5.4: a client receiving a 503 "SHOULD NOT forward any other
#    requests to that server for the duration specified in the Retry-After header field").
#    A flooding source is thus held for the whole flood, and what it got in is its burst, not
#    its burst plus its rate per second. Sources the stack is configured to trust
#    (``Admission.trusted``: a proxy's ``trusted`` networks, a user agent's outbound proxies
#    and ``proxies=``, an endpoint's servers, each once resolved) are exempt: a front, an
#    outbound proxy or a peer site relays everyone's requests from its one address, so a
#    per-source rate would throttle all its users as one. They are never "heavy" (below):
#    the hard bounds of steps 2 and 3 refuse them, as anyone, the soft ones do not;
# 2. the transaction table is full (``max_transactions``);
# 3. for requests outside a dialog (no To tag): the application's backlog (``max_queued_requests``:
#    requests handed to it and not answered yet, or waiting to be handed), the user agent's
#    dialogs (``max_dialogs``, INVITE only) and the event loop's lag (``max_loop_lag``: one
#    task measures how late its own wake-ups are, i.e. how long every other task waits its
#    turn). In-dialog requests (a BYE, a re-INVITE) are still taken under overload: they end or
#    keep calls that already cost us, and there are few of them.
#
# Heavy sources first: a backlog over half its bound, or a lag over ``max_loop_lag``, refuses
# only the requests of *heavy* sources (those that used over half their request burst lately,
# i.e. sent well above their rate); a full backlog, or a lag over ``HARD_LAG`` times the bound,
# refuses everyone. A flood from a few addresses then costs the light callers nothing: a caller
# placing 20 calls/s keeps a full bucket while the flood's is always empty. (A flood from many
# light addresses fills the backlog instead, and then everyone waits.)
#
# Answer or drop (§21.5.4: "Servers MAY refuse the connection or drop the request instead of
# responding with 503"): each source also has a budget of 503s (the same rate and burst as its
# requests). A held source over its 503 budget is ignoring our Retry-After: ``admit_source``
# (which the transport layer asks before parsing anything from an address: a datagram, an
# accepted connection) drops everything it sends, unread, and extends its hold. So a single
# flooding source costs two dictionary lookups per datagram and gets at most ``request_rate``
# 503s per second (never more answers than requests: no amplification), and its hold ends
# ``retry_after`` seconds after it stops.
#
# Memory: a flood's transactions linger only for their RFC timers (Timer H/J/K/L, 32 s at
# most). When many have ended (``TRIM_AFTER`` fewer than the most seen since the last trim;
# at most every ``TRIM_INTERVAL`` s) the periodic task calls glibc's ``malloc_trim`` (Linux
# only), which hands free heap pages back to the system (docs/security.md, "Overload").
"""Admission: per-source request rates and overload shedding for a Stack."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import math
import sys
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from trio_sip.proto.errors import ProtocolError, TransportError
from trio_sip.proto.ids import new_tag
from trio_sip.proto.limits import Limits
from trio_sip.proto.message import Request, Response, make_response
from trio_sip.proto.rate import RateLimiter, TrustedSources
from trio_sip.proto.transaction import CancelFor, Classification
from trio_sip.transports.accept import LogThrottle
from trio_sip.transports.base import Flow

if TYPE_CHECKING:
    from ._core import Stack

__all__ = ["Admission"]

logger = logging.getLogger("trio_sip.stack")

#: How often the loop's lag is measured while requests arrive, and otherwise (seconds).
LAG_PERIOD = 0.1
IDLE_PERIOD = 5.0
#: A lag this many times ``max_loop_lag`` refuses light sources too (see the module comment).
HARD_LAG = 4
#: ``malloc_trim`` at most every ``TRIM_INTERVAL`` seconds, when the number of transactions
#: fell by at least ``TRIM_AFTER`` since the most seen after the last trim (see the comment).
TRIM_INTERVAL = 10.0
TRIM_AFTER = 256


def _load_malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def malloc_trim() -> bool:
    """Return freed heap memory to the system (glibc ``malloc_trim(0)``); False where there
    is no such call."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


class Admission:
    """Decides whether the stack takes a new request (see the module comment).

    ``counters`` counts refusals by reason (``rate``, ``transactions``, ``queue``,
    ``dialogs``, ``lag``) and how they ended (``answered`` with a 503, ``dropped``);
    ``sources_blocked`` counts what ``admit_source`` dropped before parsing;
    ``trusted_over_rate`` the requests of trusted sources taken above the rate.
    ``count_dialogs`` is set by a user agent (its number of calls) for ``max_dialogs``.
    ``trusted`` holds the sources exempt from the request rate (``trusted.add([...])``).
    """

    def __init__(self, stack: Stack, limits: Limits) -> None:
        self._stack = stack
        self.limits = limits
        self._requests = RateLimiter.for_requests(limits)
        # The 503 budget of each source: as many answers as requests, then silence.
        self._answers = RateLimiter.for_requests(limits)
        self._retry_after = ("Retry-After", str(limits.retry_after))
        self._hold = float(limits.retry_after)
        self._half = limits.request_burst / 2
        self._max_q = limits.max_queued_requests
        self._max_lag = limits.max_loop_lag
        self._max_d = limits.max_dialogs
        self.counters: Counter[str] = Counter()
        #: Sources exempt from the per-source request rate (see the module comment).
        self.trusted = TrustedSources()
        #: The user agent's dialogs (its calls), for ``max_dialogs``; None: not counted.
        self.count_dialogs: Callable[[], int] | None = None
        #: How late the lag monitor's last wake-up was, seconds.
        self.lag = 0.0
        self._due = math.inf
        self._busy = False  # a request came since the monitor's last wake-up
        self._idle = False  # the monitor sleeps IDLE_PERIOD (no traffic): wake it on traffic
        self._sleep: trio.CancelScope | None = None
        self._peak = 0  # most transactions alive since the last trim
        self._next_trim = -math.inf
        self._throttle = LogThrottle(logger)

    # -- the receive path ------------------------------------------------------------------

    def admit(self, request: Request, flow: Flow, where: Classification) -> bool:
        """True: go on (create the transaction). False: refused, answered or dropped here."""
        if type(where) is CancelFor and where.invite_key is not None:
            return True  # cancels a live transaction: it frees, not costs
        self._busy = True
        now = trio.current_time()
        if self._idle:
            self._wake(now)
        source = flow.remote[0]
        requests = self._requests
        if requests is not None and not requests.take(source, now):
            if source not in self.trusted:  # a front or our proxy: never held (see above)
                requests.hold(source, now, self._hold)  # told to retry after: held that long
                return self._refuse(request, flow, "rate", now)
            self.counters["trusted_over_rate"] += 1
        stack = self._stack
        table = stack._table
        if len(table) >= table.max_size:
            return self._refuse(request, flow, "transactions", now)
        try:
            in_dialog = request.to.tag is not None
        except ProtocolError:  # a To that does not parse: the handler answers it (400)
            in_dialog = False
        if in_dialog:
            return True  # inside a dialog: taken under overload (see the module comment)
        queued = len(stack._starts) + stack._counts["handlers"]
        if stack._handler is None:  # requests() mode: the queue of the application
            queued += stack._queue_out.statistics().current_buffer_used
        max_q = self._max_q
        if queued >= max_q:
            return self._refuse(request, flow, "queue", now)
        dialogs = self.count_dialogs
        if request.method == "INVITE" and dialogs is not None and dialogs() >= self._max_d:
            return self._refuse(request, flow, "dialogs", now)
        lag = self.lag if self.lag >= now - self._due else now - self._due
        soft_queue = 2 * queued >= max_q
        if soft_queue or lag >= self._max_lag:
            # A heavy source has used over half its burst lately: under a soft overload only
            # heavy sources are refused (None: rates are off, refused at the bounds themselves).
            # A trusted source is never heavy: it relays many users (a front in front of us,
            # where it is the only source), so it is refused at the hard bounds only.
            if source in self.trusted:
                heavy: bool | None = False
            else:
                heavy = None if requests is None else requests.available(source, now) < self._half
            if soft_queue and heavy:
                return self._refuse(request, flow, "queue", now)
            if lag >= self._max_lag and (heavy is not False or lag >= HARD_LAG * self._max_lag):
                return self._refuse(request, flow, "lag", now)
        return True

    def admit_source(self, host: str) -> bool:
        """The transport layer's pre-parse check: False for a source over its request rate
        *and* its 503 budget (it ignores Retry-After), until its request bucket refills."""
        requests, answers = self._requests, self._answers
        if requests is None or answers is None:
            return True
        now = trio.current_time()
        if (
            requests.exhausted(host, now)
            and answers.exhausted(host, now)
            and host not in self.trusted
        ):
            requests.hold(host, now, self._hold)  # it keeps sending: the hold goes on
            self.counters["sources_blocked"] += 1
            return False
        return True

    def _refuse(self, request: Request, flow: Flow, reason: str, now: float) -> bool:
        self.counters[reason] += 1
        source = flow.remote[0]
        self._throttle.log(
            logging.WARNING,
            reason,
            "overload (%s): 503 with Retry-After to new requests (%s from %s)",
            reason,
            request.method,
            source,
        )
        answers = self._answers
        if request.method == "ACK" or (
            answers is not None and not answers.take(source, now) and source not in self.trusted
        ):  # a trusted source always gets its 503: dropped, it would only retransmit
            self.counters["dropped"] += 1
            return False
        self.counters["answered"] += 1
        self._answer(request, flow)
        return False

    def _answer(self, request: Request, flow: Flow) -> None:
        """A stateless 503 with Retry-After (§21.5.4): synchronously when the flow can."""
        stack = self._stack
        try:
            response = make_response(
                request, 503, to_tag=new_tag(stack._rng), headers=[self._retry_after]
            )
            data = bytes(response)
            out = stack._layer.sync_response_flow(response, flow)
            if out is not None and out.usable and out.try_send(data):
                return
        except (ProtocolError, TransportError) as exc:
            logger.debug("no 503 for %s: %s", request.method, exc)
            return
        stack._nursery.start_soon(self._send, response, flow)

    async def _send(self, response: Response, flow: Flow) -> None:
        try:
            await self._stack._layer.send_response(response, flow)
        except (TransportError, ProtocolError) as exc:
            logger.debug("could not send a stateless 503: %s", exc)

    # -- the periodic task -----------------------------------------------------------------

    async def run(self) -> None:
        """Measure the loop's lag (every ``LAG_PERIOD`` while requests arrive, else every
        ``IDLE_PERIOD``) and trim the heap after a large number of transactions ended."""
        while True:
            self._idle = not self._busy
            self._busy = False
            self._due = trio.current_time() + (IDLE_PERIOD if self._idle else LAG_PERIOD)
            with trio.CancelScope(deadline=self._due) as self._sleep:
                await trio.sleep_forever()
            self.lag = trio.current_time() - self._due
            self._due = math.inf
            self._housekeeping()

    def _wake(self, now: float) -> None:
        """Traffic after a quiet spell: measure within ``LAG_PERIOD`` from now on."""
        self._idle = False
        due = now + LAG_PERIOD
        if self._sleep is not None and due < self._due:
            self._due = self._sleep.deadline = due

    def _housekeeping(self) -> None:
        alive = len(self._stack._table)
        self._peak = max(self._peak, alive)
        now = trio.current_time()
        if self._peak - alive >= TRIM_AFTER and now >= self._next_trim:
            self._peak = alive
            self._next_trim = now + TRIM_INTERVAL
            if malloc_trim():
                self.counters["malloc_trims"] += 1

    def __repr__(self) -> str:
        refused = ", ".join(f"{k} {v}" for k, v in sorted(self.counters.items()))
        return f"<Admission lag {self.lag * 1000:.0f} ms; {refused or 'nothing refused'}>"
