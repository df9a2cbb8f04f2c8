"""Shared fixtures: where the conformance corpus lives."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def corpus_root() -> Path:
    """The corpus folder: ``$TRIO_SIP_CORPUS`` or ``../shared/corpus`` beside the repository."""
    env = os.environ.get("TRIO_SIP_CORPUS")
    return Path(env) if env else REPO.parent / "shared" / "corpus"


def load_manifest() -> dict[str, Any]:
    root = corpus_root()
    path = root / "manifest.toml"
    if not path.exists():
        raise RuntimeError(
            f"conformance corpus not found at {root}: set TRIO_SIP_CORPUS or put shared/ beside"
            " the repository"
        )
    return tomllib.loads(path.read_text())


@pytest.fixture(scope="session")
def corpus() -> Path:
    return corpus_root()
