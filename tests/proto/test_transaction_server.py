"""Server transactions (RFC 3261 §17.2, RFC 6026) on a virtual clock."""

from __future__ import annotations

import pytest

from trio_sip.proto.errors import LocalProtocolError
from trio_sip.proto.message import Request, Response, make_response
from trio_sip.proto.outputs import (
    ApplicationRetransmit,
    Deliver,
    MessageReceived,
    Output,
    RetransmitTimeout,
    SendResponse,
    Terminated,
    TerminationReason,
    TransactionTimeout,
    Transmit,
    TransportErrorOccurred,
    TransportFailed,
)
from trio_sip.proto.timers import TimerConfig
from trio_sip.proto.transaction import (
    ServerInviteState,
    ServerInviteTransaction,
    ServerNonInviteState,
    ServerNonInviteTransaction,
    TimeoutRole,
)

Machine = ServerInviteTransaction | ServerNonInviteTransaction


def request(method: str = "INVITE", *, branch: str = "z9hG4bKnashds8") -> Request:
    cseq_method = "INVITE" if method == "ACK" else method
    return Request(
        method,
        "sip:bob@biloxi.com",
        [
            ("Via", f"SIP/2.0/UDP pc33.atlanta.com;branch={branch}"),
            ("Max-Forwards", "70"),
            ("To", "Bob <sip:bob@biloxi.com>" + (";tag=314159" if method == "ACK" else "")),
            ("From", "Alice <sip:alice@atlanta.com>;tag=1928301774"),
            ("Call-ID", "a84b4c76e66710"),
            ("CSeq", f"1 {cseq_method}"),
        ],
    )


def answer(req: Request, status: int) -> Response:
    return make_response(req, status, to_tag=None if status == 100 else "314159")


def fire_until(machine: Machine, until: float) -> list[tuple[float, Output]]:
    log: list[tuple[float, Output]] = []
    while machine.deadline is not None and machine.deadline <= until:
        now = machine.deadline
        log += [(now, out) for out in machine.handle_timer(now)]
    return log


def sent(log: list[tuple[float, Output]]) -> list[tuple[float, int]]:
    return [
        (round(t, 6), out.message.status_code)
        for t, out in log
        if isinstance(out, Transmit) and isinstance(out.message, Response)
    ]


# --------------------------------------------------------------------- INVITE server


def test_start_delivers_the_invite_and_100_trying_goes_out_at_200_ms() -> None:
    invite = request()
    tx = ServerInviteTransaction(invite, reliable=False)
    assert tx.start(10.0) == [Deliver(invite)]
    assert tx.deadline == pytest.approx(10.2)
    (out,) = tx.handle_timer(10.2)
    assert isinstance(out, Transmit) and isinstance(out.message, Response)
    assert (out.message.status_code, out.message.reason) == (100, "Trying")
    assert out.message.to.tag is None
    assert out.message.vias[0].branch == invite.vias[0].branch
    assert tx.state is ServerInviteState.PROCEEDING and tx.deadline is None


def test_no_100_trying_if_the_tu_answers_within_200_ms() -> None:
    invite = request()
    tx = ServerInviteTransaction(invite, reliable=True)
    tx.start(0.0)
    ringing = answer(invite, 180)
    assert tx.handle(SendResponse(ringing), 0.1) == [Transmit(ringing)]
    assert tx.deadline is None
    # A retransmitted INVITE gets the most recent provisional again (§17.2.1).
    assert tx.handle(MessageReceived(invite), 0.5) == [Transmit(ringing)]


def test_lost_ack_retransmits_the_final_at_timer_g_intervals_until_h() -> None:
    invite = request()
    tx = ServerInviteTransaction(invite, reliable=False)
    tx.start(0.0)
    busy = answer(invite, 486)
    assert tx.handle(SendResponse(busy), 0.1) == [Transmit(busy)]
    assert tx.state is ServerInviteState.COMPLETED
    log = fire_until(tx, 100)
    times = [t for t, code in sent(log)]
    # G = T1 doubling to T2 (relative to 0.1), H = 64*T1 = 32 s after the final response.
    assert times == pytest.approx([0.6, 1.6, 3.6, 7.6, 11.6, 15.6, 19.6, 23.6, 27.6, 31.6])
    assert {code for t, code in sent(log)} == {486}
    assert [(round(t, 6), out) for t, out in log if not isinstance(out, Transmit)] == [
        (32.1, TransactionTimeout("H")),
        (32.1, Terminated(TerminationReason.TIMEOUT)),
    ]


def test_ack_confirms_then_timer_i_absorbs_acks() -> None:
    invite = request()
    tx = ServerInviteTransaction(invite, reliable=False)
    tx.start(0.0)
    tx.handle(SendResponse(answer(invite, 404)), 0.0)
    fire_until(tx, 0.5)  # one retransmission at 0.5
    ack = request("ACK")
    assert tx.handle(MessageReceived(ack), 0.7) == []
    assert tx.state is ServerInviteState.CONFIRMED
    assert tx.deadline == pytest.approx(5.7)  # Timer I = T4; G and H are stopped
    assert tx.handle(MessageReceived(ack), 1.0) == []
    assert tx.handle(MessageReceived(invite), 1.1) == []
    assert fire_until(tx, 10) == [(5.7, Terminated(TerminationReason.COMPLETED))]


def test_retransmitted_invite_in_completed_gets_the_final_again() -> None:
    invite = request()
    tx = ServerInviteTransaction(invite, reliable=False)
    tx.start(0.0)
    busy = answer(invite, 486)
    tx.handle(SendResponse(busy), 0.0)
    assert tx.handle(MessageReceived(invite), 0.2) == [Transmit(busy)]


def test_reliable_final_sends_once_and_ack_ends_at_once() -> None:
    invite = request()
    tx = ServerInviteTransaction(invite, reliable=True)
    tx.start(0.0)
    tx.handle(SendResponse(answer(invite, 603)), 0.05)
    assert tx.deadline == pytest.approx(32.05)  # only Timer H, no Timer G
    assert tx.handle(MessageReceived(request("ACK")), 0.1) == [
        Terminated(TerminationReason.COMPLETED)  # Timer I = 0 over TCP
    ]


def test_rfc6026_accepted_absorbs_invites_passes_acks_and_tu_2xx() -> None:
    invite = request()
    tx = ServerInviteTransaction(invite, reliable=False)
    tx.start(0.0)
    ok = answer(invite, 200)
    assert tx.handle(SendResponse(ok), 0.1) == [Transmit(ok)]
    assert tx.state is ServerInviteState.ACCEPTED
    assert tx.deadline == pytest.approx(32.1)  # Timer L; the machine never resends a 2xx
    assert tx.handle(MessageReceived(invite), 0.6) == []  # absorbed, not to the TU
    assert tx.handle(SendResponse(ok), 0.6) == [Transmit(ok)]  # the TU's retransmission
    ack = request("ACK")
    assert tx.handle(MessageReceived(ack), 0.7) == [Deliver(ack)]
    with pytest.raises(LocalProtocolError):
        tx.handle(SendResponse(answer(invite, 486)), 0.8)
    assert tx.state is ServerInviteState.ACCEPTED
    assert fire_until(tx, 100) == [(32.1, Terminated(TerminationReason.COMPLETED))]


def test_per_transaction_retransmit_interval_sets_the_first_timer_g() -> None:
    invite = request()
    tx = ServerInviteTransaction(invite, reliable=False, retransmit_interval=1.0)
    tx.start(0.0)
    tx.handle(SendResponse(answer(invite, 486)), 0.0)
    assert [t for t, _ in sent(fire_until(tx, 12))] == [1.0, 3.0, 7.0, 11.0]


@pytest.mark.parametrize("role", [TimeoutRole.USER_AGENT, TimeoutRole.STATEFUL_PROXY])
def test_stack_retransmitting_roles_report_the_missing_ack_as_a_transaction_timeout(
    role: TimeoutRole,
) -> None:
    invite = request()
    tx = ServerInviteTransaction(invite, TimerConfig(t1=0.1, t2=0.4), reliable=False, role=role)
    tx.start(0.0)
    tx.handle(SendResponse(answer(invite, 480)), 0.0)
    log = fire_until(tx, 100)
    assert [out for t, out in log if not isinstance(out, Transmit)] == [
        TransactionTimeout("H"),
        Terminated(TerminationReason.TIMEOUT),
    ]
    assert log[-1][0] == pytest.approx(6.4)  # 64 * T1


def test_app_retransmit_role_reports_timer_g_and_resends_only_when_asked() -> None:
    invite = request()
    role = TimeoutRole.USER_AGENT_APP_RETRANSMIT
    tx = ServerInviteTransaction(invite, reliable=False, role=role)
    tx.start(0.0)
    with pytest.raises(LocalProtocolError):  # nothing to resend before the final response
        tx.handle(ApplicationRetransmit(), 0.05)
    busy = answer(invite, 486)
    assert tx.handle(SendResponse(busy), 0.1) == [Transmit(busy)]
    assert tx.handle_timer(0.6) == [RetransmitTimeout("G")]
    assert tx.handle(ApplicationRetransmit(), 0.7) == [Transmit(busy)]
    log = fire_until(tx, 100)
    assert sent(log) == []
    assert [round(t, 6) for t, out in log if isinstance(out, RetransmitTimeout)] == [
        1.6, 3.6, 7.6, 11.6, 15.6, 19.6, 23.6, 27.6, 31.6
    ]  # fmt: skip
    # JAIN's "User Agent" hears no TRANSACTION on an INVITE: Timer H ends it silently.
    assert log[-1] == (pytest.approx(32.1), Terminated(TerminationReason.TIMEOUT))
    assert not [out for t, out in log if isinstance(out, TransactionTimeout)]


def test_application_retransmit_is_refused_where_the_stack_retransmits() -> None:
    invite = request()
    tx = ServerInviteTransaction(invite, reliable=False)
    tx.start(0.0)
    tx.handle(SendResponse(answer(invite, 486)), 0.0)
    with pytest.raises(LocalProtocolError, match="USER_AGENT_APP_RETRANSMIT"):
        tx.handle(ApplicationRetransmit(), 0.1)
    assert tx.state is ServerInviteState.COMPLETED


def test_server_transport_failure_is_a_distinct_outcome() -> None:
    invite = request()
    tx = ServerInviteTransaction(invite, reliable=True)
    tx.start(0.0)
    tx.handle(SendResponse(answer(invite, 180)), 0.0)
    assert tx.handle(TransportFailed("connection reset"), 0.3) == [
        TransportErrorOccurred("connection reset"),
        Terminated(TerminationReason.TRANSPORT_ERROR),
    ]
    assert tx.state is ServerInviteState.TERMINATED and tx.deadline is None


def test_a_second_final_response_is_refused_and_changes_nothing() -> None:
    invite = request()
    tx = ServerInviteTransaction(invite, reliable=False)
    tx.start(0.0)
    tx.handle(SendResponse(answer(invite, 486)), 0.0)
    deadline = tx.deadline
    with pytest.raises(LocalProtocolError, match="COMPLETED"):
        tx.handle(SendResponse(answer(invite, 200)), 0.1)
    assert tx.state is ServerInviteState.COMPLETED and tx.deadline == deadline


# --------------------------------------------------------------------- non-INVITE server


def test_non_invite_server_absorbs_in_trying_then_answers_retransmissions() -> None:
    options = request("OPTIONS")
    tx = ServerNonInviteTransaction(options, reliable=False)
    assert tx.start(0.0) == [Deliver(options)]
    assert tx.deadline is None
    assert tx.handle(MessageReceived(options), 0.5) == []  # Trying: discarded
    trying = answer(options, 100)
    assert tx.handle(SendResponse(trying), 0.6) == [Transmit(trying)]
    assert tx.state is ServerNonInviteState.PROCEEDING
    assert tx.handle(MessageReceived(options), 1.5) == [Transmit(trying)]
    ok = answer(options, 200)
    assert tx.handle(SendResponse(ok), 2.0) == [Transmit(ok)]
    assert tx.state is ServerNonInviteState.COMPLETED
    assert tx.handle(MessageReceived(options), 3.5) == [Transmit(ok)]
    assert tx.deadline == pytest.approx(34.0)  # Timer J = 64*T1 over UDP
    with pytest.raises(LocalProtocolError):
        tx.handle(SendResponse(answer(options, 500)), 4.0)
    assert fire_until(tx, 100) == [(34.0, Terminated(TerminationReason.COMPLETED))]


def test_non_invite_server_over_tcp_ends_with_the_final_response() -> None:
    bye = request("BYE")
    tx = ServerNonInviteTransaction(bye, reliable=True)
    tx.start(0.0)
    ok = answer(bye, 200)
    assert tx.handle(SendResponse(ok), 0.1) == [
        Transmit(ok),
        Terminated(TerminationReason.COMPLETED),
    ]


def test_server_machines_refuse_responses_and_wrong_methods() -> None:
    invite = request()
    tx = ServerInviteTransaction(invite, reliable=False)
    tx.start(0.0)
    with pytest.raises(LocalProtocolError):
        tx.handle(MessageReceived(answer(invite, 200)), 0.1)
    with pytest.raises(LocalProtocolError):
        ServerInviteTransaction(request("OPTIONS"), reliable=False)
    with pytest.raises(LocalProtocolError):
        ServerNonInviteTransaction(invite, reliable=False)


def test_an_ack_before_any_final_response_is_absorbed() -> None:
    invite = request()
    tx = ServerInviteTransaction(invite, reliable=False)
    tx.start(0.0)
    assert tx.handle(MessageReceived(request("ACK")), 0.1) == []
    assert tx.state is ServerInviteState.PROCEEDING
    assert tx.deadline == pytest.approx(0.2)  # the 100 Trying timer still runs
