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
