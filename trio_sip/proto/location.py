# The location service and a registrar's REGISTER processing: RFC 3261 §10.3 (processing
# REGISTER requests), §10.2.1.1 (expiration intervals), §10.2.2 (wildcard removal), §10.3
# step 7 (Call-ID / CSeq ordering, all-or-nothing commits), §10.3 step 8 (the 200 lists every
# current binding with its expires), §21.4.17 (423 Interval Too Brief with Min-Expires) and
# §19.1.4 (comparing contact URIs).
#
# Theory of operation: a LocationService maps a canonical address-of-record ("sip:bob@example
# .com": §10.3 step 5 "all URI parameters MUST be removed ... converted to their unescaped
# form") to bindings, each a contact with an absolute expiry on the caller's clock (``now`` is
# always passed in; expired bindings are dropped lazily on every read and write). Static
# bindings (a peer with a fixed address, e.g. sipp as a UAS) never expire.
#
# ``plan_register(request, aor, current, now, rules, total)`` is the whole of §10.3 steps 6-8
# as a pure function of the AOR's current bindings: it returns the answer and the bindings to
# commit (a ``Planned``). ``LocationService.register`` runs it on its own table; a shared
# location store (trio_sip.location: Redis) reads the bindings, runs it and commits the result
# only if nothing changed meanwhile (compare-and-set), so two nodes registering the same AOR
# never lose each other's update. ``register(request, aor, now)`` applies §10.3 steps 6-8 to a
# copy of the AOR's bindings and commits only if every contact succeeded ("The binding updates
# MUST be committed ... if and only if all binding updates and additions succeed"):
#   * ``Contact: *`` needs ``Expires: 0`` and no other contact (else 400), and removes every
#     binding unless one has the same Call-ID and a CSeq not lower than the request's;
#   * each contact's interval is its ``expires`` parameter, else the Expires header, else the
#     registrar's default; a non-zero interval below ``min_expires`` is answered 423 with
#     ``Min-Expires``; longer ones are cut to ``max_expires`` ("the registrar MAY shorten");
#   * "If the Call-ID value in the existing binding differs from the Call-ID value in the
#     request, the binding MUST be removed if the expiration time is zero and updated
#     otherwise. If they are the same, the registrar compares the CSeq value. If the value is
#     higher than that of the existing binding, it MUST update or remove the binding as above.
#     If not, the update MUST be aborted and the request fails" (400 here). A request with the
#     same Call-ID, CSeq *and* Via branch as the one that wrote the binding is a retransmission
#     (a stateless site sees them all) and is applied again rather than refused.
# The 200 carries "Contact header field values enumerating all current bindings", each with
# ``expires`` = the seconds left.
#
# Bounds (``Limits``, docs/security.md): an AOR holds at most ``max_bindings_per_aor`` dynamic
# bindings and the service ``max_bindings`` in all. Neither RFC 3261 §10.3 nor RFC 5626 names a
# status for "too many contacts"; a REGISTER that would go over the per-AOR bound is refused
# with 403 (§21.4.4: "The server understood the request, but is refusing to fulfill it.
# Authorization will not help, and the request SHOULD NOT be repeated": it is policy, and
# repeating it changes nothing), and one that would go over the total with 503 and Retry-After
# (§21.5.4: "temporarily unable to process the request due to a temporary overloading"; the
# room comes back as other bindings expire). Either way nothing is committed, refreshes and
# removals still work, and the 200 lists at most ``max_bindings_per_aor`` contacts, so it fits
# in a datagram. Expired bindings are pruned eagerly: a heap of expiry times is popped on
# every read and write (amortised O(log n)), and an AOR whose last binding expires or is
# removed is dropped, so the table holds only what is current.
"""LocationService (bindings per address-of-record) and REGISTER processing."""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping

import attrs

from .errors import ParseError
from .limits import DEFAULT_LIMITS, Limits
from .message import Request
from .uri import NameAddress, SipUri, Uri, parse_uri, unescape

__all__ = [
    "Binding",
    "BindingRules",
    "LocationService",
    "Planned",
    "RegisterOutcome",
    "by_q",
    "canonical_aor",
    "contact_key",
    "plan_register",
]

DEFAULT_EXPIRES = 3600


def canonical_aor(uri: Uri, domain: str | None = None) -> str:
    """The address-of-record key of ``uri``: ``scheme:user@host``, parameters and port removed,
    the user unescaped and the host lower-cased; ``domain`` replaces the host (an alias of our
    own domain, e.g. our IP address). A tel: URI keeps its number."""
    if isinstance(uri, SipUri):
        host = (domain or uri.host).lower()
        user = unescape(uri.user) if uri.user is not None else None
        return f"{uri.scheme}:{user}@{host}" if user is not None else f"{uri.scheme}:{host}"
    return str(uri)


def contact_key(uri: Uri) -> str:
    """What makes two contacts the same binding (§19.1.4, simplified: scheme, user, host
    case-insensitively, port and transport)."""
    if isinstance(uri, SipUri):
        transport = (uri.transport or "").lower()
        return f"{uri.scheme}:{uri.user or ''}@{uri.host.lower()}:{uri.port or ''};{transport}"
    return str(uri)


@attrs.frozen(slots=True)
class Binding:
    """One contact of an AOR. ``expires_at`` is absolute (``math.inf`` for a static one)."""

    aor: str
    contact: str
    expires_at: float
    call_id: str = ""
    cseq: int = 0
    branch: str | None = None
    q: float | None = None

    @property
    def uri(self) -> Uri:
        return parse_uri(self.contact)

    @property
    def static(self) -> bool:
        return self.expires_at == math.inf

    def remaining(self, now: float) -> int:
        """Whole seconds left (rounded up), for the 200's ``expires`` parameter."""
        # Rounding noise of ``now + interval - now`` must not turn 3600 into 3601.
        return max(0, math.ceil(round(self.expires_at - now, 6)))


@attrs.frozen(slots=True)
class RegisterOutcome:
    """The response a REGISTER gets: status and extra headers (Contact, Min-Expires, ...)."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    reason: str | None = None


class LocationService:
    """Bindings per AOR, in memory, bounded by ``limits`` (see the module comment)."""

    def __init__(
        self,
        *,
        default_expires: int = DEFAULT_EXPIRES,
        min_expires: int = 60,
        max_expires: int = 86400,
        limits: Limits | None = None,
    ) -> None:
        self.default_expires = default_expires
        self.min_expires = min_expires
        self.max_expires = max_expires
        #: ``max_bindings_per_aor`` and ``max_bindings`` apply (``open_proxy(limits=...)`` sets it).
        self.limits = limits or DEFAULT_LIMITS
        self._bindings: dict[str, dict[str, Binding]] = {}
        self._total = 0  # bindings held, static ones included
        self._dynamic = 0  # bindings that expire
        # (expires_at, aor, key) for every dynamic binding written; entries of bindings since
        # refreshed or removed are skipped when popped (and dropped when the heap is rebuilt).
        self._expiry: list[tuple[float, str, str]] = []

    # -- reading ---------------------------------------------------------------------------

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """The current bindings of ``aor``, highest ``q`` first (no q counts as 1.0)."""
        self._prune(now)
        return by_q(self._bindings.get(aor, {}).values())

    def known(self, aor: str) -> bool:
        """True if ``aor`` has bindings (a static one, or dynamic ones not yet pruned). Nothing
        is remembered about AORs whose bindings are gone: telling "never registered" from
        "registered before" would let anyone enumerate users."""
        return aor in self._bindings

    def aors(self, now: float) -> list[str]:
        self._prune(now)
        return sorted(self._bindings)

    def count(self, now: float) -> int:
        """How many bindings are current (static ones included)."""
        self._prune(now)
        return self._total

    def next_expiry(self) -> float | None:
        """The earliest expiry of a non-static binding, or None."""
        heap = self._expiry
        while heap and not self._live(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    # -- writing ---------------------------------------------------------------------------

    def add_static(self, aor: str, contact: str, *, q: float | None = None) -> None:
        """A binding that never expires (a peer at a fixed address)."""
        parse_uri(contact)
        binding = Binding(aor, contact, math.inf, q=q)
        bindings = self._bindings.setdefault(aor, {})
        key = contact_key(binding.uri)
        old = bindings.get(key)
        if old is not None:
            self._account(old, -1)
        bindings[key] = binding
        self._account(binding, +1)

    def remove(self, aor: str) -> None:
        for binding in self._bindings.pop(aor, {}).values():
            self._account(binding, -1)

    def clear(self) -> None:
        self._bindings.clear()
        self._expiry.clear()
        self._total = self._dynamic = 0

    @property
    def rules(self) -> BindingRules:
        """The REGISTER rules of this service (intervals and bounds), for :func:`plan_register`."""
        return BindingRules(self.default_expires, self.min_expires, self.max_expires, self.limits)

    def current(self, aor: str, now: float) -> dict[str, Binding]:
        """The current bindings of ``aor`` by contact key (static ones included): a copy."""
        self._prune(now)
        return dict(self._bindings.get(aor, {}))

    def dynamic_count(self, now: float) -> int:
        """How many bindings that expire are current (what ``max_bindings`` bounds)."""
        self._prune(now)
        return self._dynamic

    def register(self, request: Request, aor: str, now: float) -> RegisterOutcome:
        """Apply a REGISTER for ``aor`` (§10.3 steps 6-8); see the module comment."""
        self._prune(now)
        current = self._bindings.get(aor, {})
        planned = plan_register(request, aor, current, now, rules=self.rules, total=self._dynamic)
        if planned.updated is not None:
            self.replace(aor, planned.updated, now)
        return planned.outcome

    def replace(self, aor: str, updated: Mapping[str, Binding], now: float) -> None:
        """Make ``updated`` (contact key -> Binding) the bindings of ``aor``, as one change."""
        self._prune(now)
        current = self._bindings.get(aor, {})
        for binding in current.values():
            self._account(binding, -1)
        for binding in updated.values():
            self._account(binding, +1)
        if updated:
            self._bindings[aor] = dict(updated)
        else:
            self._bindings.pop(aor, None)
        for key, binding in updated.items():
            if not binding.static and current.get(key) is not binding:
                heapq.heappush(self._expiry, (binding.expires_at, aor, key))
        if len(self._expiry) > 2 * self._dynamic + 1024:
            self._expiry = [e for e in self._expiry if self._live(e)]
            heapq.heapify(self._expiry)

    def _account(self, binding: Binding, sign: int) -> None:
        self._total += sign
        if not binding.static:
            self._dynamic += sign

    def _live(self, entry: tuple[float, str, str]) -> bool:
        expires_at, aor, key = entry
        binding = self._bindings.get(aor, {}).get(key)
        return binding is not None and binding.expires_at == expires_at

    def _prune(self, now: float) -> None:
        """Drop every binding that has expired, and AORs left without one."""
        heap = self._expiry
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if not self._live(entry):
                continue
            _, aor, key = entry
            bindings = self._bindings[aor]
            self._account(bindings.pop(key), -1)
            if not bindings:
                del self._bindings[aor]


@attrs.frozen(slots=True)
class BindingRules:
    """What :func:`plan_register` needs to know besides the bindings: the registrar's
    intervals (seconds) and the bounds of ``limits``."""

    default_expires: int = DEFAULT_EXPIRES
    min_expires: int = 60
    max_expires: int = 86400
    limits: Limits = DEFAULT_LIMITS


@attrs.frozen(slots=True)
class Planned:
    """What a REGISTER does: the ``outcome`` to answer with and, when it succeeds, the AOR's
    bindings after it (``updated``, contact key -> Binding; None: change nothing)."""

    outcome: RegisterOutcome
    updated: dict[str, Binding] | None = None


def plan_register(
    request: Request,
    aor: str,
    current: Mapping[str, Binding],
    now: float,
    *,
    rules: BindingRules,
    total: int = 0,
) -> Planned:
    """REGISTER processing (§10.3 steps 6-8) as a pure function: ``current`` (contact key ->
    Binding, expired ones already left out) and ``total`` (the dynamic bindings of every AOR,
    for ``max_bindings``) at ``now`` give the answer and the bindings to commit, all or
    nothing. A location store commits ``updated`` only if ``current`` is still what it holds."""
    try:
        return _plan(request, aor, current, now, rules=rules, total=total)
    except ParseError as exc:
        return Planned(RegisterOutcome(400, reason=f"Bad Request ({exc})"))


def _plan(
    request: Request,
    aor: str,
    current: Mapping[str, Binding],
    now: float,
    *,
    rules: BindingRules,
    total: int,
) -> Planned:
    contacts = request.contacts
    call_id, cseq = request.call_id, request.cseq.seq
    branch = request.vias[0].branch if request.vias else None
    header_expires = request.expires
    limits = rules.limits
    updated = dict(current)
    if any(c.is_wildcard for c in contacts):
        # §10.2.2 / §10.3 step 6: "*" only with Expires: 0 and as the only Contact.
        if len(contacts) != 1 or header_expires != 0:
            return Planned(RegisterOutcome(400, reason="Bad Request (Contact: * needs Expires: 0)"))
        for key, binding in current.items():
            if binding.static:
                continue
            if not _may_change(binding, call_id, cseq, branch):
                return Planned(_out_of_order())
            del updated[key]
        return Planned(_ok(updated, now), updated)
    if len(contacts) > limits.max_bindings_per_aor:
        return Planned(_too_many(limits))  # before parsing each of thousands of contacts
    for contact in contacts:
        interval = _interval(contact, header_expires, rules.default_expires)
        if 0 < interval < rules.min_expires:
            return Planned(RegisterOutcome(423, (("Min-Expires", str(rules.min_expires)),)))
        interval = min(interval, rules.max_expires)
        uri = contact.uri
        key = contact_key(uri)
        existing = updated.get(key)
        if (
            existing is not None
            and not existing.static
            and not _may_change(existing, call_id, cseq, branch)
        ):
            return Planned(_out_of_order())
        if interval == 0:
            if existing is not None and not existing.static:
                del updated[key]
            continue
        updated[key] = Binding(aor, str(uri), now + interval, call_id, cseq, branch, contact.q)
    before, after = _dynamic(current.values()), _dynamic(updated.values())
    if after > before:  # shrinking or refreshing is always allowed
        if after > limits.max_bindings_per_aor:
            return Planned(_too_many(limits))
        if total - before + after > limits.max_bindings:
            retry = str(limits.retry_after)
            return Planned(
                RegisterOutcome(
                    503, (("Retry-After", retry),), "Service Unavailable (registrar full)"
                )
            )
    return Planned(_ok(updated, now), updated)


def by_q(bindings: Iterable[Binding]) -> list[Binding]:
    """``bindings`` highest ``q`` first (no q counts as 1.0), in order otherwise."""
    return sorted(bindings, key=lambda b: -(b.q if b.q is not None else 1.0))


def _ok(updated: Mapping[str, Binding], now: float) -> RegisterOutcome:
    # §10.3 step 8: the 200 lists every current binding with the seconds it has left.
    listed = []
    for b in by_q(updated.values()):
        if b.static:
            continue
        q = "" if b.q is None else f";q={b.q:g}"
        listed.append(("Contact", f"<{b.contact}>;expires={b.remaining(now)}{q}"))
    return RegisterOutcome(200, tuple(listed))


def _too_many(limits: Limits) -> RegisterOutcome:
    limit = limits.max_bindings_per_aor
    return RegisterOutcome(403, reason=f"Forbidden (more than {limit} bindings)")


def _dynamic(bindings: Iterable[Binding]) -> int:
    return sum(1 for b in bindings if not b.static)


def _interval(contact: NameAddress, header_expires: int | None, default: int) -> int:
    # §10.2.1.1 / §10.3 step 7: the contact's expires parameter, else the Expires header,
    # else a locally configured default.
    if "expires" in contact.params:
        value = contact.expires
        if value is None:
            raise ParseError(f"bad expires parameter in {contact}")
        return value
    return header_expires if header_expires is not None else default


def _may_change(binding: Binding, call_id: str, cseq: int, branch: str | None) -> bool:
    if binding.call_id != call_id or cseq > binding.cseq:
        return True
    # The same request again (a retransmission): apply it again.
    return cseq == binding.cseq and branch is not None and branch == binding.branch


def _out_of_order() -> RegisterOutcome:
    return RegisterOutcome(400, reason="Bad Request (CSeq out of order)")
