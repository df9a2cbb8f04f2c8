"""Developer and CI sessions. ``nox`` alone runs tests, lint and typecheck.

``nox -s tests_compiled`` and ``nox -s bench`` build the optional mypyc-compiled core first.
"""

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
    env["TRIO_SIP_SEEDS"] = os.environ.get("TRIO_SIP_SEEDS") or str(
        ROOT.parent / "shared" / "seeds"
    )
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
def fuzz(session: nox.Session) -> None:
    """The fuzz targets of tests/proto/test_fuzz.py, long and random: 20,000 examples per
    target (``nox -s fuzz -- N`` for N). A failure prints the input: keep it as a file under
    tests/data/crashers/ (see that test module)."""
    session.install("-e", ".[test]")
    examples = session.posargs[0] if session.posargs else "20000"
    env = {**_corpus_env(), "TRIO_SIP_FUZZ_EXAMPLES": examples}
    session.run("pytest", "-p", "no:cacheprovider", "tests/proto/test_fuzz.py", env=env)


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


def _compiled_wheel(session: nox.Session) -> Path:
    """Build the mypyc-compiled wheel (``TRIO_SIP_COMPILE=1``, see hatch_build.py) into the
    session's temporary directory. The build compiles in a directory of its own: nothing is
    written into the source tree."""
    out = Path(session.create_tmp()) / "wheel"
    shutil.rmtree(out, ignore_errors=True)
    session.run(
        *("python", "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out), str(ROOT)),
        env={"TRIO_SIP_COMPILE": "1"},
    )
    (wheel,) = out.glob("trio_sip-*.whl")
    return wheel


def _install_compiled(session: nox.Session, extras: str = "") -> None:
    """Install the compiled wheel (not editable), replacing any earlier trio-sip install."""
    wheel = _compiled_wheel(session)
    session.install(f"{wheel}{extras}")
    session.install("--force-reinstall", "--no-deps", str(wheel))


@nox.session
def tests_compiled(session: nox.Session) -> None:
    """tests/proto against the mypyc-compiled core (a TRIO_SIP_COMPILE=1 wheel, not editable).

    Not in the default run (compiling takes a minute or two). The tests run from a copy outside
    the repository, so the source tree cannot shadow the installed package; the session fails
    unless the compiled modules are the ones imported (also checked by test_compiled.py).
    """
    _install_compiled(session, "[test]")
    tmp = Path(session.create_tmp()) / "tests_compiled"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name in ["tests", "docs"]:
        shutil.copytree(ROOT / name, tmp / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp / "pyproject.toml")  # the pytest configuration
    session.chdir(tmp)
    session.run(
        "python",
        "-c",
        "import sys, trio_sip.proto as p, trio_sip.proto.parse as m; print('core:', m.__file__);"
        " sys.exit(0 if p.is_compiled() else 'the compiled core is not the one imported')",
    )
    env = {**_corpus_env(), "TRIO_SIP_EXPECT_COMPILED": "1"}
    session.run("pytest", "-p", "no:cacheprovider", "tests/proto", *session.posargs, env=env)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against other Python SIP stacks, installed into this session only.

    trio-sip is measured twice in the same run: the pure-Python core (the source tree) and the
    mypyc-compiled core (a TRIO_SIP_COMPILE=1 wheel installed here). ``TRIO_SIP_COMPILE=0 nox
    -s bench`` skips the compile (the compiled stack is then reported as unavailable).
    """
    if os.environ.get("TRIO_SIP_COMPILE") == "0":
        session.install("-e", ".")
    else:
        _install_compiled(session)
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
