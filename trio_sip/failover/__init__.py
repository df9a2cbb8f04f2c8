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

from ._client import FailoverClient as FailoverClient
from ._client import InviteAttempts as InviteAttempts
from ._plan import Attempt as Attempt
from ._plan import Destination as Destination
from ._plan import FailoverResult as FailoverResult

__all__ = ["Attempt", "Destination", "FailoverClient", "FailoverResult", "InviteAttempts"]
