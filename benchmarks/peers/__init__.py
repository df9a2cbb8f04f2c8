"""Adapters: one module per SIP stack, each with ``load() -> Adapter``.

An adapter is the code a user of that stack would write to (1) parse a datagram, (2) read the
eight header values below from the *parsed* message through the stack's own API, and (3) turn a
parsed message back into wire bytes.  ``load()`` imports the stack; if that raises, the stack is
reported as unavailable with the exception as the reason, never silently dropped.

The eight values, in this order (``None`` when the message has no such header/parameter):

    Via branch (top Via), From tag, To tag, Call-ID, CSeq number (int), CSeq method,
    Contact URI host (first Contact), Max-Forwards (int), Content-Length (int)

(CSeq counts as two values of one header: "8 header reads" are 8 headers, 9 values.)
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Display order.  trio-sip first (pure-Python, then the mypyc-compiled build); the rest are
# the peers.
ADAPTERS: dict[str, str] = {
    "trio-sip": "benchmarks.peers.trio_sip",
    "trio-sip-mypyc": "benchmarks.peers.trio_sip_mypyc",
    "sippy": "benchmarks.peers.sippy",
    "pyVoIP": "benchmarks.peers.pyvoip",
    "aiosip": "benchmarks.peers.aiosip",
    "sipmessage": "benchmarks.peers.sipmessage",
    "aiosipua": "benchmarks.peers.aiosipua",
    "opensip": "benchmarks.peers.opensip",
}
OURS = ("trio-sip", "trio-sip-mypyc")
"""Our two builds; every other stack is a peer."""
# Stacks whose worker must import the *installed* package, not the source tree at the
# repository root (which would shadow it when first on sys.path).
INSTALLED_ONLY = frozenset({"trio-sip-mypyc"})

Values = tuple[Any, ...]


@dataclass
class Adapter:
    """How one stack parses, reads and serialises.  All three are plain functions."""

    name: str
    distribution: str  # PyPI name, for the version
    parse: Callable[[bytes], Any]
    read: Callable[[Any], Values]
    serialize: Callable[[Any], bytes] | None  # None: the stack has no message serialiser
    errors: tuple[type[BaseException], ...]  # what counts as the stack's clean rejection
    notes: list[str] = field(default_factory=list)  # where the adapter does user-side work
    no_serialize_reason: str = ""
    # For a stack whose serialiser hands back the received bytes when nothing was edited: an
    # equivalent message, after a no-op edit, that the serialiser has to write out in full.
    full_write: Callable[[Any], Any] | None = None

    @property
    def version(self) -> str:
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return "?"


def load(name: str) -> Adapter:
    """Import the adapter module and its stack; raises whatever the import raises."""
    module = importlib.import_module(ADAPTERS[name])
    return module.load()


def host_of_uri(uri: str) -> str:
    """The host of a ``sip:user@host:port;params`` string, for stacks that leave URIs as text."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    rest = rest.split(";", 1)[0].split("?", 1)[0]
    rest = rest.rsplit("@", 1)[-1]
    if rest.startswith("["):
        return rest[: rest.index("]") + 1]
    return rest.split(":", 1)[0]
