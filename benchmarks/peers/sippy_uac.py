"""sippy as the UAC of the ``uac`` benchmark: ``python -m benchmarks.peers.sippy_uac HOST PORT
RATE CALLS PAUSE``.

sippy's own structure for an outgoing leg (``sippy/b2bua_simple.py``'s ``uaO``): a
``SipTransactionManager`` and, per call, a ``UA`` with a next hop, started with ``CCEventTry``
(an SDP offer); once connected a ``Timeout`` sends ``CCEventDisconnect`` (BYE) after
``PAUSE`` s. One call is started every ``1/RATE`` s by a repeating ``Timeout``. Logging is off
(``SIPLOG_BEND=none``). Prints ``READY`` and, at the end, ``RESULT {json}`` as the trio-sip UAC
does.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any

from benchmarks.peers.uac_common import OFFER, cpu, report


def main(host: str, port: int, rate: float, calls: int, pause: float) -> None:
    os.environ["SIPLOG_BEND"] = "none"
    from sippy.CCEvents import CCEventDisconnect, CCEventTry
    from sippy.Core.EventDispatcher import ED2
    from sippy.MsgBody import MsgBody
    from sippy.SipCallId import SipCallId
    from sippy.SipConf import SipConf
    from sippy.SipLogger import SipLogger
    from sippy.SipTransactionManager import SipTransactionManager
    from sippy.Time.Timeout import Timeout
    from sippy.UA import UA

    counts = {"answered": 0, "ended": 0, "failed": 0, "started": 0}
    times: dict[str, float] = {}
    offer = OFFER.format(host="127.0.0.1")

    def check_done() -> None:
        if counts["ended"] + counts["failed"] >= calls:
            ED2.breakLoop()

    def hang_up(ua: Any) -> None:
        ua.recvEvent(CCEventDisconnect())

    def on_connected(ua: Any, *_: Any) -> None:
        counts["answered"] += 1
        ua.answered = True
        Timeout(hang_up, pause, 1, ua)

    def on_failed(ua: Any, *_: Any) -> None:
        counts["failed"] += 1
        check_done()

    def on_disconnected(ua: Any, *_: Any) -> None:
        # Our BYE left (sippy's UA stays "Disconnected" for a while after its 200).
        counts["ended"] += 1
        check_done()

    def start_one() -> None:
        if counts["started"] == 0:
            times["start"] = time.monotonic()
        counts["started"] += 1
        if counts["started"] == calls:
            times["last"] = time.monotonic()
        ua = UA(config, None, nh_address=(host, port), conn_cbs=(on_connected,),
                fail_cbs=(on_failed,), disc_cbs=(on_disconnected,))  # fmt: skip
        event = CCEventTry((SipCallId(), "bench", "service", MsgBody(offer), None, "bench"))
        ua.recvEvent(event)

    def on_request(req: Any, sip_t: Any) -> Any:
        return (req.genResponse(481, "Call Leg/Transaction Does Not Exist"), None, None)

    SipConf.my_uaname = "sippy-bench-uac"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # sippy needs a number
        probe.bind(("127.0.0.1", 0))
        local_port = probe.getsockname()[1]
    config: dict[str, Any] = {
        "_sip_address": "127.0.0.1",
        "_sip_port": local_port,
        "_sip_logger": SipLogger("bench-uac"),
    }
    config["_sip_tm"] = SipTransactionManager(config, on_request)
    print("READY", flush=True)
    cpu0 = cpu()
    Timeout(start_one, 1.0 / rate, calls)
    ED2.loop()
    end = time.monotonic()
    report(
        {
            "answered": counts["answered"],
            "ended": counts["ended"],
            "failed": counts["failed"],
            "calls": calls,
            "rate": rate,
            "send_seconds": times.get("last", end) - times.get("start", end),
            "cpu_s": cpu() - cpu0,
            "wall_s": end - times.get("start", end),
            "first_error": None,
        }
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
