"""``trio-sip serve --workers N``: the supervisor side (docs/workers.md).

The supervisor binds the listeners once per worker with ``SO_REUSEPORT``
(:mod:`trio_sip.workers`), prints the ``serving on`` lines, and starts ``trio-sip serve`` N
times with the same options (``--listen`` replaced by the bound addresses, ``--workers``
left out); each worker takes its sockets from the environment (``current_worker``) and prints
its lines prefixed ``w<index>``. A worker that dies is started again; SIGINT or SIGTERM stops
them all (SIGTERM, each worker hangs up its calls) and the supervisor exits 130 / 143
(``_signals``, as every command).
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from ..config import EndpointConfig
from ..proto.errors import ConfigError
from ..workers import SharedListener, WorkerEvent, serve_workers
from ._view import View

#: Options the supervisor does not hand to its workers (it replaces --listen itself).
_NOT_PASSED = {"workers", "listen", "help"}


def check_workers(value: int | None) -> None:
    if value is not None and not 1 <= value <= 256:
        raise ConfigError("--workers", value, "an integer from 1 to 256")


def worker_argv(args: argparse.Namespace, listeners: list[SharedListener]) -> list[str]:
    """``python -m trio_sip serve ...``: the options of ``args`` that differ from their
    defaults, with one ``--listen TRANSPORT:HOST:PORT`` per bound listener."""
    from . import serve

    sub = argparse.ArgumentParser(add_help=False).add_subparsers()
    serve.add_parser(sub)
    parser: argparse.ArgumentParser = sub.choices["serve"]
    argv = [sys.executable, "-m", "trio_sip", "serve"]
    for listener in listeners:
        host = f"[{listener.host}]" if ":" in listener.host else listener.host
        argv += ["--listen", f"{listener.transport}:{host}:{listener.port}"]
    for action in parser._actions:
        if action.dest in _NOT_PASSED or not action.option_strings:
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default or value is None:
            continue
        option = action.option_strings[-1]
        if isinstance(value, bool):
            argv.append(option)
        elif isinstance(value, list):
            for item in value:
                argv += [option, str(item)]
        else:
            argv += [option, str(value)]
    return argv


async def supervise(args: argparse.Namespace, out: TextIO, config: EndpointConfig) -> int:
    """Run ``args.workers`` workers until they are done (each after ``--calls``): 0.

    SIGINT and SIGTERM are the command's (``_signals.run_interruptible``): the first one
    cancels this, ``serve_workers`` stops every worker (SIGTERM, then SIGKILL after 5 s) in its
    shielded cleanup, and ``main`` prints one line and exits 130 / 143 as every command does."""
    view = View(out)

    def on_event(event: WorkerEvent) -> None:
        view.say(event.text)

    def command(listeners: list[SharedListener]) -> list[str]:
        # Called once the sockets are bound, before any worker starts.
        for listener in listeners:
            host = f"[{listener.host}]" if ":" in listener.host else listener.host
            where = f"{listener.transport.lower()}:{host}:{listener.port}"
            print(f"serving on {where}", file=out, flush=True)
        print(f"{args.workers} workers (SO_REUSEPORT)", file=out, flush=True)
        return worker_argv(args, listeners)

    listen = [(a.transport, a.host, a.port) for a in config.listen]
    await serve_workers(command, listen, args.workers, on_event=on_event)
    return 0
