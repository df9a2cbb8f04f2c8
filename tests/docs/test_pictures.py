"""The pictures the site draws at build time (needs the docs extra and Graphviz: nox -s docs).

State machines come from each module's TRANSITIONS table: every transition that changes state
is an edge of the drawing, so the picture cannot drift from the code. Result plots accept the
JSON that ``python -m benchmarks --json`` writes, and any other JSON.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO / "docs" / "_ext"))

from sitekit import pictures  # noqa: E402

pytestmark = pytest.mark.docs


@pytest.mark.parametrize("machine", list(pictures.MACHINES))
def test_every_state_change_of_the_table_is_drawn(machine: str, tmp_path: Path) -> None:
    dot = pictures.fsm_dot(machine)
    rows = pictures.transitions(machine)
    assert rows, machine
    module = importlib.import_module(pictures.MACHINES[machine][0])
    assert len(rows) == sum(
        len(v) if isinstance(v, dict) else 1 for v in module.TRANSITIONS.values()
    )
    for source, trigger, target in rows:
        if source != target:
            edge = f'"{source}" -> "{target}" [label="'
            assert edge in dot, (machine, source, target)
            label = dot.split(edge, 1)[1].split('"]', 1)[0]
            assert trigger.replace('"', "'") in label.split("\\n")
    out = tmp_path / f"{machine}.svg"
    assert pictures.render_dot(dot, out)
    assert out.read_text().lstrip().startswith(("<?xml", "<svg", "<!DOCTYPE"))


def test_benchmark_json_is_plotted_per_stack_and_message(tmp_path: Path) -> None:
    results = {
        "parse": {
            "stacks": [
                {"name": "trio-sip", "parse_read_s": {"invite": 1e-4, "bye": 5e-5}},
                {"name": "peer", "parse_read_s": {"invite": 2e-4, "bye": 1e-4}},
            ]
        }
    }
    rates = pictures._stack_rates(results)
    assert rates == {
        "parse: parse read": {
            "trio-sip": {"invite": pytest.approx(10_000), "bye": pytest.approx(20_000)},
            "peer": {"invite": pytest.approx(5_000), "bye": pytest.approx(10_000)},
        }
    }
    for name, data in [("bench", results), ("soak", {"calls": 100, "failed": {"x": 2}})]:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        out = tmp_path / f"{name}.svg"
        pictures.plot_result(path, out)
        assert "<svg" in out.read_text()


@pytest.mark.parametrize(
    "name", sorted(p.name for p in (REPO / "docs" / "data").glob("*.json")) or ["(none)"]
)
def test_benchmark_records_under_docs_data_are_plotted(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each record ``python -m benchmarks --json-dir docs/data`` wrote is drawn, by its
    benchmark's own plot (benchmarks/plots.py) when there is one."""
    path = REPO / "docs" / "data" / name
    if not path.exists():
        pytest.skip("no records under docs/data/")
    out = tmp_path / "plot.svg"
    pictures.plot_result(path, out)
    assert "<svg" in out.read_text()
    record = json.loads(path.read_text())
    sys.path.insert(0, str(REPO))
    from benchmarks import plots

    if isinstance(record, dict) and record.get("benchmark") in plots.PLOTS:
        own = plots.PLOTS[record["benchmark"]]
        drawn: list[object] = []

        def spy(rec: object, plt: object) -> object:
            drawn.append(rec)
            return own(rec, plt)  # type: ignore[arg-type]

        monkeypatch.setitem(plots.PLOTS, record["benchmark"], spy)
        pictures.plot_result(path, tmp_path / "again.svg")
        assert drawn == [record]
