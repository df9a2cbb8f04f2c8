"""The API reference: ``.. apiref:: MODULE`` documents every name in ``MODULE.__all__``.

An object exported from several public modules is documented once, at its home
(:mod:`.public`), and listed with a link everywhere else, so the reference has one entry per
object and no duplicate. Entries are grouped by the module that defines the object
(:data:`SECTIONS`).

A ``missing-reference`` handler resolves a cross-reference to any dotted path of an object we
document (``trio_sip.transports.TransportLayer``, ``trio_sip.ua.call.Call.hold``) to its entry,
so docstrings can name things where they are defined.
"""

from __future__ import annotations

import enum
import importlib
import inspect
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import make_refnode, nested_parse_with_titles

from .public import homes, is_exception, public_names, raised_by

#: (title, prefixes of the defining module): the first match is the object's section.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("User agents and calls", ("trio_sip.ua",)),
    ("Endpoint: connections at several sites", ("trio_sip.endpoint",)),
    ("Configuration", ("trio_sip.config",)),
    (
        "Failover, DNS and the blacklist",
        (
            "trio_sip.failover",
            "trio_sip.dns",
            "trio_sip.proto.retry",
            "trio_sip.proto.blacklist",
            "trio_sip.proto.resolve",
            "trio_sip.proto.target",
        ),
    ),
    ("Keep-alives", ("trio_sip.keepalive", "trio_sip.proto.keepalive")),
    (
        "Proxy and registrar",
        ("trio_sip.proxy", "trio_sip.registrar", "trio_sip.proto.location", "trio_sip.proto.proxy"),
    ),
    ("Stack and transactions", ("trio_sip.stack", "trio_sip.proto.transaction")),
    ("Machine outputs and timers", ("trio_sip.proto.outputs", "trio_sip.proto.timers")),
    (
        "Dialogs, registrations and subscriptions (sans-I/O)",
        (
            "trio_sip.proto.dialog",
            "trio_sip.proto.registration",
            "trio_sip.proto.subscription",
        ),
    ),
    ("Transports", ("trio_sip.transports",)),
    (
        "Messages, headers and URIs",
        (
            "trio_sip.proto.message",
            "trio_sip.proto.parse",
            "trio_sip.proto.headers",
            "trio_sip.proto.fields",
            "trio_sip.proto.uri",
            "trio_sip.proto.ids",
            "trio_sip.proto.validate",
            "trio_sip.proto.serialize",
            "trio_sip.proto.abnf",
        ),
    ),
    ("SDP", ("trio_sip.proto.sdp",)),
    ("Digest authentication", ("trio_sip.proto.auth",)),
    ("Limits and rates", ("trio_sip.proto.limits", "trio_sip.proto.rate")),
    ("Test kit", ("trio_sip.testing",)),
    ("Errors", ("trio_sip.errors", "trio_sip.proto.errors")),
)
OTHER = "Constants and other names"
#: Pages whose every Python cross-reference must resolve (a broken one fails the build).
STRICT_PAGES = ("migration", "quickstart", "testing", "install", "site")


def _defining_module(obj: object, fallback: str) -> str:
    module = getattr(obj, "__module__", None)
    if not isinstance(module, str) or not module.startswith("trio_sip"):
        return fallback
    return module


def section_of(obj: object, modname: str) -> str:
    if is_exception(obj):
        return "Errors"
    module = _defining_module(obj, "")
    for title, prefixes in SECTIONS:
        if any(
            module == p or module.startswith(p + ".") or module.startswith(p + "_")
            for p in prefixes
        ):
            return title
    return OTHER


def _kind(obj: object) -> str:
    if is_exception(obj):
        return "exception"
    if inspect.isclass(obj):
        return "class"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return "function"
    return "data"


def _entry(dotted: str, obj: object) -> list[str]:
    kind = _kind(obj)
    if kind == "exception":
        return [f".. autoexception:: {dotted}", "   :members:", "   :show-inheritance:", ""]
    if kind == "class":
        lines = [f".. autoclass:: {dotted}", "   :members:", "   :undoc-members:"]
        if issubclass(obj, enum.Enum):  # type: ignore[arg-type]
            lines.append("   :member-order: bysource")
        return [*lines, ""]
    if kind == "function":
        return [f".. autofunction:: {dotted}", ""]
    return [f".. autodata:: {dotted}", "   :no-value:", ""]


class ApiRef(SphinxDirective):
    """``.. apiref:: trio_sip``: every public name of the module, grouped, once each."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        modname = self.arguments[0]
        self.env.note_dependency(__file__)
        grouped: dict[str, list[tuple[str, Any]]] = {}
        for name, obj in public_names()[modname]:
            grouped.setdefault(section_of(obj, modname), []).append((name, obj))
        order = [title for title, _ in SECTIONS] + [OTHER]
        lines = [f".. py:module:: {modname}", ""]
        if modname == "trio_sip.errors":
            lines += _errors_preamble(Path(self.env.srcdir))
        for title in order:
            entries = grouped.get(title)
            if not entries:
                continue
            lines += [title, "-" * len(title), ""]
            aliases = []
            for name, obj in entries:
                home = homes()[id(obj)]
                if home == f"{modname}.{name}":
                    lines += _entry(home, obj)
                else:
                    aliases.append((name, home))
            if aliases:
                lines += ["Also here, documented once where shown:", ""]
                for name, home in aliases:
                    lines.append(f"* ``{modname}.{name}``: :py:obj:`{home}`")
                lines.append("")
        node = nodes.section()
        node.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, source=f"apiref {modname}"), node)
        return node.children


def _short(dotted: str) -> str:
    """``trio_sip.Stack.request`` -> ``Stack.request`` (the public module left out)."""
    for modname in sorted(public_names(), key=len, reverse=True):
        if dotted.startswith(modname + "."):
            return dotted[len(modname) + 1 :]
    return dotted


def _errors_preamble(srcdir: Path) -> list[str]:
    """The guide (docs/errors.md, when it exists) and who raises what, from the docstrings."""
    lines = []
    if (srcdir / "errors.md").exists():
        lines += ["How to handle them, with examples: :doc:`/errors`.", ""]
    lines += [
        "Raised by",
        "---------",
        "",
        "For each exception, the public functions, classes and methods whose docstrings say "
        "they raise it (read from the docstrings at build time; an exception also reaches you "
        "through whatever calls these).",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 25 75",
        "",
        "   * - exception",
        "     - raised by",
    ]
    for name, where in raised_by().items():
        links = ", ".join(f":py:obj:`{_short(d)} <{d}>`" for d in where) or "(the base of others)"
        lines += [f"   * - :py:exc:`{name}`", f"     - {links}"]
    return [*lines, ""]


def _resolve_dotted(target: str) -> str | None:
    """The documented name for ``target`` (a dotted path to an object, or to a member of one)."""
    parts = target.split(".")
    if not parts or parts[0] != "trio_sip":
        return None
    for split in range(len(parts), 0, -1):
        modname = ".".join(parts[:split])
        try:
            obj: Any = importlib.import_module(modname)
        except ImportError:
            continue
        rest = parts[split:]
        chain = []
        for attr in rest:
            try:
                obj = getattr(obj, attr)
            except AttributeError:
                return None
            chain.append(obj)
        # the longest prefix of the chain whose object has a home
        for depth in range(len(chain), 0, -1):
            home = homes().get(id(chain[depth - 1]))
            if home is not None:
                return ".".join([home, *rest[depth:]])
        return None
    return None


def _missing_reference(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.Element
) -> nodes.Element | None:
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    candidates = [target]
    module = node.get("py:module")
    if module and not target.startswith("trio_sip"):
        candidates.append(f"{module}.{target}")
        if node.get("py:class"):
            candidates.append(f"{module}.{node['py:class']}.{target}")
    domain = env.get_domain("py")
    objects = domain.objects  # type: ignore[attr-defined]
    for candidate in candidates:
        resolved = _resolve_dotted(candidate)
        if resolved is None or resolved not in objects:
            continue
        entry = objects[resolved]
        return make_refnode(
            app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, resolved
        )
    if str(node.get("refdoc", "")).startswith(STRICT_PAGES):
        node["refwarn"] = True  # Sphinx then reports it, and -W fails the build
    return None


def setup(app: Sphinx) -> None:
    app.add_directive("apiref", ApiRef)
    app.connect("missing-reference", _missing_reference)
