"""The optional mypyc-compiled core: ``is_compiled()`` tells the truth about the build in use.

``nox -s tests_compiled`` runs tests/proto against a ``TRIO_SIP_COMPILE=1`` wheel with
``TRIO_SIP_EXPECT_COMPILED=1``; every other run expects the pure-Python modules.
"""

from __future__ import annotations

import importlib
import os
import tomllib
from pathlib import Path

import pytest

import trio_sip.proto as proto

EXPECT_COMPILED = os.environ.get("TRIO_SIP_EXPECT_COMPILED", "") == "1"
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _files() -> dict[str, str]:
    return {
        name: importlib.import_module(f"trio_sip.proto.{name}").__file__ or ""
        for name in proto._COMPILED_MODULES
    }


def test_is_compiled_agrees_with_the_build() -> None:
    files = _files()
    assert proto.is_compiled() is EXPECT_COMPILED, (
        f"expected the {'compiled' if EXPECT_COMPILED else 'pure-Python'} core, got {files}"
    )


def test_all_or_nothing() -> None:
    compiled = {name for name, path in _files().items() if path.endswith((".so", ".pyd"))}
    assert compiled in (set(), set(proto._COMPILED_MODULES))
    assert proto.is_compiled() is bool(compiled)


def test_pure_sources_ship_beside_the_extensions() -> None:
    for name, path in _files().items():
        assert Path(path).with_name(f"{name.rpartition('.')[2]}.py").is_file(), path


def test_module_list_matches_the_build_hook() -> None:
    if not PYPROJECT.is_file():
        pytest.skip("pyproject.toml not beside the tests")
    config = tomllib.loads(PYPROJECT.read_text())
    modules = config["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["custom"]["modules"]
    assert sorted(modules) == sorted(
        f"trio_sip/proto/{name.replace('.', '/')}.py" for name in proto._COMPILED_MODULES
    )
