"""The public API's signatures say what they take and give: no ``Any`` in them.

Walks ``trio_sip.__all__``, ``trio_sip.proto.__all__`` and ``trio_sip.testing.__all__``: every
public function, and every public method, property and ``__init__`` of every public class;
each parameter, ``**kwargs`` and return annotation is read as written (the modules use
``from __future__ import annotations``) and must not mention ``Any``.
"""

from __future__ import annotations

import enum
import inspect
import re
from collections.abc import Callable, Iterator
from types import ModuleType

import trio_sip
import trio_sip.proto
import trio_sip.testing

ANY = re.compile(r"\bAny\b")
MODULES: tuple[ModuleType, ...] = (trio_sip, trio_sip.proto, trio_sip.testing)


def _members(cls: type) -> Iterator[tuple[str, Callable[..., object]]]:
    for name, member in vars(cls).items():
        if name.startswith("_") and name != "__init__":
            continue
        if isinstance(member, property):
            if member.fget is not None:
                yield name, member.fget
        elif isinstance(member, (staticmethod, classmethod)):
            yield name, member.__func__
        elif inspect.isfunction(member):
            yield name, member


def _annotations(fn: Callable[..., object]) -> Iterator[tuple[str, str]]:
    fn = inspect.unwrap(fn)
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    for name, parameter in signature.parameters.items():
        if parameter.annotation is not inspect.Parameter.empty:
            yield name, str(parameter.annotation)
    if signature.return_annotation is not inspect.Signature.empty:
        yield "return", str(signature.return_annotation)


def public_signatures() -> Iterator[tuple[str, str, str]]:
    """(where, parameter, annotation) for every annotation of the public API."""
    seen: set[int] = set()
    for module in MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            where = f"{module.__name__}.{name}"
            if inspect.isclass(obj):
                if issubclass(obj, enum.Enum):
                    continue
                for klass in obj.__mro__:
                    if not klass.__module__.startswith("trio_sip"):
                        continue
                    for member_name, member in _members(klass):
                        for parameter, text in _annotations(member):
                            yield f"{where}.{member_name}", parameter, text
                    for attribute, text in vars(klass).get("__annotations__", {}).items():
                        if not attribute.startswith("_"):
                            yield f"{where}.{attribute}", "attribute", str(text)
            elif callable(obj):
                for parameter, text in _annotations(obj):
                    yield where, parameter, text


def test_the_walk_sees_the_api() -> None:
    where = {w for w, _, _ in public_signatures()}
    # A few signatures the walk must reach, or it proves nothing.
    for expected in ("trio_sip.open_user_agent", "trio_sip.UserAgent.register",
                     "trio_sip.IncomingRequest.state", "trio_sip.connect_user_agent",
                     "trio_sip.Request.evolve", "trio_sip.proto.TransactionTable.get",
                     "trio_sip.testing.FakeNetwork.backend"):  # fmt: skip
        assert expected in where, expected


def test_no_any_in_public_signatures() -> None:
    offenders = [
        f"{where}({parameter}): {text}"
        for where, parameter, text in public_signatures()
        if ANY.search(text)
    ]
    assert offenders == [], "\n".join(offenders)
