"""Pictures drawn at build time, so they cannot drift from the code.

Everything lands in ``docs/_generated/`` (not committed) when the build starts:

* ``fsm-<machine>.svg``: each state machine drawn by Graphviz (Debian ``graphviz``) from the
  ``TRANSITIONS`` table its module runs on (the four transaction machines, dialog, registration,
  subscription). In a page, a ```` ```mermaid ```` block preceded by
  ``<!-- generated: <machine> -->`` (docs/transactions.md) is shown as that picture; the
  Mermaid source stays for readers of the raw Markdown.
* ``architecture.svg``: docs/img/architecture.dot, drawn by Graphviz.
* ``failover-<scenario>.svg`` and ``failover-runs.json``: the failover timelines, recorded from
  virtual-time runs of the real FailoverClient (:mod:`.failover_runs`) and plotted with
  matplotlib. ``<!-- sitekit: failover-timelines -->`` in a page becomes the pictures.
* ``bench-*.svg`` / ``soak-*.svg``: plots of the JSON results under docs/data/ when there are
  any (``<!-- sitekit: result-plots -->``).
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

GENERATED = "_generated"

#: machine name -> (module, title)
MACHINES: dict[str, tuple[str, str]] = {
    "client_invite": ("trio_sip.proto.transaction.client_invite", "INVITE client transaction"),
    "client_non_invite": (
        "trio_sip.proto.transaction.client_non_invite",
        "non-INVITE client transaction",
    ),
    "server_invite": ("trio_sip.proto.transaction.server_invite", "INVITE server transaction"),
    "server_non_invite": (
        "trio_sip.proto.transaction.server_non_invite",
        "non-INVITE server transaction",
    ),
    "dialog": ("trio_sip.proto.dialog", "dialog"),
    "registration": ("trio_sip.proto.registration", "registration"),
    "subscription": ("trio_sip.proto.subscription", "subscription"),
}


def _name(value: Any) -> str:
    """A state's or trigger's display text: an Enum's value if it is text, else its name."""
    raw = getattr(value, "value", value)
    return raw if isinstance(raw, str) else str(getattr(value, "name", value))


def transitions(machine: str) -> list[tuple[str, str, str]]:
    """(source, trigger, target) for every entry of the machine's TRANSITIONS table.

    Two shapes exist: ``{state: {trigger: state}}`` (transactions) and
    ``{(state, trigger): state}`` (dialog, registration, subscription)."""
    module = importlib.import_module(MACHINES[machine][0])
    table: Mapping[Any, Any] = module.TRANSITIONS
    rows = []
    for key, value in table.items():
        if isinstance(value, Mapping):
            rows += [(_name(key), _name(t), _name(s)) for t, s in value.items()]
        else:
            state, trigger = key
            rows.append((_name(state), _name(trigger), _name(value)))
    return rows


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fsm_dot(machine: str) -> str:
    """Graphviz source for one machine: one edge per (source, target) pair, its triggers as the
    label. Transitions that stay in their state are left out, as in the pages' tables."""
    rows = transitions(machine)
    states: list[str] = []
    for source, _, target in rows:
        for state in (source, target):
            if state not in states:
                states.append(state)
    edges: dict[tuple[str, str], list[str]] = {}
    for source, trigger, target in rows:
        edges.setdefault((source, target), []).append(trigger)
    lines = [
        "digraph fsm {",
        '  graph [rankdir=TB, fontname="DejaVu Sans", fontsize=11, nodesep=0.5, ranksep=0.55,'
        ' bgcolor="transparent"];',
        '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", color="#35598f",'
        ' fontname="DejaVu Sans", fontsize=12];',
        '  edge [fontname="DejaVu Sans", fontsize=9, color="#35598f"];',
        '  start [shape=point, width=0.15, label=""];',
        f"  start -> {_quote(states[0])};",
    ]
    for state in states:
        extra = ', peripheries=2, fillcolor="#f4f4f4"' if state.lower() == "terminated" else ""
        lines.append(f"  {_quote(state)} [label={_quote(state)}{extra}];")
    for (source, target), triggers in edges.items():
        if source == target:  # staying in a state: in the tables, not in the picture
            continue
        label = "\\n".join(t.replace('"', "'") for t in triggers)
        lines.append(f'  {_quote(source)} -> {_quote(target)} [label="{label}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_dot(source: str, out: Path) -> bool:
    dot = shutil.which("dot")
    if dot is None:
        logger.warning(
            "sitekit.pictures: Graphviz 'dot' not found, %s not drawn (Debian package graphviz;"
            " nox -s docs installs it when run as root)",
            out.name,
        )
        return False
    done = subprocess.run(
        [dot, "-Tsvg", "-o", str(out)], input=source, text=True, capture_output=True, check=False
    )
    if done.returncode != 0:
        logger.warning("sitekit.pictures: dot failed for %s: %s", out.name, done.stderr.strip())
        return False
    return True


# -- failover timelines ---------------------------------------------------------------------

LANES = ("UA", "P1", "P2", "P3")
FATE_STYLE = {
    "delivered": ("#2c6fbb", "-"),
    "blackholed": ("#8a8f98", "--"),
    "refused": ("#c0392b", "-"),
    "lost": ("#8a8f98", ":"),
}


def _merged(events: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Events sent at the same instant on the same path (a 180 and a 200) drawn as one."""
    out: list[dict[str, Any]] = []
    for e in events:
        last = out[-1] if out else None
        same = last is not None and all(last[k] == e[k] for k in ("time", "src", "dst", "fate"))
        if same and last is not None:
            last["what"] += ", " + e["what"]
        else:
            out.append(dict(e))
    return out


def plot_timeline(run: Mapping[str, Any], out: Path) -> None:
    """A sequence chart of one run: a lane per host, an arrow per datagram at its real times."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = _merged(run["events"])
    duration = max(run["duration"], max((e["arrival"] for e in events), default=0.0))
    scale, unit = (1000.0, "ms") if duration < 1.0 else (1.0, "s")
    span = duration * scale
    y = {lane: -i for i, lane in enumerate(LANES)}
    fig, ax = plt.subplots(figsize=(8.2, 2.9), dpi=100)
    ax.set_ylim(-len(LANES) + 0.5, 0.5)
    ax.set_yticks([y[lane] for lane in LANES], list(LANES))
    for lane in LANES:
        ax.axhline(y[lane], color="#d5dae1", linewidth=0.8, zorder=0)
    box = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85}
    previous = None
    for e in events:
        color, style = FATE_STYLE.get(e["fate"], ("#333333", "-"))
        x0, y0 = e["time"] * scale, y.get(e["src"], 0.5)
        x1, y1 = e["arrival"] * scale, y.get(e["dst"], 0.5)
        lost = e["fate"] in ("blackholed", "lost")
        ax.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            arrowprops={"arrowstyle": "-" if lost else "->", "color": color, "linestyle": style},
        )
        if lost:  # it never arrived: a cross where it should have
            ax.plot([x1], [y1], marker="x", color=color, markersize=7)
        if e["fate"] == "refused":
            back = x0 + 2 * run["one_way_delay"] * scale
            ax.annotate(
                "",
                xy=(back, y0),
                xytext=(x1, y1),
                arrowprops={"arrowstyle": "->", "color": color, "linestyle": ":"},
            )
            ax.text(
                (x1 + back) / 2 + 0.01 * span,
                (y0 + y1) / 2,
                "ICMP unreachable",
                color=color,
                fontsize=7.5,
                va="center",
                bbox=box,
            )
        key = (e["src"], e["dst"], e["what"])
        if key != previous:  # retransmissions are not labelled again
            ax.text(
                (x0 + x1) / 2 + 0.01 * span,
                (y0 + y1) / 2 + 0.08,
                e["what"],
                fontsize=8,
                color=color,
                va="center",
                bbox=box,
            )
        previous = key
    ax.set_xlim(-0.02 * span, span * 1.12)
    ax.set_xlabel(f"time since the first attempt ({unit}, virtual clock)")
    ax.set_title(f"{run['title']}: {run['outcome']}", fontsize=10, loc="left")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    fig.savefig(out, format="svg")
    plt.close(fig)


def failover_markdown(runs: Iterable[Mapping[str, Any]]) -> str:
    parts = [
        "Each picture is drawn at build time from a run of the real `FailoverClient` over real "
        "stacks on `trio_sip.testing.FakeNetwork` in virtual time "
        "(`docs/_ext/sitekit/failover_runs.py`): `sip_transaction_timeout=4000`, a 10 ms "
        "one-way delay, proxies P1, P2, P3 in target order. Every arrow is a datagram the "
        "network carried: blue delivered, grey dashed with a cross blackholed, red refused.\n",
    ]
    for run in runs:
        parts.append(
            f"\n```{{figure}} /{GENERATED}/failover-{run['name']}.svg\n"
            f":alt: {run['title']}: {run['outcome']}\n:width: 100%\n\n"
            f"{run['caption']} Outcome: {run['outcome']}.\n```\n"
        )
    return "\n".join(parts)


# -- plots of committed JSON results ----------------------------------------------------------


def _numbers(tree: Any, prefix: str = "") -> dict[str, float]:
    """Flatten a JSON tree to {dotted.path: number}."""
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


def _stack_rates(tree: Any) -> dict[str, dict[str, dict[str, float]]]:
    """{benchmark/metric: {stack: {message: per second}}} from ``python -m benchmarks --json``
    output: each stack's ``<metric>_s`` tables of seconds per message."""
    found: dict[str, dict[str, dict[str, float]]] = {}
    if not isinstance(tree, Mapping):
        return found
    for bench, result in tree.items():
        stacks = result.get("stacks") if isinstance(result, Mapping) else None
        for stack in stacks if isinstance(stacks, list) else []:
            if not isinstance(stack, Mapping):
                continue
            for key, table in stack.items():
                if key.endswith("_s") and isinstance(table, Mapping):
                    rates = {
                        str(m): 1.0 / v
                        for m, v in table.items()
                        if isinstance(v, int | float) and v > 0
                    }
                    if rates:
                        metric = f"{bench}: {key.removesuffix('_s').replace('_', ' ')}"
                        found.setdefault(metric, {})[str(stack.get("name"))] = rates
    return found


def plot_result(path: Path, out: Path) -> None:
    """Benchmark results (``python -m benchmarks --json``): per metric, a bar per message and
    stack, in operations per second. Any other JSON (a soak's): a bar per number in it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tree = json.loads(path.read_text())
    if isinstance(tree, Mapping) and "benchmark" in tree:
        # One benchmark's record (python -m benchmarks --json-dir): its own plot.
        import sys

        sys.path.insert(0, str(path.resolve().parent.parent.parent))  # the repository root
        from benchmarks.plots import plot

        plot(tree, out)
        return
    metrics = _stack_rates(tree)
    if metrics:
        fig, axes = plt.subplots(
            len(metrics), 1, figsize=(8.2, 2.6 * len(metrics)), dpi=100, squeeze=False
        )
        for ax, (metric, stacks) in zip(axes[:, 0], sorted(metrics.items()), strict=True):
            messages = sorted({m for rates in stacks.values() for m in rates})
            width = 0.8 / max(len(stacks), 1)
            for i, (stack, rates) in enumerate(sorted(stacks.items())):
                xs = [j + i * width for j in range(len(messages))]
                ax.bar(xs, [rates.get(m, 0.0) for m in messages], width, label=stack)
            ax.set_xticks(
                [j + 0.4 - width / 2 for j in range(len(messages))],
                messages,
                rotation=30,
                ha="right",
                fontsize=7,
            )
            ax.set_ylabel("per second", fontsize=8)
            ax.set_title(metric, fontsize=9, loc="left")
            ax.legend(fontsize=7)
        fig.suptitle(path.name, fontsize=10, x=0.01, ha="left")
    else:
        values = sorted(_numbers(tree).items())[:40]
        fig, ax = plt.subplots(figsize=(8.2, 0.3 * len(values) + 1.0), dpi=100)
        ax.barh([k for k, _ in values], [v for _, v in values], color="#2c6fbb")
        ax.invert_yaxis()
        ax.set_title(path.name, fontsize=10, loc="left")
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(out, format="svg")
    plt.close(fig)


def result_files(srcdir: Path) -> list[Path]:
    return sorted((srcdir / "data").glob("*.json")) if (srcdir / "data").is_dir() else []


def results_markdown(srcdir: Path) -> str:
    files = result_files(srcdir)
    if not files:
        return (
            "No result files are committed under `docs/data/` yet: the figures above are the "
            "measurements. `python -m benchmarks --json-dir docs/data` writes one per benchmark, "
            "and the next build plots them here.\n"
        )
    return "\n".join(
        f"\n```{{figure}} /{GENERATED}/result-{p.stem}.svg\n:alt: {p.name}\n:width: 100%\n\n"
        f"`docs/data/{p.name}`, plotted at build time.\n```\n"
        for p in files
    )


# -- the build hooks ----------------------------------------------------------------------


def generate(srcdir: Path) -> None:
    out = srcdir / GENERATED
    out.mkdir(exist_ok=True)
    for machine in MACHINES:
        render_dot(fsm_dot(machine), out / f"fsm-{machine}.svg")
    render_dot((srcdir / "img" / "architecture.dot").read_text(), out / "architecture.svg")
    from .failover_runs import record_all

    runs = record_all()
    (out / "failover-runs.json").write_text(json.dumps(runs, indent=1) + "\n")
    for run in runs:
        plot_timeline(run, out / f"failover-{run['name']}.svg")
    for path in result_files(srcdir):
        plot_result(path, out / f"result-{path.stem}.svg")


def _builder_inited(app: Sphinx) -> None:
    generate(Path(app.srcdir))


MERMAID = re.compile(r"<!-- generated: (\w+) -->\n```mermaid\n.*?\n```\n", re.S)
MARKER = re.compile(r"<!-- sitekit: ([\w-]+) -->")


def _figure_for_machine(match: re.Match[str]) -> str:
    machine = match.group(1)
    if machine not in MACHINES:
        return match.group(0)
    module, title = MACHINES[machine]
    return (
        f"```{{figure}} /{GENERATED}/fsm-{machine}.svg\n:alt: The {title} state machine\n\n"
        f"The {title}, drawn by Graphviz at build time from `{module}.TRANSITIONS`.\n```\n"
    )


def expand(source: str, srcdir: Path) -> str:
    source = MERMAID.sub(_figure_for_machine, source)
    source = source.replace("```mermaid\n", "```text\n")

    def marker(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "failover-timelines":
            runs = json.loads((srcdir / GENERATED / "failover-runs.json").read_text())
            return failover_markdown(runs)
        if name == "result-plots":
            return results_markdown(srcdir)
        if name == "architecture":
            return (
                f"```{{figure}} /{GENERATED}/architecture.svg\n:alt: trio-sip's layers and the "
                "path of one request\n:width: 100%\n\nThe layers, and the path of one outgoing "
                "INVITE (numbers) and of its answer (letters). Drawn by Graphviz at build time "
                "from `docs/img/architecture.dot`.\n```\n"
            )
        if name.startswith("fsm-"):
            return _figure_for_machine(re.match(r"(\w+)", name[4:]))  # type: ignore[arg-type]
        logger.warning("sitekit.pictures: unknown marker %r", name)
        return ""

    return MARKER.sub(marker, source)


def _source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    source[0] = expand(source[0], Path(app.srcdir))


def setup(app: Sphinx) -> None:
    app.connect("builder-inited", _builder_inited)
    app.connect("source-read", _source_read)
