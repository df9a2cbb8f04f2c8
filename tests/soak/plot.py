"""Draw the soak's timeline from its JSON report: ``python -m tests.soak.plot REPORT PNG``.

Calls started per second and failures per second (top), site A's faults as shaded spans with
their names, and the connection-status events of "a" and "b" as markers (bottom). matplotlib
is installed by ``nox -s soak`` only.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def plot(report_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = json.loads(report_path.read_text())
    calls = report["per_call"]
    duration = int(max([c["ended"] or 0 for c in calls] + [report["duration_s"]])) + 1
    started = Counter(int(c["start"]) for c in calls)
    answered = Counter(int(c["answered"]) for c in calls if c["answered"] is not None)
    failed = Counter(int(c["ended"]) for c in calls if c["outcome"] == "failed")
    seconds = list(range(duration))
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(12, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot(seconds, [started[s] for s in seconds], label="calls started/s", lw=1)
    top.plot(seconds, [answered[s] for s in seconds], label="answered/s", lw=1)
    top.bar(seconds, [failed[s] for s in seconds], color="red", label="failed/s", width=1)
    for ax in (top, bottom):
        for fault in report["faults"]:
            ax.axvspan(fault["start"], fault["end"], color="orange", alpha=0.2)
    for fault in report["faults"]:
        top.text(fault["start"], top.get_ylim()[1] * 0.92, fault["kind"], fontsize=8)
    top.set_ylabel("calls per second")
    top.legend(loc="lower right", fontsize=8)
    c = report["calls"]
    top.set_title(
        f"chaos soak: {c['attempted']} calls, {c['completed']} completed, {c['failed']} failed "
        f"({c['unavoidable']} unavoidable, {c['avoidable']} avoidable); "
        f"sip_transaction_timeout={report['sip_transaction_timeout_ms']} ms"
    )
    colours = {"registered": "green", "unavailable": "red", "registering": "orange"}
    for event in report["status_events"]:
        if event["t"] < 0:
            continue
        y = 1 if event["connection"] == "a" else 0
        bottom.scatter(event["t"], y, color=colours.get(event["new"], "grey"), zorder=3)
        bottom.annotate(event["new"], (event["t"], y), fontsize=7, xytext=(2, 4),
                        textcoords="offset points")  # fmt: skip
    lag = report.get("loop_lag_s", {})
    if lag:
        twin = bottom.twinx()
        twin.plot([int(k) for k in lag], list(lag.values()), color="grey", lw=0.8)
        twin.set_ylabel("loop lag (s)", fontsize=8, color="grey")
    bottom.set_yticks([0, 1], ["b", "a"])
    bottom.set_ylim(-0.5, 1.7)
    bottom.set_ylabel("status events")
    bottom.set_xlabel("seconds (shaded: a fault is applied)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    plot(Path(sys.argv[1]), Path(sys.argv[2]))
