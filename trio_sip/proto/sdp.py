"""Session descriptions (RFC 4566) and the offer/answer rules SIP calls need (RFC 3264).

Theory of operation
-------------------
An SDP body is a list of ``<type>=<value>`` lines (RFC 4566 §5). The first three are always
``v=0``, ``o=`` and ``s=`` in that order; ``m=`` lines open media sections, and every line after
an ``m=`` belongs to that section until the next one. :func:`parse_sdp` turns the body into a
:class:`SessionDescription` whose session-level and media-level lines are kept *in order* as
typed values (:class:`Connection`, :class:`Bandwidth`, :class:`Timing`, :class:`Attribute`) or,
for ``i u e p r z k`` and unknown types, as plain :class:`Line` text. Serialising gives the same
lines back with CRLF endings, so ``str(parse_sdp(body)) == body`` for any well-formed body.
"Text fields such as the session name and information are octet strings" (§5): values are
kept verbatim, never stripped. Malformed bodies raise :class:`SdpError` (a 400-class
:class:`~trio_sip.proto.errors.ProtocolError`).

Offer/answer (RFC 3264):

* Direction: ``a=sendrecv``, ``a=sendonly``, ``a=recvonly`` or ``a=inactive`` may appear at
  session or media level; "the media-level attribute overrides" and the default is sendrecv
  (§5.1 / RFC 4566 §6).
* §6: the answer has "the same number of m-lines as the offer", in the same order; a stream is
  rejected by answering it with port zero, and a rejected offered stream stays rejected. The
  answer direction mirrors the offer: sendonly → recvonly, recvonly → sendonly, inactive →
  inactive, sendrecv → sendrecv (narrowed further by what the local side wants).
* §8: "the version in the origin field MUST increment by one from the previous SDP" whenever
  a new offer (or a changed answer) is sent.
* §8.4 hold: a sendrecv stream is put on hold by marking it ``a=sendonly``, a recvonly stream
  by marking it ``a=inactive``; retrieving restores ``a=sendrecv``.

Values are immutable (frozen attrs); every change returns a new description.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from typing import Final, TypedDict, Unpack

import attrs

from ..errors import SdpError as SdpError
from .abnf import excerpt

__all__ = [
    "DIRECTIONS",
    "Attribute",
    "Bandwidth",
    "Connection",
    "Line",
    "MediaDescription",
    "Origin",
    "SdpError",
    "SessionDescription",
    "Timing",
    "AUDIO_CODECS",
    "answer_for",
    "audio_offer",
    "parse_sdp",
]

#: The four RFC 3264 direction attributes.
DIRECTIONS: Final = ("sendrecv", "sendonly", "recvonly", "inactive")
_FLAGS: Final = {
    "sendrecv": (True, True),
    "sendonly": (True, False),
    "recvonly": (False, True),
    "inactive": (False, False),
}
_SESSION_ONLY: Final = frozenset("vostuepzr")


def _direction_from_flags(send: bool, recv: bool) -> str:
    return {v: k for k, v in _FLAGS.items()}[(send, recv)]


def _check_direction(direction: str) -> str:
    if direction not in _FLAGS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    return direction


@attrs.frozen(slots=True)
class Line:
    """A line kept as text: ``i u e p r z k`` and types this module does not model."""

    type: str
    value: str

    def __str__(self) -> str:
        return self.value


@attrs.frozen(slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>``."""

    username: str
    session_id: str
    version: int
    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"
    type = "o"

    def __str__(self) -> str:
        return " ".join(
            (self.username, self.session_id, str(self.version), self.nettype, self.addrtype,
             self.address)
        )  # fmt: skip


@attrs.frozen(slots=True)
class Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (the address may carry ``/ttl``)."""

    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"
    type = "c"

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@attrs.frozen(slots=True)
class Bandwidth:
    """``b=<bwtype>:<bandwidth>`` (kilobits per second for AS and CT)."""

    bwtype: str
    bandwidth: int
    type = "b"

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.bandwidth}"


@attrs.frozen(slots=True)
class Timing:
    """``t=<start-time> <stop-time>`` (NTP seconds; ``t=0 0`` is an unbounded session)."""

    start: int = 0
    stop: int = 0
    type = "t"

    def __str__(self) -> str:
        return f"{self.start} {self.stop}"


@attrs.frozen(slots=True)
class Attribute:
    """``a=<name>`` (a property attribute, ``value`` None) or ``a=<name>:<value>``."""

    name: str
    value: str | None = None
    type = "a"

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


SdpLine = Line | Connection | Bandwidth | Timing | Attribute


def _attributes(lines: Iterable[SdpLine]) -> tuple[Attribute, ...]:
    return tuple([x for x in lines if isinstance(x, Attribute)])


def _direction_in(lines: Sequence[SdpLine]) -> str | None:
    """The last direction attribute among ``lines`` (None if there is none)."""
    for x in reversed(lines):
        if isinstance(x, Attribute) and x.value is None and x.name in _FLAGS:
            return x.name
    return None


def _set_direction(lines: Sequence[SdpLine], direction: str | None) -> tuple[SdpLine, ...]:
    """Put ``direction`` where the first direction attribute was (or at the end); drop others."""
    new = [] if direction is None else [Attribute(direction)]
    out: list[SdpLine] = []
    for line in lines:
        if isinstance(line, Attribute) and line.name in _FLAGS and line.value is None:
            out += new
            new = []
        else:
            out.append(line)
    return (*out, *new)


@attrs.frozen(slots=True)
class MediaDescription:
    """One ``m=<media> <port>[/<count>] <proto> <fmt> ...`` section and its own lines."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    lines: tuple[SdpLine, ...] = ()
    port_count: int | None = None

    def __str__(self) -> str:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        return " ".join((self.media, port, self.proto, *self.formats))

    @property
    def rejected(self) -> bool:
        """Port zero: the stream is rejected or disabled (RFC 3264 §5.1, §6)."""
        return self.port == 0

    @property
    def connection(self) -> Connection | None:
        return next((x for x in self.lines if isinstance(x, Connection)), None)

    @property
    def attributes(self) -> tuple[Attribute, ...]:
        return _attributes(self.lines)

    @property
    def direction(self) -> str | None:
        """The media-level direction attribute, or None when the section has none."""
        return _direction_in(self.lines)

    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=name:value`` (None if absent or a property attribute)."""
        return next((a.value for a in self.attributes if a.name == name), None)

    def rtpmap(self) -> dict[str, str]:
        """Payload type → ``encoding/clock[/channels]`` from the ``a=rtpmap`` lines."""
        result: dict[str, str] = {}
        for a in self.attributes:
            if a.name == "rtpmap" and a.value and " " in a.value:
                pt, _, enc = a.value.partition(" ")
                result[pt] = enc.strip()
        return result

    def with_direction(self, direction: str | None) -> MediaDescription:
        lines = _set_direction(self.lines, direction)
        return type(self)(self.media, self.port, self.proto, self.formats, lines, self.port_count)


class SessionDescriptionChanges(TypedDict, total=False):
    """The fields ``SessionDescription.evolve`` changes."""

    origin: Origin
    name: str
    lines: tuple[SdpLine, ...]
    media: tuple[MediaDescription, ...]


@attrs.frozen(slots=True)
class SessionDescription:
    """A parsed SDP body. ``lines`` are the session-level lines after ``s=``, in order."""

    origin: Origin
    name: str = "-"
    lines: tuple[SdpLine, ...] = (Timing(),)
    media: tuple[MediaDescription, ...] = ()

    def __str__(self) -> str:
        out = ["v=0", f"o={self.origin}", f"s={self.name}"]
        out += [f"{x.type}={x}" for x in self.lines]
        for m in self.media:
            out.append(f"m={m}")
            out += [f"{x.type}={x}" for x in m.lines]
        return "\r\n".join(out) + "\r\n"

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8")

    @property
    def connection(self) -> Connection | None:
        """The session-level ``c=`` line (media sections may override it)."""
        return next((x for x in self.lines if isinstance(x, Connection)), None)

    @property
    def attributes(self) -> tuple[Attribute, ...]:
        return _attributes(self.lines)

    @property
    def timings(self) -> tuple[Timing, ...]:
        return tuple(x for x in self.lines if isinstance(x, Timing))

    @property
    def direction(self) -> str:
        """The session-level direction (sendrecv when no attribute says otherwise)."""
        return _direction_in(self.lines) or "sendrecv"

    def media_direction(self, index: int) -> str:
        """The direction of media section ``index``: media level wins over session level."""
        return self.media[index].direction or self.direction

    def media_connection(self, index: int) -> Connection | None:
        """The ``c=`` that applies to media section ``index`` (its own, else the session's)."""
        return self.media[index].connection or self.connection

    def evolve(self, **changes: Unpack[SessionDescriptionChanges]) -> SessionDescription:
        """A copy with some fields replaced (``origin``, ``name``, ``lines``, ``media``)."""
        return attrs.evolve(self, **changes)

    def evolve_media(self, index: int, media: MediaDescription) -> SessionDescription:
        """A copy with media section ``index`` replaced."""
        sections = list(self.media)
        sections[index] = media
        return attrs.evolve(self, media=tuple(sections))

    def next_version(self) -> SessionDescription:
        """The same description with the origin version one higher (RFC 3264 §8)."""
        return attrs.evolve(self, origin=attrs.evolve(self.origin, version=self.origin.version + 1))

    def with_direction(self, direction: str) -> SessionDescription:
        """A new offer with every active stream set to ``direction`` and the version bumped.

        The session-level direction attribute is removed so the media-level ones are the
        whole truth; rejected streams (port 0) are left alone.
        """
        _check_direction(direction)
        return self._with_directions(lambda _current: direction)

    def hold(self) -> SessionDescription:
        """RFC 3264 §8.4: sendrecv → sendonly, recvonly → inactive (a new offer)."""
        table = {"sendrecv": "sendonly", "recvonly": "inactive"}
        return self._with_directions(lambda current: table.get(current, current))

    def retrieve(self) -> SessionDescription:
        """Take the call off hold: every active stream back to ``a=sendrecv`` (a new offer)."""
        return self.with_direction("sendrecv")

    def _with_directions(self, choose: Callable[[str], str]) -> SessionDescription:
        media = tuple(
            m if m.rejected else m.with_direction(choose(self.media_direction(i)))
            for i, m in enumerate(self.media)
        )
        lines = _set_direction(self.lines, None)
        return attrs.evolve(self, lines=lines, media=media).next_version()


def _is_number(text: str) -> bool:
    """ASCII digits, at most 20 of them: ``int()`` of it cannot fail or take long (``isdigit``
    alone admits '²' and 5,000-digit numbers, which ``int`` refuses with ValueError)."""
    return 0 < len(text) <= 20 and text.isascii() and text.isdigit()


def _parse_line(kind: str, value: str, number: int) -> SdpLine:
    def fail(what: str) -> SdpError:
        return SdpError(f"SDP line {number}: malformed {kind}= line ({what}): {excerpt(value)}")

    if kind == "c":
        parts = value.split(" ")
        if len(parts) != 3 or not all(parts):
            raise fail("expected '<nettype> <addrtype> <address>'")
        return Connection(parts[2], parts[0], parts[1])
    if kind == "b":
        bwtype, sep, amount = value.partition(":")
        if not sep or not bwtype or not _is_number(amount):
            raise fail("expected '<bwtype>:<bandwidth>'")
        return Bandwidth(bwtype, int(amount))
    if kind == "t":
        parts = value.split(" ")
        if len(parts) != 2 or not all(_is_number(p) for p in parts):
            raise fail("expected '<start> <stop>'")
        return Timing(int(parts[0]), int(parts[1]))
    if kind == "a":
        if not value:
            raise fail("empty attribute")
        name, sep, rest = value.partition(":")
        return Attribute(name, rest if sep else None)
    return Line(kind, value)


def _parse_media(value: str, number: int) -> tuple[str, int, str, tuple[str, ...], int | None]:
    """The fields of an ``m=`` line: media, port, proto, formats, port count."""
    parts = value.split(" ")
    if len(parts) < 4 or not all(parts):
        raise SdpError(
            f"SDP line {number}: m= needs '<media> <port> <proto> <fmt> ...': {excerpt(value)}"
        )
    port_text, sep, count_text = parts[1].partition("/")
    if not _is_number(port_text) or int(port_text) > 65535 or (sep and not _is_number(count_text)):
        raise SdpError(f"SDP line {number}: bad port {excerpt(parts[1], 20)} in m= line")
    count = int(count_text) if sep else None
    return parts[0], int(port_text), parts[2], tuple(parts[3:]), count


def parse_sdp(data: bytes | str) -> SessionDescription:
    """Parse an SDP body (CRLF or bare LF line endings). Raises :class:`SdpError`."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpError(f"SDP body is not UTF-8: {exc}") from None
    text = data.replace("\r\n", "\n")
    raw = text.split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    if len(raw) < 3:
        raise SdpError("SDP body needs at least v=, o= and s= lines")
    pairs: list[tuple[str, str]] = []
    for number, line in enumerate(raw, 1):
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha() or "\r" in line:
            raise SdpError(f"SDP line {number} is not '<type>=<value>': {excerpt(line)}")
        pairs.append((line[0], line[2:]))
    (vk, vv), (ok, ov), (sk, sv) = pairs[:3]
    if (vk, ok, sk) != ("v", "o", "s"):
        raise SdpError("SDP body must start with v=, o= and s= lines, in that order")
    if vv != "0":
        raise SdpError(f"unsupported SDP version v={excerpt(vv, 20)} (only v=0 exists)")
    fields = ov.split(" ")
    if len(fields) != 6 or not all(fields) or not _is_number(fields[2]):
        raise SdpError(f"SDP line 2: malformed o= line: {excerpt(ov)}")
    origin = Origin(fields[0], fields[1], int(fields[2]), fields[5], fields[3], fields[4])
    session: list[SdpLine] = []
    media: list[tuple[tuple[str, int, str, tuple[str, ...], int | None], list[SdpLine]]] = []
    current = session
    for number, (kind, value) in enumerate(pairs[3:], 4):
        if kind == "m":
            current = []
            media.append((_parse_media(value, number), current))
            continue
        if media and kind in _SESSION_ONLY:
            raise SdpError(f"SDP line {number}: {kind}= is not allowed inside a media section")
        if kind in "vos":
            raise SdpError(f"SDP line {number}: a second {kind}= line")
        current.append(_parse_line(kind, value, number))
    if not any(isinstance(x, Timing) for x in session):
        raise SdpError("SDP body has no t= line (RFC 4566 §5: at least one is required)")
    sections = tuple(
        MediaDescription(name, port, proto, formats, tuple(lines), count)
        for (name, port, proto, formats, count), lines in media
    )
    return SessionDescription(origin, sv, tuple(session), sections)


_RTP_PT_ATTRIBUTES: Final = frozenset({"rtpmap", "fmtp", "rtcp-fb"})


def _pt_of(attribute: Attribute) -> str | None:
    """The payload type an ``a=rtpmap``/``fmtp``/``rtcp-fb`` line is about, else None."""
    if attribute.name in _RTP_PT_ATTRIBUTES and attribute.value:
        return attribute.value.partition(" ")[0]
    return None


def _negotiate(offered: MediaDescription, local: MediaDescription) -> MediaDescription | None:
    """The local section cut down to the formats the offer also has (RFC 3264 §6.1).

    Static RTP payload types (< 96) match by number; dynamic ones match by ``a=rtpmap``
    encoding name and clock rate, and take the *offer's* payload type number ("the same payload
    type number SHOULD be used for that codec in the answer"). None if nothing is in common.
    """
    is_rtp = "RTP" in local.proto.upper()
    offered_map = {pt: enc.lower() for pt, enc in offered.rtpmap().items()}
    local_map = local.rtpmap()
    chosen: dict[str, str] = {}  # local format -> format in the answer
    for fmt in local.formats:
        encoding = local_map.get(fmt, "").lower() if is_rtp else ""
        candidates = [fmt] if fmt in offered.formats else []
        if (encoding and offered_map.get(fmt, encoding) != encoding) or not candidates:
            candidates = [
                pt for pt in offered.formats if encoding and offered_map.get(pt) == encoding
            ]
        match = next((pt for pt in candidates if pt not in chosen.values()), None)
        if match is not None:
            chosen[fmt] = match
    if not chosen:
        return None
    lines: list[SdpLine] = []
    for line in local.lines:
        pt = _pt_of(line) if isinstance(line, Attribute) and is_rtp else None
        if pt is None:
            lines.append(line)
        elif pt in chosen and isinstance(line, Attribute) and line.value is not None:
            lines.append(Attribute(line.name, f"{chosen[pt]} {line.value.partition(' ')[2]}"))
    formats = tuple(chosen.values())
    return type(local)(
        local.media, local.port, local.proto, formats, tuple(lines), local.port_count
    )


def answer_for(
    offer: SessionDescription,
    local_sdp: SessionDescription,
    *,
    previous: SessionDescription | None = None,
) -> SessionDescription:
    """The answer to ``offer`` built from our capabilities ``local_sdp`` (RFC 3264 §6).

    Each offered stream is matched, in order, with the first unused local section of the same
    media type and transport protocol; the answer has exactly the offer's m-lines in the
    offer's order. A stream is answered with port 0 (rejected) when the offer rejected it, no
    local section matches or no format is in common. The direction of each accepted stream is
    the offer's mirrored (sendonly → recvonly, ...) and narrowed by the local section's own
    direction (so a local sendonly on hold stays at most sendonly).

    ``previous`` is the last SDP we sent in this session: its origin is reused and the version
    goes up by one only if the answer differs from it (RFC 3264 §8).
    """
    used: set[int] = set()
    media: list[MediaDescription] = []
    for i, om in enumerate(offer.media):
        accepted: MediaDescription | None = None
        if not om.rejected:
            for j, lm in enumerate(local_sdp.media):
                if j in used or lm.rejected or (lm.media, lm.proto) != (om.media, om.proto):
                    continue
                accepted = _negotiate(om, lm)
                if accepted is None:
                    continue  # no common format: maybe another local section fits
                used.add(j)
                send_o, recv_o = _FLAGS[offer.media_direction(i)]
                send_l, recv_l = _FLAGS[local_sdp.media_direction(j)]
                direction = _direction_from_flags(recv_o and send_l, send_o and recv_l)
                accepted = accepted.with_direction(direction)
                break
        media.append(accepted or MediaDescription(om.media, 0, om.proto, om.formats))
    lines = _set_direction(local_sdp.lines, None)
    answer = type(local_sdp)(local_sdp.origin, local_sdp.name, lines, tuple(media))
    if previous is not None:
        same = attrs.evolve(answer, origin=previous.origin) == previous
        version = previous.origin.version + (0 if same else 1)
        answer = attrs.evolve(answer, origin=attrs.evolve(previous.origin, version=version))
    return answer


#: name -> (payload type, rtpmap encoding) for :func:`audio_offer`.
AUDIO_CODECS: Final = {
    "PCMU": ("0", "PCMU/8000"),
    "PCMA": ("8", "PCMA/8000"),
    "G722": ("9", "G722/8000"),
    "telephone-event": ("101", "telephone-event/8000"),
}


def audio_offer(
    address: str,
    port: int,
    *,
    session_id: int | None = None,
    rng: random.Random | None = None,
    username: str = "-",
    codecs: Sequence[str] = ("PCMU", "PCMA", "telephone-event"),
    direction: str = "sendrecv",
    dtmf_events: str = "0-16",
    ptime: int | None = None,
) -> SessionDescription:
    """A one-stream RTP/AVP audio offer, e.g. for a user agent or a test.

    ``session_id`` (also the first version) is taken from ``rng`` when not given. ``codecs``
    are names from :data:`AUDIO_CODECS`, in preference order; telephone-event (RFC 4733) gets
    ``a=fmtp:101 <dtmf_events>``.
    """
    _check_direction(direction)
    if session_id is None:
        if rng is None:
            raise ValueError("audio_offer needs session_id or an rng to draw one from")
        session_id = rng.randrange(1, 2**62)
    unknown = [c for c in codecs if c not in AUDIO_CODECS]
    if unknown or not codecs:
        raise ValueError(f"unknown or no codecs {unknown}; known: {sorted(AUDIO_CODECS)}")
    addrtype = "IP6" if ":" in address else "IP4"
    lines: list[SdpLine] = []
    for name in codecs:
        pt, encoding = AUDIO_CODECS[name]
        lines.append(Attribute("rtpmap", f"{pt} {encoding}"))
        if name == "telephone-event":
            lines.append(Attribute("fmtp", f"{pt} {dtmf_events}"))
    if ptime is not None:
        lines.append(Attribute("ptime", str(ptime)))
    lines.append(Attribute(direction))
    formats = tuple(AUDIO_CODECS[name][0] for name in codecs)
    return SessionDescription(
        origin=Origin(username, str(session_id), session_id, address, "IN", addrtype),
        name="-",
        lines=(Connection(address, "IN", addrtype), Timing(0, 0)),
        media=(MediaDescription("audio", port, "RTP/AVP", formats, tuple(lines)),),
    )
