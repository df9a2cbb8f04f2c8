"""Client transactions (RFC 3261 §17.1, RFC 6026) on a virtual clock.

Every test steps ``now`` from deadline to deadline, as the shell's driver would, and checks
what goes on the wire and what reaches the TU, at exact times.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_sip.proto.errors import ConfigError, LocalProtocolError
from trio_sip.proto.message import Request, Response
from trio_sip.proto.outputs import (
    ApplicationRetransmit,
    Deliver,
    MessageReceived,
    Output,
    RetransmitTimeout,
    Terminated,
    TerminationReason,
    TransactionTimeout,
    Transmit,
    TransportErrorOccurred,
    TransportFailed,
)
from trio_sip.proto.parse import parse_message
from trio_sip.proto.timers import TimerConfig
from trio_sip.proto.transaction import (
    ClientInviteState,
    ClientInviteTransaction,
    ClientNonInviteState,
    ClientNonInviteTransaction,
    TimeoutRole,
)

Machine = ClientInviteTransaction | ClientNonInviteTransaction

BRANCH = "z9hG4bK776asdhds"


def request(method: str = "OPTIONS", *, routes: bool = False) -> Request:
    route = "Route: <sip:p1.example.com;lr>\r\nRoute: <sip:p2.example.com;lr>\r\n" if routes else ""
    text = (
        f"{method} sip:bob@biloxi.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP pc33.atlanta.com;branch={BRANCH}\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKinner\r\n"
        f"{route}"
        "Max-Forwards: 70\r\n"
        "To: Bob <sip:bob@biloxi.com>\r\n"
        "From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
        f"CSeq: 314159 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def response(status: int, method: str = "OPTIONS", *, to_tag: str | None = "a6c85cf") -> Response:
    tag = f";tag={to_tag}" if to_tag else ""
    text = (
        f"SIP/2.0 {status} Whatever\r\n"
        f"Via: SIP/2.0/UDP pc33.atlanta.com;branch={BRANCH}\r\n"
        f"To: Bob <sip:bob@biloxi.com>{tag}\r\n"
        "From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
        f"CSeq: 314159 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Response)
    return message


def run(machine: Machine, until: float, *, start: bool = True) -> list[tuple[float, Output]]:
    """Start (at 0) and fire every deadline up to ``until``; the (time, output) log."""
    log = [(0.0, out) for out in machine.start(0.0)] if start else []
    while machine.deadline is not None and machine.deadline <= until:
        now = machine.deadline
        log += [(now, out) for out in machine.handle_timer(now)]
    return log


def sent_at(log: list[tuple[float, Output]]) -> list[float]:
    return [round(t, 6) for t, out in log if isinstance(out, Transmit)]


def outcome(log: list[tuple[float, Output]]) -> tuple[float, TerminationReason]:
    (last_time, last), *_ = reversed(log)
    assert isinstance(last, Terminated)
    return last_time, last.reason


# --------------------------------------------------------------------- non-INVITE schedule


def test_unanswered_non_invite_over_udp_backs_off_to_t2_and_times_out_at_32s() -> None:
    tx = ClientNonInviteTransaction(request(), reliable=False)
    log = run(tx, until=100)
    assert sent_at(log) == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert [out for t, out in log if t == 32.0] == [
        TransactionTimeout("F"),
        Terminated(TerminationReason.TIMEOUT),
    ]
    assert tx.state is ClientNonInviteState.TERMINATED
    assert tx.deadline is None


def test_sip_transaction_timeout_4000_fails_after_4_seconds() -> None:
    tx = ClientNonInviteTransaction(
        request(), TimerConfig(sip_transaction_timeout=4000), reliable=False
    )
    log = run(tx, until=100)
    assert sent_at(log) == [0, 0.5, 1.5, 3.5]
    assert outcome(log) == (4.0, TerminationReason.TIMEOUT)


def test_non_invite_in_proceeding_retransmits_every_t2() -> None:
    tx = ClientNonInviteTransaction(request(), reliable=False)
    log = run(tx, until=1.0)  # sent at 0 and 0.5
    assert tx.handle(MessageReceived(response(100)), 1.2) == [Deliver(response(100))]
    assert tx.state is ClientNonInviteState.PROCEEDING
    log = run(tx, until=20, start=False)
    # Timer E was armed at 1.5 before the 100; from then on it is reset to T2 = 4 s.
    assert sent_at(log) == [1.5, 5.5, 9.5, 13.5, 17.5]


def test_non_invite_final_response_then_timer_k_absorbs_retransmissions() -> None:
    tx = ClientNonInviteTransaction(request(), reliable=False)
    tx.start(0.0)
    ok = response(200)
    assert tx.handle(MessageReceived(ok), 0.2) == [Deliver(ok)]
    assert tx.state is ClientNonInviteState.COMPLETED
    assert tx.deadline == pytest.approx(5.2)  # Timer K = T4
    assert tx.handle(MessageReceived(ok), 1.0) == []  # retransmission absorbed
    assert tx.handle_timer(5.2) == [Terminated(TerminationReason.COMPLETED)]


def test_over_a_reliable_transport_nothing_is_retransmitted() -> None:
    tx = ClientNonInviteTransaction(request(), reliable=True)
    log = run(tx, until=100)
    assert sent_at(log) == [0]
    assert outcome(log) == (32.0, TerminationReason.TIMEOUT)

    invite = ClientInviteTransaction(request("INVITE"), reliable=True)
    log = run(invite, until=100)
    assert sent_at(log) == [0]
    assert outcome(log) == (32.0, TerminationReason.TIMEOUT)


def test_reliable_final_response_terminates_at_once() -> None:
    tx = ClientNonInviteTransaction(request(), reliable=True)
    tx.start(0.0)
    ok = response(200)
    assert tx.handle(MessageReceived(ok), 0.1) == [
        Deliver(ok),
        Terminated(TerminationReason.COMPLETED),  # Timer K = 0 over TCP
    ]


# --------------------------------------------------------------------- INVITE schedule


def test_unanswered_invite_doubles_without_cap_and_times_out_at_32s() -> None:
    tx = ClientInviteTransaction(request("INVITE"), reliable=False)
    log = run(tx, until=100)
    assert sent_at(log) == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert outcome(log) == (32.0, TerminationReason.TIMEOUT)
    assert [type(out) for t, out in log if t == 32.0] == [TransactionTimeout, Terminated]


def test_invite_retransmissions_stop_on_a_provisional() -> None:
    tx = ClientInviteTransaction(request("INVITE"), reliable=False)
    log = run(tx, until=2.0)
    ringing = response(180, "INVITE")
    assert tx.handle(MessageReceived(ringing), 2.0) == [Deliver(ringing)]
    assert tx.state is ClientInviteState.PROCEEDING
    assert tx.deadline is None  # no Timer A, no Timer B: the TU bounds a ringing call
    assert sent_at(log) == [0, 0.5, 1.5]


def test_invite_failure_is_acked_by_the_transaction_per_17_1_1_3() -> None:
    invite = request("INVITE", routes=True)
    tx = ClientInviteTransaction(invite, reliable=False)
    tx.start(0.0)
    busy = response(486, "INVITE")
    out = tx.handle(MessageReceived(busy), 0.3)
    assert out[1] == Deliver(busy)
    ack = out[0]
    assert isinstance(ack, Transmit) and isinstance(ack.message, Request)
    ack_request = ack.message
    assert ack_request.method == "ACK"
    assert str(ack_request.uri) == str(invite.uri)
    assert [v.branch for v in ack_request.vias] == [BRANCH]  # a single Via: the top one
    assert ack_request.call_id == invite.call_id
    assert ack_request.from_.tag == invite.from_.tag
    assert ack_request.to.tag == "a6c85cf"  # To from the response
    assert (ack_request.cseq.seq, ack_request.cseq.method) == (314159, "ACK")
    assert ack_request.headers.get_all("Route") == invite.headers.get_all("Route")
    assert parse_message(bytes(ack_request)) == ack_request  # well-formed on the wire
    assert tx.state is ClientInviteState.COMPLETED

    # Timer D (32 s over UDP) absorbs retransmitted finals, re-sending the same ACK.
    assert tx.handle(MessageReceived(busy), 1.0) == [ack]
    assert tx.deadline == pytest.approx(32.3)
    assert tx.handle_timer(32.3) == [Terminated(TerminationReason.COMPLETED)]


def test_rfc6026_accepted_delivers_every_2xx_and_never_acks() -> None:
    tx = ClientInviteTransaction(request("INVITE"), reliable=False)
    tx.start(0.0)
    ok = response(200, "INVITE")
    forked_ok = response(200, "INVITE", to_tag="other-fork")
    assert tx.handle(MessageReceived(ok), 0.4) == [Deliver(ok)]
    assert tx.state is ClientInviteState.ACCEPTED
    # Retransmitted and forked 2xx go up to the TU (which ACKs them); nothing is sent.
    assert tx.handle(MessageReceived(ok), 1.0) == [Deliver(ok)]
    assert tx.handle(MessageReceived(forked_ok), 2.0) == [Deliver(forked_ok)]
    assert tx.handle(MessageReceived(response(180, "INVITE")), 2.5) == []
    assert tx.deadline == pytest.approx(32.4)  # Timer M = 64*T1
    assert tx.handle_timer(32.4) == [Terminated(TerminationReason.COMPLETED)]


def test_per_transaction_retransmit_interval_overrides_t1() -> None:
    tx = ClientInviteTransaction(request("INVITE"), reliable=False, retransmit_interval=1.0)
    log = run(tx, until=100)
    assert sent_at(log) == [0, 1, 3, 7, 15, 31]
    assert outcome(log) == (32.0, TerminationReason.TIMEOUT)  # Timer B still 64*T1

    tx2 = ClientNonInviteTransaction(request(), reliable=False, retransmit_interval=0.25)
    assert sent_at(run(tx2, until=8))[:6] == [0, 0.25, 0.75, 1.75, 3.75, 7.75]

    with pytest.raises(ConfigError, match="retransmit_interval"):
        ClientInviteTransaction(request("INVITE"), reliable=False, retransmit_interval=0)


# --------------------------------------------------------------------- timeout roles


def _notifications(log: list[tuple[float, Output]]) -> list[tuple[float, str]]:
    kinds = (RetransmitTimeout, TransactionTimeout)
    return [(t, type(out).__name__) for t, out in log if isinstance(out, kinds)]


def test_user_agent_role_retransmits_silently_and_reports_the_transaction_timeout() -> None:
    tx = ClientInviteTransaction(request("INVITE"), reliable=False)
    log = run(tx, until=100)
    assert sent_at(log) == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert _notifications(log) == [(32.0, "TransactionTimeout")]


def test_app_retransmit_role_reports_ticks_and_sends_only_when_asked() -> None:
    role = TimeoutRole.USER_AGENT_APP_RETRANSMIT
    tx = ClientInviteTransaction(request("INVITE"), reliable=False, role=role)
    assert tx.start(0.0) == [Transmit(tx.request)]
    assert tx.handle_timer(0.5) == [RetransmitTimeout("A")]  # no Transmit by itself
    assert tx.handle(ApplicationRetransmit(), 0.6) == [Transmit(tx.request)]
    assert tx.deadline == 1.5  # the tick schedule is unchanged by the app's resend
    log = run(tx, until=100, start=False)
    assert sent_at(log) == []
    # JAIN's "User Agent" hears no TRANSACTION timeout on an INVITE: Timer B ends it silently.
    assert _notifications(log) == [(t, "RetransmitTimeout") for t in (1.5, 3.5, 7.5, 15.5, 31.5)]
    assert outcome(log) == (32.0, TerminationReason.TIMEOUT)
    # After the transaction ended, the app cannot resend through it.
    with pytest.raises(LocalProtocolError):
        tx.handle(ApplicationRetransmit(), 40.0)


def test_application_retransmit_is_refused_in_other_roles() -> None:
    tx = ClientInviteTransaction(request("INVITE"), reliable=False)
    tx.start(0.0)
    with pytest.raises(LocalProtocolError, match="USER_AGENT_APP_RETRANSMIT"):
        tx.handle(ApplicationRetransmit(), 0.1)
    assert tx.state is ClientInviteState.CALLING


def test_stateful_proxy_role_retransmits_and_reports_only_non_invite_timeouts() -> None:
    role = TimeoutRole.STATEFUL_PROXY
    invite = ClientInviteTransaction(request("INVITE"), reliable=False, role=role)
    log = run(invite, until=100)
    assert sent_at(log) == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # RFC 3261 §17.1.1.2
    assert _notifications(log) == []  # the seed: an INVITE is end to end for the proxy
    assert outcome(log) == (32.0, TerminationReason.TIMEOUT)
    options = ClientNonInviteTransaction(request(), reliable=False, role=role)
    assert _notifications(run(options, until=100)) == [(32.0, "TransactionTimeout")]


def test_stateless_proxy_role_builds_no_transaction() -> None:
    with pytest.raises(ConfigError, match="stateless"):
        ClientInviteTransaction(request("INVITE"), reliable=False, role=TimeoutRole.STATELESS_PROXY)


# --------------------------------------------------------------------- failures


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS"])
def test_transport_failure_is_an_outcome_distinct_from_a_timeout(method: str) -> None:
    cls = ClientInviteTransaction if method == "INVITE" else ClientNonInviteTransaction
    tx = cls(request(method), reliable=True)
    tx.start(0.0)
    assert tx.handle(TransportFailed("connection refused"), 0.01) == [
        TransportErrorOccurred("connection refused"),
        Terminated(TerminationReason.TRANSPORT_ERROR),
    ]
    assert tx.terminated and tx.deadline is None


def test_illegal_events_raise_and_leave_the_state_unchanged() -> None:
    tx = ClientNonInviteTransaction(request(), reliable=False)
    with pytest.raises(LocalProtocolError, match="start"):
        tx.handle(MessageReceived(response(200)), 0.0)
    tx.start(0.0)
    with pytest.raises(LocalProtocolError):
        tx.handle(MessageReceived(request()), 0.1)  # a request is not for a client tx
    assert tx.state is ClientNonInviteState.TRYING
    with pytest.raises(LocalProtocolError):
        tx.start(0.2)
    tx.handle(MessageReceived(response(200)), 0.3)
    tx.handle_timer(5.3)
    assert tx.terminated
    with pytest.raises(LocalProtocolError, match="TERMINATED"):
        tx.handle(MessageReceived(response(200)), 6.0)
    assert tx.state is ClientNonInviteState.TERMINATED


def test_machines_refuse_the_wrong_method() -> None:
    with pytest.raises(LocalProtocolError):
        ClientInviteTransaction(request("OPTIONS"), reliable=False)
    with pytest.raises(LocalProtocolError):
        ClientNonInviteTransaction(request("INVITE"), reliable=False)


@given(
    t1=st.floats(min_value=0.01, max_value=2.0),
    t2_factor=st.floats(min_value=1.0, max_value=16.0),
    timeout_ms=st.integers(min_value=1, max_value=32000),
)
def test_non_invite_schedule_backs_off_to_t2_and_ends_at_the_timeout(
    t1: float, t2_factor: float, timeout_ms: int
) -> None:
    config = TimerConfig(t1=t1, t2=t1 * t2_factor, sip_transaction_timeout=timeout_ms)
    tx = ClientNonInviteTransaction(request(), config, reliable=False)
    log = run(tx, until=10_000)
    times = [t for t, out in log if isinstance(out, Transmit)]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert times[0] == 0
    assert all(a <= b + 1e-9 for a, b in itertools.pairwise(gaps))  # never shrinks
    assert all(gap <= config.t2 + 1e-9 for gap in gaps)
    end = min(64 * t1, timeout_ms / 1000)
    assert outcome(log) == (pytest.approx(end), TerminationReason.TIMEOUT)
    assert all(t < end for t in times)


def test_a_late_timer_call_does_not_shift_the_schedule() -> None:
    """Timer E is re-armed from its scheduled instant: handled 0.2 s late at 0.7 s, the next
    retransmission is still due at 1.5 s (0.5 + 2 * T1), not at 1.7 s."""
    tx = ClientNonInviteTransaction(request(), TimerConfig(), reliable=False)
    tx.start(0.0)
    assert tx.deadline == 0.5
    late = tx.handle_timer(0.7)
    assert [type(o) for o in late] == [Transmit]
    assert tx.deadline == pytest.approx(1.5)


def test_a_timeout_due_with_a_retransmission_fires_first() -> None:
    """Timer E and Timer F both due at 1.5 s (sip_transaction_timeout=1500): the timeout fires
    first and ends the transaction, so no last retransmission goes out with it."""
    tx = ClientNonInviteTransaction(
        request(), TimerConfig(sip_transaction_timeout=1500), reliable=False
    )
    tx.start(0.0)
    tx.handle_timer(0.5)
    out = tx.handle_timer(1.5)
    assert not any(isinstance(o, Transmit) for o in out)
    assert isinstance(out[-1], Terminated) and out[-1].reason is TerminationReason.TIMEOUT
