"""Where a request goes: one transport, one IP address, one port.

RFC 3263 planning (:mod:`trio_sip.proto.resolve`) turns a URI into an ordered list of targets;
the blacklist (:mod:`trio_sip.proto.blacklist`) reorders them; the transports open a flow to one.
"""

from __future__ import annotations

import attrs

__all__ = ["TRANSPORTS", "Target", "default_port", "is_reliable"]

#: Transport names as they appear in a Via header.
TRANSPORTS = ("UDP", "TCP", "TLS")


def default_port(transport: str) -> int:
    """5061 for TLS, 5060 otherwise (RFC 3261 §19.1.2)."""
    return 5061 if transport.upper() == "TLS" else 5060


def is_reliable(transport: str) -> bool:
    """TCP and TLS are reliable (no retransmission timers, §17.1.1.2)."""
    return transport.upper() != "UDP"


@attrs.frozen(slots=True)
class Target:
    """One resolved destination.

    ``host`` is an IP address literal (IPv6 without brackets); ``hostname`` is the name it was
    resolved from, kept for TLS server-name checks and for logs.
    """

    transport: str
    host: str
    port: int
    hostname: str | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        """The blacklist key: (transport, address, port)."""
        return (self.transport, self.host, self.port)

    @property
    def reliable(self) -> bool:
        return is_reliable(self.transport)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport.lower()}:{host}:{self.port}"
