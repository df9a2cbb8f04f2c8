"""Rate stepping shared by the ``uac`` and ``workers`` benchmarks (as ``uas`` does it).

Rates double from ``start`` until one is not sustained (halve from it down to ``floor`` when
``start`` itself is not), then two bisections between the last sustained and the first failed
rate; a step is one fresh run of ``step(rate)`` which returns a
dict with at least ``sustained`` (bool) and, for the printout, ``detail``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

Step = Callable[[float], dict[str, Any]]


def search(
    label: str,
    step: Step,
    *,
    start: float = 100,
    limit: float = 6400,
    budget: float = 300,
    bisections: int = 2,
    floor: float = 10,
) -> dict[str, Any]:
    """Step ``step`` up to its highest sustained rate; steps stop after ``budget`` seconds."""
    steps: list[dict[str, Any]] = []
    began = time.monotonic()

    def one(rate: float) -> bool:
        result = step(rate)
        result.setdefault("rate", rate)
        steps.append(result)
        mark = "ok" if result["sustained"] else "NOT sustained"
        print(f"  {label:<24} {rate:>7g} calls/s: {mark:<13} {result.get('detail', '')}",
              file=sys.stderr, flush=True)  # fmt: skip
        return bool(result["sustained"])

    best, worst = 0.0, None
    rate = start
    while rate <= limit and time.monotonic() - began < budget:
        if one(rate):
            best = rate
            rate *= 2
        else:
            worst = rate
            break
    # The first rate failed (a loaded machine): halve down to ``floor`` for a sustained one.
    while not best and worst is not None and worst / 2 >= floor:
        if time.monotonic() - began > budget:
            break
        if one(worst / 2):
            best = worst / 2
        else:
            worst /= 2
    if worst is not None and best:
        for _ in range(bisections):
            if time.monotonic() - began > budget:
                break
            middle = round((best + worst) / 2)
            if one(middle):
                best = middle
            else:
                worst = middle
    cpu = [s["cpu_us_per_call"] for s in steps if s["sustained"] and s.get("cpu_us_per_call")]
    return {
        "max_sustained_rate": best,
        "first_failed_rate": worst,
        "cpu_us_per_call": min(cpu) if cpu else None,
        "steps": steps,
    }
