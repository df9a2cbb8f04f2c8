"""Media (RTP) ports for the SDP a user agent offers or answers with, one per call.

Theory of operation: a :class:`MediaPorts` hands out the RTP ports of a range, each to one call
until that call ends (RFC 3550 §11: RTP on an even port, RTCP on the next one, so a plain range
gives its even ports, each with the odd port above it inside the range). Ports never used yet go
first, in order; then the ports calls gave back, oldest first, so a port just freed is the last
to be offered again (late packets of the old call do not reach the new one). Both steps are O(1)
and nothing is kept per port that is not in use. When every port is held,
:meth:`allocate` raises :class:`~trio_sip.ua.CallFailed`: two calls never offer the same port.
"""

from __future__ import annotations

from collections import deque

from ..proto.errors import ConfigError

__all__ = ["MediaPorts", "media_port_range"]

_ALLOWED = "a non-empty range of ports 1..65535 with room for RTP and RTCP (port + 1)"


def media_port_range(ports: range | None, first: int | None) -> range:
    """The RTP ports for ``media_ports=`` (a range of ports) or the older ``media_port=``
    (the first RTP port; the next ones every 2 ports up to 65534). Default: 40000 and up."""
    if ports is not None and first is not None:
        raise ConfigError("media_port", first, "unset when media_ports is given")
    if ports is None:
        start = 40000 if first is None else first
        if isinstance(start, bool) or not isinstance(start, int) or not 1 <= start <= 65534:
            raise ConfigError("media_port", start, "a port 1..65534 (RTCP takes the next one)")
        return range(start, 65535, 2)
    if not isinstance(ports, range):
        raise ConfigError("media_ports", ports, _ALLOWED)
    if ports.step == 1:  # every port: the even ones carry RTP, the odd ones RTCP
        ports = range(ports.start + ports.start % 2, ports.stop - 1, 2)
    if not ports or min(ports) < 1 or max(ports) > 65534:
        raise ConfigError("media_ports", ports, _ALLOWED)
    return ports


class MediaPorts:
    """The RTP ports of one user agent: :meth:`allocate` one per call, :meth:`release` it when
    the call ends."""

    def __init__(self, ports: range) -> None:
        self.ports = ports
        self._next = 0  # index of the first port never handed out
        self._freed: deque[int] = deque()
        self._held: set[int] = set()

    @property
    def in_use(self) -> int:
        """How many ports calls hold now."""
        return len(self._held)

    def allocate(self) -> int:
        """A port no live call holds; raises CallFailed when every one is taken."""
        if self._next < len(self.ports):
            port = self.ports[self._next]
            self._next += 1
        elif self._freed:
            port = self._freed.popleft()
        else:
            from .call import CallFailed

            first, last = self.ports[0], self.ports[-1]
            raise CallFailed(
                None,
                f"no free media port: all {len(self.ports)} RTP ports of {first}..{last} "
                "are held by live calls (media_ports)",
            )
        self._held.add(port)
        return port

    def release(self, port: int) -> None:
        """Give ``port`` back (a port not held is ignored)."""
        if port in self._held:
            self._held.remove(port)
            self._freed.append(port)
