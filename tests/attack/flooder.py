"""A UDP INVITE flood at the highest rate one process can send (loopback only).

``python tests/attack/flooder.py TARGET_HOST TARGET_PORT SOURCE_HOST SECONDS`` sends distinct
INVITEs (a new branch and Call-ID each: every one is a new request, none a retransmission)
from ``SOURCE_HOST`` to ``TARGET_HOST:TARGET_PORT`` for ``SECONDS`` seconds, then prints
``SENT <count> <seconds>``. A full socket buffer (ENOBUFS/EAGAIN) is counted and skipped.
Every address must be in 127.0.0.0/8: the flood never leaves the machine.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import time

TEMPLATE = (
    "INVITE sip:serve@{target}:{port} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP {source}:{sport};branch=z9hG4bKflood%d;rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:flood@{source}>;tag=f%d\r\n"
    "To: <sip:serve@{target}>\r\n"
    "Call-ID: flood-%d@{source}\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:flood@{source}:{sport}>\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: {length}\r\n\r\n"
)
SDP = (
    "v=0\r\no=- 1 1 IN IP4 {source}\r\ns=-\r\nc=IN IP4 {source}\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def flood(target: str, port: int, source: str, seconds: float) -> tuple[int, float]:
    for host in (target, source):
        if not ipaddress.ip_address(host).is_loopback:
            raise SystemExit(f"{host} is not a loopback address")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sport = sock.getsockname()[1]
    body = SDP.format(source=source)
    head = TEMPLATE.format(target=target, port=port, source=source, sport=sport, length=len(body))
    template = (head + body).encode()
    dest = (target, port)
    sent = 0
    start = time.monotonic()
    deadline = start + seconds
    n = 0
    while True:
        for _ in range(256):
            n += 1
            try:
                sock.sendto(template % (n, n, n), dest)
                sent += 1
            except OSError:  # ENOBUFS, ECONNREFUSED (ICMP from an earlier datagram)
                pass
        if time.monotonic() >= deadline:
            break
    took = time.monotonic() - start
    sock.close()
    return sent, took


if __name__ == "__main__":
    sent, took = flood(sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
    print(f"SENT {sent} {took:.3f}", flush=True)
