# Message -> bytes: RFC 3261 §7 (message format), §7.5 (framing), §18.3 / §20.14 (the
# Content-Length must be the body's octet count; on streams it is mandatory).
#
# Theory of operation: a parsed message that nobody edited keeps the exact header bytes it
# arrived with (``_raw``, only kept when they already end in a Content-Length that equals the
# body length), so forwarding it costs one concatenation. Everything else is written line by
# line from the Headers pairs as they are spelled, with every Content-Length line dropped and
# one correct ``Content-Length`` written at the position of the first (or at the end). Header
# text is encoded with ``surrogateescape`` so octets that were not UTF-8 come back unchanged.
"""Serialise a Request or Response to bytes with a correct Content-Length."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .message import Message

__all__ = ["serialize"]


def serialize(message: Message) -> bytes:
    """The wire form of ``message`` (CRLF line ends, Content-Length matching the body)."""
    raw = message._raw
    body = message._body
    if raw is not None:
        return raw + body
    lines = [message.start_line()]
    length = str(len(body))
    wrote_length = False
    for name, value in message._headers:
        if len(name) in (1, 14) and name.lower() in ("l", "content-length"):
            if wrote_length:
                continue
            value = length
            wrote_length = True
        lines.append(f"{name}: {value}")
    if not wrote_length:
        lines.append(f"Content-Length: {length}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + body
