"""The cluster, for real: three ``trio-sip proxy`` nodes behind Kamailio's dispatcher, their
registrations in Redis, sipp as the users (issue #16, docs/scaling.md).

Loopback only: Redis on 127.0.0.29, the front (Kamailio, ``dispatcher``) on 127.0.0.30:5060,
nodes on 127.0.0.31-33:5060 (``--location redis://``, one ``--secret-file``, the front
``--trusted``), sipp UASes on 127.0.0.41-44:5060, sipp clients and our prober on 127.0.0.35.
Every process is started by the test and stopped by its PID; every run is bounded.

The run, in order:

1. sipp registers 1,000 users through the front, with digest: REGISTERs go round-robin, so the
   401 and the authenticated REGISTER usually reach two different nodes (shared secret);
2. capacity: registrations/s and calls/s of one node (sipp straight at node 1) and of the
   three behind the front;
3. calls from a sipp UAC to the registered sipp UASes at 20 calls/s; node 2 is killed
   (SIGKILL) in the middle. The front marks it down within its probe interval; calls whose
   dialog lived on node 2 are lost (their BYE has nowhere to go, or their INVITE died with
   it), each one found and explained; every other call completes;
4. every registration resolves through the surviving nodes (a REGISTER query per user);
5. Redis is restarted: both surviving nodes answer 503 meanwhile and 200 again by themselves.

A table of registrations, calls, losses and recovery times is printed (``-s`` shows it).
``TRIO_SIP_CLUSTER=full`` makes the capacity runs and the call phase longer.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import trio

from tests.interop.peers import PeerProcess, ensure_debian_packages, free_port
from tests.interop.sipp import SippRun, run_sipp, sipp_argv, write_scenario
from trio_sip.location import open_redis_store
from trio_sip.proto.message import Request
from trio_sip.proto.target import Target
from trio_sip.proto.timers import TimerConfig
from trio_sip.stack import IncomingRequest, open_stack

from .front import Front, running_front
from .nodes import Node, running_nodes
from .redis_server import RedisServer, running_redis
from .scenarios import QUERY, REGISTER, UAC, UAS

pytestmark = [pytest.mark.interop, pytest.mark.cluster]

FULL = os.environ.get("TRIO_SIP_CLUSTER", "") == "full"
DOMAIN = "example.com"
REDIS_HOST = "127.0.0.29"
FRONT_HOST = "127.0.0.30"
NODE_HOSTS = ["127.0.0.31", "127.0.0.32", "127.0.0.33"]
CLIENT = "127.0.0.35"  # sipp clients and the prober: trusted by the nodes, like the front
UAS_HOSTS = ["127.0.0.41", "127.0.0.42", "127.0.0.43", "127.0.0.44"]
USERS = 1000
PING_INTERVAL = 1  # the front's ds_ping_interval, seconds
FR_TIMER = 2.0  # the front's tm fr_timer: an unanswered probe or request, seconds
CALL_RATE = 20
CALL_SECONDS = 40 if FULL else 12
KILL_AFTER = 15.0 if FULL else 5.0
HOLD_MS = 2000
CAPACITY_CALLS = 1500 if FULL else 400
REGISTER_RATE = 100
#: Capacity runs are closed loops: at most this many registrations or calls in flight, each
#: new one as soon as one ends, so the rate is what the machine sustains, without overload.
CAPACITY_LIMIT = 30


def _users(workdir: Path, probe_port: int) -> tuple[Path, Path, Path]:
    """users.toml for the nodes; register.csv (user;[authentication ...];contact host;port)
    for sipp; callees.csv (user) for the calls."""
    users = [(f"u{i:04d}", f"pw{i:04d}", UAS_HOSTS[i % len(UAS_HOSTS)], 5060) for i in range(USERS)]
    users.append(("probe", "probe-pw", CLIENT, probe_port))
    toml = workdir / "users.toml"
    toml.write_text("[users]\n" + "".join(f'{u} = "{p}"\n' for u, p, _, _ in users))
    register = workdir / "register.csv"
    # sipp takes the [authentication] keyword itself from the injection file (field1).
    auth = "[authentication username={} password={}]"
    lines = [f"{u};{auth.format(u, p)};{h};{port}\n" for u, p, h, port in users]
    register.write_text("SEQUENTIAL\n" + "".join(lines))
    callees = workdir / "callees.csv"
    callees.write_text("SEQUENTIAL\n" + "".join(f"{u}\n" for u, _, _, _ in users[:USERS]))
    return toml, register, callees


def _counts(run: SippRun) -> tuple[int, int]:
    """(successful, failed) calls from sipp's last statistics screen (cumulative column)."""
    ok = re.findall(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", run.output)
    failed = re.findall(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", run.output)
    return (int(ok[-1]) if ok else 0, int(failed[-1]) if failed else 0)


@attrs.define
class Cluster:
    workdir: Path
    redis: RedisServer
    nodes: list[Node]
    front: Front
    register_csv: Path
    callees_csv: Path
    probe_port: int
    rows: list[tuple[str, str]] = attrs.Factory(list)

    def row(self, what: str, value: str) -> None:
        self.rows.append((what, value))

    async def sipp(
        self,
        name: str,
        xml: str,
        *,
        remote: tuple[str, int],
        calls: int,
        rate: float,
        inf: Path,
        timeout: int = 60,
        extra: tuple[str, ...] = (),
        limit: int = 200,
    ) -> tuple[SippRun, float]:
        workdir = self.workdir / name
        scenario = write_scenario(workdir, name, xml)
        argv = sipp_argv(
            scenario=scenario, local=(CLIENT, free_port(CLIENT)), remote=remote, calls=calls,
            timeout=timeout, extra=("-inf", str(inf), "-key", "domain", DOMAIN, "-r", str(rate),
                                    "-l", str(limit), "-auth_uri", DOMAIN, *extra),
        )  # fmt: skip
        started = time.monotonic()
        with trio.fail_after(timeout + 30):
            run = await run_sipp(argv, workdir)
        return run, time.monotonic() - started


@contextlib.contextmanager
def _uases(workdir: Path) -> Iterator[list[PeerProcess]]:
    scenario = write_scenario(workdir / "uas", "uas", UAS)
    with contextlib.ExitStack() as stack:
        processes = []
        for host in UAS_HOSTS:
            argv = sipp_argv(scenario=scenario, local=(host, 5060), calls=1_000_000, timeout=900)
            process = PeerProcess(f"uas-{host}", argv, workdir=workdir / f"uas-{host}").start()
            stack.callback(process.stop)
            processes.append(process)
        yield processes


@contextlib.contextmanager
def _cluster(workdir: Path) -> Iterator[Cluster]:
    ensure_debian_packages("sip-tester", "kamailio", "redis-server")
    probe_port = free_port(CLIENT)
    toml, register_csv, callees_csv = _users(workdir, probe_port)
    secret = workdir / "secret"
    secret.write_bytes(os.urandom(32))
    with running_redis(workdir / "redis", REDIS_HOST, persistent=True) as redis:
        args = ["--domain", DOMAIN, "--users", str(toml), "--location", redis.url,
                "--record-route", "--trusted", FRONT_HOST, "--trusted", CLIENT,
                "--secret-file", str(secret), "--verbose"]  # fmt: skip
        with (
            running_nodes(workdir / "nodes", NODE_HOSTS, args=args) as nodes,
            _uases(workdir),
            running_front(
                workdir / "front", [(n.host, n.port) for n in nodes], host=FRONT_HOST,
                domain=DOMAIN, ping_interval=PING_INTERVAL, fr_timer=FR_TIMER,
            ) as front,
        ):  # fmt: skip
            front.wait_all_active()
            yield Cluster(workdir, redis, nodes, front, register_csv, callees_csv, probe_port)


async def test_three_nodes_behind_kamailio_with_redis(tmp_path: Path) -> None:
    began = time.monotonic()
    with _cluster(tmp_path) as cluster:
        async with open_redis_store(cluster.redis.url) as store:
            await _register_everyone(cluster)
            assert await store.count() == USERS + 1
            await _capacity(cluster)
            await _calls_with_a_node_killed(cluster)
            await _every_registration_resolves(cluster)
            await _redis_restart(cluster)
            assert await store.count() == USERS + 1  # the append-only file kept them
    cluster.row("duration", f"{time.monotonic() - began:.0f} s ({'full' if FULL else 'short'})")
    width = max(len(w) for w, _ in cluster.rows)
    print("\n\ncluster run: 3 trio-sip proxy nodes, Kamailio dispatcher front, Redis")
    for what, value in cluster.rows:
        print(f"  {what:<{width}}  {value}")


async def _register_everyone(cluster: Cluster) -> None:
    run, elapsed = await cluster.sipp(
        "register", REGISTER, remote=cluster.front.address, calls=USERS + 1, rate=REGISTER_RATE,
        inf=cluster.register_csv,
    )  # fmt: skip
    ok, failed = _counts(run)
    assert run.returncode == 0 and ok == USERS + 1 and failed == 0, run.describe()
    # Round-robin: each node took its share; the 401 and the answer to it mostly on two nodes.
    per_node = {n.name: sum(1 for s in n.seen() if s.method == "REGISTER") for n in cluster.nodes}
    assert all(count > (USERS * 2) // 6 for count in per_node.values()), per_node
    legs: dict[str, list[str]] = {}
    for event in cluster.front.events():
        if event.kind == "DISPATCH" and event.method == "REGISTER":
            legs.setdefault(event.what, []).append(event.node)
    crossed = sum(1 for nodes in legs.values() if len(set(nodes)) > 1)
    assert crossed > USERS // 2, crossed  # digest across nodes works (one shared secret)
    shares = ", ".join(f"{k} {v}" for k, v in per_node.items())
    cluster.row("registrations", f"{ok} in {elapsed:.1f} s through the front at {REGISTER_RATE}/s "
                f"(REGISTERs per node: {shares})")  # fmt: skip
    cluster.row("  digest across nodes", f"{crossed} of {ok} answered their 401 on another node")


async def _capacity(cluster: Cluster) -> None:
    node1 = (cluster.nodes[0].host, cluster.nodes[0].port)
    for label, remote in (("1 node", node1), ("3 nodes + front", cluster.front.address)):
        run, elapsed = await cluster.sipp(
            f"cap-reg-{len(label)}", REGISTER, remote=remote, calls=USERS, rate=1000,
            inf=cluster.register_csv, limit=CAPACITY_LIMIT,
        )  # fmt: skip
        ok, failed = _counts(run)
        assert ok > USERS * 0.95, run.describe()
        cluster.row(f"capacity, {label}", f"{ok / elapsed:.0f} registrations/s "
                    f"({ok} ok, {failed} failed, digest: 2 transactions each)")  # fmt: skip
        run, elapsed = await cluster.sipp(
            f"cap-call-{len(label)}", UAC, remote=remote, calls=CAPACITY_CALLS, rate=1000,
            inf=cluster.callees_csv, limit=CAPACITY_LIMIT, timeout=60 + CAPACITY_CALLS // 10,
            extra=("-d", "0", "-pause_msg_ign"),
        )  # fmt: skip
        ok, failed = _counts(run)
        assert ok > CAPACITY_CALLS * 0.95, run.describe()
        cluster.row(f"capacity, {label}", f"{ok / elapsed:.0f} calls/s "
                    f"({ok} ok, {failed} failed; INVITE, ACK, BYE each)")  # fmt: skip


async def _calls_with_a_node_killed(cluster: Cluster) -> None:
    victim = cluster.nodes[1]
    calls = CALL_RATE * CALL_SECONDS
    killed_at = 0.0
    result: dict[str, SippRun] = {}

    async def uac() -> None:
        result["run"], _ = await cluster.sipp(
            "calls", UAC, remote=cluster.front.address, calls=calls, rate=CALL_RATE,
            inf=cluster.callees_csv, timeout=CALL_SECONDS + 60,
            extra=("-d", str(HOLD_MS), "-pause_msg_ign", "-trace_logs",
                   "-recv_timeout", "15000"),
        )  # fmt: skip

    async with trio.open_nursery() as nursery:
        nursery.start_soon(uac)
        await trio.sleep(KILL_AFTER)
        killed_at = time.time()
        victim.kill()
    run = result["run"]
    (log,) = (cluster.workdir / "calls").glob("calls_*_logs.log")
    started: dict[str, str] = {}
    done: set[str] = set()
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[-3] in ("START", "DONE"):
            if parts[-3] == "START":
                started[parts[-2]] = parts[-1]
            else:
                done.add(parts[-2])
    assert len(started) == calls, (len(started), run.describe())
    events = cluster.front.events()
    first_node: dict[str, tuple[str, float]] = {}
    for e in events:
        if e.kind == "DISPATCH" and e.method == "INVITE" and e.what not in first_node:
            first_node[e.what] = (e.node, e.at)
    victim_seen = {s.call_id for s in victim.seen() if s.method == "INVITE"}
    lost = sorted(set(started) - done)
    unexplained = []
    for call_id in lost:
        node, at = first_node.get(call_id, ("?", 0.0))
        # Its dialog lived on the killed node: the node received its INVITE before the kill.
        if not (node == victim.uri and call_id in victim_seen and at <= killed_at):
            unexplained.append((call_id, node, round(at - killed_at, 3)))
    assert not unexplained, unexplained
    # Detection: the front's dst-down event, and no new request sent to the node after it.
    downs = [
        e.at
        for e in events
        if e.kind == "DOWN" and victim.uri in (e.what, e.node) and e.at >= killed_at
    ]
    assert downs, [e for e in events if e.kind in ("DOWN", "UP")]
    detected = downs[0] - killed_at
    assert detected <= PING_INTERVAL + FR_TIMER + 1.0, detected
    after = [e for e in events if e.kind == "DISPATCH" and e.node == victim.uri and e.at > downs[0]]
    assert not after, after
    late = [e.at - killed_at for e in events
            if e.kind == "DISPATCH" and e.node == victim.uri and e.at > killed_at]  # fmt: skip
    rerouted = [c for c, (node, at) in first_node.items()
                if node == victim.uri and at > killed_at and c in done]  # fmt: skip
    spread: dict[str, int] = {}
    for call_id in started:
        node = first_node.get(call_id, ("none", 0.0))[0]
        spread[node] = spread.get(node, 0) + 1
    on_victim = spread.get(victim.uri, 0)
    shares = ", ".join(f"{n.name} {spread.get(n.uri, 0)}" for n in cluster.nodes)
    cluster.row(
        "calls",
        f"{calls} at {CALL_RATE}/s (hold {HOLD_MS / 1000:g} s), "
        f"{len(done)} completed, {len(lost)} lost (INVITEs per node: {shares})",
    )
    cluster.row(f"  lost: dialog on {victim.name}", f"{len(lost)} (of {on_victim} dialogs it "
                "took; each received its INVITE before the kill; list in the log)")  # fmt: skip
    for call_id in lost:
        node, at = first_node[call_id]
        print(f"lost {call_id} ({started[call_id]}): INVITE to {node} {at - killed_at:+.2f} s "
              "from the kill")  # fmt: skip
    cluster.row(
        f"{victim.name} killed",
        f"at +{KILL_AFTER:g} s of the calls; front marked it down "
        f"{detected:.2f} s later (probe every {PING_INTERVAL} s, {FR_TIMER:g} s timeout)",
    )
    last = max(late, default=0.0)
    cluster.row(
        "  sent to it after the kill",
        f"{len(late)} requests (the last {last:.2f} s after); {len(rerouted)} of them "
        "retried on another node and completed",
    )


async def _every_registration_resolves(cluster: Cluster) -> None:
    run, elapsed = await cluster.sipp(
        "query", QUERY, remote=cluster.front.address, calls=USERS, rate=REGISTER_RATE,
        inf=cluster.register_csv,
    )  # fmt: skip
    ok, failed = _counts(run)
    assert run.returncode == 0 and ok == USERS and failed == 0, run.describe()
    alive = [n for n in cluster.nodes if n is not cluster.nodes[1]]
    cluster.row("registrations after the kill", f"{ok}/{USERS} resolve through "
                f"{' and '.join(n.name for n in alive)} ({elapsed:.1f} s)")  # fmt: skip


async def _redis_restart(cluster: Cluster) -> None:
    alive = [n for n in cluster.nodes if n is not cluster.nodes[1]]
    timeline: dict[str, list[tuple[float, int]]] = {n.name: [] for n in alive}
    bare: list[int] = []  # 503s without Retry-After

    async def answer(incoming: IncomingRequest) -> None:
        await incoming.respond(200)

    async with open_stack(
        [("UDP", CLIENT, cluster.probe_port)], handler=answer,
        timer_config=TimerConfig(sip_transaction_timeout=1000),
    ) as prober:  # fmt: skip

        async def probe(node: Node, stop: trio.Event) -> None:
            target = Target("UDP", node.host, node.port)
            for i in range(2000):  # every 50 ms at most, bounded
                if stop.is_set():
                    return
                request = Request("OPTIONS", f"sip:probe@{DOMAIN}", [
                    ("Max-Forwards", "70"), ("From", f"<sip:prober@{DOMAIN}>;tag=p{i}"),
                    ("To", f"<sip:probe@{DOMAIN}>"), ("Call-ID", f"probe-{node.name}-{i}"),
                    ("CSeq", "1 OPTIONS"),
                ])  # fmt: skip
                try:
                    response = await prober.request(request, target)
                except Exception:  # a timeout (a busy machine): counted as no answer
                    status = 0
                else:
                    status = response.status_code
                    if status == 503 and "Retry-After" not in response.headers:
                        bare.append(i)
                timeline[node.name].append((time.monotonic(), status))
                await trio.sleep(0.05)

        def statuses(name: str, since: float) -> list[int]:
            return [s for t, s in timeline[name] if t >= since]

        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            for node in alive:
                nursery.start_soon(probe, node, stop)
            with trio.fail_after(10):
                while not all(200 in statuses(n.name, 0) for n in alive):
                    await trio.sleep(0.05)
            stopped = time.monotonic()
            await trio.to_thread.run_sync(cluster.redis.stop)
            with trio.fail_after(10):
                while not all(503 in statuses(n.name, stopped) for n in alive):
                    await trio.sleep(0.05)
            await trio.sleep(1.0)
            await trio.to_thread.run_sync(cluster.redis.start)
            back = time.monotonic()
            with trio.fail_after(20):
                while not all(200 in statuses(n.name, back) for n in alive):
                    await trio.sleep(0.02)
            stop.set()
    assert not bare, bare
    recovered = []
    for node in alive:
        during = statuses(node.name, stopped)
        first_ok = next(t for t, s in timeline[node.name] if t >= back and s == 200)
        assert {s for t, s in timeline[node.name] if stopped <= t < back} <= {503, 200, 0}
        recovered.append(f"{node.name} {first_ok - back:.2f} s")
        assert "location store reachable again" in node.log()
        assert during.count(503) >= 1
    cluster.row("redis restarted", f"down {back - stopped:.1f} s: the nodes answered 503 with "
                f"Retry-After; 200 again after Redis was up: {', '.join(recovered)}")  # fmt: skip
