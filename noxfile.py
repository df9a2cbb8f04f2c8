"""Developer and CI sessions. ``nox`` alone runs tests, lint and typecheck."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
LINT_TARGETS = ["trio_sip", "tests", "benchmarks", "noxfile.py"]


def _corpus_env() -> dict[str, str]:
    env = {}
    corpus = os.environ.get("TRIO_SIP_CORPUS") or str(ROOT.parent / "shared" / "corpus")
    env["TRIO_SIP_CORPUS"] = corpus
    return env


@nox.session
def tests(session: nox.Session) -> None:
    """The default test suite: pure core tests and virtual-time shell tests (no interop)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "not interop", *session.posargs, env=_corpus_env())


@nox.session
def interop(session: nox.Session) -> None:
    """Tests against real SIP software on loopback (sipp, Kamailio, baresip, dnsmasq).

    The Debian packages are installed by the tests' own fixture when missing (root only).
    """
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "interop", *session.posargs, env=_corpus_env())


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", *LINT_TARGETS)
    session.run("ruff", "format", "--check", *LINT_TARGETS)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[test]", "mypy>=1.10")
    session.run("mypy", "--strict", "trio_sip")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against other Python SIP stacks, installed into this session only."""
    session.install("-e", ".")
    req = ROOT / "benchmarks" / "requirements-peers.txt"
    if req.exists():
        # Each peer separately: one that will not install is reported, not fatal.
        for line in req.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                session.run("python", "-m", "pip", "install", "--quiet", line, success_codes=[0, 1])
    session.run("python", "-m", "benchmarks", *session.posargs, env=_corpus_env())


@nox.session
def docs(session: nox.Session) -> None:
    """Run the code examples in docs/ (they are tested as scripts)."""
    session.install("-e", ".[test]")
    session.run("pytest", "tests/test_docs.py", *session.posargs, env=_corpus_env())


@nox.session(python=False)
def clean(session: nox.Session) -> None:
    """Remove build output and caches."""
    for name in [".nox", "build", "dist", ".mypy_cache", ".ruff_cache", ".pytest_cache"]:
        shutil.rmtree(ROOT / name, ignore_errors=True)
