"""Find and load the shared conformance corpus (never copied into this repository)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

GROUPS = ("rfc4475", "rfc5118", "basic")


@dataclass(frozen=True)
class Case:
    """One corpus message and what the manifest expects of it."""

    group: str
    name: str
    data: bytes
    expected: str  # "valid" | "valid-but-reject" | "invalid"
    parse: str  # "ok" | "error" | "either"

    @property
    def key(self) -> str:
        return f"{self.group}/{self.name}"


def corpus_root() -> Path:
    """``$TRIO_SIP_CORPUS``, else ``../shared/corpus`` beside the repository."""
    env = os.environ.get("TRIO_SIP_CORPUS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"


def load_cases(root: Path | None = None, groups: tuple[str, ...] = GROUPS) -> list[Case]:
    """Every manifest entry of ``groups``, in manifest order, with its bytes (read as bytes)."""
    root = root or corpus_root()
    manifest = tomllib.loads((root / "manifest.toml").read_text(encoding="utf-8"))
    cases = []
    for group in groups:
        for name, entry in manifest.get(group, {}).items():
            cases.append(
                Case(
                    group=group,
                    name=name,
                    data=(root / entry["file"]).read_bytes(),
                    expected=entry["expected"],
                    parse=entry["parse"],
                )
            )
    return cases
