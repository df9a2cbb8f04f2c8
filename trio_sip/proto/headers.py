# The header section: RFC 3261 §7.3 (header fields), §7.3.1 (header field format: several
# values of a list header may share one line or be spread over several lines), §7.3.3 (compact
# forms) and §20 (which headers are lists). Compact forms of later RFCs (3265, 3515, 3892,
# 3841, 4028, 4474) are included.
#
# Theory of operation: a Headers is a list of ``(name, value)`` str pairs exactly as received
# (name spelled as on the wire, value unfolded and trimmed), the canonical name (lower-case
# long form) of each line and a dict from canonical name to first value, both built while
# parsing (or on the first lookup of a Headers built by hand). Nothing is split or parsed
# until asked for, unknown headers pass through untouched, and serialising an unedited list
# gives back every header in order. Edits (prepend/replace/remove/set_first/...) return a new
# Headers; a message never changes under a reader's feet.
"""Ordered, case- and compact-form-insensitive header multimap (RFC 3261 §7.3)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .abnf import LWS, bad_nul, is_token, split_top
from .errors import LocalProtocolError

__all__ = ["COMPACT_FORMS", "LIST_HEADERS", "Headers", "canonical_name", "long_name"]

COMPACT_FORMS: dict[str, str] = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",
    "u": "allow-events",
    "r": "refer-to",
    "b": "referred-by",
    "x": "session-expires",
    "y": "identity",
    "a": "accept-contact",
    "j": "reject-contact",
    "d": "request-disposition",
    "n": "identity-info",
}

# Preferred spelling of well-known names (used when a name is written in long form).
_SPELLING = {
    n.lower(): n
    for n in [
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Authentication-Info",
        "Authorization",
        "Call-ID",
        "Call-Info",
        "Contact",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "Date",
        "Error-Info",
        "Event",
        "Expires",
        "From",
        "Identity",
        "Identity-Info",
        "In-Reply-To",
        "Max-Forwards",
        "Min-Expires",
        "MIME-Version",
        "Organization",
        "Priority",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "Record-Route",
        "Refer-To",
        "Referred-By",
        "Reject-Contact",
        "Reply-To",
        "Request-Disposition",
        "Require",
        "Retry-After",
        "Route",
        "RSeq",
        "RAck",
        "Server",
        "Session-Expires",
        "Subject",
        "Subscription-State",
        "Supported",
        "Timestamp",
        "To",
        "Unsupported",
        "User-Agent",
        "Via",
        "Warning",
        "WWW-Authenticate",
        "Min-SE",
        "Path",
        "Service-Route",
        "P-Asserted-Identity",
        "Reason",
    ]
}

# Headers whose grammar is a comma-separated list (§7.3.1, §20). Everything else (unknown
# headers, Date, the auth headers, Call-ID, CSeq, ...) is never split on commas.
LIST_HEADERS = frozenset(
    [
        "accept",
        "accept-contact",
        "accept-encoding",
        "accept-language",
        "alert-info",
        "allow",
        "allow-events",
        "call-info",
        "contact",
        "content-encoding",
        "content-language",
        "error-info",
        "in-reply-to",
        "proxy-require",
        "record-route",
        "reject-contact",
        "request-disposition",
        "require",
        "route",
        "supported",
        "unsupported",
        "via",
        "warning",
        "path",
        "service-route",
        "p-asserted-identity",
        "reason",
        "security-client",
        "security-server",
        "security-verify",
        "history-info",
    ]
)


# Exact spellings seen in practice -> canonical name, so the common case is one dict lookup.
_CANON: dict[str, str] = {}
for _long in (*_SPELLING, *LIST_HEADERS):
    for _spelling in (_long, _SPELLING.get(_long, _long), _long.title(), _long.upper()):
        _CANON[_spelling] = _long
for _short, _long in COMPACT_FORMS.items():
    _CANON[_short] = _CANON[_short.upper()] = _long


def canonical_name(name: str) -> str:
    """The lower-case long form of a header name (``"v"`` and ``"VIA"`` give ``"via"``)."""
    key = _CANON.get(name)
    if key is None:
        key = name.lower()
        key = COMPACT_FORMS.get(key, key)
    return key


def long_name(name: str) -> str:
    """The conventional long spelling (``"i"`` gives ``"Call-ID"``); unknown names unchanged."""
    key = canonical_name(name)
    return _SPELLING.get(key, name if len(name) > 1 else key)


def _check(name: str, value: str) -> None:
    if not is_token(name):
        raise LocalProtocolError(f"bad header name {name!r}")
    if "\r" in value or "\n" in value:
        raise LocalProtocolError(f"header {name} value contains CR or LF: {value!r}")
    if "\0" in value and bad_nul(value):  # the parser refuses it too
        raise LocalProtocolError(f"header {name} value contains NUL: {value!r}")


def _index(pairs: list[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Canonical name -> first value, and -> every value for names with several lines."""
    first: dict[str, str] = {}
    more: dict[str, list[str]] = {}
    canon = _CANON.get
    for name, value in pairs:
        key = canon(name) or canonical_name(name)
        if key in first:
            values = more.get(key)
            if values is None:
                more[key] = [first[key], value]
            else:
                values.append(value)
        else:
            first[key] = value
    return first, more


class Headers:
    """The ordered header fields of a message.

    Iterating gives ``(name, value)`` pairs as written. Lookups take any spelling (``"Via"``,
    ``"via"``, ``"v"``). ``get``/``get_all`` return whole lines; ``get_list`` splits the values
    of list headers on commas (outside quotes and ``<...>``).
    """

    # _first maps a canonical name to the value of its first line, _more a canonical name with
    # several lines to all their values. The parser fills both while it splits the lines; for
    # a Headers built any other way they are computed on the first lookup. Never mutated.
    __slots__ = ("_first", "_more", "_pairs")

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        if isinstance(pairs, Headers):
            self._pairs: list[tuple[str, str]] = pairs._pairs
            self._first: dict[str, str] | None = pairs._first
            self._more: dict[str, list[str]] | None = pairs._more
            return
        items = []
        for name, value in pairs:
            value = value.strip(LWS)
            _check(name, value)
            items.append((name, value))
        self._pairs = items
        self._first = self._more = None

    @classmethod
    def _trusted(
        cls,
        pairs: list[tuple[str, str]],
        first: dict[str, str] | None = None,
        more: dict[str, list[str]] | None = None,
    ) -> Headers:
        # The parser (and our own edits) already checked the pairs; skip the checks. (Not
        # ``cls.__new__(cls)``, which mypyc cannot compile; compiled, this runs ``__init__()``
        # on no pairs first.)
        self = Headers.__new__(Headers)
        self._pairs = pairs
        self._first = first
        self._more = more
        return self

    def _index(self) -> dict[str, str]:
        first = self._first
        if first is None:
            first, self._more = _index(self._pairs)
            self._first = first
        return first

    def _first_value(self, key: str) -> str | None:
        """The first value for a canonical ``key`` (internal fast path of ``get``)."""
        first = self._first
        if first is None:
            first = self._index()
        return first.get(key)

    def _values(self, key: str) -> list[str]:
        """Every value for a canonical ``key``, in order (do not mutate the list)."""
        first = self._first
        if first is None:
            first = self._index()
        value = first.get(key)
        if value is None:
            return []
        more: dict[str, list[str]] = self._more  # type: ignore[assignment]  # set with _first
        return more.get(key) or [value]

    def _positions(self, key: str) -> list[int]:
        """The indices of the lines with canonical name ``key``."""
        canon = _CANON.get
        return [
            i
            for i, (name, _) in enumerate(self._pairs)
            if (canon(name) or canonical_name(name)) == key
        ]

    # -- reading ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and canonical_name(name) in self._index()

    def __getitem__(self, name: str) -> str:
        value = self._first_value(canonical_name(name))
        if value is None:
            raise KeyError(name)
        return value

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of the first line named ``name``, or ``default``."""
        value = self._first_value(canonical_name(name))
        return default if value is None else value

    def get_all(self, name: str) -> list[str]:
        """The values of every line named ``name``, in order (not split on commas)."""
        return list(self._values(canonical_name(name)))

    def get_list(self, name: str) -> list[str]:
        """The comma-separated elements of a list header across all its lines, trimmed.

        For a header that is not a list (see ``LIST_HEADERS``) this is ``get_all``. Raises
        ParseError for an unterminated quoted string.
        """
        key = canonical_name(name)
        lines = self._values(key)
        if key not in LIST_HEADERS:
            return list(lines)
        for line in lines:
            if "," in line:
                break
        else:
            return list(lines)
        out = []
        for line in lines:
            if "," not in line:
                out.append(line)
            else:
                out.extend(p.strip(LWS) for p in split_top(line, ","))
        return out

    def count(self, name: str) -> int:
        """How many lines are named ``name``."""
        return len(self._values(canonical_name(name)))

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._pairs == other._pairs

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._pairs!r})"

    # -- editing (each returns a new Headers) ----------------------------------------------

    def append(self, name: str, value: str) -> Headers:
        value = value.strip(LWS)
        _check(name, value)
        return Headers._trusted([*self._pairs, (name, value)])

    def prepend(self, name: str, value: str) -> Headers:
        """Add a line before the first line of that name (or at the top if there is none).

        This is how a proxy adds its Via or a Record-Route (§16.6).
        """
        value = value.strip(LWS)
        _check(name, value)
        pairs = list(self._pairs)
        pos = self._positions(canonical_name(name))
        pairs.insert(pos[0] if pos else 0, (name, value))
        return Headers._trusted(pairs)

    def replace(self, name: str, value: str) -> Headers:
        """Replace every line of that name by one line, at the first one's place (else append)."""
        value = value.strip(LWS)
        _check(name, value)
        pos = self._positions(canonical_name(name))
        if not pos:
            return Headers._trusted([*self._pairs, (name, value)])
        drop = set(pos[1:])
        pairs = [p for i, p in enumerate(self._pairs) if i not in drop]
        pairs[pos[0]] = (name, value)
        return Headers._trusted(pairs)

    def remove(self, name: str) -> Headers:
        """Remove every line of that name."""
        pos = self._positions(canonical_name(name))
        if not pos:
            return self
        drop = set(pos)
        return Headers._trusted([p for i, p in enumerate(self._pairs) if i not in drop])

    def set_first(self, name: str, value: str) -> Headers:
        """Replace the first *value* of that name (for list headers, only the first element of
        the first line, e.g. the top Via); appends a line if there is none."""
        value = value.strip(LWS)
        _check(name, value)
        key = canonical_name(name)
        pos = self._positions(key)
        if not pos:
            return Headers._trusted([*self._pairs, (name, value)])
        i = pos[0]
        old_name, old = self._pairs[i]
        if key in LIST_HEADERS and "," in old:
            rest = split_top(old, ",")[1:]
            value = ", ".join([value, *(p.strip(LWS) for p in rest)])
        pairs = list(self._pairs)
        pairs[i] = (old_name, value)
        return Headers._trusted(pairs)

    def remove_first(self, name: str) -> Headers:
        """Remove the first value of that name (for list headers, the first element of the
        first line): a proxy removing the top Via of a response (§16.7) or a used Route."""
        key = canonical_name(name)
        pos = self._positions(key)
        if not pos:
            return self
        i = pos[0]
        old_name, old = self._pairs[i]
        pairs = list(self._pairs)
        if key in LIST_HEADERS and "," in old:
            rest = split_top(old, ",")[1:]
            pairs[i] = (old_name, ", ".join(p.strip(LWS) for p in rest))
        else:
            del pairs[i]
        return Headers._trusted(pairs)
