# FailoverClient and InviteAttempts: the Trio side of failover (see the package docstring).
#
# Theory of operation: each attempt is a client transaction started with Stack.send_request
# (a new Via, so a new branch) inside an AsyncExitStack; its outcome is recorded in the
# RetryPlan (proto/retry.py), the blacklist is told of a failure, and the RetryPlan says where
# to go next. The connect is bounded by sip_transaction_timeout here, because the transport
# layer has no connect timeout (a TCP SYN into a black hole would otherwise hang).
# InviteAttempts streams responses across attempts.
"""FailoverClient: requests and INVITEs with failover across targets."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import attrs
import trio

from trio_sip.dns import DnsError, Resolver
from trio_sip.proto.blacklist import Blacklist, FailureReason
from trio_sip.proto.errors import (
    LocalProtocolError,
    TransactionError,
    TransactionTimeoutError,
    TransportError,
)
from trio_sip.proto.message import Request, Response
from trio_sip.proto.resolve import Planner, UriParts
from trio_sip.proto.retry import Failure, RequestKind, RetryPlan
from trio_sip.proto.target import Target
from trio_sip.proto.uri import SipUri, parse_uri
from trio_sip.stack import ClientTransaction, Stack

from ._plan import (
    Attempt,
    Destination,
    FailoverResult,
    classify,
    response_failure,
    status_line,
    with_attempts,
)

__all__ = ["FailoverClient", "InviteAttempts"]


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

    def targets_nowait(
        self, destination: Destination, *, transport: str | None = None
    ) -> list[Target] | None:
        """:meth:`targets` when no DNS lookup is needed (Targets, numeric hosts), ordered by
        the blacklist now; None when a host name must be resolved first."""
        if isinstance(destination, (str, SipUri)):
            uri = parse_uri(destination) if isinstance(destination, str) else destination
            if not isinstance(uri, SipUri) or not _is_numeric(uri.host):
                return None
            forced = transport.lower() if transport is not None else uri.transport
            found = Planner(
                UriParts(uri.scheme, uri.host, uri.port, forced), rng=self._rng
            ).targets()
        else:
            found = [destination] if isinstance(destination, Target) else list(destination)
            if transport is not None:
                found = [attrs.evolve(t, transport=transport.upper()) for t in found]
        return self.blacklist.order(found, trio.current_time()) if found else None

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
        if request.method == "ACK":
            raise LocalProtocolError("an ACK has no transaction: send it with stack.send_stateless")
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
                raise with_attempts(attempts._last_error or error, plan.attempts)
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

    def _plan(self, kind: RequestKind, targets: list[Target], first: float) -> RetryPlan:
        return RetryPlan(kind, targets, first, self.stack.timer_config.sip_transaction_timeout)

    def _after(
        self,
        plan: RetryPlan,
        target: Target,
        response: Response | None,
        error: TransactionError | None,
    ) -> tuple[int, float] | None:
        """Record the attempt's end; the next (index, not_before), or None for "done"."""
        now = trio.current_time()
        if response is not None:
            plan.end(status_line(response))
            failure = response_failure(response)
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
            failure, reason, outcome = classify(error)
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
        plan: RetryPlan,
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
                raise with_attempts(self._last_error or exc, self._plan.attempts) from None
            if not isinstance(event, Response):
                continue  # RetransmitTimeout: only in the app-retransmit role
            if event.status_code >= 200:
                if response_failure(event) is None:
                    self._plan.end(status_line(event))
                elif await self._failed(event, None):
                    continue
                elif self._last_error is not None:
                    self._done = True
                    # the 503/408's retry could not even connect
                    raise with_attempts(self._last_error, self._plan.attempts)
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
