"""One machine style (issue #13): every small machine runs on a ``state -> {trigger: state}``
table with enum triggers, through :func:`trio_sip.proto.fsm.step`, which raises
LocalProtocolError on an event the table does not list for the current state (the state does
not change); ignored events are explicit self-loops."""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from typing import Any

import pytest

from trio_sip.proto import ack_path, dialog, keepalive, registration, subscription
from trio_sip.proto.ack_path import AckResender, AckResenderState, AckWait, AckWaitState
from trio_sip.proto.dialog import DialogState, DialogTrigger
from trio_sip.proto.errors import LocalProtocolError
from trio_sip.proto.fsm import step
from trio_sip.proto.keepalive import (
    KeepAliveState,
    NullKeepAlive,
    PongReceived,
    StreamKeepAlive,
)
from trio_sip.proto.message import make_response
from trio_sip.proto.outputs import MessageReceived, Transmit
from trio_sip.proto.registration import Registration, RegistrationState
from trio_sip.proto.subscription import Subscription, SubscriptionState
from trio_sip.ua import session
from trio_sip.ua.session import CallState, CallTrigger

from .test_dialog import INVITE, VIA2, answer, build_ack, build_bye, incoming_invite, uac_dialog

TABLES: dict[str, Mapping[Any, Mapping[Any, Any]]] = {
    "registration": registration.TRANSITIONS,
    "subscription": subscription.TRANSITIONS,
    "dialog": dialog.TRANSITIONS,
    "keepalive NULL": keepalive.NULL_TRANSITIONS,
    "keepalive stream": keepalive.STREAM_TRANSITIONS,
    "AckWait": ack_path.ACK_WAIT_TRANSITIONS,
    "AckResender": ack_path.ACK_RESENDER_TRANSITIONS,
    "call": session.TRANSITIONS,
}


@pytest.mark.parametrize("name", list(TABLES))
def test_tables_are_state_to_enum_trigger_to_state(name: str) -> None:
    table = TABLES[name]
    state_type = type(next(iter(table)))
    assert issubclass(state_type, enum.Enum)
    trigger_types = set()
    for state, row in table.items():
        assert isinstance(state, state_type)
        assert row, (name, state)  # every listed state has at least one legal event
        for trigger, target in row.items():
            # An enum member, never a bare string such as "481/408" or "64*T1".
            assert isinstance(trigger, enum.Enum) and not isinstance(trigger, str)
            assert isinstance(target, state_type)
            trigger_types.add(type(trigger))
    assert len(trigger_types) == 1, trigger_types


def test_step_raises_on_an_event_the_table_does_not_list() -> None:
    table = dialog.TRANSITIONS
    assert step("dialog", table, DialogState.EARLY, DialogTrigger.SUCCESS) is (
        DialogState.CONFIRMED
    )
    with pytest.raises(LocalProtocolError, match="dialog: '1xx' is not allowed in state"):
        step("dialog", table, DialogState.CONFIRMED, DialogTrigger.PROVISIONAL)
    with pytest.raises(LocalProtocolError, match="call: 'cancel' is not allowed"):
        step("call", session.TRANSITIONS, CallState.ANSWERED, CallTrigger.CANCEL)


def make_registration() -> Registration:
    return Registration(
        "<sip:bob@biloxi.com>", "<sip:bob@192.0.2.4>", rng=random.Random(1), via="SIP/2.0/UDP h"
    )


def test_registration_started_twice_raises_and_keeps_its_state() -> None:
    reg = make_registration()
    reg.start(0.0)
    with pytest.raises(LocalProtocolError, match="registration: 'start' is not allowed"):
        reg.start(1.0)
    assert reg.state is RegistrationState.REGISTERING


def test_subscription_started_twice_raises_and_keeps_its_state() -> None:
    sub = Subscription(
        "<sip:alice@atlanta.com>",
        "presence",
        local="<sip:bob@biloxi.com>",
        contact="<sip:bob@192.0.2.4>",
        rng=random.Random(1),
    )
    sub.start(0.0)
    with pytest.raises(LocalProtocolError, match="subscription: 'start' is not allowed"):
        sub.start(1.0)
    assert sub.state is SubscriptionState.SUBSCRIBING


def test_dialog_late_481_and_bye_answer_after_the_end_are_self_loops() -> None:
    d = uac_dialog()
    bye = build_bye(d, via=VIA2)
    d.receive_response(bye, make_response(bye, 200))
    assert d.state is DialogState.TERMINATED
    # A retransmitted answer, a late 481, terminate() again: nothing changes, nothing raises.
    d.receive_response(bye, make_response(bye, 200))
    d.receive_response(bye, make_response(bye, 481))
    d.terminate()
    assert d.state is DialogState.TERMINATED


def test_keepalive_unsolicited_pong_is_absorbed_and_dead_flow_cannot_restart() -> None:
    ka = StreamKeepAlive(1, rng=random.Random(0))
    ka.start(0.0)
    assert ka.handle(PongReceived(), 0.1) == []  # WAITING: nobody waits for it
    assert ka.state is KeepAliveState.WAITING
    for _ in range(2):  # the ping, then no pong: dead
        assert ka.deadline is not None
        ka.handle_timer(ka.deadline)
    assert ka.state is KeepAliveState.DEAD
    assert ka.handle(PongReceived(), 50.0) == []
    with pytest.raises(LocalProtocolError, match="keep-alive: 'enable' is not allowed"):
        ka.start(60.0)
    assert ka.state is KeepAliveState.DEAD
    null = NullKeepAlive(5)
    null.stop()  # disabling a disabled loop: a self-loop
    assert null.state is KeepAliveState.DISABLED


def test_ack_machines_absorb_late_events() -> None:
    ok = make_response(incoming_invite(), 200, to_tag="bobtag")
    wait = AckWait(ok)
    wait.start(0.0)
    ack = build_ack(uac_dialog(), INVITE, via=VIA2)
    ack = ack.evolve(headers=ack.headers.replace("CSeq", f"{ok.cseq.seq} ACK"))
    assert wait.handle(MessageReceived(ack), 0.1) != []
    assert wait.state is AckWaitState.CONFIRMED
    assert wait.handle(MessageReceived(ack), 0.2) == []  # a retransmitted ACK
    assert wait.state is AckWaitState.CONFIRMED

    two = answer(200)
    resender = AckResender(build_ack(uac_dialog(), INVITE, via=VIA2))
    resender.start(0.0)
    assert resender.handle(MessageReceived(two), 1.0) == [Transmit(resender.ack)]
    assert resender.deadline is not None
    resender.handle_timer(resender.deadline)
    assert resender.state is AckResenderState.TERMINATED
    assert resender.handle(MessageReceived(two), 100.0) == []  # after Timer M
