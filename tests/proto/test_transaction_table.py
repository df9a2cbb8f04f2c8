"""Transaction matching (§17.1.3, §17.2.3) and the table's classification."""

from __future__ import annotations

import pytest

from trio_sip.proto.errors import LocalProtocolError, RemoteProtocolError
from trio_sip.proto.message import Request, Response, make_response
from trio_sip.proto.outputs import SendResponse
from trio_sip.proto.transaction import (
    AckFor2xx,
    CancelFor,
    ClientInviteTransaction,
    ClientKey,
    ClientNonInviteTransaction,
    LegacyServerKey,
    NewServerTransaction,
    ServerInviteTransaction,
    ServerKey,
    ServerNonInviteTransaction,
    Stray,
    ToTransaction,
    TransactionTable,
    cancel_target_key,
    client_key,
    server_key,
)


def request(
    method: str,
    *,
    branch: str | None = "z9hG4bK74bf9",
    sent_by: str = "pc33.atlanta.com",
    to_tag: str | None = None,
    cseq: int = 1,
    cseq_method: str | None = None,
) -> Request:
    via = f"SIP/2.0/UDP {sent_by}" + (f";branch={branch}" if branch else "")
    return Request(
        method,
        "sip:bob@biloxi.com",
        [
            ("Via", via),
            ("To", "<sip:bob@biloxi.com>" + (f";tag={to_tag}" if to_tag else "")),
            ("From", "<sip:alice@atlanta.com>;tag=9fxced76sl"),
            ("Call-ID", "3848276298220188511@atlanta.com"),
            ("CSeq", f"{cseq} {cseq_method or method}"),
        ],
    )


def response_to(req: Request, status: int) -> Response:
    return make_response(req, status, to_tag="8321234356")


# --------------------------------------------------------------------- keys


def test_client_key_is_branch_plus_method_so_cancel_is_separate() -> None:
    invite, cancel = request("INVITE"), request("CANCEL")
    assert client_key(invite) == ClientKey("z9hG4bK74bf9", "INVITE")
    assert client_key(response_to(invite, 180)) == client_key(invite)
    assert client_key(response_to(cancel, 200)) == ClientKey("z9hG4bK74bf9", "CANCEL")
    assert client_key(response_to(cancel, 200)) != client_key(invite)


def test_server_key_uses_branch_sent_by_and_method_with_ack_as_invite() -> None:
    key = server_key(request("INVITE"))
    assert key == ServerKey("z9hG4bK74bf9", "pc33.atlanta.com", 5060, "INVITE")
    assert server_key(request("ACK", cseq_method="ACK", to_tag="x")) == key
    assert server_key(request("INVITE", sent_by="PC33.Atlanta.com:5060")) == key
    assert server_key(request("INVITE", sent_by="pc33.atlanta.com:5070")) != key
    assert server_key(request("CANCEL")) != key
    assert cancel_target_key(request("CANCEL")) == key


def test_branch_without_magic_cookie_falls_back_to_rfc2543_matching() -> None:
    key = server_key(request("INVITE", branch="74bf9"))
    assert isinstance(key, LegacyServerKey)
    assert (key.call_id, key.cseq, key.from_tag, key.to_tag) == (
        "3848276298220188511@atlanta.com",
        1,
        "9fxced76sl",
        None,
    )
    assert server_key(request("INVITE", branch=None)) != key  # top Via differs
    assert server_key(request("INVITE", branch="74bf9", cseq=2)) != key


# --------------------------------------------------------------------- classification


def test_responses_go_to_their_client_transaction_or_are_stray() -> None:
    table = TransactionTable()
    invite = request("INVITE")
    table.add(client_key(invite), ClientInviteTransaction(invite, reliable=False))
    assert table.classify(response_to(invite, 180)) == ToTransaction(client_key(invite))
    stray = table.classify(response_to(request("INVITE", branch="z9hG4bKother"), 200))
    assert isinstance(stray, Stray)
    # The 200 for a CANCEL shares the INVITE's branch but not its transaction.
    assert isinstance(table.classify(response_to(request("CANCEL"), 200)), Stray)


def test_requests_are_new_or_retransmissions() -> None:
    table = TransactionTable()
    options = request("OPTIONS")
    decision = table.classify(options)
    assert decision == NewServerTransaction(server_key(options))
    table.add(decision.key, ServerNonInviteTransaction(options, reliable=False))
    assert table.classify(options) == ToTransaction(server_key(options))
    assert len(table) == 1


def test_ack_matches_the_invite_transaction_or_is_an_ack_for_2xx() -> None:
    table = TransactionTable()
    invite = request("INVITE")
    table.add(server_key(invite), ServerInviteTransaction(invite, reliable=False))
    failure_ack = request("ACK", cseq_method="ACK", to_tag="8321234356")
    assert table.classify(failure_ack) == ToTransaction(server_key(invite))
    # The ACK for a 2xx is its own transaction with a new branch: not ours.
    ok_ack = request("ACK", branch="z9hG4bKnewbranch", cseq_method="ACK", to_tag="8321234356")
    assert table.classify(ok_ack) == AckFor2xx()


def test_cancel_is_its_own_transaction_and_names_the_invite_it_cancels() -> None:
    table = TransactionTable()
    invite = request("INVITE")
    table.add(server_key(invite), ServerInviteTransaction(invite, reliable=False))
    cancel = request("CANCEL")
    decision = table.classify(cancel)
    assert decision == CancelFor(server_key(cancel), server_key(invite))
    assert decision.key != decision.invite_key
    table.add(decision.key, ServerNonInviteTransaction(cancel, reliable=False))
    assert table.classify(cancel) == ToTransaction(server_key(cancel))  # retransmitted CANCEL
    # A CANCEL for an unknown INVITE: the UAS answers 481.
    unknown = request("CANCEL", branch="z9hG4bKunknown")
    assert table.classify(unknown) == CancelFor(server_key(unknown), None)


def test_rfc2543_invite_ack_and_cancel_match_without_branches() -> None:
    table = TransactionTable()
    invite = request("INVITE", branch=None)
    table.add(server_key(invite), ServerInviteTransaction(invite, reliable=False))
    assert table.classify(invite) == ToTransaction(server_key(invite))
    # The ACK carries the To tag of our response, which the INVITE did not have.
    ack = request("ACK", branch=None, cseq_method="ACK", to_tag="8321234356")
    assert table.classify(ack) == ToTransaction(server_key(invite))
    cancel = request("CANCEL", branch=None)
    decision = table.classify(cancel)
    assert isinstance(decision, CancelFor) and decision.invite_key == server_key(invite)
    # A different CSeq number is a different transaction.
    assert isinstance(table.classify(request("INVITE", branch=None, cseq=2)), NewServerTransaction)


def test_table_is_bounded_and_drops_terminated_machines() -> None:
    table = TransactionTable(max_size=2)
    first, second = request("OPTIONS", branch="z9hG4bK1"), request("OPTIONS", branch="z9hG4bK2")
    done = ServerNonInviteTransaction(first, reliable=True)
    done.start(0.0)
    done.handle(SendResponse(response_to(first, 200)), 0.0)  # Timer J = 0 over TCP
    assert done.terminated
    table.add(server_key(first), done)
    live = ClientNonInviteTransaction(second, reliable=True)
    table.add(client_key(second), live)
    third = request("OPTIONS", branch="z9hG4bK3")
    table.add(server_key(third), ServerNonInviteTransaction(third, reliable=True))
    assert server_key(first) not in table and len(table) == 2
    fourth = request("OPTIONS", branch="z9hG4bK4")
    with pytest.raises(LocalProtocolError) as info:
        table.add(server_key(fourth), ServerNonInviteTransaction(fourth, reliable=True))
    assert info.value.status_hint == 503
    table.remove(client_key(second))
    assert len(table) == 1 and table.get(client_key(second)) is None


def test_a_live_key_cannot_be_registered_twice() -> None:
    table = TransactionTable()
    options = request("OPTIONS")
    table.add(server_key(options), ServerNonInviteTransaction(options, reliable=False))
    with pytest.raises(LocalProtocolError):
        table.add(server_key(options), ServerNonInviteTransaction(options, reliable=False))


def test_a_request_without_via_is_a_remote_error_not_a_crash() -> None:
    no_via = Request("OPTIONS", "sip:bob@biloxi.com", [("Call-ID", "x"), ("CSeq", "1 OPTIONS")])
    with pytest.raises(RemoteProtocolError) as info:
        TransactionTable().classify(no_via)
    assert info.value.status_hint == 400
