"""CPU time of one transaction in each of the four machines (``python -m benchmarks transactions``).

trio-sip only, in whichever build this process imports (``is_compiled()`` is reported). Each
case builds a machine over UDP and drives it through a short life, with the outputs it returns
discarded (the shell's work is not measured):

* client INVITE: start, Timer A once, 200 (Accepted), Timer M;
* client non-INVITE: start, Timer E once, 200 (Completed), Timer K;
* server INVITE: start, 200 (Accepted), Timer L;
* server non-INVITE: start, 200 (Completed), Timer J.

Each case runs in the roles that build machines (``USER_AGENT``, the common one, then
``USER_AGENT_APP_RETRANSMIT`` and ``STATEFUL_PROXY``). Timing: ``time.process_time`` (CPU time
of this process, so a busy machine stretches it less than wall-clock time) around loops of
``LOOP`` transactions, ``gc.collect()`` before each, all cases interleaved round after round
until the budget (``--seconds``) is spent; each case reports its best loop, in microseconds
per transaction. Reports only; there is no target.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from typing import Any

from trio_sip.proto import is_compiled
from trio_sip.proto.message import Request, make_response
from trio_sip.proto.outputs import MessageReceived, SendResponse
from trio_sip.proto.parse import parse_message
from trio_sip.proto.timers import TimerConfig
from trio_sip.proto.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    TimeoutRole,
)

LOOP = 2000
MIN_ROUNDS = 5
ROLES = (TimeoutRole.USER_AGENT, TimeoutRole.USER_AGENT_APP_RETRANSMIT, TimeoutRole.STATEFUL_PROXY)


def _request(method: str) -> Request:
    text = (
        f"{method} sip:bob@b.example SIP/2.0\r\n"
        "Via: SIP/2.0/UDP a.example;branch=z9hG4bKbench\r\n"
        "From: <sip:alice@a.example>;tag=1\r\nTo: <sip:bob@b.example>\r\n"
        f"Call-ID: bench\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def cases(role: TimeoutRole) -> dict[str, Callable[[], object]]:
    """One callable per machine: a whole transaction in ``role``."""
    config = TimerConfig()
    invite, message = _request("INVITE"), _request("MESSAGE")
    ok_invite, ok_message = (make_response(r, 200, to_tag="x") for r in (invite, message))
    got_invite, got_message = MessageReceived(ok_invite), MessageReceived(ok_message)
    send_invite, send_message = SendResponse(ok_invite), SendResponse(ok_message)

    def client_invite() -> None:
        tx = ClientInviteTransaction(invite, config, reliable=False, role=role)
        tx.start(0.0)
        tx.handle_timer(0.5)
        tx.handle(got_invite, 0.6)
        tx.handle_timer(40.0)

    def client_non_invite() -> None:
        tx = ClientNonInviteTransaction(message, config, reliable=False, role=role)
        tx.start(0.0)
        tx.handle_timer(0.5)
        tx.handle(got_message, 0.6)
        tx.handle_timer(40.0)

    def server_invite() -> None:
        tx = ServerInviteTransaction(invite, config, reliable=False, role=role)
        tx.start(0.0)
        tx.handle(send_invite, 0.01)
        tx.handle_timer(40.0)

    def server_non_invite() -> None:
        tx = ServerNonInviteTransaction(message, config, reliable=False, role=role)
        tx.start(0.0)
        tx.handle(send_message, 0.01)
        tx.handle_timer(40.0)

    return {
        "client INVITE": client_invite,
        "client non-INVITE": client_non_invite,
        "server INVITE": server_invite,
        "server non-INVITE": server_non_invite,
    }


def _loop(fn: Callable[[], object]) -> float:
    """CPU seconds per call over one loop of LOOP calls."""
    gc.collect()
    start = time.process_time()
    for _ in range(LOOP):
        fn()
    return (time.process_time() - start) / LOOP


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure, print the table, return the numbers (microseconds per transaction).

    Rounds run every (role, machine) loop once, interleaved, until ``args.seconds`` of CPU
    time is spent (at least ``MIN_ROUNDS``): a burst of load lands on one round of every case
    rather than on every round of one case. Each case keeps its best loop."""
    budget = getattr(args, "seconds", 2.0)
    build = "compiled (mypyc)" if is_compiled() else "pure Python"
    work = [(role, name, fn) for role in ROLES for name, fn in cases(role).items()]
    best: dict[tuple[str, str], float] = {}
    deadline = time.process_time() + budget
    rounds = 0
    while rounds < MIN_ROUNDS or time.process_time() < deadline:
        rounds += 1
        for role, name, fn in work:
            key = (name, role.name)
            best[key] = min(best.get(key, float("inf")), _loop(fn))
    rows: dict[str, dict[str, float]] = {}
    for (name, role_name), seconds in best.items():
        rows.setdefault(name, {})[role_name] = seconds * 1e6
    print(f"CPU time per transaction, {build} core (best of {rounds} loops of {LOOP}), us")
    print(f"{'machine':<20}" + "".join(f"{role.name:>28}" for role in ROLES))
    for name, by_role in rows.items():
        print(f"{name:<20}" + "".join(f"{by_role[role.name]:>28.2f}" for role in ROLES))
    return {"compiled": is_compiled(), "loop": LOOP, "rounds": rounds, "us_per_transaction": rows}


if __name__ == "__main__":
    run(argparse.Namespace(seconds=2.0))
