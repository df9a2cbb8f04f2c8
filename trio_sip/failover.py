"""Per-request failover across proxies: RFC 3263 targets, the shared blacklist, retry.decide().

Theory of operation
-------------------
A :class:`FailoverClient` wraps one :class:`~trio_sip.stack.Stack`. For each request it

1. resolves the destination (a SIP URI, a string, a :class:`Target` or a list of them) to an
   ordered target list (RFC 3263 through the resolver; a numeric host needs none), then orders
   that list by the endpoint's shared :class:`~trio_sip.proto.blacklist.Blacklist` at
   ``trio.current_time()``;
2. sends the request in a client transaction to the first target; the stack adds a new top Via,
   so every attempt is a new transaction with a new branch (RFC 3263 §4.3: "identical to the
   previous, but with a different value of the Via branch ID");
3. on a failure -- :class:`TransportError` (refused, reset, ICMP port unreachable on the
   connected UDP flow: milliseconds), :class:`TransactionTimeoutError` (Timer B/F, bounded by
   ``sip_transaction_timeout``), a 503 (its Retry-After holds the address in the blacklist) or
   a 408 -- it penalises the address in the blacklist and asks
   :func:`trio_sip.proto.retry.decide` what to do: :class:`RetryNext` sends again at once,
   :class:`RetryLater` and :class:`GiveUp` end the request (the caller's reg_interval tick does
   the later retry, and the blacklist sends it elsewhere).

Two shell rules sit on top of ``decide`` (docs/failover.md, "Charging"):

* A transport error is not *charged* against the "once" rows (initial INVITE, re-INVITE,
  anything else): the request provably reached no proxy, and it cost a round trip, so the next
  untried target is attempted. Each target is attempted at most once per request in those rows.
* In the cycling rows (2xx/ACK path, BYE, CANCEL) a target is not attempted again sooner than
  ``sip_transaction_timeout`` after its previous attempt began, so targets that refuse at once
  are cycled at the pace of timeouts, not in a busy loop; a retry that could not start inside
  the 32 s window gives up at once.

The INVITE variant (:meth:`FailoverClient.invite`) streams provisional and final responses
across attempts and exposes the current transaction (for ``make_cancel()``).
"""

from __future__ import annotations

import ipaddress
import math
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import attrs
import trio

from .dns import DnsError, Resolver
from .proto.blacklist import Blacklist, FailureReason
from .proto.errors import TransactionError, TransactionTimeoutError, TransportError
from .proto.message import Request, Response
from .proto.resolve import Planner, UriParts
from .proto.retry import CYCLE_WINDOW, Failure, GiveUp, RequestKind, RetryNext, decide
from .proto.target import Target
from .proto.uri import SipUri, parse_uri
from .stack import ClientTransaction, Stack

__all__ = ["Attempt", "Destination", "FailoverClient", "FailoverResult", "InviteAttempts"]

Destination = SipUri | str | Target | Sequence[Target]
_ONCE = (RequestKind.INITIAL_INVITE, RequestKind.REINVITE, RequestKind.OTHER)
_CYCLE = (RequestKind.INVITE_2XX, RequestKind.BYE, RequestKind.CANCEL)


@attrs.frozen
class Attempt:
    """One attempt: where, when it began, and how it ended (``None`` while running).

    ``outcome`` is the final response's status line ("200 OK", "503 Service Unavailable") or
    the failure ("timeout", "transport error: ...").
    """

    target: Target
    started: float
    outcome: str | None = None


@attrs.frozen
class FailoverResult:
    """The final response, the target that gave it, and every attempt in order."""

    response: Response
    target: Target
    attempts: tuple[Attempt, ...]


class _Plan:
    """The retry bookkeeping of one request: attempts, tried targets, charged failures."""

    def __init__(
        self, kind: RequestKind, targets: list[Target], first: float, timeout_ms: int
    ) -> None:
        self.kind = kind
        self.targets = targets
        self.first = first
        self.timeout_ms = timeout_ms
        self.attempts: list[Attempt] = []
        self.tried: list[int] = []
        self.last_start: dict[int, float] = {}
        self.charged = 0

    @property
    def index(self) -> int:
        return self.tried[-1]

    def begin(self, index: int, now: float) -> Attempt:
        attempt = Attempt(self.targets[index], now)
        self.attempts.append(attempt)
        self.tried.append(index)
        self.last_start[index] = now
        return attempt

    def end(self, outcome: str) -> None:
        self.attempts[-1] = attrs.evolve(self.attempts[-1], outcome=outcome)

    def after_failure(self, failure: Failure, now: float) -> tuple[int, float] | None:
        """(next target index, not before) or None to give up."""
        n = len(self.targets)
        if self.kind in _ONCE:
            transport = failure is Failure.TRANSPORT_ERROR
            if not transport:
                self.charged += 1
            decision = decide(
                self.kind,
                failure,
                attempts=max(self.charged, 1) if not transport else 1,
                targets=n,
                first_attempt=self.first,
                now=now,
                sip_transaction_timeout=self.timeout_ms,
            )
            if isinstance(decision, GiveUp) or (not transport and self.charged > 1):
                return None
            untried = [i for i in range(n) if i not in self.tried]
            return (untried[0], now) if untried else None
        decision = decide(
            self.kind,
            failure,
            attempts=len(self.attempts),
            targets=n,
            first_attempt=self.first,
            now=now,
            sip_transaction_timeout=self.timeout_ms,
        )
        if not isinstance(decision, RetryNext):
            return None  # GiveUp, or RetryLater: the caller's next reg_interval tick
        index = decision.target_index
        not_before = max(now, self.last_start.get(index, -math.inf) + self.timeout_ms / 1000)
        if not_before >= self.first + CYCLE_WINDOW:
            return None
        return index, not_before


def _classify(error: TransactionError) -> tuple[Failure, FailureReason, str]:
    if isinstance(error, TransportError):
        text = str(error)
        reason = FailureReason.TRANSPORT_ERROR
        if "refused" in text or "unreachable" in text or "reset" in text:
            reason = FailureReason.UNREACHABLE
        return Failure.TRANSPORT_ERROR, reason, f"transport error: {text}"
    return Failure.TIMEOUT, FailureReason.TIMEOUT, "timeout"


def _response_failure(response: Response) -> Failure | None:
    if response.status_code == 503:
        return Failure.SERVICE_UNAVAILABLE
    if response.status_code == 408:
        return Failure.REQUEST_TIMEOUT
    return None


def _status_line(response: Response) -> str:
    return f"{response.status_code} {response.reason}"


class FailoverClient:
    """Sends requests with failover across the targets of a destination (see the module doc).

    ``blacklist`` is shared by the whole endpoint (pass the same one to every client of it);
    ``rng`` draws the SRV weighted choice when ``resolver`` is None and the host is numeric.
    """

    def __init__(
        self,
        stack: Stack,
        *,
        resolver: Resolver | None = None,
        blacklist: Blacklist | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.stack = stack
        self.resolver = resolver
        self.blacklist = blacklist if blacklist is not None else Blacklist()
        self._rng = rng if rng is not None else random.Random()

    # -- targets -----------------------------------------------------------------------------

    async def targets(
        self, destination: Destination, *, transport: str | None = None
    ) -> list[Target]:
        """The targets of ``destination`` (RFC 3263), best first by the blacklist, now.

        Raises :class:`DnsError` when a name resolves to nothing (or there is no resolver).
        """
        found: list[Target]
        if isinstance(destination, (str, SipUri)):
            found = await self._resolve(destination, transport)
        else:
            found = [destination] if isinstance(destination, Target) else list(destination)
            if transport is not None:
                found = [attrs.evolve(t, transport=transport.upper()) for t in found]
        if not found:
            raise DnsError(str(destination), "no targets")
        return self.blacklist.order(found, trio.current_time())

    async def _resolve(self, destination: SipUri | str, transport: str | None) -> list[Target]:
        uri = parse_uri(destination) if isinstance(destination, str) else destination
        if not isinstance(uri, SipUri):
            raise DnsError(str(destination), "not a sip: or sips: URI")
        forced = transport.lower() if transport is not None else uri.transport
        parts = UriParts(uri.scheme, uri.host, uri.port, forced)
        if _is_numeric(uri.host):
            planner = Planner(parts, rng=self._rng)
            return planner.targets()
        if self.resolver is None:
            raise DnsError(uri.host, "a host name needs a resolver (FailoverClient(resolver=...))")
        return await self.resolver.resolve(parts)

    # -- any request but an INVITE -------------------------------------------------------------

    async def request(
        self,
        request: Request,
        destination: Destination,
        *,
        kind: RequestKind = RequestKind.OTHER,
        first_attempt_at: float | None = None,
    ) -> FailoverResult:
        """Send ``request`` with failover; return the final response (see the module doc).

        Raises the last :class:`TransactionTimeoutError` / :class:`TransportError` when it gives
        up without a response, :class:`DnsError` when nothing resolves. A CANCEL that already
        carries a Via (``tx.make_cancel()``) is sent as is: same branch as its INVITE.
        """
        targets = await self.targets(destination)
        now = trio.current_time()
        plan = self._plan(kind, targets, now if first_attempt_at is None else first_attempt_at)
        new_via = not (request.method == "CANCEL" and "Via" in request.headers)
        index, not_before = 0, now
        while True:
            await trio.sleep_until(not_before)
            target = plan.targets[index]
            plan.begin(index, trio.current_time())
            error: TransactionError | None = None
            response: Response | None = None
            try:
                async with AsyncExitStack() as exits:
                    tx = await self._open(exits, request, target, new_via=new_via)
                    response = await tx.wait_final()
            except (TransactionTimeoutError, TransportError) as exc:
                error = exc
            step = self._after(plan, target, response, error)
            if step is None:
                if response is not None:
                    return FailoverResult(response, target, tuple(plan.attempts))
                assert error is not None
                raise error
            index, not_before = step

    # -- INVITE --------------------------------------------------------------------------------

    @asynccontextmanager
    async def invite(
        self,
        request: Request,
        destination: Destination,
        *,
        kind: RequestKind = RequestKind.INITIAL_INVITE,
        on_attempt: Callable[[Attempt], None] | None = None,
        rebuild: Callable[[Request, Target], Request] | None = None,
    ) -> AsyncIterator[InviteAttempts]:
        """Send an INVITE with failover; ``async for response in attempts`` (see InviteAttempts).

        Each retry re-uses ``request`` with a new Via (new branch), unless ``rebuild(request,
        target)`` gives the request for the retry (e.g. a new Call-ID). ``on_attempt`` is called
        with each retry's :class:`Attempt` (not the first). Leaving the block before a final
        response cancels the current transaction (send a CANCEL first if you want one).
        """
        targets = await self.targets(destination)
        plan = self._plan(kind, targets, trio.current_time())
        async with AsyncExitStack() as exits:
            attempts = InviteAttempts(
                self, plan, request, exits, on_attempt=on_attempt, rebuild=rebuild
            )
            error = await attempts._start(0)
            if error is not None and not await attempts._failed(None, error):
                raise attempts._last_error or error
            yield attempts

    # -- shared --------------------------------------------------------------------------------

    async def _open(
        self, exits: AsyncExitStack, request: Request, target: Target, *, new_via: bool = True
    ) -> ClientTransaction:
        """Start a client transaction on ``exits``. The transport layer has no connect timeout
        of its own, so a TCP/TLS connect into a black hole is bounded here by
        ``sip_transaction_timeout`` and reported as a transaction timeout."""
        timeout = self.stack.timer_config.sip_transaction_timeout / 1000
        with trio.move_on_after(timeout):
            return await exits.enter_async_context(
                self.stack.send_request(request, target, new_via=new_via)
            )
        raise TransactionTimeoutError(f"no connection to {target} within {timeout:g} s")

    def _plan(self, kind: RequestKind, targets: list[Target], first: float) -> _Plan:
        return _Plan(kind, targets, first, self.stack.timer_config.sip_transaction_timeout)

    def _after(
        self,
        plan: _Plan,
        target: Target,
        response: Response | None,
        error: TransactionError | None,
    ) -> tuple[int, float] | None:
        """Record the attempt's end; the next (index, not_before), or None for "done"."""
        now = trio.current_time()
        if response is not None:
            plan.end(_status_line(response))
            failure = _response_failure(response)
            if failure is None:
                return None
            retry_after = response.retry_after.seconds if response.retry_after else None
            reason = (
                FailureReason.SERVICE_UNAVAILABLE
                if failure is Failure.SERVICE_UNAVAILABLE
                else FailureReason.TIMEOUT
            )
            self.blacklist.failed(target, now, reason, retry_after=retry_after)
        else:
            assert error is not None
            failure, reason, outcome = _classify(error)
            plan.end(outcome)
            self.blacklist.failed(target, now, reason)
        return plan.after_failure(failure, now)


class InviteAttempts:
    """The attempts of one INVITE. ``async for response in attempts`` yields every provisional
    and the final response, across attempts; a failure before the final response (timeout,
    transport error, 503, 408) moves to the next target per the policy, silently for the
    iterator (``on_attempt`` hears of it). When the policy gives up, iterating raises the last
    error, or yields the last 503/408 as the final response.

    ``target`` and ``transaction`` are the current attempt's; ``attempts`` all of them so far.
    """

    def __init__(
        self,
        client: FailoverClient,
        plan: _Plan,
        request: Request,
        exits: AsyncExitStack,
        *,
        on_attempt: Callable[[Attempt], None] | None,
        rebuild: Callable[[Request, Target], Request] | None,
    ) -> None:
        self._client = client
        self._plan = plan
        self._request = request
        self._exits = exits
        self._on_attempt = on_attempt
        self._rebuild = rebuild
        self._tx: ClientTransaction | None = None
        self._tx_exits: AsyncExitStack | None = None
        self._done = False
        self._last_error: TransactionError | None = None
        #: The final response once it has been yielded.
        self.final_response: Response | None = None

    @property
    def target(self) -> Target:
        return self._plan.targets[self._plan.index]

    @property
    def transaction(self) -> ClientTransaction:
        if self._tx is None:
            raise TransactionError("no transaction is running")
        return self._tx

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        return tuple(self._plan.attempts)

    @property
    def targets(self) -> list[Target]:
        return list(self._plan.targets)

    def __aiter__(self) -> InviteAttempts:
        return self

    async def __anext__(self) -> Response:
        while True:
            if self._done or self._tx is None:
                await trio.lowlevel.checkpoint()
                raise StopAsyncIteration
            try:
                event = await self._tx.__anext__()
            except StopAsyncIteration:
                self._done = True
                raise
            except (TransactionTimeoutError, TransportError) as exc:
                if await self._failed(None, exc):
                    continue
                self._done = True
                raise (self._last_error or exc) from None
            if not isinstance(event, Response):
                continue  # RetransmitTimeout: only in the app-retransmit role
            if event.status_code >= 200:
                if _response_failure(event) is None:
                    self._plan.end(_status_line(event))
                elif await self._failed(event, None):
                    continue
                elif self._last_error is not None:
                    self._done = True
                    raise self._last_error  # the 503/408's retry could not even connect
                self._done = True
                self.final_response = event
            return event

    async def _failed(self, response: Response | None, error: TransactionError | None) -> bool:
        """The current attempt failed: start the next one (True) or give up (False)."""
        self._last_error = error
        step = self._client._after(self._plan, self.target, response, error)
        while step is not None:
            await self._close_current()
            index, not_before = step
            await trio.sleep_until(not_before)
            error = await self._start(index)
            if error is None:
                return True
            self._last_error = error
            step = self._client._after(self._plan, self.target, None, error)
        return False

    async def _start(self, index: int) -> TransactionError | None:
        """Begin an attempt at ``targets[index]``; the error if the transport fails at once."""
        plan = self._plan
        retry = bool(plan.attempts)
        target = plan.targets[index]
        attempt = plan.begin(index, trio.current_time())
        request = self._request
        if retry and self._rebuild is not None:
            request = self._rebuild(request, target)
        if retry and self._on_attempt is not None:
            self._on_attempt(attempt)
        exits = AsyncExitStack()
        try:
            self._tx = await self._client._open(exits, request, target)
        except (TransportError, TransactionTimeoutError) as exc:
            self._tx = None
            return exc
        self._tx_exits = exits
        self._exits.push_async_callback(self._close_current)
        return None

    async def _close_current(self) -> None:
        exits, self._tx_exits = self._tx_exits, None
        if exits is not None:
            await exits.aclose()


def _is_numeric(host: str) -> bool:
    bare = host[1:-1] if host.startswith("[") else host
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        return False
    return True
