"""Benchmarks for trio-sip against other Python SIP stacks.

Run them with ``nox -s bench`` (which installs the peers listed in
``requirements-peers.txt`` into its own virtualenv), or directly with
``python -m benchmarks [NAME ...]``.  Each benchmark is a module that registers itself in
:data:`BENCHMARKS` with a ``run(args) -> dict`` function; ``python -m benchmarks`` with no name
runs them all.  Benchmarks report, they never fail the run: a missed target is printed, and the
exit status stays 0 unless the benchmark itself could not run.
"""

from __future__ import annotations

# name -> "module:function".  Add new benchmarks here (e.g. a UAS calls-per-second run against
# sippy, memory for 10,000 calls, failover latency); each is imported only when it runs.
BENCHMARKS: dict[str, str] = {
    "parse": "benchmarks.parse_bench:run",
    "failover": "benchmarks.failover_bench:run",
    "uas": "benchmarks.uas_bench:run",
    "memory": "benchmarks.memory_bench:run",
    "udpbind": "benchmarks.udp_binding_bench:run",
    "transactions": "benchmarks.transactions_bench:run",
    "timing": "benchmarks.timing_bench:run",
    "workers": "benchmarks.workers_bench:run",
    "uac": "benchmarks.uac_bench:run",
    "latency": "benchmarks.latency_bench:run",
}
