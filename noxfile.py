"""Developer and CI sessions. ``nox`` alone runs tests, lint and typecheck.

``nox -s tests_compiled`` and ``nox -s bench`` build the optional mypyc-compiled core first.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
# docs/*.md are not ruff's: their python blocks are formatted for the reader (and run by
# tests/test_docs.py); only the site's Python is linted.
LINT_TARGETS = ["trio_sip", "tests", "benchmarks", "noxfile.py", "docs/conf.py", "docs/_ext"]


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
    session.install("-e", ".[test,redis]")
    # The interop matrix (tests/interop/test_matrix.py) is printed at the end and written to
    # docs/interop.md, so the page always says what was last proven.
    env = {**_corpus_env(), "TRIO_SIP_MATRIX_DOC": str(ROOT / "docs" / "interop.md")}
    session.run("pytest", "-m", "interop", *session.posargs, env=env)


@nox.session
def soak(session: nox.Session) -> None:
    """The chaos soak (tests/soak): calls through two real Kamailio sites under a fault script.

    ``TRIO_SIP_SOAK_SECONDS`` (default 120) and ``TRIO_SIP_SOAK_RATE`` (calls/s, default 20).
    Writes docs/soak.json and draws docs/soak.png from it (matplotlib, installed here only).
    """
    session.install("-e", ".[test]", "matplotlib")
    report = ROOT / "docs" / "soak.json"
    env = {**_corpus_env(), "TRIO_SIP_SOAK_REPORT": str(report)}
    try:
        session.run("pytest", "-m", "soak", "-s", "tests/soak", *session.posargs, env=env)
    finally:
        if report.exists():
            session.run(
                "python", "-m", "tests.soak.plot", str(report), str(ROOT / "docs" / "soak.png")
            )


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
def cluster(session: nox.Session) -> None:
    """Several trio-sip proxy nodes behind a real front: redis-server, Kamailio's dispatcher
    and sipp on loopback (tests marked ``cluster``; the Debian packages are installed by the
    tests when missing and root; about a minute). ``TRIO_SIP_CLUSTER=full`` runs the long
    variant (about two: longer capacity runs, 40 s of calls around the node kill, not 12 s)."""
    session.install("-e", ".[test,redis]")
    session.run("pytest", "-m", "cluster", "-s", *session.posargs, env=_corpus_env())


@nox.session
def attack(session: nox.Session) -> None:
    """Hostile traffic against real servers on loopback (issue #10), printing its figures
    (``FUZZ ...`` and ``ATTACK ...`` lines): the wire fuzzer of tests/attack (20,000 UDP
    datagrams and 5,000 TCP messages against ``trio-sip serve`` and against a proxy/registrar,
    each in a private network namespace: ``unshare --net``, root or user namespaces needed), a
    flood while sipp places calls, a connection flood with slowloris. A few minutes, both cores
    busy, needs sipp; run it under the interop lock. ``nox -s attack -- short`` (or
    ``TRIO_SIP_ATTACK=short``) runs the short variant (the flood: 3 s, 15 s of recovery, no RSS
    bound)."""
    session.install("-e", ".[test]")
    short = "short" in session.posargs or os.environ.get("TRIO_SIP_ATTACK") == "short"
    args = [arg for arg in session.posargs if arg != "short"]
    env = {**_corpus_env(), "TRIO_SIP_ATTACK": "short" if short else "full"}
    session.run("pytest", "-m", "attack", "-s", "tests/attack", *args, env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", *LINT_TARGETS)
    session.run("ruff", "format", "--check", *LINT_TARGETS)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package, then on the docs' examples (tests/typecheck_docs.py)."""
    session.install("-e", ".[test,redis]", "mypy>=1.10")
    session.run("mypy", "--strict", "trio_sip")
    session.run("python", "tests/typecheck_docs.py")


def _compiled_wheel(session: nox.Session) -> Path:
    """Build the mypyc-compiled wheel (``TRIO_SIP_COMPILE=1``, see hatch_build.py) into
    .nox/compiled/HASH/, HASH of the package's sources and build files: a second run on the
    same sources reuses it (compiling takes minutes on a loaded 2-core machine, a third of
    ``nox -s bench``'s 20). The build compiles in a directory of its own: nothing is written
    into the source tree."""
    digest = hashlib.sha256()
    for path in sorted([*(ROOT / "trio_sip").rglob("*.py"), ROOT / "hatch_build.py",
                        ROOT / "pyproject.toml"]):  # fmt: skip
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    out = ROOT / ".nox" / "compiled" / digest.hexdigest()[:16]
    found = sorted(out.glob("trio_sip-*.whl"))
    if found:
        session.log(f"compiled wheel of these sources: {found[0]}")
        return found[0]
    shutil.rmtree(ROOT / ".nox" / "compiled", ignore_errors=True)  # older sources' wheels
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
        shutil.copytree(
            ROOT / name,
            tmp / name,
            ignore=shutil.ignore_patterns("__pycache__", "_build", "_generated"),
        )
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

    Each benchmark's result is written with the machine, versions and commands to
    benchmarks/results/NAME.json and plotted (matplotlib, installed here only) to
    benchmarks/results/NAME.svg, unless the arguments name ``--json-dir`` / ``--plots``.
    """
    if os.environ.get("TRIO_SIP_COMPILE") == "0":
        session.install("-e", ".")
    else:
        _install_compiled(session)
    session.install("trustme")  # the TLS row of the timing benchmark (a certificate authority)
    req = ROOT / "benchmarks" / "requirements-peers.txt"
    if req.exists():
        # Each peer separately: one that will not install is reported, not fatal.
        for line in req.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                session.run("python", "-m", "pip", "install", "--quiet", line, success_codes=[0, 1])
    session.install("matplotlib>=3.8")
    args = list(session.posargs)
    results = str(ROOT / "benchmarks" / "results")
    if "--json-dir" not in args:
        args += ["--json-dir", results]
    if "--plots" not in args:
        args += ["--plots", results]
    session.run("python", "-m", "benchmarks", *args, env=_corpus_env())


#: Debian packages the docs session needs: Graphviz draws the diagrams, Chromium runs the browser
#: test, DejaVu is the font both use. {package: the file that shows it is installed}
DOCS_DEBIAN = {
    "graphviz": "/usr/bin/dot",
    "chromium": "/usr/bin/chromium",
    "fonts-dejavu-core": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
}


def _ensure_debian(session: nox.Session, packages: dict[str, str]) -> None:
    """Install the Debian packages that are missing (as root with apt-get), else stop with
    the command to run."""
    missing = [name for name, path in packages.items() if not Path(path).exists()]
    if not missing:
        return
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        session.error(f"install the Debian packages {' '.join(missing)} (apt-get install ...)")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-qq", external=True, env=env)
    session.run(
        *("apt-get", "install", "-y", "-q", "--no-install-recommends", *missing),
        external=True,
        env=env,
    )


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site, built and checked (docs/site.md).

    1. Every python block of docs/*.md and the README runs (tests/test_docs.py).
    2. Sphinx builds docs/_build/html with warnings as errors (-W): cross-references, test
       citations, pictures, docstrings; then the offline link check of every internal link
       and anchor (docs/_ext/sitekit/linkcheck.py; external links are listed, not fetched).
    3. Headless Chromium opens the built site (tests/docs/test_site_browser.py): headings,
       pictures, search; screenshots in docs/_build/screenshots/.

    Installs the docs extra here, and the Debian packages graphviz, chromium and
    fonts-dejavu-core when run as root. ``nox -s docs -- -k quickstart`` passes the arguments
    to both pytest runs.
    """
    session.install("-e", ".[test,docs]")
    env = _corpus_env()
    session.run("pytest", "tests/test_docs.py", *session.posargs, env=env)
    _ensure_debian(session, DOCS_DEBIAN)
    build = ROOT / "docs" / "_build"
    html, shots = build / "html", build / "screenshots"
    shutil.rmtree(shots, ignore_errors=True)
    session.run(
        *("sphinx-build", "-W", "--keep-going", "-b", "html", "-d", str(build / "doctrees")),
        *("-j", "auto", str(ROOT / "docs"), str(html)),
        env=env,
    )
    session.run(
        *("pytest", "-m", "docs", "-p", "no:cacheprovider", "tests/docs", *session.posargs),
        env={**env, "TRIO_SIP_DOCS_SITE": str(html), "TRIO_SIP_DOCS_SHOTS": str(shots)},
    )
    session.log(f"site: {html / 'index.html'}  screenshots: {shots}")


@nox.session(python=False)
def clean(session: nox.Session) -> None:
    """Remove build output and caches."""
    for name in [".nox", "build", "dist", ".mypy_cache", ".ruff_cache", ".pytest_cache"]:
        shutil.rmtree(ROOT / name, ignore_errors=True)
    for name in ["_build", "_generated"]:
        shutil.rmtree(ROOT / "docs" / name, ignore_errors=True)
