"""The Python examples on the documentation pages run as written.

Each fenced ``python`` block of the pages below (including those inside content tabs) is
executed in a fresh namespace, in a temporary working directory; an example that raises or
whose ``assert`` fails is a broken page.
"""

from __future__ import annotations

import importlib.util
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


# Pages whose examples need only the package itself (memory and file stores), run in a fresh
# empty directory as a reader would. A page whose examples need a server or an optional extra
# is tested by the suite of the module it documents.
PAGES = ("index.md", "contract.md", "engine-use.md", "choosing.md", "stores/file.md")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```python\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S)


def _examples() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for page in PAGES:
        text = (REPO_ROOT / "docs" / page).read_text(encoding="utf-8")
        for number, match in enumerate(_FENCE.finditer(text), start=1):
            found.append((f"{page}#{number}", textwrap.dedent(match["body"])))
    return found


EXAMPLES = _examples()


def test_pages_have_examples() -> None:
    # The fence pattern must keep finding the examples; an empty list would pass vacuously.
    assert {name.split("#")[0] for name, _ in EXAMPLES} >= {
        "index.md",
        "engine-use.md",
        "stores/file.md",
    }


@pytest.mark.parametrize(("name", "source"), EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_example_runs(
    name: str, source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code = compile(source, f"<docs/{name}>", "exec")
    exec(code, {"__name__": f"docs_example_{name}"})


def _roles_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "griffe_roles", REPO_ROOT / "scripts" / "griffe_roles.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sphinx_roles_become_optional_links() -> None:
    convert = _roles_module().convert
    known = {
        "SeqStoreError": "fixseq.errors.SeqStoreError",
        "SeqCounters.close": "fixseq._core.SeqCounters.close",
    }
    text = (
        "Raises :class:`~fixseq.StoreIOError` or :exc:`SeqStoreError`; see "
        ":meth:`SeqCounters.close` and :func:`helper`.\n"
        "The layout::\n\n    magic  8 bytes\n"
    )

    def resolve(name: str) -> str | None:
        return name if name.startswith("fixseq.") else known.get(name)

    assert convert(text, resolve) == (
        'Raises <autoref identifier="fixseq.StoreIOError" optional>`StoreIOError`</autoref> or '
        '<autoref identifier="fixseq.errors.SeqStoreError" optional>`SeqStoreError`</autoref>; '
        'see <autoref identifier="fixseq._core.SeqCounters.close" optional>'
        "`SeqCounters.close`</autoref> and `helper`.\n"
        "The layout:\n\n    magic  8 bytes\n"
    )
    # Markdown cross-references are left alone; only the literal-block marker changes.
    plain = "Return [`SeqState`][fixseq.SeqState]: both counters.\n\nExample::"
    assert convert(plain, resolve) == plain[:-1]
