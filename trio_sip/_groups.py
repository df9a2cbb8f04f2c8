"""Nurseries whose exit raises exceptions as themselves (docs/errors.md).

Every public ``open_*`` context manager runs its tasks in a nursery around the caller's block.
A Trio nursery wraps whatever leaves it in an ``ExceptionGroup``, so ``raise MyError`` in the
block, or one internal failure, would reach the caller as a group that ``except MyError:``
never matches. :func:`open_service_nursery` is that nursery with the unwrapping
trio-websocket settled on (its ``open_websocket``), written for our managers:

* one exception leaves the nursery: it is raised as itself, with its own ``__context__``;
* the others are all ``trio.Cancelled``: the one real exception (or the block's own, when
  they are all ``Cancelled``) is raised as itself, so a cancel scope around the block still
  catches its ``Cancelled`` and ``KeyboardInterrupt`` passes through untouched;
* the block's exception *and* internal failures: the block's exception is raised, with the
  internal ones in a group as its ``__context__`` (shown in the traceback, never lost);
* a ``KeyboardInterrupt`` among several failures: it is raised, the rest as its context;
* several real failures and none of them the block's: the group stays a group. A group the
  block itself raised (its own nursery's) is raised as that group.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NoReturn

import trio

__all__ = ["collapse", "open_service_nursery", "reraise"]


def collapse(group: BaseExceptionGroup[BaseException], body: BaseException | None) -> BaseException:
    """The exception to raise for ``group`` left by a nursery whose block raised ``body``."""
    found = group.exceptions
    if len(found) == 1:
        return found[0]
    real = [exc for exc in found if not isinstance(exc, trio.Cancelled)]
    if not real:
        return body if body is not None and any(e is body for e in found) else found[0]
    if len(real) == 1:
        return real[0]
    chosen = next((e for e in real if e is body), None)
    if chosen is None:
        chosen = next((e for e in real if isinstance(e, KeyboardInterrupt)), None)
    if chosen is None:
        return group
    others: list[BaseException] = [e for e in real if e is not chosen]
    if chosen.__context__ is not None and not chosen.__suppress_context__:
        others.append(chosen.__context__)
    chosen.__context__ = BaseExceptionGroup(
        "other failures while this exception was propagating", others
    )
    chosen.__suppress_context__ = False
    return chosen


def reraise(exc: BaseException) -> NoReturn:
    """``raise exc`` from an ``except`` block without making the handled group its context
    (the group holds ``exc``: its traceback would show everything twice)."""
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context


def _raise_collapsed(group: BaseExceptionGroup[BaseException], body: BaseException | None) -> None:
    chosen = collapse(group, body)
    if chosen is group:
        return
    reraise(chosen)


@asynccontextmanager
async def open_service_nursery() -> AsyncIterator[trio.Nursery]:
    """``trio.open_nursery()`` whose exit raises as the module comment says."""
    body: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            try:
                yield nursery
            except BaseException as exc:
                body = exc
                raise
    except BaseExceptionGroup as group:
        _raise_collapsed(group, body)
        raise
