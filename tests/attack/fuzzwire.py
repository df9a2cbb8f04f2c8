"""The wire fuzzer: mutated SIP over real UDP and TCP sockets to a target, with liveness probes.

:class:`UdpFuzzer` sends datagrams from a pool of source addresses (so that per-source rate
limits meter each source, not the whole run): most are seeds pointed at the target and mutated
(tests/attack/mutator.py); a share are dialogs -- a well-formed INVITE, then, once its final
response is in, mutated or clean ACK / BYE / re-INVITE / INFO / UPDATE / CANCEL... with the
same Call-ID, tags and route set, or the INVITE with its CANCEL right behind it -- so the
transaction and dialog machines are driven, not only the parser. :class:`TcpFuzzer` writes
mutated messages back to back on a few connections, in random pieces, with keep-alive pings,
junk between messages and broken framing; a connection the target closes is counted and
replaced.

Every ``probe_every`` messages a probe (an OPTIONS from an address of its own, resent like a
UAC would for up to ``patience`` seconds) must be answered, the target processes must be
running and their stderr must hold no new traceback; otherwise the run stops with a
:class:`Finding` holding the messages sent since the last good probe (the window), for
minimising (tests/attack/run.py). Every answer is parsed: one the parser refuses (a header
injection passed on, say) is also a finding. Every loop is bounded in count and time.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import random
import re
import select
import socket
import time
from collections.abc import Callable, Sequence

import attrs

from trio_sip.proto.errors import ParseError, ProtocolError
from trio_sip.proto.limits import Limits
from trio_sip.proto.message import Message, Request, Response, make_response
from trio_sip.proto.parse import NEED_DATA, StreamFramer, parse_message
from trio_sip.proto.validate import Role

from .expect import answer_is_right, deserved_status
from .mutator import Mutator, dialog_request, retarget, split_message

__all__ = ["SDP", "Figures", "Finding", "Plan", "Sent", "TcpFuzzer", "UdpFuzzer"]

FOLLOW_UPS = [
    "ACK",
    "BYE",
    "INVITE",
    "INFO",
    "OPTIONS",
    "UPDATE",
    "CANCEL",
    "PRACK",
    "NOTIFY",
    "REFER",
    "MESSAGE",
]
FOLLOW_WEIGHTS = [6, 6, 3, 2, 2, 2, 2, 1, 1, 1, 1]
#: What an answer must parse within: the default limits, but any number of Via and Route
#: values. A request over ``max_vias`` gets its 400 with every Via copied (§8.2.6.2): valid
#: SIP, over our own bound (tests/shell/test_parse_limits_wire.py). Lines a little longer
#: too: a To just under ``max_header_length`` in the request gains its ``;tag=`` (§8.2.6.2).
ANSWER_LIMITS = Limits(
    max_vias=10_000,
    max_routes=10_000,
    max_headers=100_000,
    max_header_length=Limits().max_header_length + 64,
)
_BRANCH = re.compile(rb"branch=([^;,\s]+)")
#: Seconds a sampled request's answer may take; the request is resent at 1 and 2.5 s (a
#: datagram lost to a full receive buffer is not a missing answer).
SAMPLE_PATIENCE = 6.0
SDP = (
    b"v=0\r\no=fuzz 1 1 IN IP4 127.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
)


@attrs.define
class Sent:
    """One message sent: over which transport, from which source (index), what it was."""

    transport: str
    source: int
    data: bytes
    what: str
    group: int = -1  # the dialog it belongs to, or -1


@attrs.define
class Finding:
    """A crash, hang, traceback or unparsable answer, with the messages that preceded it."""

    kind: str  # "exit", "no-answer", "traceback", "bad-answer"
    transport: str
    detail: str
    window: list[Sent]


@attrs.define
class Plan:
    """Where and how to fuzz one target."""

    target: tuple[str, int]
    #: Request-URIs the seeds are pointed at.
    uris: Sequence[bytes]
    sources: Sequence[str]
    probe_source: str
    probe_uri: str
    #: Where dialogs' INVITEs go (their Request-URI), and the From domain.
    dialog_uri: str
    #: Capture address -> replacement, applied to every seed before retargeting.
    hosts: dict[bytes, bytes] = attrs.field(factory=dict)
    dialog_share: float = 0.12
    probe_every: int = 100
    patience: float = 20.0
    #: Every this many mutated UDP datagrams, one is sent from a socket of its own and, when
    #: it deserves an answer (tests/attack/expect.py), its answer is awaited and checked.
    sample_every: int = 5
    #: Who the target is for the validator (check_request's role).
    role: Role = "uas"


@attrs.define
class Figures:
    """What a run did and saw (printed by tests/attack/run.py)."""

    sent: collections.Counter[str] = attrs.field(factory=collections.Counter)
    bytes_sent: int = 0
    answers: collections.Counter[str] = attrs.field(factory=collections.Counter)
    requests_back: collections.Counter[str] = attrs.field(factory=collections.Counter)
    bad_answers: int = 0
    ops: collections.Counter[str] = attrs.field(factory=collections.Counter)
    probes: int = 0
    probe_seconds: list[float] = attrs.field(factory=list)
    dialogs: int = 0
    established: int = 0
    cancel_races: int = 0
    send_errors: collections.Counter[str] = attrs.field(factory=collections.Counter)
    tcp_connections: int = 0
    tcp_closed_by_target: int = 0
    #: (transport, the request or None, the unparsable answer), the first 20.
    bad_examples: list[tuple[str, bytes | None, bytes]] = attrs.field(factory=list)
    #: The sampled check: "sampled", "deserving" (an answer), "right" (4xx, or the parser's
    #: 505/513), "wrong" (another status), "unanswered" (within ``SAMPLE_PATIENCE``).
    samples: collections.Counter[str] = attrs.field(factory=collections.Counter)
    #: (the request, the answer or None, the status it deserved), the first 20 misses.
    sample_misses: list[tuple[bytes, bytes | None, int]] = attrs.field(factory=list)


@attrs.define
class _Dialog:
    call_id: str
    from_: str
    source: int
    branch: str
    cseq: int = 1
    to: str | None = None
    status: int | None = None
    routes: list[str] = attrs.field(factory=list)
    remote: str | None = None
    clean_bye: bool = False


def _replier(sock: socket.socket, address: tuple[str, int]) -> Callable[[bytes], None]:
    def reply(data: bytes) -> None:
        sock.sendto(data, address)

    return reply


class _Base:
    """What both fuzzers share: seeds, mutator, figures, the window and the liveness check."""

    transport = "UDP"

    def __init__(
        self,
        plan: Plan,
        seeds: Sequence[bytes],
        rng: random.Random,
        figures: Figures,
        alive: Callable[[], str | None],
    ) -> None:
        self.plan, self.seeds, self.rng, self.figures = plan, seeds, rng, figures
        self.mutator = Mutator(seeds, rng)
        #: None while the targets are fine, else what is wrong ("exit", "traceback: ...").
        self.alive = alive
        self.window: list[Sent] = []
        self.previous: list[Sent] = []
        self.counter = itertools.count(1)
        self.probes_answered: dict[str, int] = {}
        self.bad: list[bytes] = []

    def seed_for(self, sent_by: str) -> bytes:
        data = self.rng.choice(self.seeds)
        for old, new in self.plan.hosts.items():
            data = data.replace(old, new)
        uri = self.rng.choice(self.plan.uris)
        unique = f".f{next(self.counter)}".encode()
        return retarget(
            data,
            self.rng,
            uri=uri,
            sent_by=sent_by.encode(),
            transport=self.transport.encode(),
            unique=unique,
        )

    def take_answer(
        self,
        data: bytes,
        on_response: Callable[[Response], None] | None,
        reply: Callable[[bytes], None] | None = None,
    ) -> None:
        """Count one message the target sent us; keep it if it does not parse. A request
        (the BYE that ends an unacknowledged call) is answered 200 through ``reply``."""
        if not data.strip(b"\r\n"):
            return  # a keep-alive pong
        try:
            message = parse_message(data, limits=ANSWER_LIMITS)
        except ParseError:
            self.figures.bad_answers += 1
            self.bad.append(data)
            return
        self.take_message(message, on_response, reply)

    def take_message(
        self,
        message: Message,
        on_response: Callable[[Response], None] | None,
        reply: Callable[[bytes], None] | None = None,
    ) -> None:
        if isinstance(message, Request):
            self.figures.requests_back[f"{self.transport} {message.method}"] += 1
            if reply is not None and message.method != "ACK":
                with contextlib.suppress(ProtocolError, OSError):
                    reply(bytes(make_response(message, 200, to_tag="fuzz")))
            return
        assert isinstance(message, Response)
        self.figures.answers[f"{self.transport} {message.status_code}"] += 1
        try:
            call_id = message.call_id
        except ParseError:
            return
        if call_id.startswith("probe-"):
            self.probes_answered.setdefault(call_id, message.status_code)
        elif on_response is not None:
            on_response(message)

    def options(self, call_id: str, sent_by: str) -> bytes:
        return dialog_request(
            "OPTIONS",
            uri=self.plan.probe_uri,
            via=f"SIP/2.0/{self.transport} {sent_by};branch=z9hG4bK{call_id};rport",
            from_=f"<sip:probe@{self.plan.probe_source}>;tag={call_id}",
            to=f"<{self.plan.probe_uri}>",
            call_id=call_id,
            cseq=1,
            contact=f"<sip:probe@{sent_by};transport={self.transport.lower()}>",
        )

    def finding(self) -> Finding | None:
        """After a good probe: each unparsable answer is kept with the request it answers
        (found by its branch in the window: the fuzzer makes branches unique), the run goes
        on, and the window starts again."""
        for answer in self.bad:
            found = _BRANCH.search(answer)
            branch = found.group(1) if found else None
            request = next((s.data for s in self.window if branch and branch in s.data), None)
            if len(self.figures.bad_examples) < 20:
                self.figures.bad_examples.append((self.transport, request, answer))
        self.bad.clear()
        self.previous, self.window = self.window, []
        return None

    def failed(self, kind: str, detail: str) -> Finding:
        """A Finding with the window since the last good probe, and the one before it (a
        traceback is read from the target's stderr a little after the fact)."""
        return Finding(kind, self.transport, detail, [*self.previous, *self.window])


class UdpFuzzer(_Base):
    """See the module docstring."""

    def __init__(
        self,
        plan: Plan,
        seeds: Sequence[bytes],
        rng: random.Random,
        figures: Figures,
        alive: Callable[[], str | None],
    ) -> None:
        super().__init__(plan, seeds, rng, figures, alive)
        self.socks = [self._bind(host) for host in plan.sources]
        self.probe_sock = self._bind(plan.probe_source)
        self.sample_sock = self._bind(plan.probe_source)
        self.dialogs: dict[str, _Dialog] = {}
        self.singles = 0
        #: Every branch parameter sent (a sampled request reusing one claims no answer).
        self.branches: set[bytes] = set()

    @staticmethod
    def _bind(host: str) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, 0))
        sock.setblocking(False)
        return sock

    def close(self) -> None:
        for sock in [*self.socks, self.probe_sock, self.sample_sock]:
            sock.close()

    def sent_by(self, k: int) -> str:
        host, port = self.socks[k].getsockname()
        return f"{host}:{port}"

    def send(
        self, k: int, data: bytes, what: str, group: int = -1, sock: socket.socket | None = None
    ) -> None:
        self.window.append(Sent("UDP", k, data, what, group))
        self.branches.update(_BRANCH.findall(data))
        try:
            (sock or self.socks[k]).sendto(data, self.plan.target)
        except OSError as exc:  # EMSGSIZE, or an ICMP error reported on this socket
            self.figures.send_errors[type(exc).__name__] += 1
            return
        self.figures.sent["UDP"] += 1
        self.figures.bytes_sent += len(data)

    # -- receiving -------------------------------------------------------------------------------

    def poll(self, timeout: float) -> None:
        """Read what has arrived (waiting up to ``timeout`` for the first datagram)."""
        socks = [*self.socks, self.probe_sock, self.sample_sock]
        readable, _, _ = select.select(socks, [], [], timeout)
        for sock in readable:
            for _ in range(1000):
                try:
                    data, source = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                except OSError:  # ICMP unreachable from an earlier send
                    continue
                self.take_answer(data, self._on_response, _replier(sock, source))

    def _on_response(self, response: Response) -> None:
        try:
            dialog = self.dialogs.get(response.call_id)
            if dialog is None or response.cseq.method != "INVITE" or response.status_code < 200:
                return
            if dialog.status is None:
                dialog.status = response.status_code
                dialog.to = response.headers["To"]
                dialog.routes = [str(r) for r in reversed(response.record_routes)]
                contacts = response.contacts
                dialog.remote = str(contacts[0].uri) if contacts else None
        except (ParseError, KeyError, IndexError):
            return

    def probe(self) -> bool:
        """An OPTIONS from the probe address, resent at 0.5, 1, 2, 4, 4... s; True when answered
        within ``patience`` seconds while the targets stay up."""
        self.figures.probes += 1
        call_id = f"probe-{self.figures.probes}-{self.rng.getrandbits(32):x}"
        host, port = self.probe_sock.getsockname()
        request = self.options(call_id, f"{host}:{port}")
        start = time.monotonic()
        resend, interval = start, 0.5
        while (now := time.monotonic()) < start + self.plan.patience:
            if now >= resend:
                self.probe_sock.sendto(request, self.plan.target)
                resend, interval = now + interval, min(interval * 2, 4.0)
            self.poll(0.02)
            if call_id in self.probes_answered:
                self.figures.probe_seconds.append(time.monotonic() - start)
                return True
            if self.alive() is not None:
                return False
        return False

    def check(self) -> Finding | None:
        """Probe and look at the targets: a Finding, or None (and the window starts again)."""
        answered = self.probe()
        wrong = self.alive()
        if wrong is not None:
            return self.failed("exit" if wrong.startswith("exit") else "traceback", wrong)
        if not answered:
            return self.failed("no-answer", f"no answer to a probe within {self.plan.patience} s")
        return self.finding()

    # -- the cases -------------------------------------------------------------------------------

    def single(self) -> None:
        self.singles += 1
        if self.plan.sample_every and self.singles % self.plan.sample_every == 0:
            self.sampled()
            return
        k = self.rng.randrange(len(self.socks))
        data, ops = self.mutator.mutate(self.seed_for(self.sent_by(k)))
        self.figures.ops.update(ops)
        self.send(k, data, "mutated " + "+".join(ops))

    def sampled(self) -> None:
        """One mutated datagram from the sample socket; when it deserves an answer, wait for
        it (bounded) and check it is a 4xx (tests/attack/expect.py)."""
        sock = self.sample_sock
        host, port = sock.getsockname()
        data, ops = self.mutator.mutate(self.seed_for(f"{host}:{port}"))
        self.figures.ops.update(ops)
        self.figures.samples["sampled"] += 1
        deserved = deserved_status(data, self.plan.role, port)
        if deserved is not None and deserved[2].encode() in self.branches:
            self.figures.samples["branch-seen"] += 1
            deserved = None
        self.poll(0)  # what came before is not this one's answer
        self.send(-1, data, "sampled mutated " + "+".join(ops), sock=sock)
        if deserved is None:
            return
        status, call_id, branch = deserved
        self.figures.samples["deserving"] += 1
        start = time.monotonic()
        resends = [start + 1.0, start + 2.5]
        while (now := time.monotonic()) < start + SAMPLE_PATIENCE and self.alive() is None:
            if resends and now >= resends[0]:
                resends.pop(0)
                with contextlib.suppress(OSError):
                    sock.sendto(data, self.plan.target)
            if not select.select([sock], [], [], 0.02)[0]:
                continue
            try:
                answer, source = sock.recvfrom(65535)
            except OSError:
                continue
            answered = self._sample_answer(answer, call_id, branch)
            if answered is None:
                self.take_answer(answer, self._on_response, _replier(sock, source))
                continue
            self.take_message(answered, None)
            if answer_is_right(status, answered.status_code):
                self.figures.samples["right"] += 1
            else:
                self._sample_miss("wrong", data, answer, status)
            return
        self._sample_miss("unanswered", data, None, status)

    @staticmethod
    def _sample_answer(data: bytes, call_id: str, branch: str) -> Response | None:
        """``data`` if it is a final response with this Call-ID or top Via branch."""
        try:
            message = parse_message(data, limits=ANSWER_LIMITS)
            if isinstance(message, Response) and message.status_code >= 200:
                ours = message.call_id == call_id or (
                    bool(branch) and message.vias[0].branch == branch
                )
                return message if ours else None
        except (ParseError, IndexError):
            pass
        return None

    def _sample_miss(self, kind: str, data: bytes, answer: bytes | None, status: int) -> None:
        self.figures.samples[kind] += 1
        if len(self.figures.sample_misses) < 20:
            self.figures.sample_misses.append((data, answer, status))

    def dialog(self) -> None:
        """An INVITE, then what follows it in a dialog, some of it mutated."""
        rng, n = self.rng, next(self.counter)
        k = rng.randrange(len(self.socks))
        me = self.sent_by(k)
        d = _Dialog(
            f"dlg-{n}-{rng.getrandbits(32):x}@fuzz",
            f"<sip:fuzz@{me}>;tag=t{n}",
            k,
            f"z9hG4bKdlg{n}",
        )
        self.dialogs[d.call_id] = d
        self.figures.dialogs += 1
        to = f"<{self.plan.dialog_uri}>"
        invite = self._request(d, "INVITE", self.plan.dialog_uri, to, d.branch, body=SDP)
        self.send(k, invite, "dialog INVITE", n)
        if rng.random() < 0.25:  # the CANCEL right behind it (§9.1 race)
            self.figures.cancel_races += 1
            cancel = self._request(d, "CANCEL", self.plan.dialog_uri, to, d.branch, cseq=1)
            self._send_follow_up(d, n, cancel, "CANCEL", 0.4)
            self._wait_final(d, 1.0)
            if d.status is not None and d.status >= 300 and d.to is not None:
                ack = self._request(d, "ACK", self.plan.dialog_uri, d.to, d.branch, cseq=1)
                self._send_follow_up(d, n, ack, "ACK", 0.3)
            return
        self._wait_final(d, 3.0)
        if d.status is None or d.to is None:
            return
        if d.status >= 300:  # the ACK of a non-2xx: same branch (§17.1.1.3)
            ack = self._request(d, "ACK", self.plan.dialog_uri, d.to, d.branch, cseq=1)
            self._send_follow_up(d, n, ack, "ACK", 0.5)
            return
        self.figures.established += 1
        uri = d.remote or self.plan.dialog_uri
        methods = ["ACK"] if rng.random() < 0.8 else []
        methods += rng.choices(FOLLOW_UPS, FOLLOW_WEIGHTS, k=rng.randint(0, 3))
        for method in methods:
            if method == "ACK":
                request = self._request(d, "ACK", uri, d.to, f"z9hG4bKack{n}", cseq=1)
            elif method == "CANCEL":
                request = self._request(d, "CANCEL", uri, d.to, d.branch, cseq=1)
            else:
                d.cseq += 1
                body = SDP if method in ("INVITE", "UPDATE") else b""
                request = self._request(
                    d, method, uri, d.to, f"z9hG4bK{method}{n}x{d.cseq}", body=body
                )
            mutated = self._send_follow_up(d, n, request, method, 0.7)
            d.clean_bye = d.clean_bye or (method == "BYE" and not mutated)

    def _request(
        self,
        d: _Dialog,
        method: str,
        uri: str,
        to: str,
        branch: str,
        *,
        cseq: int | None = None,
        body: bytes = b"",
    ) -> bytes:
        me = self.sent_by(d.source)
        return dialog_request(
            method,
            uri=uri,
            via=f"SIP/2.0/UDP {me};branch={branch};rport",
            from_=d.from_,
            to=to,
            call_id=d.call_id,
            cseq=cseq if cseq is not None else d.cseq,
            contact=f"<sip:fuzz@{me}>",
            routes=d.routes if method != "CANCEL" else (),
            body=body,
        )

    def _send_follow_up(
        self, d: _Dialog, n: int, request: bytes, method: str, share: float
    ) -> bool:
        mutated = self.rng.random() < share
        what = f"dialog {method}"
        if mutated:
            request, ops = self.mutator.mutate(request)
            self.figures.ops.update(ops)
            what += " mutated " + "+".join(ops)
        self.send(d.source, request, what, n)
        return mutated

    def _wait_final(self, d: _Dialog, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while d.status is None and time.monotonic() < deadline and self.alive() is None:
            self.poll(0.01)

    def hang_up_all(self) -> int:
        """A clean BYE in every dialog that was answered 2xx and got none; how many."""
        count = 0
        for d in self.dialogs.values():
            if d.status is not None and 200 <= d.status < 300 and not d.clean_bye and d.to:
                # The highest CSeq there is (§8.1.1.5: below 2**31): a mutated request may
                # have raised the dialog's remote CSeq far above ours.
                bye = self._request(
                    d,
                    "BYE",
                    d.remote or self.plan.dialog_uri,
                    d.to,
                    f"z9hG4bKbye{d.call_id.split('@')[0]}",
                    cseq=2**31 - 1,
                )
                d.clean_bye = True
                try:
                    self.socks[d.source].sendto(bye, self.plan.target)
                except OSError:
                    continue
                count += 1
                if count % 50 == 0:
                    self.poll(0.05)
        self.poll(0.2)
        return count

    def run(self, count: int, progress: Callable[[str], None] | None = None) -> Finding | None:
        """Send datagrams until ``count`` in all were sent (probing every ``probe_every``); the
        first Finding, if any."""
        next_probe = self.figures.sent["UDP"] + self.plan.probe_every
        while self.figures.sent["UDP"] + sum(self.figures.send_errors.values()) < count:
            if self.rng.random() < self.plan.dialog_share:
                self.dialog()
            else:
                self.single()
            done = self.figures.sent["UDP"]
            if done % 16 == 0:
                self.poll(0)
            if done >= next_probe:
                next_probe = done + self.plan.probe_every
                found = self.check()
                if found is not None:
                    return found
                if progress is not None and done % 5000 < self.plan.probe_every:
                    progress(f"udp: {done} datagrams sent")
        return self.check()


class TcpFuzzer(_Base):
    """See the module docstring."""

    transport = "TCP"

    def __init__(
        self,
        plan: Plan,
        seeds: Sequence[bytes],
        rng: random.Random,
        figures: Figures,
        alive: Callable[[], str | None],
        connections: int = 4,
    ) -> None:
        super().__init__(plan, seeds, rng, figures, alive)
        self.conns: list[socket.socket | None] = [None] * connections
        self.framers: dict[socket.socket, StreamFramer] = {}
        self.probe_conn: socket.socket | None = None
        self.sent = 0

    def _connect(self, host: str) -> socket.socket:
        sock = socket.create_connection(self.plan.target, timeout=10, source_address=(host, 0))
        sock.settimeout(5)
        self.framers[sock] = StreamFramer(expect_pongs=True, limits=ANSWER_LIMITS)
        return sock

    def conn(self, k: int) -> socket.socket:
        sock = self.conns[k]
        if sock is None:
            sock = self.conns[k] = self._connect(self.plan.sources[k % len(self.plan.sources)])
            self.figures.tcp_connections += 1
        return sock

    def _closed(self, sock: socket.socket) -> None:
        self.framers.pop(sock, None)
        if sock in self.conns:
            self.conns[self.conns.index(sock)] = None
            self.figures.tcp_closed_by_target += 1
        if sock is self.probe_conn:
            self.probe_conn = None
        sock.close()

    def close(self) -> None:
        for sock in [*self.conns, self.probe_conn]:
            if sock is not None:
                sock.close()

    def poll(self, timeout: float) -> None:
        socks = [s for s in [*self.conns, self.probe_conn] if s is not None]
        readable, _, _ = select.select(socks, [], [], timeout) if socks else ([], [], [])
        for sock in readable:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            framer = self.framers.get(sock)
            if framer is None:
                continue
            framer.receive_data(data)
            try:
                for _ in range(1000):
                    event = framer.next_event()
                    if event is NEED_DATA:
                        break
                    if isinstance(event, Message):
                        self.take_message(event, None)
            except ParseError:
                self.figures.bad_answers += 1
                self.bad.append(data)
                data = b""
            if not data:
                self._closed(sock)

    def write(self, k: int, data: bytes, what: str) -> None:
        sock = self.conn(k)
        self.window.append(Sent("TCP", k, data, what))
        cuts = sorted(
            self.rng.sample(range(1, len(data)), min(len(data) - 1, self.rng.randint(0, 3)))
        )
        try:
            for a, b in itertools.pairwise([0, *cuts, len(data)]):
                sock.sendall(data[a:b])
        except OSError as exc:
            self.figures.send_errors[type(exc).__name__] += 1
            self._closed(sock)
            return
        self.sent += 1
        self.figures.sent["TCP"] += 1
        self.figures.bytes_sent += len(data)

    def single(self) -> None:
        rng = self.rng
        k = rng.randrange(len(self.conns))
        host, port = self.conn(k).getsockname()
        data = self.seed_for(f"{host}:{port}")
        what = "clean"
        if rng.random() < 0.85:
            data, ops = self.mutator.mutate(data)
            self.figures.ops.update(ops)
            what = "mutated " + "+".join(ops)
        framing = rng.random()
        if framing < 0.08:
            data, what = b"\r\n\r\n" + data, what + " after a ping"
        elif framing < 0.12:
            data, what = (
                rng.choice([b"\r\n", b"junk\r\n", b"\0\0", b" "]) + data,
                what + " after junk",
            )
        elif framing < 0.16:  # no Content-Length: the stream cannot be framed (§18.3)
            lines, sep, body = split_message(data)
            kept = [ln for ln in lines if not ln.lower().startswith((b"content-length", b"l:"))]
            data, what = b"\r\n".join(kept) + sep + body, what + " without Content-Length"
        self.write(k, data, what)

    def probe(self) -> bool:
        self.figures.probes += 1
        call_id = f"probe-{self.figures.probes}-{self.rng.getrandbits(32):x}"
        start = time.monotonic()
        sent = False
        while time.monotonic() < start + self.plan.patience:
            if not sent or self.probe_conn is None:
                try:
                    if self.probe_conn is None:
                        self.probe_conn = self._connect(self.plan.probe_source)
                    host, port = self.probe_conn.getsockname()
                    self.probe_conn.sendall(self.options(call_id, f"{host}:{port}"))
                    sent = True
                except OSError:
                    self.probe_conn = None
                    time.sleep(0.2)
            self.poll(0.02)
            if call_id in self.probes_answered:
                self.figures.probe_seconds.append(time.monotonic() - start)
                return True
            if self.alive() is not None:
                return False
        return False

    def check(self) -> Finding | None:
        answered = self.probe()
        wrong = self.alive()
        if wrong is not None:
            return self.failed("exit" if wrong.startswith("exit") else "traceback", wrong)
        if not answered:
            detail = f"no answer to a TCP probe within {self.plan.patience} s"
            return self.failed("no-answer", detail)
        return self.finding()

    def run(self, count: int, progress: Callable[[str], None] | None = None) -> Finding | None:
        next_probe = self.plan.probe_every
        for _ in range(count * 2):  # a failed write does not count; bounded all the same
            if self.sent >= count:
                break
            self.single()
            if self.sent % 8 == 0:
                self.poll(0)
            if self.sent >= next_probe:
                next_probe = self.sent + self.plan.probe_every
                found = self.check()
                if found is not None:
                    return found
                if progress is not None and self.sent % 2000 < self.plan.probe_every:
                    progress(f"tcp: {self.sent} messages sent")
        return self.check()
