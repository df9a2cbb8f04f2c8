"""What the two benchmark UACs share: the SDP offer, the summary they print, own RSS/CPU."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path
from typing import Any

OFFER = (
    "v=0\r\n"
    "o=- 1 1 IN IP4 {host}\r\n"
    "s=-\r\n"
    "c=IN IP4 {host}\r\n"
    "t=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=sendrecv\r\n"
)


def rss() -> int:
    """This process's resident set size in bytes (``VmRSS``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu() -> float:
    """User + system CPU seconds of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def report(summary: dict[str, Any]) -> None:
    """The one line the benchmark reads: ``RESULT {json}``."""
    print("RESULT " + json.dumps(summary), flush=True)


def pid() -> int:
    return os.getpid()
