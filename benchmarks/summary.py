"""The table of ratios ``python -m benchmarks`` prints last: each target, met or missed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Row = tuple[str, str, float | None, str, bool | None]
"""(benchmark, measure, value, target as text, met: True/False, None when not measured)."""


def _parse(r: dict[str, Any]) -> Iterator[Row]:
    builds = (r.get("summary") or {}).get("builds") or {}
    for build, s in builds.items():
        for key, target in (("parse_read", 2.0), ("serialize_full", 1.0)):
            ratio = (s.get(key) or {}).get("ratio")
            met = None if ratio is None else ratio >= target
            yield "parse", f"{build} {key} / best peer", ratio, f">= {target:g}x", met


def _uas(r: dict[str, Any]) -> Iterator[Row]:
    for label, s in (r.get("ratios") or {}).items():
        ratio = s.get("rate_ratio")
        yield (
            "uas",
            f"{label} calls/s / sippy",
            ratio,
            ">= 4x",
            None if ratio is None else ratio >= 4,
        )
        cpu = s.get("cpu_ratio")
        if cpu is not None:
            yield "uas", f"{label} CPU/call, sippy / ours", cpu, "(report)", None


def _memory(r: dict[str, Any]) -> Iterator[Row]:
    rows = ((r.get("uas_process") or {}).get("per_call") or {}).get("rss") or []
    if rows:
        worst = max(row["per_call"] for row in rows) * r.get("calls", 10_000) / 1e6
        yield "memory", "UAS MB for 10,000 calls", worst, "< 100 MB", worst < 100


def _failover(r: dict[str, Any]) -> Iterator[Row]:
    target = r.get("refused_target_s", 0.1)
    for transport, extra in (r.get("refused_extra_s") or {}).items():
        yield "failover", f"refused first proxy {transport}, ms", extra * 1000, \
            f"<= {target * 1000:g} ms", extra <= target  # fmt: skip


def _workers(r: dict[str, Any]) -> Iterator[Row]:
    ratio = r.get("ratio")
    yield "workers", "2 workers / 1 worker calls/s", ratio, ">= 1.8x", \
        None if ratio is None else ratio >= 1.8  # fmt: skip


def _uac(r: dict[str, Any]) -> Iterator[Row]:
    ratio = (r.get("ratio") or {}).get("rate_ratio")
    yield "uac", "trio-sip UAC calls/s / sippy", ratio, ">= 3x", \
        None if ratio is None else ratio >= 3  # fmt: skip
    cpu = (r.get("ratio") or {}).get("cpu_ratio")
    if cpu is not None:
        yield "uac", "UAC CPU/call, sippy / ours", cpu, "(report)", None
    per_call = r.get("memory_bytes_per_call")
    yield "uac", "KB per outgoing call, RSS, 10,000 calls", \
        None if per_call is None else per_call / 1000, "<= 10 KB", \
        None if per_call is None else per_call <= 10_000  # fmt: skip
    traced = r.get("memory_traced_bytes_per_call") or {}
    for when in ("peak", "steady"):
        value = traced.get(when)
        if value is not None:
            yield "uac", f"KB per outgoing call, traced heap, {when}", value / 1000, \
                "(report)", None  # fmt: skip


def _latency(r: dict[str, Any]) -> Iterator[Row]:
    loaded = r.get("loaded") or {}
    p99 = loaded.get("p99_ms")
    yield (
        "latency",
        "OPTIONS p99 ms under load",
        p99,
        "<= 50 ms",
        None if p99 is None else p99 <= 50,
    )
    for key in ("p50_ms", "max_ms"):
        if loaded.get(key) is not None:
            yield "latency", f"OPTIONS {key[:-3]} ms under load", loaded[key], "(report)", None


SUMMARIES: dict[str, Callable[[dict[str, Any]], Iterator[Row]]] = {
    "parse": _parse, "uas": _uas, "memory": _memory, "failover": _failover,
    "workers": _workers, "uac": _uac, "latency": _latency,
}  # fmt: skip


def rows(results: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for name, result in results.items():
        summarize = SUMMARIES.get(name)
        if summarize is not None and isinstance(result, dict) and "skipped" not in result:
            out.extend(summarize(result))
    return out


def table(results: dict[str, Any]) -> str:
    lines = [f"{'benchmark':<10} {'measure':<46} {'value':>9} {'target':>9}  verdict"]
    for bench, measure, value, target, met in rows(results):
        text = "-" if value is None else f"{value:.2f}"
        verdict = "" if target == "(report)" else "not measured" if met is None else \
            "MET" if met else "MISSED"  # fmt: skip
        lines.append(f"{bench:<10} {measure:<46} {text:>9} {target:>9}  {verdict}")
    return "\n".join(lines)
