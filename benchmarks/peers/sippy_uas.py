"""A UAS on sippy's own API: every INVITE gets 180, then 200 with an SDP answer; BYE gets 200.

Run as a process (``python -m benchmarks.peers.sippy_uas HOST PORT LIFETIME``) by the ``uas``
benchmark; it prints ``READY <port>`` once its socket is bound and exits after ``LIFETIME``
seconds at the latest (the benchmark kills it by PID earlier).

This is the Sippy B2BUA's own structure (``sippy/b2bua_simple.py``), with the outgoing leg
replaced by an immediate answer: a ``SipTransactionManager`` hands new requests to
``CallMap.recvRequest``; an INVITE creates a ``UA`` whose event callback receives the
``CCEventTry`` and answers it with ``CCEventRing`` (180) and ``CCEventConnect`` (200 + SDP).
The ``UA`` registers itself as the consumer of its Call-ID, so the ACK and the BYE go to it
(``UaStateConnected`` answers the BYE 200 and ends the call); sippy's transaction manager owns
the retransmissions.  Logging is off (``SIPLOG_BEND=none``), as a production server under load
would run it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

ANSWER = (
    "v=0\r\n"
    "o=- 1 1 IN IP4 {host}\r\n"
    "s=-\r\n"
    "c=IN IP4 {host}\r\n"
    "t=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=sendrecv\r\n"
)


def main(host: str, port: int, lifetime: float) -> None:
    os.environ["SIPLOG_BEND"] = "none"
    from sippy.CCEvents import CCEventConnect, CCEventRing, CCEventTry
    from sippy.Core.EventDispatcher import ED2
    from sippy.MsgBody import MsgBody
    from sippy.SipConf import SipConf
    from sippy.SipLogger import SipLogger
    from sippy.SipTransactionManager import SipTransactionManager
    from sippy.Time.Timeout import Timeout
    from sippy.UA import UA

    answer = ANSWER.format(host=host)

    def on_event(event: Any, ua: Any) -> None:
        if isinstance(event, CCEventTry):
            ua.recvEvent(CCEventRing((180, "Ringing", None)))
            ua.recvEvent(CCEventConnect((200, "OK", MsgBody(answer))))

    def on_request(req: Any, sip_t: Any) -> Any:
        if req.getHFBody("to").getTag() is not None:
            return (req.genResponse(481, "Call Leg/Transaction Does Not Exist"), None, None)
        if req.getMethod() == "INVITE":
            ua = UA(config, on_event)
            return ua.recvRequest(req, sip_t)
        return (req.genResponse(501, "Not Implemented"), None, None)

    SipConf.my_uaname = "sippy-bench-uas"
    config: dict[str, Any] = {
        "_sip_address": host,
        "_sip_port": port,
        "_sip_logger": SipLogger("bench-uas"),
    }
    config["_sip_tm"] = SipTransactionManager(config, on_request)
    Timeout(ED2.breakLoop, lifetime)
    print(f"READY {port}", flush=True)
    ED2.loop()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
