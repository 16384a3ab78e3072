"""The Python examples on the documentation pages run as written.

Each fenced ``python`` block of the pages below (including those inside content tabs) is
executed in a fresh namespace, in a temporary working directory; an example that raises or
whose ``assert`` fails is a broken page.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
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


# -- every Python example on every page type-checks, as a user's module would ------------------

_TITLE = re.compile(r'title="(?P<title>[\w.]+\.py)"')
_TYPED_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```python(?P<attrs>[^\n]*)\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S
)


# Pages whose blocks are still fragments (names they do not define, top-level await, untyped
# engine callbacks): outside this check until their examples are made whole. Issue 15, item 20.
NOT_YET_TYPED = ("engines.md", "stores/postgres.md")


def _all_examples() -> dict[str, str]:
    """Every ``python`` block of every page, by the file name a user would save it under.

    A block titled ``title="name.py"`` keeps its name (another block may import it); the
    others are named after their page and position.
    """
    files: dict[str, str] = {}
    for page in sorted((REPO_ROOT / "docs").rglob("*.md")):
        if page.relative_to(REPO_ROOT / "docs").as_posix() in NOT_YET_TYPED:
            continue
        text = page.read_text(encoding="utf-8")
        stem = re.sub(r"\W", "_", page.relative_to(REPO_ROOT / "docs").with_suffix("").as_posix())
        for number, match in enumerate(_TYPED_FENCE.finditer(text), start=1):
            title = _TITLE.search(match["attrs"])
            name = title["title"] if title else f"docs_{stem}_{number}.py"
            assert name not in files, f"two examples are saved as {name}"
            files[name] = textwrap.dedent(match["body"])
    return files


def test_every_example_passes_mypy_strict(tmp_path: Path) -> None:
    files = _all_examples()
    assert "jsonstore.py" in files and len(files) >= 15, sorted(files)
    for name, source in files.items():
        (tmp_path / name).write_text(source, encoding="utf-8")
    # One run over all of them, with the project's config (strict, and how fixcore and
    # quickfix are typed); from the repository root so that mypy reuses its cache of fixseq.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(REPO_ROOT / "mypy.ini"),
            *sorted(str(tmp_path / name) for name in files),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout.replace(str(tmp_path) + "/", "") + result.stderr


def test_the_url_table_lists_every_parameter_a_scheme_reads() -> None:
    from fixseq._urls import _PARAMS

    rows = {
        line.split("|")[1]: line
        for line in (REPO_ROOT / "docs" / "operations.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("| `")
    }
    for scheme, params in _PARAMS.items():
        row = next(line for key, line in rows.items() if key.strip().startswith(f"`{scheme}"))
        for param in params:
            assert f"`{param}=" in row, f"docs/operations.md's {scheme} row lacks {param}="
