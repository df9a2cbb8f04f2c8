"""Mutations of SIP messages for the wire fuzzer (tests/attack/fuzzwire.py): pure and seeded.

A :class:`Mutator` holds the seed messages (the RFC 4475/5118 corpus and the messages of a real
exchange, tests/attack/seeds.py) and a ``random.Random``; :meth:`Mutator.mutate` applies one to
four operators to a message and says which. The operators, each on bytes:

* octets: ``flip`` (bits of a few bytes), ``insert`` (random or hostile bytes), ``delete`` (a
  span), ``truncate``;
* lines of the header section: ``dup-line``, ``drop-line``, ``swap-lines``, ``fold`` (a
  continuation line), ``compact`` (another spelling of a header name);
* values: ``splice`` (a header line or value from another seed), ``huge`` (a value of up to
  ~40 KB, or a list / parameter repeated hundreds of times), ``empty``, ``inject`` (CR, LF,
  NUL, CRLF, quotes, separators, bad UTF-8), ``numeric`` (edge values in Content-Length, CSeq,
  Max-Forwards, Expires, Retry-After, ports, the status code, numeric parameters), ``method``
  (another method in the start line and/or CSeq), ``body`` (another seed's body, none, or junk
  after it).

:func:`retarget` points a seed at the target and at the sender (Request-URI, top Via, a fresh
branch and Call-ID) before it is mutated, so that answers come back and each datagram is a new
transaction rather than a retransmission of the previous one. :func:`dialog_request` builds
the well-formed requests of a dialog (INVITE, then ACK, BYE, CANCEL, re-INVITE...) that the
fuzzer mutates to reach the transaction and dialog state machines, not only the parser.

Nothing here touches a socket or a clock; the same seed gives the same messages.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

import attrs

__all__ = [
    "METHODS",
    "NUMERIC_EDGES",
    "OPERATORS",
    "Mutator",
    "dialog_request",
    "header_value",
    "retarget",
    "split_message",
]

HOSTILE = [
    b"\r",
    b"\n",
    b"\0",
    b"\r\n",
    b"\r\n\r\n",
    b"\n\n",
    b" \r\n ",
    b"\t",
    b"\xff\xfe",
    b"%00",
    b"\\",
    b'"',
    b"<",
    b">",
    b";",
    b",",
    b"=",
    b":",
    b"@",
    b"[",
    b"]",
    b"\x7f",
    b"\xc3\x28",
    b"\r\n\t",
    b"\x00\x00\x00\x00",
    b"%",
    b"?",
    b"&",
    b"sip:",
    b";tag",
    b";branch=",
]
NUMERIC_EDGES = [
    b"0",
    b"1",
    b"-1",
    b"+1",
    b"00000000000000000001",
    b"4294967295",
    b"4294967296",
    b"2147483647",
    b"2147483648",
    b"9223372036854775808",
    b"1" * 100,
    b"",
    b" ",
    b"1.5",
    b"0x10",
    b"1e9",
    b"\xd9\xa3",
    b"\xc2\xb9",
    b"65535",
    b"65536",
    b"99999",
    b"255",
    b"256",
    b"70",
    b"100000",
    b"-0",
    b"18446744073709551616",
]
NUMERIC_HEADERS = {
    b"content-length",
    b"l",
    b"cseq",
    b"max-forwards",
    b"expires",
    b"min-expires",
    b"retry-after",
    b"rseq",
    b"rack",
    b"session-expires",
    b"x",
    b"min-se",
    b"via",
    b"v",
    b"contact",
    b"m",
    b"content-type",
    b"c",
}
METHODS = [
    b"INVITE",
    b"ACK",
    b"BYE",
    b"CANCEL",
    b"REGISTER",
    b"OPTIONS",
    b"INFO",
    b"UPDATE",
    b"PRACK",
    b"SUBSCRIBE",
    b"NOTIFY",
    b"REFER",
    b"MESSAGE",
    b"PUBLISH",
    b"invite",
    b"FOO",
    b"",
    b"INVITE\x00",
    b"I" * 300,
]
COMPACT = {
    b"via": b"v",
    b"from": b"f",
    b"to": b"t",
    b"call-id": b"i",
    b"contact": b"m",
    b"content-length": b"l",
    b"content-type": b"c",
    b"subject": b"s",
    b"supported": b"k",
}
_DIGITS = re.compile(rb"\d+")
_NAME = re.compile(rb"^([^:\s]+)\s*:")


def split_message(data: bytes) -> tuple[list[bytes], bytes, bytes]:
    """(lines of the header section with the start line first, the separator, the body)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), sep, body


def _join(lines: list[bytes], sep: bytes, body: bytes) -> bytes:
    return b"\r\n".join(lines) + sep + body


def _name(line: bytes) -> bytes | None:
    found = _NAME.match(line)
    return found.group(1).lower() if found else None


def header_value(data: bytes, *names: bytes) -> bytes | None:
    """The value of the first header line called one of ``names`` (lower case), else None."""
    for line in split_message(data)[0][1:]:
        if _name(line) in names:
            return line.partition(b":")[2].strip()
    return None


# -- the operators: (rng, message, donors) -> message ---------------------------------------------

Operator = Callable[[random.Random, bytes, Sequence[bytes]], bytes]


def _flip(rng: random.Random, data: bytes, donors: Sequence[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if buf:
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    return bytes(buf)


def _chunk(rng: random.Random) -> bytes:
    if rng.random() < 0.6:
        return rng.choice(HOSTILE)
    return bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))


def _insert(rng: random.Random, data: bytes, donors: Sequence[bytes]) -> bytes:
    pos = rng.randint(0, len(data))
    return data[:pos] + _chunk(rng) + data[pos:]


def _delete(rng: random.Random, data: bytes, donors: Sequence[bytes]) -> bytes:
    pos = rng.randint(0, max(0, len(data) - 1))
    return data[:pos] + data[pos + rng.randint(1, 32) :]


def _truncate(rng: random.Random, data: bytes, donors: Sequence[bytes]) -> bytes:
    return data[: rng.randint(1, max(1, len(data) - 1))]


def _header_index(rng: random.Random, lines: list[bytes]) -> int | None:
    return rng.randrange(1, len(lines)) if len(lines) > 1 else None


def _dup_line(rng: random.Random, data: bytes, donors: Sequence[bytes]) -> bytes:
    lines, sep, body = split_message(data)
    i = _header_index(rng, lines)
    if i is None:
        return data
    lines.insert(rng.randint(1, len(lines)), lines[i])
    return _join(lines, sep, body)


def _drop_line(rng: random.Random, data: bytes, donors: Sequence[bytes]) -> bytes:
    lines, sep, body = split_message(data)
    i = _header_index(rng, lines)
    if i is None:
        return data
    del lines[i]
    return _join(lines, sep, body)


def _swap_lines(rng: random.Random, data: bytes, donors: Sequence[bytes]) -> bytes:
    lines, sep, body = split_message(data)
    if len(lines) < 3:
        return data
    first = 0 if rng.random() < 0.1 else 1  # now and then the start line moves too
    i, j = rng.sample(range(first, len(lines)), 2)
    lines[i], lines[j] = lines[j], lines[i]
    return _join(lines, sep, body)


def _fold(rng: random.Random, data: bytes, donors: Sequence[bytes]) -> bytes:
    lines, sep, body = split_message(data)
    i = _header_index(rng, lines)
    if i is None:
        return data
    line = lines[i]
    pos = rng.randint(0, len(line))
    lines[i] = line[:pos] + rng.choice([b"\r\n ", b"\r\n\t", b"\r\n  \t", b"\r\n"]) + line[pos:]
    return _join(lines, sep, body)


def _compact(rng: random.Random, data: bytes, donors: Sequence[bytes]) -> bytes:
    lines, sep, body = split_message(data)
    i = _header_index(rng, lines)
    if i is None:
        return data
    name, colon, value = lines[i].partition(b":")
    if not colon:
        return data
    short = COMPACT.get(name.strip().lower(), name)
    spelled = rng.choice(
        [short, name.upper(), name.lower(), name + b" ", name + b"\t\t", b" " + name]
    )
    lines[i] = spelled + b":" + value
    return _join(lines, sep, body)


def _splice(rng: random.Random, data: bytes, donors: Sequence[bytes]) -> bytes:
    lines, sep, body = split_message(data)
    donor = split_message(rng.choice(donors))[0][1:] if donors else []
    if not donor or len(lines) < 2:
        return data
    line = rng.choice(donor)
    same = [k for k in range(1, len(lines)) if _name(lines[k]) == _name(line)]
    if same and rng.random() < 0.7:
        lines[rng.choice(same)] = line  # the donor's value for the same header
    else:
        lines.insert(rng.randint(1, len(lines)), line)
    return _join(lines, sep, body)


def _huge(rng: random.Random, data: bytes, donors: Sequence[bytes]) -> bytes:
    lines, sep, body = split_message(data)
    i = _header_index(rng, lines)
    if i is None:
        return data
    name, _, value = lines[i].partition(b":")
    kind = rng.randrange(4)
    if kind == 0:  # one long token
        big = rng.choice([b"a", b"9", b"%", b'"', b"\\"]) * rng.choice(
            [256, 1024, 8191, 8193, 40000]
        )
    elif kind == 1:  # a list element repeated (Via, Route, Contact...)
        big = b",".join([value.strip() or b"x"] * rng.choice([50, 71, 300, 1000]))
    elif kind == 2:  # a parameter repeated
        big = value + b";p=1" * rng.choice([33, 100, 2000])
    else:  # nested brackets / quotes
        big = b"<" * rng.choice([100, 5000]) + value + b">" * rng.choice([0, 100])
    lines[i] = name + b": " + big
    return _join(lines, sep, body)


def _empty(rng: random.Random, data: bytes, donors: Sequence[bytes]) -> bytes:
    lines, sep, body = split_message(data)
    i = _header_index(rng, lines)
    if i is None:
        return data
    name = lines[i].partition(b":")[0]
    lines[i] = name + rng.choice([b":", b": ", b":\t", b": ;", b": <>", b': ""'])
    return _join(lines, sep, body)


def _inject(rng: random.Random, data: bytes, donors: Sequence[bytes]) -> bytes:
    lines, sep, body = split_message(data)
    i = rng.randrange(len(lines))
    line = lines[i]
    pos = (
        rng.randint(min(len(line), line.find(b":") + 1), len(line))
        if i
        else rng.randint(0, len(line))
    )
    lines[i] = line[:pos] + rng.choice(HOSTILE[:12]) + line[pos:]
    return _join(lines, sep, body)


def _numeric(rng: random.Random, data: bytes, donors: Sequence[bytes]) -> bytes:
    lines, sep, body = split_message(data)
    places = [
        (k, m)
        for k, line in enumerate(lines)
        if k == 0 or _name(line) in NUMERIC_HEADERS
        for m in _DIGITS.finditer(line)
    ]
    if not places:
        return data
    k, m = rng.choice(places)
    lines[k] = lines[k][: m.start()] + rng.choice(NUMERIC_EDGES) + lines[k][m.end() :]
    return _join(lines, sep, body)


def _method(rng: random.Random, data: bytes, donors: Sequence[bytes]) -> bytes:
    lines, sep, body = split_message(data)
    if lines[0].startswith(b"SIP/"):
        return data
    new = rng.choice(METHODS)
    where = rng.randrange(3)  # start line, CSeq, both
    if where != 1:
        lines[0] = new + b" " + lines[0].partition(b" ")[2]
    if where != 0:
        for k in range(1, len(lines)):
            if _name(lines[k]) == b"cseq":
                number = lines[k].partition(b":")[2].split()[:1] or [b"1"]
                lines[k] = b"CSeq: " + number[0] + b" " + new
                break
    return _join(lines, sep, body)


def _body(rng: random.Random, data: bytes, donors: Sequence[bytes]) -> bytes:
    lines, sep, body = split_message(data)
    kind = rng.randrange(3)
    if kind == 0 and donors:
        body = split_message(rng.choice(donors))[2]
    elif kind == 1:
        body = b""
    else:
        body = body + _chunk(rng) * rng.randint(1, 64)
    return _join(lines, sep or b"\r\n\r\n", body)


OPERATORS: dict[str, Operator] = {
    "flip": _flip,
    "insert": _insert,
    "delete": _delete,
    "truncate": _truncate,
    "dup-line": _dup_line,
    "drop-line": _drop_line,
    "swap-lines": _swap_lines,
    "fold": _fold,
    "compact": _compact,
    "splice": _splice,
    "huge": _huge,
    "empty": _empty,
    "inject": _inject,
    "numeric": _numeric,
    "method": _method,
    "body": _body,
}
#: How often each operator is drawn (the structural ones more than blind octet changes).
WEIGHTS = {
    "flip": 3,
    "insert": 3,
    "delete": 2,
    "truncate": 1,
    "dup-line": 3,
    "drop-line": 3,
    "swap-lines": 2,
    "fold": 1,
    "compact": 1,
    "splice": 4,
    "huge": 2,
    "empty": 2,
    "inject": 3,
    "numeric": 5,
    "method": 2,
    "body": 1,
}


@attrs.define
class Mutator:
    """Draws mutated messages from ``seeds`` with ``rng`` (see the module docstring)."""

    seeds: Sequence[bytes]
    rng: random.Random
    #: The largest message produced (UDP carries 65,507 octets at most over IPv4).
    max_size: int = 65_000
    _names: list[str] = attrs.field(init=False, factory=list)
    _weights: list[int] = attrs.field(init=False, factory=list)

    def __attrs_post_init__(self) -> None:
        self._names = list(OPERATORS)
        self._weights = [WEIGHTS[n] for n in self._names]

    def mutate(self, data: bytes, count: int | None = None) -> tuple[bytes, list[str]]:
        """``data`` with ``count`` (default: 1 to 4) operators applied, and their names."""
        rng = self.rng
        count = count if count is not None else rng.choice([1, 1, 1, 2, 2, 3, 4])
        names = rng.choices(self._names, self._weights, k=count)
        for name in names:
            data = OPERATORS[name](rng, data, self.seeds)
        return data[: self.max_size], names


# -- pointing a seed at the target ---------------------------------------------------------

_START = re.compile(rb"^([!-~]+) (\S+) (SIP/2\.0)", re.IGNORECASE)
_TOP_VIA = re.compile(rb"^((?:via|v)\s*:\s*SIP\s*/\s*2\.0\s*/\s*)([A-Za-z]+)(\s+)([^;,\s]+)", re.I)
_BRANCH = re.compile(rb"(;\s*branch\s*=\s*)([^;,\s]+)", re.I)
_CALL_ID = re.compile(rb"^((?:call-id|i)\s*:\s*)(\S+)", re.I)


def retarget(
    data: bytes,
    rng: random.Random,
    *,
    uri: bytes,
    sent_by: bytes,
    transport: bytes,
    unique: bytes,
) -> bytes:
    """``data`` with (most of the time) ``uri`` as Request-URI, ``transport`` and ``sent_by``
    in the top Via, ``unique`` appended to its branch and Call-ID. A line that does not look
    as expected is left as it is."""
    lines, sep, body = split_message(data)
    start = _START.match(lines[0])
    if start and not lines[0].upper().startswith(b"SIP/") and rng.random() < 0.8:
        lines[0] = start.group(1) + b" " + uri + b" " + start.group(3) + lines[0][start.end() :]
    via_done = call_done = False
    for k in range(1, len(lines)):
        line = lines[k]
        if not via_done and (via := _TOP_VIA.match(line)):
            via_done = True
            if rng.random() < 0.9:
                line = via.group(1) + transport + via.group(3) + sent_by + line[via.end() :]
            if rng.random() < 0.9:
                line = _BRANCH.sub(lambda m: m.group(1) + m.group(2) + unique, line, count=1)
        elif not call_done and (cid := _CALL_ID.match(line)):
            call_done = True
            if rng.random() < 0.85:
                line = cid.group(1) + cid.group(2) + unique + line[cid.end() :]
        lines[k] = line
    return _join(lines, sep, body)


def dialog_request(
    method: str,
    *,
    uri: str,
    via: str,
    from_: str,
    to: str,
    call_id: str,
    cseq: int,
    contact: str,
    routes: Sequence[str] = (),
    cseq_method: str | None = None,
    body: bytes = b"",
    extra: Sequence[str] = (),
) -> bytes:
    """One well-formed request of a dialog (RFC 3261 §8.1.1, §12.2.1.1) as bytes."""
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: {via}",
        "Max-Forwards: 70",
        *(f"Route: {r}" for r in routes),
        f"From: {from_}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {cseq_method or method}",
        f"Contact: {contact}",
        *extra,
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
