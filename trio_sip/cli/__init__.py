"""The ``trio-sip`` command: argument parsing, shared options, exit codes.

Every sub-command is an ``async def run(args, out) -> int`` in its own module, run under
``trio.run``. Errors the user can act on (a bad option value, a name that does not resolve, a
failed transaction) end the command with a one-line reason on stderr and exit status 1; a bad
command line exits with 2 (argparse's convention). Ctrl-C and SIGTERM cancel the command, which
cleans up (unregisters, hangs up: ``_signals``), then print one line and exit 130 / 143.
Output goes through ``out`` so tests can capture it without a subprocess.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
from collections.abc import Sequence
from typing import TextIO

import trio

from ..proto.errors import SipError
from . import _common
from ._signals import Interrupted, Runner, run_interruptible

__all__ = ["build_parser", "main", "plain_text"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trio-sip",
        description=(
            "SIP signalling on Trio: geo-redundancy demo, register, call, SIP ping, "
            "keep-alives, a UAS for load tests."
        ),
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"trio-sip {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _common.COMMANDS:
        module.add_parser(sub)
    for command in sub.choices.values():
        _plain_help(command)
    return parser


_LITERAL = re.compile(r"``(.+?)``", re.DOTALL)
_ROLE = re.compile(r":(?:class|func|meth|attr|mod|exc|data):`~?(.+?)`", re.DOTALL)


def plain_text(text: str) -> str:
    """Docstring markup (``literal``, :class:`Name`) as the plain text ``--help`` shows."""
    return _ROLE.sub(r"\1", _LITERAL.sub(r"\1", text))


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """A sub-command's description (its module docstring) and option help without markup."""
    if parser.description:
        parser.description = plain_text(parser.description)
    for action in parser._actions:
        if action.help:
            action.help = plain_text(action.help)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line ``argv``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    stream = out if out is not None else sys.stdout
    runner: Runner = args.run
    try:
        return int(trio.run(run_interruptible, runner, args, stream))
    except Interrupted as exc:
        word = "terminated" if exc.signum == signal.SIGTERM else "interrupted"
        print(f"trio-sip: {word}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:  # a second Ctrl-C during the cleanup, or one before it was set up
        print("trio-sip: interrupted", file=sys.stderr)
        return 130
    except (SipError, BaseExceptionGroup) as exc:
        if isinstance(exc, BaseExceptionGroup) and _only_interrupts(exc):
            print("trio-sip: interrupted", file=sys.stderr)
            return 130
        error = _user_error(exc)
        if error is None:
            raise
        print(f"trio-sip {args.command}: {error}", file=sys.stderr)
        return 1


def _only_interrupts(group: BaseExceptionGroup[BaseException]) -> bool:
    interrupts, rest = group.split((KeyboardInterrupt, trio.Cancelled))
    return interrupts is not None and rest is None


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
