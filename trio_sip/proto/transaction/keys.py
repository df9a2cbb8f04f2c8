"""Transaction keys: which transaction a message belongs to (RFC 3261 §17.1.3, §17.2.3).

Theory of operation
-------------------
*Client side (§17.1.3).* "A response matches a client transaction under two conditions: 1. If
the response has the same value of the branch parameter in the top Via header field as the
branch parameter in the top Via header field of the request that created the transaction.
2. If the method parameter in the CSeq header field matches the method of the request that
created the transaction. The method is needed since a CANCEL request constitutes a different
transaction, but shares the same value of the branch parameter." -> :class:`ClientKey`.

*Server side (§17.2.3).* If the top Via branch "begins with the magic cookie z9hG4bK", the
request matches when "1. the branch parameter in the request is equal to the one in the top
Via header field of the request that created the transaction, and 2. the sent-by value in the
top Via of the request is equal to the one in the request that created the transaction, and
3. the method of the request matches the one that created the transaction, except for ACK,
where the method of the request that created the transaction is INVITE." -> :class:`ServerKey`.
A CANCEL is a transaction of its own (method CANCEL), and :func:`cancel_target_key` gives the
key of the INVITE it cancels (§9.2: same key with method INVITE).

*RFC 2543 fallback (§17.2.3).* Without the cookie, "the INVITE request matches a transaction if
the Request-URI, To tag, From tag, Call-ID, CSeq, and top Via header field match those of the
INVITE request which created the transaction. ... The ACK request matches a transaction if the
Request-URI, From tag, Call-ID, CSeq number (not the method), and top Via header field match
those of the INVITE request which created the transaction, and the To tag of the ACK matches
the To tag of the response sent by the server transaction." -> :class:`LegacyServerKey`. The
To tag of the response is not in the INVITE, so for an ACK :func:`server_key_candidates` also
offers the key with no To tag (the INVITE's own, untagged To); the table tries them in order.

Hosts compare case-insensitively and a missing Via port means the transport's default port.
A message with no Via at all raises RemoteProtocolError (400): it matches nothing.

:class:`ClientKey` and :class:`ServerKey` are plain immutable classes (equal and hashable by
value), not attrs classes, so that the compiled build (mypyc) makes them native classes: they
are built and hashed for every message. :class:`LegacyServerKey` is a frozen attrs class.
"""

from __future__ import annotations

from typing import Any, Final

import attrs

from ..errors import RemoteProtocolError
from ..fields import Via
from ..message import Request, Response
from ..target import default_port

__all__ = [
    "MAGIC_COOKIE",
    "ClientKey",
    "Key",
    "LegacyServerKey",
    "ServerKey",
    "cancel_target_key",
    "client_key",
    "server_key",
    "server_key_candidates",
]

#: §8.1.1.7: "The branch ID inserted by an element compliant with this specification MUST
#: always begin with the characters z9hG4bK."
MAGIC_COOKIE = "z9hG4bK"


class ClientKey:
    """Top Via branch + method of the request that created a client transaction."""

    __slots__ = ("_branch", "_method")
    __match_args__: Final = ("branch", "method")

    def __init__(self, branch: str, method: str) -> None:
        self._branch: Final = branch
        self._method: Final = method

    @property
    def branch(self) -> str:
        return self._branch

    @property
    def method(self) -> str:
        return self._method

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, ClientKey)
        return self._branch == other._branch and self._method == other._method

    def __hash__(self) -> int:
        return hash((self._branch, self._method))

    def __reduce__(self) -> tuple[Any, ...]:
        return ClientKey, (self._branch, self._method)

    def __repr__(self) -> str:
        return f"ClientKey(branch={self._branch!r}, method={self._method!r})"


class ServerKey:
    """RFC 3261 server key: branch, top Via sent-by, method (ACK counts as INVITE)."""

    __slots__ = ("_branch", "_host", "_method", "_port")
    __match_args__: Final = ("branch", "host", "port", "method")

    def __init__(self, branch: str, host: str, port: int, method: str) -> None:
        self._branch: Final = branch
        self._host: Final = host
        self._port: Final = port
        self._method: Final = method

    @property
    def branch(self) -> str:
        return self._branch

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def method(self) -> str:
        return self._method

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, ServerKey)
        return (
            self._branch == other._branch
            and self._host == other._host
            and self._port == other._port
            and self._method == other._method
        )

    def __hash__(self) -> int:
        return hash((self._branch, self._host, self._port, self._method))

    def __reduce__(self) -> tuple[Any, ...]:
        return ServerKey, (self._branch, self._host, self._port, self._method)

    def __repr__(self) -> str:
        return (
            f"ServerKey(branch={self._branch!r}, host={self._host!r}, port={self._port!r}, "
            f"method={self._method!r})"
        )


@attrs.frozen(slots=True)
class LegacyServerKey:
    """RFC 2543 server key, for requests whose branch lacks the magic cookie."""

    request_uri: str
    to_tag: str | None
    from_tag: str | None
    call_id: str
    cseq: int
    top_via: tuple[str, str, int, str | None]
    method: str


Key = ClientKey | ServerKey | LegacyServerKey


def _top_via(message: Request | Response) -> Via:
    """The top Via; a message without one cannot belong to any transaction (§8.1.1.7)."""
    vias = message.vias
    if not vias:
        raise RemoteProtocolError("a message without a Via header field", status_hint=400)
    return vias[0]


def client_key(message: Request | Response) -> ClientKey:
    """The client transaction key of an outgoing request or of a response to it.

    For a response the method is the CSeq method, so a 200 to a CANCEL never matches the
    INVITE transaction that shares its branch.
    """
    method = message.method if isinstance(message, Request) else message.cseq.method
    return ClientKey(_top_via(message).branch or "", method)


def _sent_by(via: Via) -> tuple[str, int]:
    port = via.port if via.port is not None else default_port(via.transport)
    return via.host.lower(), port


def _server_key(request: Request, method: str) -> ServerKey | LegacyServerKey:
    via = _top_via(request)
    branch = via.branch
    host, port = _sent_by(via)
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return ServerKey(branch, host, port, method)
    # The To tag is read only for an RFC 2543 key: an RFC 3261 key needs no To header.
    return LegacyServerKey(
        request_uri=request.uri_text,
        to_tag=request.to.tag,
        from_tag=request.from_.tag,
        call_id=request.call_id,
        cseq=request.cseq.seq,
        top_via=(via.transport.upper(), host, port, branch),
        method=method,
    )


def server_key(request: Request) -> ServerKey | LegacyServerKey:
    """The server transaction key of a received request (an ACK maps to its INVITE)."""
    method = "INVITE" if request.method == "ACK" else request.method
    return _server_key(request, method)


def server_key_candidates(request: Request) -> list[ServerKey | LegacyServerKey]:
    """Keys to look up, best first: for an RFC 2543 ACK also the untagged INVITE key."""
    key = server_key(request)
    if request.method == "ACK" and isinstance(key, LegacyServerKey) and key.to_tag is not None:
        return [key, attrs.evolve(key, to_tag=None)]
    return [key]


def cancel_target_key(cancel: Request) -> ServerKey | LegacyServerKey:
    """The key of the INVITE server transaction that ``cancel`` cancels (§9.2)."""
    return _server_key(cancel, "INVITE")
