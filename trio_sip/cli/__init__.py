"""The ``trio-sip`` command: argument parsing, shared options, exit codes.

Every sub-command is an ``async def run(args, out) -> int`` in its own module, run under
``trio.run``. Errors the user can act on (a bad option value, a name that does not resolve, a
failed transaction) end the command with a one-line reason on stderr and exit status 1; a bad
command line exits with 2 (argparse's convention). Output goes through ``out`` so tests can
capture it without a subprocess.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

import trio

from ..proto.errors import SipError
from . import _common

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trio-sip",
        description=(
            "SIP signalling on Trio: geo-redundancy demo, register, call, SIP ping, "
            "keep-alives, a UAS for load tests."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _common.COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line ``argv``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    stream = out if out is not None else sys.stdout
    runner: Callable[[argparse.Namespace, TextIO], object] = args.run
    try:
        return int(trio.run(runner, args, stream))  # type: ignore[arg-type]
    except KeyboardInterrupt:
        print("trio-sip: interrupted", file=sys.stderr)
        return 130
    except (SipError, BaseExceptionGroup) as exc:
        error = _user_error(exc)
        if error is None:
            raise
        print(f"trio-sip {args.command}: {error}", file=sys.stderr)
        return 1


def _user_error(exc: BaseException) -> SipError | None:
    """The SipError behind ``exc`` (nurseries wrap errors in groups), or None for a bug."""
    if isinstance(exc, SipError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(SipError)
        if matched is not None and rest is None:
            leaf: BaseException = matched
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]
            assert isinstance(leaf, SipError)
            return leaf
    return None


def _register() -> None:
    from . import call, demo, keepalive, options, proxy, register, serve

    _common.COMMANDS.extend([demo, options, register, call, keepalive, serve, proxy])


_register()
