"""Static typing: a duck-typed class is a SeqStore to mypy; a wrong signature is not."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

mypy_api = pytest.importorskip("mypy.api")

HEADER = """
from fixseq import AdminSeqStore, AsyncSeqStore, SeqStore, to_async, MemorySeqStore

def use(store: SeqStore) -> int:
    return store.next_out()
"""

GOOD = """
class Duck:
    def next_out(self) -> int: return 1
    def peek_out(self) -> int: return 1
    def observed_in(self, seq_num: int) -> None: pass
    def current_in(self) -> int: return 1
    def reset(self) -> None: pass

use(Duck())
use(MemorySeqStore())
admin: AdminSeqStore = MemorySeqStore()
wrapped: AsyncSeqStore = to_async(Duck())
"""

BAD = """
class Wrong:
    def next_out(self) -> int: return 1
    def peek_out(self) -> int: return 1
    def observed_in(self, seq_num: str) -> None: pass
    def current_in(self) -> int: return 1
    def reset(self) -> None: pass

use(Wrong())
"""

MISSING = """
class Partial:
    def next_out(self) -> int: return 1

use(Partial())
"""


def _mypy(tmp_path: Path, body: str) -> tuple[str, int]:
    source = tmp_path / "snippet.py"
    source.write_text(HEADER + body)
    stdout, stderr, status = mypy_api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / ".cache"), str(source)]
    )
    return stdout + stderr, status


def test_duck_typed_store_is_accepted(tmp_path: Path) -> None:
    output, status = _mypy(tmp_path, GOOD)
    assert status == 0, output


def test_wrong_signature_is_rejected(tmp_path: Path) -> None:
    output, status = _mypy(tmp_path, BAD)
    assert status == 1
    assert 'incompatible type "Wrong"' in output and "observed_in" in output


def test_missing_method_is_rejected(tmp_path: Path) -> None:
    output, status = _mypy(tmp_path, MISSING)
    assert status == 1
    assert 'incompatible type "Partial"' in output
