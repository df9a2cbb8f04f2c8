"""Seed 004's JAIN-SIP timeout table, row by row, on the real machines (virtual clock).

``SEED`` below is the seed's text turned into expectations, written here independently of
``timeouts.TIMEOUT_TABLE``: each row of the code's table must agree with it, and each machine
built for a row must behave as the row says -- who sends the retransmissions (the machine on
its timer, or only the application through ``ApplicationRetransmit``), which of RETRANSMIT /
TRANSACTION it reports, on which timer, and that a timeout always ends it.
"""

from __future__ import annotations

import math

import pytest

from trio_sip.proto.errors import ConfigError, LocalProtocolError
from trio_sip.proto.message import Request, make_response
from trio_sip.proto.outputs import (
    ApplicationRetransmit,
    MessageReceived,
    Output,
    RetransmitTimeout,
    SendResponse,
    Terminated,
    TerminationReason,
    TransactionTimeout,
    Transmit,
)
from trio_sip.proto.parse import parse_message
from trio_sip.proto.timers import TimerConfig
from trio_sip.proto.transaction import (
    TIMEOUT_TABLE,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Machine,
    Retransmitter,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    Side,
    TimeoutRole,
    TimeoutRule,
    timeout_rule,
)

R = TimeoutRole
STACK, APP, NOBODY = Retransmitter.STACK, Retransmitter.APPLICATION, Retransmitter.NOBODY

#: (role, side, INVITE?) -> (who retransmits, RETRANSMIT heard, TRANSACTION heard), from the
#: seed's words (see trio_sip/proto/transaction/timeouts.py for the quotes):
#: * "User Agent" (USER_AGENT_APP_RETRANSMIT): "Retransmissions on Invite transactions are the
#:   responsibility of the application ... the application will only receive [RETRANSMIT]
#:   specific to Invite transactions"; "will only recieve TRANSACTION Timeout events on
#:   transactions that are not Invite transactions".
#: * "User Agent with No Retransmission" (USER_AGENT): no RETRANSMIT; "TRANSACTION Timeout will
#:   be fired to the application on any transaction that expires including an Invite".
#: * "Stateful Proxy": the implementation retransmits, no RETRANSMIT, TRANSACTION on its
#:   transactions but not on an end-to-end INVITE unless it responds itself (a 3-6xx, RFC 3261
#:   §16.7): a forwarded INVITE's Timer B is silent, the server's Timer H is heard. On the
#:   wire, RFC 3261 §16.6 step 10 / §17.1.1.2: the stack retransmits the INVITE.
#: * "Stateless Proxy": nothing at all.
#: A server non-INVITE transaction has no retransmission timer and never expires (§17.2.2).
SEED: dict[tuple[TimeoutRole, Side, bool], tuple[Retransmitter, bool, bool]] = {
    (R.USER_AGENT, Side.CLIENT, True): (STACK, False, True),
    (R.USER_AGENT, Side.CLIENT, False): (STACK, False, True),
    (R.USER_AGENT, Side.SERVER, True): (STACK, False, True),
    (R.USER_AGENT, Side.SERVER, False): (STACK, False, False),
    (R.USER_AGENT_APP_RETRANSMIT, Side.CLIENT, True): (APP, True, False),
    (R.USER_AGENT_APP_RETRANSMIT, Side.CLIENT, False): (STACK, False, True),
    (R.USER_AGENT_APP_RETRANSMIT, Side.SERVER, True): (APP, True, False),
    (R.USER_AGENT_APP_RETRANSMIT, Side.SERVER, False): (STACK, False, False),
    (R.STATEFUL_PROXY, Side.CLIENT, True): (STACK, False, False),
    (R.STATEFUL_PROXY, Side.CLIENT, False): (STACK, False, True),
    (R.STATEFUL_PROXY, Side.SERVER, True): (STACK, False, True),
    (R.STATEFUL_PROXY, Side.SERVER, False): (STACK, False, False),
    (R.STATELESS_PROXY, Side.CLIENT, True): (NOBODY, False, False),
    (R.STATELESS_PROXY, Side.CLIENT, False): (NOBODY, False, False),
    (R.STATELESS_PROXY, Side.SERVER, True): (NOBODY, False, False),
    (R.STATELESS_PROXY, Side.SERVER, False): (NOBODY, False, False),
}
TIMERS = {  # (side, INVITE?) -> (retransmission timer, timeout timer), RFC 3261 §17
    (Side.CLIENT, True): ("A", "B"),
    (Side.CLIENT, False): ("E", "F"),
    (Side.SERVER, True): ("G", "H"),
    (Side.SERVER, False): ("", ""),
}
CONFIG = TimerConfig()  # T1 = 0.5, T2 = 4: every timeout at 32 s


def rule_id(rule: TimeoutRule) -> str:
    return f"{rule.role.name}-{rule.side.value}-{rule.method}"


def request(method: str) -> Request:
    text = (
        f"{method} sip:bob@biloxi.example SIP/2.0\r\n"
        "Via: SIP/2.0/UDP pc33.atlanta.example;branch=z9hG4bKtable\r\n"
        "Max-Forwards: 70\r\n"
        "To: <sip:bob@biloxi.example>\r\n"
        "From: <sip:alice@atlanta.example>;tag=1928\r\n"
        "Call-ID: table@pc33\r\n"
        f"CSeq: 1 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def build(rule: TimeoutRule, **kwargs: object) -> Machine[object]:
    cls: type[Machine[object]]
    if rule.side is Side.CLIENT:
        cls = ClientInviteTransaction if rule.invite else ClientNonInviteTransaction  # type: ignore[assignment]
    else:
        cls = ServerInviteTransaction if rule.invite else ServerNonInviteTransaction  # type: ignore[assignment]
    method = "INVITE" if rule.invite else "MESSAGE"
    return cls(request(method), CONFIG, reliable=False, role=rule.role, **kwargs)  # type: ignore[call-arg]


class Run:
    """What a machine did, driven deadline to deadline until it ended (bounded)."""

    def __init__(self) -> None:
        self.by_timer: list[float] = []  # retransmissions the machine sent on its own timer
        self.by_app: list[float] = []  # retransmissions sent on ApplicationRetransmit
        self.heard: list[tuple[float, Output]] = []  # RetransmitTimeout / TransactionTimeout
        self.end: tuple[float, TerminationReason] | None = None

    def take(self, now: float, outputs: list[Output], *, timer: bool) -> bool:
        """Record ``outputs``; True if the application is asked to retransmit."""
        asked = False
        for out in outputs:
            if isinstance(out, Transmit):
                (self.by_timer if timer else self.by_app).append(now)
            elif isinstance(out, RetransmitTimeout | TransactionTimeout):
                self.heard.append((now, out))
                asked |= isinstance(out, RetransmitTimeout)
            elif isinstance(out, Terminated):
                self.end = (now, out.reason)
        return asked


def drive(machine: Machine[object], rule: TimeoutRule) -> Run:
    """Client: the request is never answered. Server INVITE: a 486 is never ACKed. Server
    non-INVITE: a 200 is sent, then the request is retransmitted once. The application resends
    at once whenever it hears RETRANSMIT."""
    run = Run()
    start = machine.start(0.0)
    assert sum(isinstance(o, Transmit) for o in start) == (rule.side is Side.CLIENT)
    if rule.side is Side.SERVER:
        status = 486 if rule.invite else 200
        req = machine.request  # type: ignore[attr-defined]
        sent = machine.handle(SendResponse(make_response(req, status, to_tag="t")), 0.0)
        assert type(sent[0]) is Transmit  # the first transmission
        if not rule.invite:
            again = machine.handle(MessageReceived(req), 1.0)
            run.take(1.0, again, timer=False)  # the stack answers the retransmission
    for _ in range(100):
        deadline = machine.deadline
        if deadline is None or machine.terminated:
            break
        if run.take(deadline, machine.handle_timer(deadline), timer=True):
            run.take(deadline, machine.handle(ApplicationRetransmit(), deadline), timer=False)
    assert machine.terminated
    return run


@pytest.mark.parametrize("rule", TIMEOUT_TABLE, ids=rule_id)
def test_the_code_table_is_the_seed_table(rule: TimeoutRule) -> None:
    assert isinstance(rule, TimeoutRule)  # the table's rows are the documented type
    expected = SEED[(rule.role, rule.side, rule.invite)]
    assert (rule.retransmits, rule.hears_retransmit, rule.hears_transaction) == expected
    if rule.role is not R.STATELESS_PROXY:
        assert (rule.retransmit_timer, rule.timeout_timer) == TIMERS[(rule.side, rule.invite)]
    assert timeout_rule(rule.role, rule.side, rule.invite) is rule


def test_the_table_has_one_row_per_role_side_and_method() -> None:
    keys = [(r.role, r.side, r.invite) for r in TIMEOUT_TABLE]
    assert sorted(keys, key=str) == sorted(SEED, key=str)
    assert len(set(keys)) == len(keys) == 16


@pytest.mark.parametrize("rule", TIMEOUT_TABLE, ids=rule_id)
def test_each_machine_does_what_its_row_says(rule: TimeoutRule) -> None:
    if rule.retransmits is NOBODY:
        with pytest.raises(ConfigError, match="stateless"):
            build(rule)
        return
    machine = build(rule)
    assert machine.rule is rule
    run = drive(machine, rule)
    retransmit_timer, timeout_timer = TIMERS[(rule.side, rule.invite)]
    heard_kinds = {type(out) for _, out in run.heard}

    # Who retransmits.
    if not retransmit_timer:  # server non-INVITE: only when the request comes again
        assert run.by_timer == [] and run.by_app == [1.0]
    elif rule.retransmits is STACK:
        assert run.by_timer and run.by_app == []
    else:
        assert run.by_timer == [] and run.by_app
    # RETRANSMIT: heard on every tick of the retransmission timer, exactly where the app sends.
    ticks = [t for t, out in run.heard if isinstance(out, RetransmitTimeout)]
    assert (RetransmitTimeout in heard_kinds) is rule.hears_retransmit
    if rule.hears_retransmit:
        assert ticks == run.by_app
        assert {out.timer for _, out in run.heard if isinstance(out, RetransmitTimeout)} == {
            retransmit_timer
        }
    # TRANSACTION: heard once, at the timeout, or not at all; the timeout always ends it.
    timeouts = [(t, out) for t, out in run.heard if isinstance(out, TransactionTimeout)]
    if rule.hears_transaction:
        assert timeouts == [(32.0, TransactionTimeout(timeout_timer))]
    else:
        assert timeouts == []
    if timeout_timer:
        assert run.end == (32.0, TerminationReason.TIMEOUT)
    else:
        assert run.end is not None and run.end[1] is TerminationReason.COMPLETED


@pytest.mark.parametrize("rule", TIMEOUT_TABLE, ids=rule_id)
def test_application_retransmit_is_accepted_exactly_where_the_application_retransmits(
    rule: TimeoutRule,
) -> None:
    if rule.retransmits is NOBODY:
        return
    machine = build(rule)
    machine.start(0.0)
    if rule.side is Side.SERVER:
        req = machine.request  # type: ignore[attr-defined]
        status = 486 if rule.invite else 200
        machine.handle(SendResponse(make_response(req, status, to_tag="t")), 0.0)
    if rule.retransmits is APP:
        assert [type(o) for o in machine.handle(ApplicationRetransmit(), 0.1)] == [Transmit]
    else:
        state = machine.state
        with pytest.raises(LocalProtocolError):
            machine.handle(ApplicationRetransmit(), 0.1)
        assert machine.state is state


# --------------------------------------------------------------------- per-transaction T1


def _sends_and_end(machine: Machine[object], rule: TimeoutRule) -> tuple[list[float], float]:
    run = drive(machine, rule)
    assert run.end is not None
    return [0.0, *run.by_timer], run.end[0]


@pytest.mark.parametrize(
    ("invite", "interval", "sends", "end"),
    [
        # INVITE: Timer A doubles from the interval; Timer B = 64 * 0.1 = 6.4 s.
        (True, 0.1, [0.0, 0.1, 0.3, 0.7, 1.5, 3.1, 6.3], 6.4),
        # non-INVITE: Timer E doubles to T2 (4 s); Timer F = 64 * 0.05 = 3.2 s.
        (False, 0.05, [0.0, 0.05, 0.15, 0.35, 0.75, 1.55, 3.15], 3.2),
        # 1 s: 64 s is beyond sip_transaction_timeout (32 s), which still bounds B / F.
        (True, 1.0, [0.0, 1.0, 3.0, 7.0, 15.0, 31.0], 32.0),
    ],
)
def test_a_client_retransmit_interval_is_that_transactions_t1(
    invite: bool, interval: float, sends: list[float], end: float
) -> None:
    rule = timeout_rule(R.USER_AGENT, Side.CLIENT, invite)
    got, at = _sends_and_end(build(rule, retransmit_interval=interval), rule)
    assert got == pytest.approx(sends) and at == pytest.approx(end)


def test_a_server_retransmit_interval_scales_timer_g_and_h() -> None:
    rule = timeout_rule(R.USER_AGENT, Side.SERVER, True)
    machine = build(rule)
    machine.set_retransmit_interval(0.1)  # before the final response
    run = drive(machine, rule)
    # G = 0.1 doubling to T2; H = 64 * 0.1 = 6.4 s, heard as TRANSACTION.
    assert run.by_timer == pytest.approx([0.1, 0.3, 0.7, 1.5, 3.1, 6.3])
    assert [(round(t, 6), o) for t, o in run.heard] == [(6.4, TransactionTimeout("H"))]
    assert run.end is not None and run.end[0] == pytest.approx(6.4)


def test_the_interval_is_refused_once_its_timers_run_or_where_there_are_none() -> None:
    rule = timeout_rule(R.USER_AGENT, Side.SERVER, True)
    machine = build(rule)
    machine.start(0.0)
    machine.handle(SendResponse(make_response(machine.request, 486, to_tag="t")), 0.0)  # type: ignore[attr-defined]
    with pytest.raises(LocalProtocolError, match="before"):
        machine.set_retransmit_interval(0.1)
    client = build(timeout_rule(R.USER_AGENT, Side.CLIENT, False))
    client.start(0.0)
    with pytest.raises(LocalProtocolError, match="before"):
        client.set_retransmit_interval(0.1)
    server = build(timeout_rule(R.USER_AGENT, Side.SERVER, False))
    with pytest.raises(LocalProtocolError, match="no retransmission timer"):
        server.set_retransmit_interval(0.1)
    for bad in (0, -1.0, math.inf, math.nan):
        with pytest.raises(ConfigError, match="retransmit_interval"):
            build(timeout_rule(R.USER_AGENT, Side.CLIENT, True), retransmit_interval=bad)


def test_the_interval_leaves_the_timers_that_wait_for_the_peer() -> None:
    # D, I, J, K, L, M wait for the peer's retransmissions, paced by the peer's T1.
    base = CONFIG.timers(reliable=False)
    own = CONFIG.timers(reliable=False, retransmit_interval=0.1)
    assert (own.a, own.b, own.e, own.f, own.g, own.h) == pytest.approx(
        (0.1, 6.4, 0.1, 6.4, 0.1, 6.4)
    )
    assert (own.d, own.i, own.j, own.k, own.l, own.m) == (
        base.d, base.i, base.j, base.k, base.l, base.m
    )  # fmt: skip
