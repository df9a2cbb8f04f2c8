"""Dialogs (RFC 3261 §12-§15): creation, forking, CSeq rules, in-dialog requests, 2xx/ACK."""

from __future__ import annotations

import random

import pytest

from trio_sip.proto.dialog import Dialog, DialogId, DialogSet, DialogState, glare_retry_delay
from trio_sip.proto.dialog_requests import (
    ACK_WAIT_TRANSITIONS,
    AckResender,
    AckTimeout,
    AckWait,
    AckWaitState,
    build_ack,
    build_bye,
    build_cancel,
    build_info,
    build_message,
    build_reinvite,
    build_request,
)
from trio_sip.proto.errors import LocalProtocolError, RemoteProtocolError
from trio_sip.proto.message import Request, Response, make_response
from trio_sip.proto.outputs import MessageReceived, Terminated, TerminationReason, Transmit
from trio_sip.proto.parse import parse_message
from trio_sip.proto.sdp import audio_offer
from trio_sip.proto.timers import TimerConfig

VIA2 = "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnew"

INVITE = Request(
    "INVITE",
    "sip:bob@biloxi.com",
    [
        ("Via", "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds"),
        ("Max-Forwards", "70"),
        ("To", "Bob <sip:bob@biloxi.com>"),
        ("From", "Alice <sip:alice@atlanta.com>;tag=1928301774"),
        ("Call-ID", "a84b4c76e66710@pc33.atlanta.com"),
        ("CSeq", "314159 INVITE"),
        ("Contact", "<sip:alice@pc33.atlanta.com>"),
        ("Route", "<sip:p1.atlanta.com;lr>"),
        ("Proxy-Authorization", 'Digest username="alice", realm="atlanta.com", nonce="n"'),
        ("Content-Type", "application/sdp"),
    ],
    b"v=0\r\n",
)


def answer(
    status: int, tag: str | None = "a6c85cf", contact: str = "<sip:bob@192.0.2.4>"
) -> Response:
    """Bob's response as it reaches Alice, through two record-routing proxies."""
    headers = [
        ("Record-Route", "<sip:p2.biloxi.com;lr>"),
        ("Record-Route", "<sip:p1.atlanta.com;lr>"),
        ("Contact", contact),
    ]
    return make_response(INVITE, status, to_tag=tag, headers=headers)


def state(d: Dialog) -> DialogState:
    """The dialog's state now (a call, so mypy does not keep an earlier narrowing)."""
    return d.state


def pending(d: Dialog) -> bool:
    return d.reinvite_pending


def uac_dialog(status: int = 200) -> Dialog:
    return Dialog.from_uac(INVITE, answer(status))


def incoming_invite() -> Request:
    """Alice's INVITE as it reaches Bob, with the proxies' Record-Route in path order."""
    return INVITE.evolve(
        headers=INVITE.headers.append("Record-Route", "<sip:p2.biloxi.com;lr>").append(
            "Record-Route", "<sip:p1.atlanta.com;lr>"
        )
    )


def uas_dialog(status: int = 200) -> tuple[Dialog, Request]:
    req = incoming_invite()
    resp = make_response(req, status, to_tag="bobtag", headers=[("Contact", "<sip:bob@192.0.2.4>")])
    return Dialog.from_uas(req, resp, rng=random.Random(1)), req


# ---------------------------------------------------------------------------- creation


def test_uac_dialog_from_2xx_reverses_record_route() -> None:
    d = uac_dialog(200)
    assert d.id == DialogId("a84b4c76e66710@pc33.atlanta.com", "1928301774", "a6c85cf")
    assert state(d) is DialogState.CONFIRMED
    assert [str(r.uri) for r in d.route_set] == ["sip:p1.atlanta.com;lr", "sip:p2.biloxi.com;lr"]
    assert str(d.remote_target) == "sip:bob@192.0.2.4"
    assert (d.local_seq, d.remote_seq) == (314159, None)
    assert str(d.local_uri) == '"Alice" <sip:alice@atlanta.com>;tag=1928301774'
    assert str(d.remote_uri) == '"Bob" <sip:bob@biloxi.com>;tag=a6c85cf'
    assert d.is_uac and not d.secure


def test_uac_early_dialog_from_1xx_with_tag_then_confirmed_with_2xx_route_set() -> None:
    d = uac_dialog(180)
    assert state(d) is DialogState.EARLY
    final = make_response(
        INVITE,
        200,
        to_tag="a6c85cf",
        headers=[("Record-Route", "<sip:p9.biloxi.com;lr>"), ("Contact", "<sip:bob@192.0.2.9>")],
    )
    d.receive_response(INVITE, final)
    assert state(d) is DialogState.CONFIRMED
    assert [str(r.uri) for r in d.route_set] == ["sip:p9.biloxi.com;lr"]  # recomputed, §13.2.2.4
    assert str(d.remote_target) == "sip:bob@192.0.2.9"


def test_no_dialog_from_a_1xx_without_to_tag_or_a_100() -> None:
    with pytest.raises(RemoteProtocolError):
        Dialog.from_uac(INVITE, answer(180, tag=None))
    ds = DialogSet()
    assert ds.uac_response(INVITE, answer(100, tag=None)) is None
    assert len(ds) == 0


def test_uas_dialog_keeps_record_route_order_and_takes_remote_target_from_request() -> None:
    d, _ = uas_dialog(200)
    assert d.id == DialogId("a84b4c76e66710@pc33.atlanta.com", "bobtag", "1928301774")
    assert [str(r.uri) for r in d.route_set] == ["sip:p2.biloxi.com;lr", "sip:p1.atlanta.com;lr"]
    assert str(d.remote_target) == "sip:alice@pc33.atlanta.com"
    assert (d.local_seq, d.remote_seq) == (None, 314159)
    assert str(d.local_uri) == '"Bob" <sip:bob@biloxi.com>;tag=bobtag'
    assert not d.is_uac


def test_secure_flag_needs_sips_and_tls() -> None:
    sips = INVITE.evolve(uri="sips:bob@biloxi.com")
    resp = make_response(sips, 200, to_tag="x", headers=[("Contact", "<sips:bob@192.0.2.4>")])
    assert Dialog.from_uac(sips, resp).secure
    assert not Dialog.from_uac(sips, resp, tls=False).secure
    assert not Dialog.from_uac(INVITE, answer(200), tls=True).secure


def test_uas_early_dialog_confirmed_by_our_2xx_and_ended_by_our_failure() -> None:
    d, req = uas_dialog(180)
    assert (state(d), d.incoming_invite_pending) == (DialogState.EARLY, True)
    d.response_sent(req, make_response(req, 200, to_tag="bobtag"))
    assert (state(d), d.incoming_invite_pending) == (DialogState.CONFIRMED, False)
    d2, req2 = uas_dialog(183)
    d2.response_sent(req2, make_response(req2, 486, to_tag="bobtag"))
    assert state(d2) is DialogState.TERMINATED


# ---------------------------------------------------------------------------- forking


def test_forked_invite_makes_one_early_dialog_per_to_tag() -> None:
    ds = DialogSet()
    a = ds.uac_response(INVITE, answer(180, tag="fork1", contact="<sip:bob@192.0.2.1>"))
    b = ds.uac_response(INVITE, answer(183, tag="fork2", contact="<sip:bob@192.0.2.2>"))
    again = ds.uac_response(INVITE, answer(180, tag="fork1", contact="<sip:bob@192.0.2.1>"))
    assert a is not None and b is not None and again is a
    assert len(ds) == 2
    assert {d.id.remote_tag for d in ds.early_dialogs(INVITE)} == {"fork1", "fork2"}
    winner = ds.uac_response(INVITE, answer(200, tag="fork2", contact="<sip:bob@192.0.2.2>"))
    assert winner is b and state(b) is DialogState.CONFIRMED
    assert state(a) is DialogState.EARLY
    assert ds.get(DialogId(INVITE.call_id, "1928301774", "fork1")) is a


def test_failure_ends_every_early_dialog_of_the_invite() -> None:
    ds = DialogSet()
    a = ds.uac_response(INVITE, answer(180, tag="fork1"))
    b = ds.uac_response(INVITE, answer(180, tag="fork2"))
    assert ds.uac_response(INVITE, answer(486, tag="fork3")) is None
    assert a is not None and b is not None
    assert state(a) is state(b) is DialogState.TERMINATED


# ---------------------------------------------------------------------------- requests


def test_bye_fields_follow_section_12_2_1_1() -> None:
    d = uac_dialog()
    bye = parse_message(bytes(build_bye(d, via=VIA2)))
    assert isinstance(bye, Request)
    assert bye.start_line() == "BYE sip:bob@192.0.2.4 SIP/2.0"  # loose routing: remote target
    assert bye.headers["Via"] == VIA2
    assert bye.headers["To"] == '"Bob" <sip:bob@biloxi.com>;tag=a6c85cf'
    assert bye.headers["From"] == '"Alice" <sip:alice@atlanta.com>;tag=1928301774'
    assert bye.call_id == "a84b4c76e66710@pc33.atlanta.com"
    assert str(bye.cseq) == "314160 BYE"
    assert bye.headers.get_all("Route") == ["<sip:p1.atlanta.com;lr>", "<sip:p2.biloxi.com;lr>"]
    assert bye.max_forwards == 70
    assert "Contact" not in bye.headers  # not a target refresh
    assert d.local_seq == 314160


def test_strict_routing_puts_first_route_in_request_uri_and_target_last() -> None:
    d = uac_dialog()
    d.route_set = (
        *parse_message(
            b"SIP/2.0 200 OK\r\nRecord-Route: <sip:strict.example.com;method=INVITE>, "
            b"<sip:p2.biloxi.com;lr>\r\n\r\n"
        ).record_routes,
    )
    bye = build_bye(d, via=VIA2)
    assert bye.uri_text == "sip:strict.example.com"  # the method parameter is stripped
    assert bye.headers.get_all("Route") == ["<sip:p2.biloxi.com;lr>", "<sip:bob@192.0.2.4>"]


def test_no_route_set_sends_to_remote_target_without_route() -> None:
    d = uac_dialog()
    d.route_set = ()
    info = build_info(d, via=VIA2, body=b"Signal=5\r\n", content_type="application/dtmf-relay")
    assert info.uri_text == "sip:bob@192.0.2.4"
    assert "Route" not in info.headers
    assert info.headers["Content-Type"] == "application/dtmf-relay"
    assert info.body == b"Signal=5\r\n"
    assert str(info.cseq) == "314160 INFO"


def test_message_request() -> None:
    d = uac_dialog()
    m = build_message(d, via=VIA2, body="héllo".encode())
    assert str(m.cseq) == "314160 MESSAGE"
    assert m.headers["Content-Type"] == "text/plain;charset=UTF-8"
    assert m.body == "héllo".encode()


def test_ack_for_2xx_reuses_invite_cseq_number_and_credentials() -> None:
    d = uac_dialog()
    ack = build_ack(d, INVITE, via=VIA2)
    assert ack.start_line() == "ACK sip:bob@192.0.2.4 SIP/2.0"
    assert str(ack.cseq) == "314159 ACK"
    assert ack.headers["Proxy-Authorization"] == INVITE.headers["Proxy-Authorization"]
    assert ack.headers["To"] == '"Bob" <sip:bob@biloxi.com>;tag=a6c85cf'
    assert ack.headers.get_all("Route") == ["<sip:p1.atlanta.com;lr>", "<sip:p2.biloxi.com;lr>"]
    assert ack.vias[0].branch == "z9hG4bKnew"
    assert d.local_seq == 314159  # an ACK does not use a new number
    assert str(build_bye(d, via=VIA2).cseq) == "314160 BYE"


def test_cancel_copies_the_fields_section_9_1_names() -> None:
    invite = INVITE.evolve(
        headers=INVITE.headers.append("Via", "SIP/2.0/UDP second;branch=z9hG4bK2")
    )
    cancel = build_cancel(invite)
    assert cancel.start_line() == "CANCEL sip:bob@biloxi.com SIP/2.0"
    assert cancel.headers.get_all("Via") == ["SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds"]
    assert cancel.headers["To"] == "Bob <sip:bob@biloxi.com>"  # no tag, as in the INVITE
    assert cancel.headers["From"] == "Alice <sip:alice@atlanta.com>;tag=1928301774"
    assert cancel.call_id == invite.call_id
    assert str(cancel.cseq) == "314159 CANCEL"
    assert cancel.headers.get_all("Route") == ["<sip:p1.atlanta.com;lr>"]
    assert cancel.headers["Proxy-Authorization"] == INVITE.headers["Proxy-Authorization"]
    assert cancel.body == b"" and "Content-Type" not in cancel.headers


def test_reinvite_hold_carries_sdp_contact_and_next_cseq() -> None:
    d = uac_dialog()
    offer = audio_offer("192.0.2.10", 40000, rng=random.Random(1))
    reinvite = build_reinvite(d, via=VIA2, sdp=offer.hold())
    assert str(reinvite.cseq) == "314160 INVITE"
    assert reinvite.headers["Contact"] == "<sip:alice@pc33.atlanta.com>"
    assert reinvite.headers["Content-Type"] == "application/sdp"
    assert b"a=sendonly\r\n" in reinvite.body
    assert d.reinvite_pending
    with pytest.raises(LocalProtocolError):
        build_reinvite(d, via=VIA2, sdp=offer.retrieve())
    # the 2xx refreshes the remote target and ends the pending state
    ok = make_response(reinvite, 200, headers=[("Contact", "<sip:bob@198.51.100.7:5070>")])
    d.receive_response(reinvite, ok)
    assert not pending(d)
    assert str(d.remote_target) == "sip:bob@198.51.100.7:5070"
    retrieve = build_reinvite(d, via=VIA2, sdp=offer.retrieve())
    assert retrieve.uri_text == "sip:bob@198.51.100.7:5070" and b"a=sendrecv" in retrieve.body


# ---------------------------------------------------------------------------- incoming checks


def in_dialog(method: str, seq: int, to_tag: str = "bobtag", contact: str | None = None) -> Request:
    headers = [
        ("Via", "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKin"),
        ("To", f"Bob <sip:bob@biloxi.com>;tag={to_tag}"),
        ("From", "Alice <sip:alice@atlanta.com>;tag=1928301774"),
        ("Call-ID", "a84b4c76e66710@pc33.atlanta.com"),
        ("CSeq", f"{seq} {method}"),
    ]
    if contact:
        headers.append(("Contact", contact))
    return Request(method, "sip:bob@192.0.2.4", headers)


def test_lower_cseq_gets_500_and_unknown_dialog_gets_481() -> None:
    ds = DialogSet()
    d, _ = uas_dialog()
    ds.add(d)
    assert ds.check_request(in_dialog("INFO", 314160)) is d
    assert d.remote_seq == 314160
    old = ds.check_request(in_dialog("INFO", 314150))
    assert isinstance(old, Response) and old.status_code == 500
    assert d.remote_seq == 314160
    unknown = ds.check_request(in_dialog("BYE", 314161, to_tag="nosuch"))
    assert isinstance(unknown, Response) and unknown.status_code == 481
    assert unknown.headers["To"].endswith("tag=nosuch")
    assert ds.check_request(in_dialog("ACK", 1, to_tag="nosuch")) is None  # never answered
    assert ds.check_request(INVITE) is None  # no To tag: not in a dialog


def test_incoming_bye_terminates_then_481() -> None:
    d, _ = uas_dialog()
    assert d.receive_request(in_dialog("BYE", 314160)) is None
    assert state(d) is DialogState.TERMINATED
    late = d.receive_request(in_dialog("INFO", 314161))
    assert late is not None and late.status_code == 481


def test_incoming_target_refresh_replaces_remote_target() -> None:
    d, _ = uas_dialog()
    assert d.receive_request(in_dialog("INVITE", 314160, contact="<sip:alice@203.0.113.5>")) is None
    assert str(d.remote_target) == "sip:alice@203.0.113.5"
    # §14.2: a second INVITE before our final answer to the first: 500 + Retry-After 0..10
    second = d.receive_request(in_dialog("INVITE", 314161))
    assert second is not None and second.status_code == 500
    assert second.retry_after is not None and 0 <= second.retry_after.seconds <= 10


@pytest.mark.parametrize("status", [481, 408])
def test_481_or_408_to_our_request_terminates(status: int) -> None:
    d = uac_dialog()
    info = build_info(d, via=VIA2)
    d.receive_response(info, make_response(info, status))
    assert state(d) is DialogState.TERMINATED


def test_bye_answer_terminates_uac_dialog() -> None:
    d = uac_dialog()
    bye = build_bye(d, via=VIA2)
    d.receive_response(bye, make_response(bye, 200))
    assert state(d) is DialogState.TERMINATED


# ---------------------------------------------------------------------------- glare


def test_glare_incoming_reinvite_while_ours_pending_gets_491() -> None:
    d = uac_dialog()
    ours = build_reinvite(d, via=VIA2, sdp=None)
    theirs = Request(
        "INVITE",
        "sip:alice@pc33.atlanta.com",
        [
            ("Via", "SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKb"),
            ("To", "Alice <sip:alice@atlanta.com>;tag=1928301774"),
            ("From", "Bob <sip:bob@biloxi.com>;tag=a6c85cf"),
            ("Call-ID", "a84b4c76e66710@pc33.atlanta.com"),
            ("CSeq", "1 INVITE"),
        ],
    )
    reply = d.receive_request(theirs)
    assert reply is not None and (reply.status_code, reply.reason) == (491, "Request Pending")
    d.receive_response(ours, make_response(ours, 491))
    assert not pending(d)
    assert 2.1 <= d.glare_retry_delay(random.Random(5)) <= 4.0


def test_glare_retry_delay_ranges_in_10ms_units() -> None:
    rng = random.Random(42)
    owner = [glare_retry_delay(True, rng) for _ in range(2000)]
    other = [glare_retry_delay(False, rng) for _ in range(2000)]
    assert min(owner) >= 2.1 and max(owner) <= 4.0
    assert min(other) >= 0.0 and max(other) <= 2.0
    assert all(abs(v * 100 - round(v * 100)) < 1e-9 for v in owner + other)
    assert min(owner) < 2.2 and max(owner) > 3.9 and min(other) < 0.1 and max(other) > 1.9
    d, _ = uas_dialog()
    assert 0.0 <= d.glare_retry_delay(random.Random(3)) <= 2.0  # the UAS does not own it


# ---------------------------------------------------------------------------- 2xx / ACK


def drive(machine: AckWait | AckResender, end: float) -> list[tuple[float, object]]:
    seen: list[tuple[float, object]] = []
    while machine.deadline is not None and machine.deadline <= end:
        now = machine.deadline
        seen.extend((now, out) for out in machine.handle_timer(now))
    return seen


def test_uas_2xx_retransmissions_double_to_t2_and_give_up_at_64_t1() -> None:
    req = incoming_invite()
    ok = make_response(req, 200, to_tag="bobtag")
    wait = AckWait(ok, TimerConfig())
    assert wait.start(100.0) == [Transmit(ok)]
    seen = drive(wait, 1000.0)
    sends = [t - 100 for t, out in seen if out == Transmit(ok)]
    assert sends == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert seen[-2:] == [
        (132.0, AckTimeout("no ACK within 64*T1 = 32 s")),
        (132.0, Terminated(TerminationReason.TIMEOUT)),
    ]
    assert wait.state is AckWaitState.TIMED_OUT and wait.deadline is None
    assert {s for row in ACK_WAIT_TRANSITIONS.values() for s in row.values()} == set(AckWaitState)


def test_uas_ack_stops_retransmissions() -> None:
    req = incoming_invite()
    ok = make_response(req, 200, to_tag="bobtag")
    wait = AckWait(ok, TimerConfig(t1=0.1, t2=0.4))
    wait.start(0.0)
    assert [t for t, _ in drive(wait, 0.35)] == [pytest.approx(0.1), pytest.approx(0.3)]
    assert wait.handle(MessageReceived(in_dialog("ACK", 999)), 0.36) == []  # other CSeq
    ack = in_dialog("ACK", 314159)
    assert wait.handle(MessageReceived(ack), 0.36) == [Terminated(TerminationReason.COMPLETED)]
    assert wait.state is AckWaitState.CONFIRMED and wait.deadline is None


def test_uac_resends_ack_for_each_2xx_retransmission_for_64_t1() -> None:
    d = uac_dialog()
    ack = build_ack(d, INVITE, via=VIA2)
    resender = AckResender(ack)
    assert resender.start(10.0) == [Transmit(ack)]
    assert resender.handle(MessageReceived(answer(200)), 10.5) == [Transmit(ack)]
    assert resender.handle(MessageReceived(answer(200)), 11.5) == [Transmit(ack)]
    assert resender.handle(MessageReceived(answer(180)), 11.6) == []
    assert resender.deadline == 42.0
    assert resender.handle_timer(42.0) == [Terminated(TerminationReason.COMPLETED)]
    assert resender.handle(MessageReceived(answer(200)), 43.0) == []


def test_generic_request_with_explicit_headers() -> None:
    d = uac_dialog()
    upd = build_request(d, "UPDATE", via=VIA2, headers=[("Supported", "timer")])
    assert upd.headers["Contact"] == "<sip:alice@pc33.atlanta.com>"  # target refresh
    assert upd.supported == ("timer",)


# ---------------------------------------------------------------------------- kept as text


def test_uas_dialog_addresses_read_back_as_the_parsed_headers_with_the_dialog_tags() -> None:
    # The dialog keeps the From / To / Contact texts (not the messages' parsed views) and
    # parses them again on each read; the values are those of the parsed headers.
    d, req = uas_dialog()
    assert d.local_uri == req.to.with_tag("bobtag")
    assert d.remote_uri == req.from_
    assert d.remote_target == req.contacts[0].uri
    assert d.local_contact is not None and str(d.local_contact) == "<sip:bob@192.0.2.4>"
    assert d.remote_uri is not req.from_  # parsed again: nothing of the message is kept


def test_uac_dialog_addresses_read_back_as_the_parsed_headers_with_the_dialog_tags() -> None:
    d = uac_dialog()
    assert d.local_uri == INVITE.from_
    assert d.remote_uri == INVITE.to.with_tag("a6c85cf")
    assert d.local_contact == INVITE.contacts[0]


def test_requests_carry_the_formatted_addresses_not_the_header_text() -> None:
    # Header text as a peer may write it (no quotes, a To without tag, a Contact with
    # parameters): the BYE carries the addresses written the way the old parsed views were.
    req = Request(
        "INVITE",
        "sip:bob@biloxi.com",
        [
            ("Via", "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKx"),
            ("To", "Bob  <sip:bob@biloxi.com>"),
            ("From", "sip:alice@atlanta.com;tag=t1"),
            ("Call-ID", "c1"),
            ("CSeq", "1 INVITE"),
            ("Contact", "<sip:alice@pc33.atlanta.com;transport=udp>;expires=60"),
        ],
    )
    resp = make_response(req, 200, to_tag="bobtag", headers=[("Contact", "<sip:bob@192.0.2.4>")])
    d = Dialog.from_uas(req, resp)
    bye = build_bye(d, via=VIA2)
    assert bye.headers["To"] == str(req.from_) == "<sip:alice@atlanta.com>;tag=t1"
    assert bye.headers["From"] == str(req.to.with_tag("bobtag"))
    assert bye.uri_text == str(req.contacts[0].uri) == "sip:alice@pc33.atlanta.com;transport=udp"
    reinvite = build_reinvite(d, via=VIA2, sdp=None)
    assert reinvite.headers["Contact"] == "<sip:bob@192.0.2.4>"


def test_dialog_built_with_objects_keeps_them_and_setters_replace_values() -> None:
    base = uac_dialog()
    local, remote, target = base.local_uri, base.remote_uri, base.remote_target
    d = Dialog(
        id=base.id,
        state=DialogState.CONFIRMED,
        is_uac=True,
        local_uri=local,
        remote_uri=remote,
        remote_target=target,
        route_set=(),
        local_seq=1,
        remote_seq=None,
    )
    assert d.local_uri is local and d.remote_uri is remote and d.remote_target is target
    assert d.local_contact is None
    new_target = parse_message(b"SIP/2.0 200 OK\r\nContact: <sip:b@198.51.100.1>\r\n\r\n")
    d.remote_target = new_target.contacts[0].uri
    d.local_contact = INVITE.contacts[0]
    assert build_reinvite(d, via=VIA2, sdp=None).uri_text == "sip:b@198.51.100.1"
    assert build_bye(d, via=VIA2).uri_text == "sip:b@198.51.100.1"
    assert str(d.local_contact) == "<sip:alice@pc33.atlanta.com>"
    assert "Dialog(id=DialogId(" in repr(d)
