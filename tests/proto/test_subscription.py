"""RFC 6665 subscriber machine and notifier helpers."""

from __future__ import annotations

import random
from collections.abc import Sequence

from trio_sip.proto.dialog import Dialog
from trio_sip.proto.message import Request, Response, make_response
from trio_sip.proto.registration import RequestFailed, ResponseReceived, SendRequest, StateChanged
from trio_sip.proto.subscription import (
    TRANSITIONS,
    Notified,
    NotifyReceived,
    SendResponse,
    Subscription,
    SubscriptionState,
    SubState,
    answer_subscribe,
    build_notify,
    parse_subscription_state,
)

S = SubscriptionState
VIA = "SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKn1"


def make(**kw: float) -> Subscription:
    return Subscription(
        "<sip:alice@atlanta.com>",
        "presence",
        local="<sip:bob@biloxi.com>",
        contact="<sip:bob@192.0.2.4>",
        rng=random.Random(11),
        via="SIP/2.0/UDP 192.0.2.4:5060",
        accept="application/pidf+xml",
        **kw,  # type: ignore[arg-type]
    )


def sent(outputs: Sequence[object]) -> Request:
    requests = [o.request for o in outputs if isinstance(o, SendRequest)]
    assert len(requests) == 1
    return requests[0]


def changes(outputs: Sequence[object]) -> list[tuple[object, object]]:
    return [(o.old, o.new) for o in outputs if isinstance(o, StateChanged)]


def answered(outputs: Sequence[object]) -> list[int]:
    return [o.response.status_code for o in outputs if isinstance(o, SendResponse)]


def accept(req: Request, expires: int = 600) -> ResponseReceived:
    resp, granted = answer_subscribe(
        req, to_tag="ntag", contact="<sip:alice@198.51.100.3>", max_expires=expires, status=202
    )
    assert granted == min(expires, 3600)
    return ResponseReceived(resp)


def notify_for(
    req: Request, state: str, seq: int = 1, tag: str = "ntag", route: str | None = None
) -> Request:
    headers = [
        ("Via", "SIP/2.0/UDP 198.51.100.3;branch=z9hG4bKn"),
        ("To", req.headers["From"]),
        ("From", f"<sip:alice@atlanta.com>;tag={tag}"),
        ("Call-ID", req.call_id),
        ("CSeq", f"{seq} NOTIFY"),
        ("Contact", "<sip:alice@198.51.100.3>"),
        ("Event", "presence"),
        ("Subscription-State", state),
    ]
    if route:
        headers.append(("Record-Route", route))
    return Request("NOTIFY", "sip:bob@192.0.2.4", headers, b"<presence/>")


def test_subscribe_fields() -> None:
    sub = make()
    out = sub.start(0.0)
    assert changes(out) == [(S.IDLE, S.SUBSCRIBING)]
    req = sent(out)
    assert req.start_line() == "SUBSCRIBE sip:alice@atlanta.com SIP/2.0"
    assert req.headers["Event"] == "presence" and req.expires == 3600
    assert req.headers["Accept"] == "application/pidf+xml"
    assert req.to.tag is None and req.from_.tag is not None
    assert str(req.cseq) == "1 SUBSCRIBE" and req.headers["Contact"] == "<sip:bob@192.0.2.4>"


def test_2xx_makes_the_dialog_then_notify_active_and_refresh_inside_dialog() -> None:
    sub = make()
    req = sent(sub.start(0.0))
    sub.handle(accept(req), 0.5)  # granted 600 s
    assert sub.dialog is not None and sub.dialog.id.remote_tag == "ntag"
    assert sub.state is S.SUBSCRIBING and sub.deadline == 0.5 + 568
    out = sub.handle(NotifyReceived(notify_for(req, "active;expires=599")), 0.6)
    assert answered(out) == [200]
    assert [o.state for o in out if isinstance(o, Notified)] == [SubState("active", None, 599)]
    assert changes(out) == [(S.SUBSCRIBING, S.ACTIVE)]
    assert sub.deadline == 0.6 + 567
    refresh = sent(sub.handle_timer(567.6))
    assert refresh.uri_text == "sip:alice@198.51.100.3"  # the dialog's remote target
    assert refresh.to.tag == "ntag" and refresh.call_id == req.call_id
    assert (str(refresh.cseq), refresh.expires) == ("2 SUBSCRIBE", 3600)
    assert sub.state.value == "active"


def test_notify_before_2xx_creates_the_dialog() -> None:
    sub = make()
    req = sent(sub.start(0.0))
    out = sub.handle(
        NotifyReceived(notify_for(req, "pending;expires=3600", route="<sip:p.atlanta.com;lr>")), 0.1
    )
    assert answered(out) == [200] and changes(out) == [(S.SUBSCRIBING, S.PENDING)]
    d = sub.dialog
    assert isinstance(d, Dialog)
    assert (d.id.call_id, d.id.local_tag, d.id.remote_tag) == (req.call_id, req.from_.tag, "ntag")
    assert [str(r.uri) for r in d.route_set] == ["sip:p.atlanta.com;lr"]
    assert str(d.remote_target) == "sip:alice@198.51.100.3"
    sub.handle(accept(req), 0.2)  # the late 2xx joins the same dialog
    assert sub.dialog is d and sub.state is S.PENDING


def test_notify_checks() -> None:
    sub = make()
    req = sent(sub.start(0.0))
    sub.handle(accept(req), 0.1)
    assert answered(sub.handle(NotifyReceived(notify_for(req, "active", seq=5)), 0.2)) == [200]
    assert answered(sub.handle(NotifyReceived(notify_for(req, "active", seq=4)), 0.3)) == [500]
    other = notify_for(req, "active", seq=6, tag="fork2")
    assert answered(sub.handle(NotifyReceived(other), 0.4)) == [481]
    stranger = notify_for(req, "active").evolve(
        headers=notify_for(req, "active").headers.replace("Call-ID", "nope")
    )
    assert answered(sub.handle(NotifyReceived(stranger), 0.5)) == [481]
    bad = notify_for(req, "sleepy", seq=7)
    assert answered(sub.handle(NotifyReceived(bad), 0.6)) == [400]


def test_terminated_deactivated_resubscribes_at_once_with_a_new_dialog() -> None:
    sub = make()
    req = sent(sub.start(0.0))
    sub.handle(accept(req), 0.1)
    sub.handle(NotifyReceived(notify_for(req, "active")), 0.2)
    out = sub.handle(NotifyReceived(notify_for(req, "terminated;reason=deactivated", 2)), 5.0)
    assert answered(out) == [200]
    assert changes(out) == [(S.ACTIVE, S.SUBSCRIBING)]
    new = sent(out)
    assert new.to.tag is None and new.call_id != req.call_id and str(new.cseq) == "1 SUBSCRIBE"


def test_terminated_probation_retries_after_retry_after_and_rejected_ends() -> None:
    sub = make()
    req = sent(sub.start(0.0))
    sub.handle(accept(req), 0.1)
    out = sub.handle(
        NotifyReceived(notify_for(req, "terminated;reason=probation;retry-after=90")), 10.0
    )
    assert changes(out) == [(S.SUBSCRIBING, S.FAILED)] and sub.deadline == 100.0
    retry = sent(sub.handle_timer(100.0))
    assert retry.to.tag is None and sub.state is S.SUBSCRIBING
    sub.handle(accept(retry), 100.1)
    out = sub.handle(NotifyReceived(notify_for(retry, "terminated;reason=rejected")), 101.0)
    assert changes(out) == [(S.SUBSCRIBING, S.TERMINATED)] and sub.deadline is None


def test_a_notify_for_a_failed_or_terminated_subscription_gets_481() -> None:
    """RFC 6665 §4.1.3: once the subscription ended (TERMINATED, or FAILED and waiting to
    retry under a new Call-ID), a NOTIFY in its old dialog is answered 481."""
    sub = make()
    req = sent(sub.start(0.0))
    sub.handle(accept(req), 0.1)
    sub.handle(NotifyReceived(notify_for(req, "terminated;reason=probation;retry-after=90")), 10)
    assert sub.state is S.FAILED
    late = notify_for(req, "active", seq=9)
    assert answered(sub.handle(NotifyReceived(late), 11.0)) == [481]
    retry = sent(sub.handle_timer(100.0))
    sub.handle(accept(retry), 100.1)
    sub.handle(NotifyReceived(notify_for(retry, "terminated;reason=rejected")), 101.0)
    assert sub.state is S.TERMINATED
    again = notify_for(retry, "active", seq=9)
    assert answered(sub.handle(NotifyReceived(again), 102.0)) == [481]


def test_failure_waits_for_reg_interval_and_zero_never_resends() -> None:
    sub = make(reg_interval=300)
    sent(sub.start(0.0))
    sub.handle(RequestFailed("timeout"), 32.0)
    assert sub.state is S.FAILED and sub.deadline == 332.0
    sub0 = make(reg_interval=0)
    req = sent(sub0.start(0.0))
    sub0.handle(ResponseReceived(make_response(req, 404)), 1.0)
    assert (sub0.state, sub0.reason, sub0.deadline) == (S.FAILED, "404 Not Found", None)


def test_423_and_503() -> None:
    sub = make()
    req = sent(sub.start(0.0))
    out = sub.handle(
        ResponseReceived(make_response(req, 423, headers=[("Min-Expires", "7200")])), 1
    )
    again = sent(out)
    assert (str(again.cseq), again.expires) == ("2 SUBSCRIBE", 7200)
    sub.handle(ResponseReceived(make_response(again, 503, headers=[("Retry-After", "30")])), 2.0)
    assert sub.state is S.FAILED and sub.deadline == 32.0


def test_unsubscribe_then_final_notify() -> None:
    sub = make()
    req = sent(sub.start(0.0))
    sub.handle(accept(req), 0.1)
    sub.handle(NotifyReceived(notify_for(req, "active")), 0.2)
    out = sub.close(50.0)
    assert changes(out) == [(S.ACTIVE, S.UNSUBSCRIBING)]
    unsub = sent(out)
    assert unsub.expires == 0 and unsub.to.tag == "ntag" and str(unsub.cseq) == "2 SUBSCRIBE"
    assert sub.deadline is None
    out = sub.handle(NotifyReceived(notify_for(req, "terminated;reason=timeout", 2)), 50.1)
    assert answered(out) == [200] and changes(out) == [(S.UNSUBSCRIBING, S.TERMINATED)]
    assert not [o for o in out if isinstance(o, SendRequest)]


def test_close_without_dialog() -> None:
    sub = make()
    sent(sub.start(0.0))
    assert changes(sub.close(1.0)) == [(S.SUBSCRIBING, S.TERMINATED)]


def test_notifier_side() -> None:
    sub = make()
    req = sent(sub.start(0.0))
    resp, granted = answer_subscribe(
        req, to_tag="ntag", contact="<sip:alice@198.51.100.3>", max_expires=600
    )
    assert isinstance(resp, Response)
    assert (resp.status_code, resp.expires, granted, resp.to.tag) == (200, 600, 600, "ntag")
    notifier = Dialog.from_uas(req, resp)
    notify = build_notify(
        notifier,
        via=VIA,
        event="presence",
        state=SubState("active", expires=599),
        body=b"<presence/>",
        content_type="application/pidf+xml",
    )
    assert notify.start_line() == "NOTIFY sip:bob@192.0.2.4 SIP/2.0"
    assert notify.headers["Subscription-State"] == "active;expires=599"
    assert notify.headers["Event"] == "presence"
    assert notify.from_.tag == "ntag" and notify.to.tag == req.from_.tag
    assert str(notify.cseq) == "1 NOTIFY"
    end = build_notify(
        notifier, via=VIA, event="presence", state=SubState("terminated", reason="timeout")
    )
    assert end.headers["Subscription-State"] == "terminated;reason=timeout"
    assert str(end.cseq) == "2 NOTIFY"


def test_parse_subscription_state() -> None:
    assert parse_subscription_state("Terminated;reason=Probation;retry-after=30") == SubState(
        "terminated", "probation", None, 30
    )
    assert parse_subscription_state("active") == SubState("active")


def test_transitions_cover_every_state() -> None:
    assert {new for row in TRANSITIONS.values() for new in row.values()} == set(S) - {S.IDLE}
    assert set(TRANSITIONS) == set(S)
