"""The public names the API reference documents, and where each object is documented.

Pure Python (no Sphinx): the reference (:mod:`.apiref`) and the default test suite
(tests/test_docs_reference.py) use the same rules.

An object exported from several public modules (``trio_sip.Request`` is also
``trio_sip.proto.Request``) is documented once, at its *home*: the first public module that
exports it, in :data:`PUBLIC_MODULES` order, except that exceptions live in
``trio_sip.errors`` when it exports them.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any

#: The public modules, in the order that decides an object's home.
PUBLIC_MODULES = ("trio_sip", "trio_sip.errors", "trio_sip.testing", "trio_sip.proto")


def is_exception(obj: object) -> bool:
    return inspect.isclass(obj) and issubclass(obj, BaseException)


@functools.cache
def public_names() -> dict[str, list[tuple[str, Any]]]:
    """{module: [(name, object)]} for every public module, in ``__all__`` order."""
    out: dict[str, list[tuple[str, Any]]] = {}
    for modname in PUBLIC_MODULES:
        module = importlib.import_module(modname)
        out[modname] = [(name, getattr(module, name)) for name in module.__all__]
    return out


@functools.cache
def homes() -> dict[int, str]:
    """{id(object): the dotted name it is documented under}."""
    found: dict[int, str] = {}
    for modname, names in public_names().items():
        for name, obj in names:
            found.setdefault(id(obj), f"{modname}.{name}")
    for name, obj in public_names()["trio_sip.errors"]:
        if is_exception(obj):
            found[id(obj)] = f"trio_sip.errors.{name}"
    return found


def public_callables() -> list[tuple[str, Any]]:
    """(documented name, object) for every public function, every public class (built by
    calling it) and every public method or property of a public class, each once."""
    out: list[tuple[str, Any]] = []
    seen: set[int] = set()
    for entries in public_names().values():
        for _, obj in entries:
            home = homes()[id(obj)]
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if inspect.isfunction(obj):
                out.append((home, obj))
            elif inspect.isclass(obj):
                if not is_exception(obj):
                    out.append((home, obj))  # its docstring covers construction
                for name, member in vars(obj).items():
                    if name.startswith("_"):
                        continue
                    if isinstance(member, staticmethod | classmethod):
                        member = member.__func__
                    if isinstance(member, property):
                        member = member.fget
                    if inspect.isfunction(member):
                        out.append((f"{home}.{name}", member))
    return out


def raised_by() -> dict[str, list[str]]:
    """{exception name: the public callables whose docstring says they raise it}.

    Read from the docstrings ("Raises X", "raises :class:`X`", "X when ..." after "raise"), so
    the errors reference lists, for each exception, where its docstrings promise it."""
    import re

    exceptions = [name for name, obj in public_names()["trio_sip.errors"] if is_exception(obj)]
    found: dict[str, list[str]] = {name: [] for name in exceptions}
    for dotted, func in public_callables():
        doc = inspect.getdoc(func) or ""
        for sentence in re.split(r"(?<=[.;])\s+", doc):
            if not re.search(r"\brais(e|es|ed|ing)\b", sentence, re.I):
                continue
            for name in exceptions:
                if re.search(rf"\b{name}\b", sentence) and dotted not in found[name]:
                    found[name].append(dotted)
    return found
