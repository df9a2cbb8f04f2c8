"""``mypy --strict`` on the docs' examples: ``python tests/typecheck_docs.py`` (nox -s typecheck).

Each page's ```python blocks become one module of a temporary package, in order, as
tests/test_docs.py runs them (one namespace per page), and the README's example one more; mypy
checks the package with ``--strict``. A page may define ``main`` in several blocks (each runs
where it is defined), so ``no-redef`` is the one check left out.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
MYPY_ARGS = ["--strict", "--disable-error-code=no-redef"]


def write_examples(target: Path) -> list[Path]:
    """One module per page with python blocks (and ``readme.py``) in ``target/docs_examples``."""
    package = target / "docs_examples"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    sources = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
    written = []
    for page in sources:
        blocks = FENCE.findall(page.read_text())
        if not blocks:
            continue
        name = "readme" if page.name == "README.md" else page.stem
        module = package / f"{name}.py"
        module.write_text("\n\n".join(blocks))
        written.append(module)
    return written


def check(cache_dir: Path | None = None) -> tuple[int, str]:
    """Run mypy on the examples; (exit status, report)."""
    from mypy import api

    with tempfile.TemporaryDirectory() as tmp:
        write_examples(Path(tmp))
        cache = ["--cache-dir", str(cache_dir)] if cache_dir is not None else []
        out, err, status = api.run([*MYPY_ARGS, *cache, str(Path(tmp) / "docs_examples")])
    return status, out + err


if __name__ == "__main__":
    status, report = check(ROOT / ".mypy_cache")
    print(report, end="")
    sys.exit(status)
