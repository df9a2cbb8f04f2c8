"""Datagrams that each ended `trio-sip serve` or got no answer (issue #10), for the fault tests.

No tests here: tests/shell/test_faults_ua.py sends them to a user agent in virtual time,
tests/test_cli.py to `trio-sip serve` over real UDP. Each case is a list of datagrams sent in a
row and the status codes the sender may get back (a set: the first answer to each).
"""

from __future__ import annotations

import attrs


def request(
    dest: tuple[str, int],
    src: tuple[str, int],
    *,
    method: str = "INVITE",
    branch: str | None = "z9hG4bK-hostile-1",
    via: str | None = None,
    to: str | None = None,
    from_: str = "<sip:eve@example.com>;tag=eve1",
    call_id: str | None = "hostile-1@example.com",
    seq: int = 1,
    contact: str | None = None,
    headers: tuple[str, ...] = (),
) -> bytes:
    """One request as bytes (``None`` leaves a header out)."""
    host, port = dest
    if via is None:
        via = f"SIP/2.0/UDP {src[0]}:{src[1]}" + (f";branch={branch}" if branch else "")
    lines = [
        f"{method} sip:serve@{host}:{port} SIP/2.0",
        f"Via: {via}",
        "Max-Forwards: 70",
        f"To: {to if to is not None else f'<sip:serve@{host}>'}",
        f"From: {from_}",
        *([f"Call-ID: {call_id}"] if call_id is not None else []),
        f"CSeq: {seq} {method}",
        f"Contact: {contact or f'<sip:eve@{src[0]}:{src[1]}>'}",
        *headers,
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


@attrs.frozen
class Case:
    name: str
    datagrams: list[bytes]
    #: The status codes the sender sees (first copy of each); empty: nothing comes back.
    answers: frozenset[int]
    #: False: ``answers`` are the codes it *may* see (a subset, possibly none, comes back).
    exact: bool = True
    #: Codes that may come back besides ``answers`` (a 180 racing the CANCEL).
    may_also: frozenset[int] = frozenset()

    def check(self, seen: set[int]) -> bool:
        if not self.exact:
            return seen <= self.answers
        return self.answers <= seen <= self.answers | self.may_also


def cases(dest: tuple[str, int], src: tuple[str, int], closed_port: int) -> list[Case]:
    """The hostile datagrams of issue #10, toward ``dest`` from ``src``."""
    return [
        # An INVITE and at once its CANCEL: the CANCEL races ring()/accept() ("call failed:
        # 487" ended serve). §9.2: 200 to the CANCEL, 487 to the INVITE.
        Case(
            "invite-then-cancel",
            [request(dest, src), request(dest, src, method="CANCEL")],
            frozenset({200}),
            # serve rings and answers at once: its 180 (or a 100), and even its 200 to the
            # INVITE (then no 487: the CANCEL came too late, §9.2), may leave before the
            # CANCEL is read. The exact race is tested in virtual time (test_faults_ua.py).
            may_also=frozenset({100, 180, 487}),
        ),
        # `To: <...>;tag`, a tag with no value (§25.1: tag-param = "tag" EQUAL token): 400.
        Case("to-tag-without-value", [request(dest, src, to="<sip:x@h>;tag")], frozenset({400})),
        # A bare CR in the To display name: the parser took it, the response builder refused
        # it. Nothing can be answered with that To (or a 400 without it, once the parser
        # refuses bare CRs): never a 1xx or 2xx.
        Case(
            "bare-cr-in-to",
            [request(dest, src, to='"a\rb" <sip:x@h>')],
            frozenset({400}),
            exact=False,
        ),
        # A Via transport we do not have, toward a closed port: no way back (§18.2.2).
        Case(
            "via-transport-foo",
            [request(dest, src, via=f"SIP/2.0/FOO {src[0]}:{closed_port};branch=z9hG4bK-foo")],
            frozenset(),
        ),
        # RFC 2543: no From tag and no branch cookie. Served (§12.1.1 null tag, §17.2.3).
        Case(
            "rfc2543-invite",
            [request(dest, src, branch=None, from_="<sip:eve@example.com>")],
            frozenset({180, 200}),
        ),
        # No Call-ID: 400, with what can be copied (the Via routes it).
        Case("no-call-id", [request(dest, src, method="OPTIONS", call_id=None)], frozenset({400})),
        # A stray response whose Via has no host: dropped, no traceback.
        Case(
            "stray-response-bad-via",
            [
                b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP\r\nTo: <sip:a@h>;tag=1\r\n"
                b"From: <sip:b@h>;tag=2\r\nCall-ID: stray@h\r\nCSeq: 1 INVITE\r\n"
                b"Content-Length: 0\r\n\r\n"
            ],
            frozenset(),
        ),
    ]
