"""Every header parser runs in time linear in its input (issue #10: a 48 KB Authorization
header took 1.2 s of the event loop).

How growth is measured, without a wall-clock threshold: each parser gets an input of size n and
one of size 8n; the cost of each is the *minimum* over a few runs of the CPU time of this
thread (``time.thread_time``: time the process spends waiting for a CPU under load is not
counted) with the garbage collector off. Linear code costs about 8x more on the larger input
(a little over, from cache effects); quadratic code costs about 64x more. The bound is 24x:
three times linear, far below quadratic. The small input is 16 KB (64 KB where the quadratic
loop would hide inside C calls, ``str.find`` or a string copy, whose constant is tiny), large
enough for timer resolution not to matter. Counting operations instead would miss exactly those
quadratic cases inside C calls (``str.find``, ``list.count``, string concatenation), which is
where the ones this file guards against were; ``test_the_measure_sees_quadratic_code`` checks
that the measure catches quadratic code.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable
from typing import Any

import pytest

from trio_sip import Limits
from trio_sip.proto.auth_values import parse_challenge, parse_credentials
from trio_sip.proto.errors import ProtocolError
from trio_sip.proto.fields import parse_via
from trio_sip.proto.headers import Headers
from trio_sip.proto.parse import parse_message
from trio_sip.proto.sdp import parse_sdp
from trio_sip.proto.uri import parse_name_addr, parse_params, parse_uri
from trio_sip.proto.validate import check_request

pytestmark = pytest.mark.slow

FACTOR = 8
BOUND = 3 * FACTOR
SIZE = 16_384  # the small input, characters: the large one is 128 KB
BIG = 65_536  # for the cases in BIG_CASES: 64 KB and 512 KB
BIG_CASES = {"display name quoted-pairs", "unterminated quote", "folded lines"}
# The parser's own bounds are raised as far as they go: the parsers are measured, not Limits.
WIDE = Limits(
    max_message_size=16 << 20,
    max_header_section=16 << 20,
    max_body_size=16 << 20,
    max_headers=100_000,
    max_header_length=16 << 20,
    max_uri_length=16 << 20,
    max_uri_params=10_000,
    max_vias=10_000,
    max_routes=10_000,
)
HEAD = (
    "OPTIONS sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@x>\r\nFrom: <sip:a@x>;tag=1\r\n"
    "Call-ID: c\r\nCSeq: 1 OPTIONS\r\n"
)


def message(lines: str) -> bytes:
    return (HEAD + lines + "Content-Length: 0\r\n\r\n").encode()


def cost(parse: Callable[[Any], object], data: object, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        gc.disable()
        try:
            start = time.thread_time()
            # A refusal is a result too: how long it took is what is measured.
            with contextlib.suppress(ProtocolError):
                parse(data)
            best = min(best, time.thread_time() - start)
        finally:
            gc.enable()
    return best


def growth(parse: Callable[[Any], object], make: Callable[[int], Any], size: int = SIZE) -> float:
    n = 16
    while len(make(n)) < size:
        n *= 2
    small = cost(parse, make(n))
    large = cost(parse, make(FACTOR * n), runs=2)
    return large / max(small, 1e-9)


def credentials(n: int) -> str:
    return "Digest " + ", ".join(f'p{i}="v{i}"' for i in range(n))


def read_contacts(data: bytes) -> object:
    msg = parse_message(data, limits=WIDE)
    return [c.uri for c in msg.contacts]


def check(data: bytes) -> object:
    msg = parse_message(data, limits=WIDE)
    return check_request(msg, limits=WIDE)  # type: ignore[arg-type]


# name -> (parser, input of about n units). A quadratic loop inside C (str.find, a copy) has a
# tiny constant: those cases start at BIG, where such a loop already costs as much as the rest.
CASES: dict[str, tuple[Callable[[Any], object], Callable[[int], Any]]] = {
    "Authorization params": (parse_credentials, credentials),
    "WWW-Authenticate params": (
        parse_challenge,
        lambda n: 'Digest realm="r", nonce="n", ' + credentials(n)[7:],
    ),
    "Authorization quoted-pairs": (
        parse_credentials,
        lambda n: 'Digest username="' + "\\x" * n + '"',
    ),
    "Authorization duplicate params": (
        parse_credentials,
        lambda n: credentials(n) + ', p0="again"',  # found at the end, after every name
    ),
    "Via params": (parse_via, lambda n: "SIP/2.0/UDP h" + "".join(f";p{i}=v" for i in range(n))),
    "Via quoted params": (parse_via, lambda n: "SIP/2.0/UDP h" + ';p="v\\"w"' * n),
    "URI params": (parse_uri, lambda n: "sip:a@b" + "".join(f";p{i}=v" for i in range(n))),
    "URI headers": (parse_uri, lambda n: "sip:a@b?" + "&".join(f"h{i}=v" for i in range(n))),
    "tel URI params": (parse_uri, lambda n: "tel:+1" + ";p=v" * n),
    "generic params": (parse_params, lambda n: ";".join(f'p{i}="x\\"y"' for i in range(n))),
    "display name quoted-pairs": (parse_name_addr, lambda n: '"' + "\\x" * n + '" <sip:a@b>'),
    "name-addr params": (parse_name_addr, lambda n: "<sip:a@b>" + ';p="v"' * n),
    "unterminated quote": (parse_name_addr, lambda n: '"' + "\\a" * n),
    "list of quoted values": (
        lambda text: Headers([("Contact", text)]).get_list("Contact"),
        lambda n: ", ".join(['"a,b" <sip:c@d>'] * n),
    ),
    "header lines": (lambda d: parse_message(d, limits=WIDE), lambda n: message("X: y\r\n" * n)),
    "folded lines": (
        lambda d: parse_message(d, limits=WIDE),
        lambda n: message("X: y\r\n" + " y\r\n" * n),
    ),
    "Contact list": (
        read_contacts,
        lambda n: message("Contact: " + ", ".join(f"<sip:u{i}@h>" for i in range(n)) + "\r\n"),
    ),
    "checked request": (
        check,
        lambda n: message("".join(f"Route: <sip:p{i};lr>\r\n" for i in range(n))),
    ),
    "SDP attributes": (
        parse_sdp,
        lambda n: "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n" + "a=x:y\r\n" * n,
    ),
    "SDP media": (
        parse_sdp,
        lambda n: "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n" + "m=audio 1 RTP/AVP 0\r\n" * n,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_parser_time_grows_linearly(name: str) -> None:
    parse, make = CASES[name]
    size = BIG if name in BIG_CASES else SIZE
    ratio = growth(parse, make, size)
    if ratio >= BOUND:  # measure once more before believing it (a burst of load elsewhere)
        ratio = min(ratio, growth(parse, make, size))
    assert ratio < BOUND, f"{name}: {FACTOR}x the input cost {ratio:.0f}x the time"


def test_the_measure_sees_quadratic_code() -> None:
    """The method itself: a deliberately quadratic parser is caught."""

    def quadratic(text: str) -> int:
        names = text.split(",")
        return sum(names.count(n) for n in names)

    assert growth(quadratic, lambda n: ",".join(str(i) for i in range(n)), 512) >= BOUND
