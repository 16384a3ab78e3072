"""The store and the test file on docs/writing-a-store.md work as printed."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import TYPE_CHECKING

from conftest import REPO_ROOT

if TYPE_CHECKING:
    from pathlib import Path

PAGE = REPO_ROOT / "docs" / "writing-a-store.md"

# The run checks the kit's wiring against the page's store, not the disk: syncs
# are made no-ops (they would cost minutes on a slow disk) and the state machine
# runs fewer examples.
CONFTEST = """
import os

os.fsync = lambda fd: None

from fixseq.testing import SeqStoreContract

SeqStoreContract.max_examples = 15
"""


def _block(title: str) -> str:
    match = re.search(
        rf'```python title="{re.escape(title)}"\n(.*?)\n```', PAGE.read_text(), re.DOTALL
    )
    assert match, f"{PAGE.name} has no python block titled {title}"
    return match.group(1) + "\n"


def test_the_documented_store_passes_its_documented_test_file(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    (tmp_path / "jsonstore.py").write_text(_block("jsonstore.py"))
    (tmp_path / "test_jsonstore.py").write_text(_block("test_jsonstore.py"))
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # keep our pyproject's settings out
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_jsonstore.py"],
        cwd=tmp_path,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "10 passed" in run.stdout, run.stdout


def test_the_documented_test_file_is_five_lines_of_code() -> None:
    lines = [line for line in _block("test_jsonstore.py").splitlines() if line.strip()]
    assert len(lines) <= 8  # two imports, the class, two methods of one or two lines
