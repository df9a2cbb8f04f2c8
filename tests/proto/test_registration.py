"""The REGISTER machine: requests, refresh times, 423, digest, 503, failures, unregister."""

from __future__ import annotations

import random
from collections.abc import Sequence

from trio_sip.proto.auth import Challenge, CredentialStore, DigestClient, verify
from trio_sip.proto.message import Request, make_response
from trio_sip.proto.registration import (
    TRANSITIONS,
    Registration,
    RegistrationState,
    RequestFailed,
    ResponseReceived,
    SendRequest,
    StateChanged,
    refresh_delay,
)
from trio_sip.proto.timers import TimerConfig

R = RegistrationState
CONTACT = "<sip:bob@192.0.2.4:5060>"


def make(**kw: object) -> Registration:
    return Registration(
        "<sip:bob@biloxi.com>",
        CONTACT,
        rng=random.Random(7),
        via="SIP/2.0/UDP 192.0.2.4:5060",
        **kw,  # type: ignore[arg-type]
    )


def sent(outputs: Sequence[object]) -> Request:
    requests = [o.request for o in outputs if isinstance(o, SendRequest)]
    assert len(requests) == 1
    return requests[0]


def changes(outputs: Sequence[object]) -> list[tuple[object, object, str]]:
    return [(o.old, o.new, o.reason) for o in outputs if isinstance(o, StateChanged)]


def ok(req: Request, contacts: str = f"{CONTACT};expires=3600", **kw: str) -> ResponseReceived:
    headers = [("Contact", contacts), *((k.replace("_", "-"), v) for k, v in kw.items())]
    return ResponseReceived(make_response(req, 200, to_tag="reg", headers=headers))


def reply(req: Request, status: int, headers: list[tuple[str, str]] = []) -> ResponseReceived:  # noqa: B006
    return ResponseReceived(make_response(req, status, to_tag="reg", headers=headers))


def test_initial_register_fields() -> None:
    reg = make()
    out = reg.start(0.0)
    assert changes(out) == [(R.UNREGISTERED, R.REGISTERING, "start")]
    req = sent(out)
    assert req.start_line() == "REGISTER sip:biloxi.com SIP/2.0"
    assert req.headers["To"] == "<sip:bob@biloxi.com>"
    assert req.from_.tag == reg.from_tag and str(req.from_.uri) == "sip:bob@biloxi.com"
    assert req.call_id == reg.call_id
    assert str(req.cseq) == "1 REGISTER"
    assert req.headers["Contact"] == CONTACT
    assert req.expires == 3600
    assert req.max_forwards == 70
    assert req.vias[0].host == "192.0.2.4" and req.vias[0].is_rfc3261
    assert reg.deadline is None  # waiting for the transaction


def test_refresh_32_s_before_expiry_same_call_id_next_cseq() -> None:
    reg = make()
    first = sent(reg.start(0.0))
    out = reg.handle(ok(first), 0.2)
    assert changes(out) == [(R.REGISTERING, R.REGISTERED, "200 OK")]
    assert reg.granted == 3600 and reg.deadline == 3568.2
    assert reg.handle_timer(3568.0) == []  # not yet
    out = reg.handle_timer(3568.2)
    assert changes(out) == []  # a refresh keeps the state
    refresh = sent(out)
    assert (refresh.call_id, str(refresh.cseq), refresh.from_.tag) == (
        first.call_id,
        "2 REGISTER",
        first.from_.tag,
    )
    assert refresh.vias[0].branch != first.vias[0].branch
    reg.handle(ok(refresh), 3568.5)
    assert reg.deadline == 3568.5 + 3568


def test_granted_expiry_from_our_contact_then_expires_header() -> None:
    reg = make()
    req = sent(reg.start(0.0))
    other_first = f"<sip:other@198.51.100.1>;expires=100, {CONTACT};expires=1800"
    reg.handle(ok(req, other_first), 1.0)
    assert reg.granted == 1800 and reg.deadline == 1.0 + 1768
    reg = make()
    req = sent(reg.start(0.0))
    reg.handle(ok(req, "<sip:bob@192.0.2.4:5060>", Expires="60"), 1.0)
    assert reg.granted == 60 and reg.deadline == 31.0  # short: half-way


def test_refresh_delay_rule() -> None:
    assert refresh_delay(3600) == 3568
    assert refresh_delay(64) == 32
    assert refresh_delay(60) == 30
    assert refresh_delay(10) == 5
    assert refresh_delay(3600, TimerConfig(t1=1.0, t2=4.0)) == 3536


def test_423_retries_with_min_expires() -> None:
    reg = make(expires=60)
    req = sent(reg.start(0.0))
    out = reg.handle(reply(req, 423, [("Min-Expires", "1800")]), 0.1)
    again = sent(out)
    assert (str(again.cseq), again.expires) == ("2 REGISTER", 1800)
    assert reg.state is R.REGISTERING
    reg2 = make()
    out = reg2.handle(reply(sent(reg2.start(0.0)), 423), 0.1)
    assert changes(out) == [
        (R.REGISTERING, R.FAILED, "423 Interval Too Brief without a usable Min-Expires")
    ]


CHALLENGE = Challenge.digest("biloxi.com", "nonce1", opaque="op")


def digest_reg() -> Registration:
    client = DigestClient(CredentialStore(default=("bob", "zanzibar")), random.Random(3))
    return make(digest=client)


def test_401_resent_with_cseq_plus_one_and_valid_authorization() -> None:
    reg = digest_reg()
    req = sent(reg.start(0.0))
    out = reg.handle(reply(req, 401, [("WWW-Authenticate", str(CHALLENGE))]), 0.1)
    authed = sent(out)
    assert str(authed.cseq) == "2 REGISTER" and authed.call_id == req.call_id
    creds = authed.authorization[0]
    assert (creds.username, creds.realm, creds.nonce, creds.uri) == (
        "bob",
        "biloxi.com",
        "nonce1",
        "sip:biloxi.com",
    )
    assert verify(creds, "REGISTER", "zanzibar")
    assert reg.state is R.REGISTERING
    # accepted; the refresh is authorised up front with the next nonce-count
    reg.handle(ok(authed), 0.2)
    refresh = sent(reg.handle_timer(reg.deadline or 0))
    assert refresh.authorization[0].nc == 2 and str(refresh.cseq) == "3 REGISTER"


def test_second_challenge_not_stale_fails_stale_one_resends() -> None:
    reg = digest_reg()
    req = sent(reg.start(0.0))
    authed = sent(reg.handle(reply(req, 401, [("WWW-Authenticate", str(CHALLENGE))]), 0.1))
    stale = Challenge.digest("biloxi.com", "nonce2", stale=True)
    again = sent(reg.handle(reply(authed, 401, [("WWW-Authenticate", str(stale))]), 0.2))
    assert str(again.cseq) == "3 REGISTER" and again.authorization[0].nonce == "nonce2"
    out = reg.handle(reply(again, 401, [("WWW-Authenticate", str(CHALLENGE))]), 0.3)
    assert reg.state is R.FAILED
    assert "credentials for realm 'biloxi.com' refused" in reg.reason
    assert [o for o in out if isinstance(o, SendRequest)] == []
    assert reg.deadline == 3600.3


def test_stale_challenges_are_answered_at_most_3_times_in_a_row() -> None:
    reg = digest_reg()
    req = sent(reg.start(0.0))
    for i in range(3):
        stale = Challenge.digest("biloxi.com", f"stale{i}", stale=True)
        req = sent(reg.handle(reply(req, 401, [("WWW-Authenticate", str(stale))]), 0.1 * i))
        assert req.authorization[0].nonce == f"stale{i}"
    stale = Challenge.digest("biloxi.com", "stale3", stale=True)
    out = reg.handle(reply(req, 401, [("WWW-Authenticate", str(stale))]), 0.5)
    assert [o for o in out if isinstance(o, SendRequest)] == []
    assert reg.state is R.FAILED and "challenged 3 times in a row" in reg.reason


def test_401_without_credentials_fails() -> None:
    reg = make()
    req = sent(reg.start(0.0))
    out = reg.handle(reply(req, 401, [("WWW-Authenticate", str(CHALLENGE))]), 0.1)
    assert changes(out) == [
        (R.REGISTERING, R.FAILED, "401 Unauthorized: no credentials configured")
    ]


def test_503_retry_after() -> None:
    reg = make()
    req = sent(reg.start(0.0))
    out = reg.handle(reply(req, 503, [("Retry-After", "120")]), 1.0)
    assert changes(out) == [(R.REGISTERING, R.FAILED, "503 Service Unavailable")]
    assert reg.deadline == 121.0
    out = reg.handle_timer(121.0)
    assert changes(out) == [(R.FAILED, R.REGISTERING, "retry")]
    assert str(sent(out).cseq) == "2 REGISTER"


def test_timeout_then_retry_at_reg_interval() -> None:
    reg = make(reg_interval=600)
    sent(reg.start(0.0))
    out = reg.handle(RequestFailed("408 Request Timeout (no response)"), 32.0)
    assert changes(out) == [(R.REGISTERING, R.FAILED, "408 Request Timeout (no response)")]
    assert reg.deadline == 632.0
    retry = sent(reg.handle_timer(632.0))
    assert str(retry.cseq) == "2 REGISTER"


def test_refresh_failure_and_final_error_response() -> None:
    reg = make()
    reg.handle(ok(sent(reg.start(0.0))), 0.0)
    refresh = sent(reg.handle_timer(3568.0))
    out = reg.handle(reply(refresh, 403), 3568.1)
    assert changes(out) == [(R.REGISTERED, R.FAILED, "403 Forbidden")]
    assert reg.deadline == 3568.1 + 3600


def test_reg_interval_zero_never_resends() -> None:
    reg = make(reg_interval=0)
    sent(reg.start(0.0))
    reg.handle(RequestFailed("transport error"), 0.5)
    assert reg.state is R.FAILED and reg.deadline is None
    assert reg.handle_timer(10_000.0) == []


def test_unregister_on_close() -> None:
    reg = make()
    reg.handle(ok(sent(reg.start(0.0))), 0.0)
    out = reg.close(100.0)
    assert changes(out) == [(R.REGISTERED, R.UNREGISTERING, "closing")]
    bye = sent(out)
    assert (bye.expires, str(bye.cseq), bye.headers["Contact"]) == (0, "2 REGISTER", CONTACT)
    assert reg.deadline is None
    out = reg.handle(ok(bye, CONTACT), 100.2)
    assert changes(out) == [(R.UNREGISTERING, R.UNREGISTERED, "200 OK")]
    assert reg.deadline is None


def test_close_after_failure_sends_nothing() -> None:
    reg = make()
    sent(reg.start(0.0))
    reg.handle(RequestFailed("timeout"), 32.0)
    out = reg.close(40.0)
    assert out == [StateChanged(R.FAILED, R.UNREGISTERED, "closed")]
    assert reg.deadline is None


def test_stray_and_provisional_responses_are_ignored() -> None:
    reg = make()
    first = sent(reg.start(0.0))
    second = sent(reg.handle(reply(first, 423, [("Min-Expires", "7200")]), 0.1))
    assert reg.handle(ok(first), 0.2) == []  # answer to CSeq 1 after CSeq 2 went out
    assert reg.handle(reply(second, 100), 0.3) == []
    assert reg.state is R.REGISTERING
    assert changes(reg.handle(ok(second), 0.4)) == [(R.REGISTERING, R.REGISTERED, "200 OK")]


def test_transitions_reach_every_state() -> None:
    assert {new for row in TRANSITIONS.values() for new in row.values()} == set(R)
    assert set(TRANSITIONS) == set(R)
