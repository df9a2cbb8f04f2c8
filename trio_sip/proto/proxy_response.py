# Proxy response processing, sans-I/O: RFC 3261 §16.7 (the response context, best
# response, 401/407 aggregation, 503 -> 500), §16.8/§16.9 (timeouts as 408, transport errors
# as 503) and §16.10 (CANCEL). Part of the proxy core whose theory of operation is in
# ``proxy.py`` (the public face).
"""Proxy response context: branches, their responses, the best one, CANCELs."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from .message import Request, Response, make_response

__all__ = ["Cancel", "Forward", "ResponseContext", "strip_own_via"]

#: §16.7 step 6: responses that let the client resubmit, preferred within the 4xx class.
_PREFERRED = (401, 407, 415, 420, 484)


@attrs.frozen(slots=True)
class Forward:
    """ResponseContext action: send ``response`` upstream (our Via already removed)."""

    response: Response


@attrs.frozen(slots=True)
class Cancel:
    """ResponseContext action: send a CANCEL on branch ``branch`` (§16.10)."""

    branch: str


def strip_own_via(response: Response) -> Response | None:
    """``response`` without its top Via, or None if no Via would remain (it was for us)."""
    if len(response.vias) < 2:
        return None
    return response.evolve(headers=response.headers.remove_first("Via"))


@attrs.define(slots=True)
class _Branch:
    provisional: bool = False
    final: Response | None = None
    cancel_wanted: bool = False
    cancel_sent: bool = False


class ResponseContext:
    """One request's response context (§16.7): branches, their responses, the best one.

    ``request`` is the request as received (its Vias are the upstream path) and ``to_tag``
    the tag of responses we make ourselves (408, 500, ...).
    """

    def __init__(self, request: Request, to_tag: str) -> None:
        self.request = request
        self.to_tag = to_tag
        self.invite = request.method == "INVITE"
        self._branches: dict[str, _Branch] = {}
        #: The final response sent upstream (the first one), if any.
        self.final: Response | None = None
        self._cancelled = False

    @property
    def branches(self) -> list[str]:
        return list(self._branches)

    @property
    def complete(self) -> bool:
        """True once every branch has its final response."""
        return all(b.final is not None for b in self._branches.values())

    def pending(self) -> list[str]:
        return [k for k, b in self._branches.items() if b.final is None]

    def add_branch(self, branch: str) -> None:
        """Register a new client transaction. After a 6xx or a final response went upstream
        no new branch may be created (§16.7 step 5), which raises ValueError."""
        if self.final is not None or self._cancelled:
            raise ValueError("no new branches after a final response or a CANCEL")
        self._branches[branch] = _Branch()

    def make_response(self, status: int) -> Response:
        return make_response(self.request, status, to_tag=self.to_tag)

    def on_response(self, branch: str, response: Response) -> list[Forward | Cancel]:
        """A response arrived on ``branch`` (still carrying our Via)."""
        state = self._branches[branch]
        stripped = strip_own_via(response)
        if stripped is None:
            return []
        code = stripped.status_code
        out: list[Forward | Cancel] = []
        if code < 200:
            state.provisional = True
            if state.cancel_wanted and not state.cancel_sent and state.final is None:
                state.cancel_sent = True
                out.append(Cancel(branch))
            if code != 100 and self.final is None:
                out.append(Forward(stripped))
            return out
        if state.final is not None:
            # A further final on a completed branch: only a 2xx to an INVITE goes on.
            return [Forward(stripped)] if self.invite and code < 300 else []
        state.final = stripped
        if code < 300:
            if self.final is None or self.invite:
                if self.final is None:
                    self.final = stripped
                out.append(Forward(stripped))
                out += self._cancel_pending()
            return out
        if code >= 600:
            out += self._cancel_pending()
        return out + self._maybe_best()

    def on_timeout(self, branch: str) -> list[Forward | Cancel]:
        """The branch's client transaction (or Timer C before a provisional) timed out: 408."""
        return self._synthetic(branch, 408)

    def on_transport_error(self, branch: str) -> list[Forward | Cancel]:
        """The transport failed for the branch (or its target did not resolve): 503 (§16.9)."""
        return self._synthetic(branch, 503)

    def cancel(self) -> list[Forward | Cancel]:
        """A CANCEL matched this context (§16.10): cancel every pending branch."""
        self._cancelled = True
        return list(self._cancel_pending())

    def _synthetic(self, branch: str, status: int) -> list[Forward | Cancel]:
        state = self._branches[branch]
        if state.final is not None:
            return []
        state.final = self.make_response(status)
        return self._maybe_best()

    def _cancel_pending(self) -> list[Cancel]:
        out: list[Cancel] = []
        if not self.invite:
            return out
        for key, state in self._branches.items():
            if state.final is not None or state.cancel_wanted:
                continue
            state.cancel_wanted = True
            if state.provisional:
                state.cancel_sent = True
                out.append(Cancel(key))
        return out

    def _maybe_best(self) -> list[Forward | Cancel]:
        if self.final is not None or not self.complete or not self._branches:
            return []
        self.final = self.best()
        return [Forward(self.final)]

    def best(self) -> Response:
        """The best final response among the branches (§16.7 step 6 and 7)."""
        finals = [b.final for b in self._branches.values() if b.final is not None]
        if not finals:
            return self.make_response(408)
        six = [r for r in finals if r.status_code >= 600]
        if six:
            chosen = six[0]
        else:
            low = min(r.status_code // 100 for r in finals)
            group = [r for r in finals if r.status_code // 100 == low]
            preferred = [r for r in group if r.status_code in _PREFERRED]
            chosen = (preferred or group)[0]
        if chosen.status_code in (401, 407):
            chosen = _aggregate(chosen, finals)
        if chosen.status_code == 503:
            return self.make_response(500)
        return chosen


def _aggregate(chosen: Response, finals: Iterable[Response]) -> Response:
    # §16.7 step 7: "collect any WWW-Authenticate and Proxy-Authenticate header field values
    # from all other 401 and 407 responses ... and add them to this response without
    # modification".
    headers = chosen.headers
    for other in finals:
        if other is chosen or other.status_code not in (401, 407):
            continue
        for name in ("WWW-Authenticate", "Proxy-Authenticate"):
            for value in other.headers.get_all(name):
                headers = headers.append(name, value)
    return chosen.evolve(headers=headers)
