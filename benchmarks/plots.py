"""One plot per benchmark, drawn from its JSON record (``python -m benchmarks --plots DIR``).

``plot(record, path)`` picks the drawing for ``record["benchmark"]`` (a generic bar chart of the
record's numbers for the others) and writes an SVG. matplotlib is imported here only: the bench
nox session installs it, and the docs site (docs/_ext/sitekit/pictures.py) calls the same
function for the files under docs/data/.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

Figure = Any
BLUE, GREY, RED = "#2c6fbb", "#9aa5b1", "#c0392b"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _subtitle(record: Mapping[str, Any]) -> str:
    machine = record.get("machine")
    if not isinstance(machine, Mapping):
        machine = {}
    versions = machine.get("versions") or {}
    load = machine.get("load_at_start")
    parts = [
        f"{machine.get('cores', '?')} cores {machine.get('cpu', '')}".strip(),
        f"Python {machine.get('python', '?')}",
        f"trio-sip {versions.get('trio-sip') or '?'} @ {machine.get('commit') or '?'}",
        f"load {load[0]:.1f}" if load else "",
        machine.get("date", ""),
    ]
    return ", ".join(p for p in parts if p)


def _rate_steps(ax: Any, runs: Mapping[str, Mapping[str, Any]], title: str) -> None:
    """Offered rate -> calls/s that succeeded, one line per run; sustained steps filled."""
    for label, run in runs.items():
        steps = sorted(run.get("steps") or [], key=lambda s: s.get("rate", 0))
        if not steps:
            continue
        xs = [s["rate"] for s in steps]
        ys = [s.get("successful", 0) / max(s.get("calls", 1), 1) * s["rate"] for s in steps]
        (line,) = ax.plot(
            xs, ys, marker="o", label=f"{label}: {run.get('max_sustained_rate', 0):g}/s"
        )
        for x, y, s in zip(xs, ys, steps, strict=True):
            if not s.get("sustained"):
                ax.plot([x], [y], marker="o", color="white", markeredgecolor=line.get_color())
    ax.set_xscale("log", base=2)
    ax.set_xlabel("offered calls/s (open marker: not sustained)", fontsize=8)
    ax.set_ylabel("successful calls/s", fontsize=8)
    ax.set_title(title, fontsize=9, loc="left")
    ax.legend(fontsize=7)


def _cpu_bars(ax: Any, runs: Mapping[str, Mapping[str, Any]], title: str) -> None:
    labels = [k for k, r in runs.items() if r.get("cpu_us_per_call")]
    ax.barh(labels, [runs[k]["cpu_us_per_call"] for k in labels], color=BLUE)
    ax.invert_yaxis()
    ax.set_xlabel("CPU per call (us, lowest sustained step)", fontsize=8)
    ax.set_title(title, fontsize=9, loc="left")
    ax.tick_params(axis="y", labelsize=7)


def workers(record: Mapping[str, Any], plt: Any) -> Figure:
    runs = {f"{n} worker(s)": r for n, r in (record.get("workers") or {}).items()}
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4), gridspec_kw={"width_ratios": [2, 1]})
    ratio = record.get("ratio")
    _rate_steps(a, runs, "trio-sip serve --workers N" + (f": {ratio:.2f}x" if ratio else ""))
    _cpu_bars(b, runs, "CPU per call, all processes")
    return fig


def uas(record: Mapping[str, Any], plt: Any) -> Figure:
    runs = {k: r for k, r in (record.get("uases") or {}).items() if "steps" in r}
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    _rate_steps(a, runs, "UAS answering sipp -sn uac, one core")
    _cpu_bars(b, runs, "UAS CPU per call")
    return fig


def uac(record: Mapping[str, Any], plt: Any) -> Figure:
    runs = {k: r for k, r in (record.get("uacs") or {}).items() if "steps" in r}
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4), gridspec_kw={"width_ratios": [3, 2]})
    ratio = (record.get("ratio") or {}).get("rate_ratio")
    _rate_steps(a, runs, "UAC placing calls to sipp's uas" + (f": {ratio:.2f}x" if ratio else ""))
    labels, values = [], []
    for key, measure in (("memory", "rss"), ("memory_traced", "traced")):
        for sample in (record.get(key) or {}).get("samples", [])[1:]:
            per = sample.get(f"{measure}_per_call")
            if per is not None:
                labels.append(f"{measure}, {sample['calls']} calls, {sample['at']}")
                values.append(per / 1000)
    b.barh(labels, values, color=BLUE)
    b.axvline(
        record.get("target_bytes_per_call", 10_000) / 1000, color=RED, ls="--", label="target"
    )
    b.invert_yaxis()
    b.set_xlabel("KB per established outgoing call", fontsize=8)
    b.set_title("UAC memory", fontsize=9, loc="left")
    b.tick_params(axis="y", labelsize=6)
    b.legend(fontsize=7)
    return fig


def latency(record: Mapping[str, Any], plt: Any) -> Figure:
    fig, ax = plt.subplots(figsize=(8, 3.2))
    keys = ["p50_ms", "p90_ms", "p99_ms", "max_ms"]
    width = 0.38
    for i, (phase, color) in enumerate((("idle", GREY), ("loaded", BLUE))):
        r = record.get(phase) or {}
        xs = [j + i * width for j in range(len(keys))]
        ax.bar(xs, [r.get(k) or 0 for k in keys], width, color=color, label=phase)
    ax.axhline(record.get("target_p99_ms", 50), color=RED, ls="--", label="p99 target")
    ax.set_xticks([j + width / 2 for j in range(len(keys))], [k[:-3] for k in keys])
    ax.set_yscale("log")
    ax.set_ylabel("OPTIONS round trip (ms)", fontsize=8)
    held = record.get("held_calls")
    ax.set_title(f"OPTIONS under load: {held} calls held + {record.get('churn_rate')} calls/s",
                 fontsize=9, loc="left")  # fmt: skip
    ax.legend(fontsize=7)
    return fig


def memory(record: Mapping[str, Any], plt: Any) -> Figure:
    labels, values = [], []
    for where in ("in_process", "in_process_traced", "uas_process", "uas_process_traced"):
        part = record.get(where) or {}
        for key, rows in (part.get("per_call") or {}).items():
            for row in rows:
                labels.append(f"{where} {key}, {row['at']}")
                values.append(row["per_call"] / 1000)
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(labels) + 1.2))
    ax.barh(labels, values, color=BLUE)
    ax.axvline(10, color=RED, ls="--", label="UAS target (10 KB)")
    ax.invert_yaxis()
    ax.set_xlabel("KB per call", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7)
    ax.set_title("memory for 10,000 established calls", fontsize=9, loc="left")
    return fig


def parse(record: Mapping[str, Any], plt: Any) -> Figure:
    names, rates = [], []
    for stack in record.get("stacks") or []:
        times = stack.get("parse_read_s") or {}
        if stack.get("status") == "ok" and times:
            names.append(stack["name"])
            rates.append(len(times) / sum(times.values()) / 1000)
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(names) + 1.2))
    ax.barh(names, rates, color=BLUE)
    ax.invert_yaxis()
    ax.set_xlabel("thousand messages/s, parse + 8 header reads", fontsize=8)
    ax.set_title("parse", fontsize=9, loc="left")
    return fig


def generic(record: Mapping[str, Any], plt: Any) -> Figure:
    values = sorted(_numbers({k: v for k, v in record.items() if k != "machine"}).items())[:30]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(values) + 1.2))
    ax.barh([k for k, _ in values], [v for _, v in values], color=BLUE)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=6)
    ax.set_title(str(record.get("benchmark", "")), fontsize=9, loc="left")
    return fig


def _numbers(tree: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            out.update(_numbers(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            out.update(_numbers(value, f"{prefix}[{i}]"))
    elif isinstance(tree, int | float) and not isinstance(tree, bool):
        out[prefix] = float(tree)
    return out


PLOTS: dict[str, Callable[[Mapping[str, Any], Any], Figure]] = {
    "workers": workers, "uas": uas, "uac": uac, "latency": latency, "memory": memory,
    "parse": parse,
}  # fmt: skip


def plot(record: Mapping[str, Any], path: Path) -> None:
    """Draw ``record`` (one benchmark's JSON) to ``path`` (SVG)."""
    plt = _plt()
    fig = PLOTS.get(str(record.get("benchmark")), generic)(record, plt)
    fig.suptitle(f"{record.get('benchmark')}: {_subtitle(record)}", fontsize=7, x=0.01, ha="left")
    fig.tight_layout()
    fig.savefig(path, format="svg")
    plt.close(fig)


def plot_file(source: Path, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{source.stem}.svg"
    plot(json.loads(source.read_text()), target)
    return target


if __name__ == "__main__":  # python -m benchmarks.plots OUT_DIR FILE.json ...
    for name in sys.argv[2:]:
        print(plot_file(Path(name), Path(sys.argv[1])))
