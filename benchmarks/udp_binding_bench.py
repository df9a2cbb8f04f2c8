"""One UDP binding: two ways to send from the SIP port and still hear ICMP port-unreachable.

What one run does (``python -m benchmarks udpbind``), on loopback, with raw sockets under trio
(the mechanisms alone, without the SIP stack on top):

* **errqueue**: one listening socket with ``IP_RECVERR``; every datagram goes out with
  ``sendto``; an ICMP error is read from the socket's error queue (``recvmsg(MSG_ERRQUEUE)``),
  whose ``msg_name`` is the original destination (ip(7)). What trio-sip does on Linux.
* **reuseport**: the listening socket has ``SO_REUSEPORT``; per destination a second socket
  with ``SO_REUSEPORT`` is bound to the *same* address:port and ``connect()``-ed, so the kernel
  reports ICMP on it as ``ECONNREFUSED`` (udp(7)) and delivers that peer's datagrams to it.
* **ephemeral** (before): one connected socket per destination on an ephemeral port (the NAT
  binding problem of issue #11); for reference only.

Measured:

1. *refusal latency*: send one datagram to a port nothing listens on; time until the error is
   in our hands (including trio's wake-up). Median and max over ``runs``.
2. *send cost*: ``sendto`` / ``send`` of 20,000 datagrams spread over K peers (µs per datagram).
3. *receive cost*: K peers send 20,000 datagrams in all; the time until our side has read them
   all (µs per datagram): one receive loop (errqueue) or K receive tasks (reuseport).
4. *correctness*: with K connected sockets on the port, does every datagram from a connected
   peer land on its socket, and every datagram from a stranger on the listener? And: can a
   second, unrelated socket join the port, and does it then take a share of strangers'
   datagrams (a hijack the errqueue design does not allow)?

Benchmarks report; nothing here fails the run.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import struct
import time
from typing import Any

import trio

HOST = "127.0.0.1"
SOL_IP = 0
IP_RECVERR = 11  # linux/in.h (Python 3.11 has no socket.IP_RECVERR)
DATAGRAMS = 20_000


def _dead_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


def _udp(*, reuseport: bool = False, recverr: bool = False, port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if reuseport:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if recverr:
        sock.setsockopt(SOL_IP, IP_RECVERR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.setblocking(False)
    sock.bind((HOST, port))
    return sock


def _errqueue(sock: socket.socket) -> list[tuple[tuple[str, int], int]]:
    """Drain the error queue: [(original destination, errno)]."""
    out: list[tuple[tuple[str, int], int]] = []
    while True:
        try:
            _data, ancdata, _flags, address = sock.recvmsg(512, 512, socket.MSG_ERRQUEUE)
        except (BlockingIOError, InterruptedError):
            return out
        for level, kind, payload in ancdata:
            if level == SOL_IP and kind == IP_RECVERR:
                ee_errno = struct.unpack_from("=I", payload)[0]
                out.append(((address[0], address[1]), ee_errno))


async def _refusal_errqueue(runs: int) -> list[float]:
    sock = _udp(recverr=True)
    out: list[float] = []
    try:
        for _ in range(runs):
            dead = (HOST, _dead_port())
            start = time.perf_counter()
            sock.sendto(b"x", dead)
            while True:
                await trio.lowlevel.wait_readable(sock)
                try:
                    sock.recvfrom(2048)
                except BlockingIOError:
                    pass
                except OSError:
                    pass
                errors = _errqueue(sock)
                if any(dst == dead for dst, _ in errors):
                    break
            out.append(time.perf_counter() - start)
    finally:
        sock.close()
    return out


async def _refusal_connected(runs: int, *, reuseport: bool) -> list[float]:
    listener = _udp(reuseport=True) if reuseport else None
    port = listener.getsockname()[1] if listener is not None else 0
    out: list[float] = []
    try:
        for _ in range(runs):
            dead = (HOST, _dead_port())
            sock = _udp(reuseport=reuseport, port=port)
            try:
                sock.connect(dead)
                start = time.perf_counter()
                sock.send(b"x")
                while True:
                    await trio.lowlevel.wait_readable(sock)
                    try:
                        sock.recv(2048)
                    except BlockingIOError:
                        continue
                    except ConnectionRefusedError:
                        break
                out.append(time.perf_counter() - start)
            finally:
                sock.close()
    finally:
        if listener is not None:
            listener.close()
    return out


def _peers(k: int) -> list[socket.socket]:
    return [_udp() for _ in range(k)]


def _send_cost(k: int, *, reuseport: bool) -> float:
    """µs per datagram sent from the SIP port to K peers."""
    peers = _peers(k)
    addresses = [p.getsockname() for p in peers]
    listener = _udp(reuseport=reuseport, recverr=not reuseport)
    port = listener.getsockname()[1]
    conns: list[socket.socket] = []
    try:
        if reuseport:
            for address in addresses:
                c = _udp(reuseport=True, port=port)
                c.connect(address)
                conns.append(c)
        payload = b"x" * 600
        start = time.perf_counter()
        for i in range(DATAGRAMS):
            j = i % k
            try:  # a full peer buffer drops on the peer's side: the sender never waits
                if reuseport:
                    conns[j].send(payload)
                else:
                    listener.sendto(payload, addresses[j])
            except BlockingIOError:
                pass
        return (time.perf_counter() - start) / DATAGRAMS * 1e6
    finally:
        for s in [*peers, *conns, listener]:
            s.close()


def _drain(sock: socket.socket) -> int:
    n = 0
    while True:
        try:
            sock.recv(65535)
            n += 1
        except (BlockingIOError, OSError):
            return n


async def _receive_cost(k: int, *, reuseport: bool) -> float:
    """µs per datagram received on our side from K peers (each peer connected-to when
    ``reuseport``: its datagrams land on its own socket, read by its own task). The peers send
    in rounds of 64 datagrams and wait until all were read, so nothing is dropped."""
    listener = _udp(reuseport=reuseport, recverr=not reuseport)
    port = listener.getsockname()[1]
    peers = _peers(k)
    conns: list[socket.socket] = []
    got = [0]
    want = [0]
    wake = [trio.Event()]

    async def reader(sock: socket.socket) -> None:
        while True:
            for _ in range(32):
                try:
                    sock.recvfrom(65535)
                except BlockingIOError:
                    break
                got[0] += 1
            else:
                await trio.lowlevel.checkpoint()
                continue
            if got[0] >= want[0]:
                wake[0].set()
            await trio.lowlevel.wait_readable(sock)

    try:
        if reuseport:
            for p in peers:
                c = _udp(reuseport=True, port=port)
                c.connect(p.getsockname())
                conns.append(c)
        async with trio.open_nursery() as nursery:
            for sock in [listener, *conns]:
                nursery.start_soon(reader, sock)
            await trio.sleep(0.01)
            payload = b"y" * 600
            per_round = max(64, k)
            rounds = max(1, DATAGRAMS // per_round)
            start = time.perf_counter()
            for r in range(rounds):
                wake[0] = trio.Event()
                want[0] += per_round
                for i in range(per_round):
                    peers[i % k].sendto(payload, (HOST, port))
                with trio.move_on_after(5):
                    await wake[0].wait()
            elapsed = time.perf_counter() - start
            nursery.cancel_scope.cancel()
        if got[0] < want[0]:
            raise RuntimeError(f"lost datagrams: {got[0]} of {want[0]}")
        return elapsed / got[0] * 1e6
    finally:
        for s in [*peers, *conns, listener]:
            s.close()


def _correctness(k: int) -> dict[str, Any]:
    """reuseport: does the kernel deliver each datagram to the right socket?"""
    listener = _udp(reuseport=True)
    port = listener.getsockname()[1]
    peers = _peers(k)
    strangers = _peers(8)
    conns: dict[tuple[str, int], socket.socket] = {}
    try:
        for p in peers:
            c = _udp(reuseport=True, port=port)
            c.connect(p.getsockname())
            conns[p.getsockname()] = c
        for p in peers:
            p.sendto(b"peer", (HOST, port))
        for s in strangers:
            for _ in range(8):
                s.sendto(b"stranger", (HOST, port))
        time.sleep(0.05)
        misrouted = sum(1 for address, c in conns.items() if _drain(c) != 1)
        strangers_on_listener = _drain(listener)
        # An unrelated socket (same user) may join the port: does it take strangers' traffic?
        intruder = _udp(reuseport=True, port=port)
        for s in strangers:
            for _ in range(8):
                s.sendto(b"stranger", (HOST, port))
        time.sleep(0.05)
        stolen = _drain(intruder)
        kept = _drain(listener)
        intruder.close()
        errqueue_bind = _udp(recverr=True)
        try:
            _udp(port=errqueue_bind.getsockname()[1]).close()
            errqueue_exclusive = False
        except OSError:
            errqueue_exclusive = True
        errqueue_bind.close()
        return {
            "peers": k,
            "peers_misrouted": misrouted,
            "stranger_datagrams_on_listener": f"{strangers_on_listener}/64",
            "intruder_took": f"{stolen}/{stolen + kept}",
            "errqueue_port_exclusive": errqueue_exclusive,
        }
    finally:
        for s in [*peers, *strangers, *conns.values(), listener]:
            s.close()


async def _bench(runs: int) -> dict[str, Any]:
    results: dict[str, Any] = {"refusal_s": {}, "send_us": {}, "receive_us": {}, "correctness": []}
    results["refusal_s"]["errqueue"] = await _refusal_errqueue(runs)
    results["refusal_s"]["reuseport"] = await _refusal_connected(runs, reuseport=True)
    results["refusal_s"]["ephemeral"] = await _refusal_connected(runs, reuseport=False)
    for k in (1, 100, 1000):
        results["send_us"][k] = {
            "errqueue": _send_cost(k, reuseport=False),
            "reuseport": _send_cost(k, reuseport=True),
        }
        results["receive_us"][k] = {
            "errqueue": await _receive_cost(k, reuseport=False),
            "reuseport": await _receive_cost(k, reuseport=True),
        }
        results["correctness"].append(_correctness(k))
    return results


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure, print, return the numbers."""
    runs = max(10, int(50 * getattr(args, "seconds", 2.0) / 2))
    result = trio.run(_bench, runs)
    print("Refused peer: send -> error in hand (loopback)")
    for name, values in result["refusal_s"].items():
        print(
            f"  {name:<10} median {statistics.median(values) * 1e6:8.1f} µs   "
            f"max {max(values) * 1e6:8.1f} µs   ({len(values)} runs)"
        )
    print(
        "Cost per datagram (µs), K peers:    send errqueue/reuseport    receive errqueue/reuseport"
    )
    for k in result["send_us"]:
        s, r = result["send_us"][k], result["receive_us"][k]
        print(
            f"  K={k:<5}  {s['errqueue']:17.2f} / {s['reuseport']:<10.2f}"
            f" {r['errqueue']:19.2f} / {r['reuseport']:.2f}"
        )
    print("reuseport correctness:")
    for row in result["correctness"]:
        print("  " + ", ".join(f"{k}={v}" for k, v in row.items()))
    return {
        "refusal_median_s": {k: statistics.median(v) for k, v in result["refusal_s"].items()},
        "refusal_max_s": {k: max(v) for k, v in result["refusal_s"].items()},
        "send_us": result["send_us"],
        "receive_us": result["receive_us"],
        "correctness": result["correctness"],
    }
