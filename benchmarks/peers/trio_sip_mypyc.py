"""trio-sip's mypyc-compiled core (``TRIO_SIP_COMPILE=1``); the same adapter as ``trio-sip``."""

from __future__ import annotations

from benchmarks.peers import Adapter
from benchmarks.peers.trio_sip import load as _load


def load() -> Adapter:
    return _load(compiled=True)
