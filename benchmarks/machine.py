"""What a result was measured on: machine, load, versions, commit; and saving results as JSON.

Every benchmark result that ``python -m benchmarks`` writes carries :func:`describe`'s record
and the commands it ran (``commands``), so a JSON file says by itself how it was made.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
        return out.stdout.strip()
    return None


def sipp_version() -> str | None:
    sipp = shutil.which("sipp")
    if sipp is None:
        return None
    out = subprocess.run([sipp, "-v"], capture_output=True, text=True, check=False).stdout
    lines = out.strip().splitlines()
    return lines[0].strip() if lines else None


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def describe() -> dict[str, Any]:
    """The machine and software a run is on (taken when the run starts)."""
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_at_start": load(),
        "versions": {
            "trio-sip": _version("trio-sip"),
            "trio": _version("trio"),
            "sippy": _version("sippy"),
            "matplotlib": _version("matplotlib"),
            "sipp": sipp_version(),
        },
        "commit": _git("rev-parse", "--short", "HEAD"),
        "tree_dirty": bool(dirty),
    }


def record(name: str, result: dict[str, Any], machine: dict[str, Any]) -> dict[str, Any]:
    """``{"benchmark", "machine", ...result}``; a result's own ``machine`` (``parse`` keeps
    ``platform.machine()`` there) becomes ``result_machine``."""
    own = {("result_machine" if k == "machine" else k): v for k, v in result.items()}
    return {"benchmark": name, "machine": machine, **own}


def save(path: Path, name: str, result: dict[str, Any], machine: dict[str, Any]) -> None:
    """One benchmark's result as JSON: ``{"benchmark", "machine", "load_at_end", ...}``."""
    record_ = {**record(name, result, machine), "load_at_end": load()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record_, indent=1, default=str) + "\n")
