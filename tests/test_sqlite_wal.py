"""A -wal file lost or cut short after a SIGKILLed writer is detected at open, not reopened older.

Each test kills a real writer process (SIGKILL, so SQLite has no chance to checkpoint and remove
its -wal and -shm), then damages the -wal as an operator or a backup script would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fixseq import CorruptStoreError, SqliteSeqStore

SESSION = "FIX.4.4:BANK->BROKER"

# Takes N numbers, reports the last one, then waits (store open) to be killed.
_WRITER = """
import sys
from fixseq import SqliteSeqStore
store = SqliteSeqStore(sys.argv[1], sys.argv[2])
for _ in range(int(sys.argv[3])):
    last = store.next_out()
print(last, flush=True)
sys.stdin.read()
"""


def kill_writer_after(db: Path, count: int) -> int:
    """Run a writer that acknowledges ``count`` numbers, SIGKILL it; the last number it took."""
    with subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db), SESSION, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            last = int(child.stdout.readline())
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=60)
    assert Path(str(db) + "-wal").exists() and Path(str(db) + "-shm").exists()
    return last


def test_an_intact_wal_after_a_sigkill_reopens_at_the_acknowledged_state(tmp_path: Path) -> None:
    db = tmp_path / "seq.db"
    for cycle in range(1, 6):  # no false alarm over repeated unclean and clean reopens
        last = kill_writer_after(db, 20)
        assert last == 20 * cycle + (cycle - 1)  # each clean reopen below takes one more
        with SqliteSeqStore(db, SESSION) as store:
            assert store.next_out() == last + 1


def test_a_deleted_wal_after_a_sigkill_is_a_corrupt_store_error(tmp_path: Path) -> None:
    db = tmp_path / "seq.db"
    kill_writer_after(db, 200)
    wal = Path(str(db) + "-wal")
    kept = wal.read_bytes()
    wal.unlink()
    with pytest.raises(CorruptStoreError, match=r"seq\.db-wal is missing.*never delete"):
        SqliteSeqStore(db, SESSION)
    # The refusal changed nothing: with its -wal back the store resumes above every number.
    wal.write_bytes(kept)
    os.chmod(wal, 0o600)
    with SqliteSeqStore(db, SESSION) as store:
        assert store.next_out() == 201


def test_a_truncated_wal_after_a_sigkill_is_a_corrupt_store_error(tmp_path: Path) -> None:
    db = tmp_path / "seq.db"
    kill_writer_after(db, 200)
    wal = Path(str(db) + "-wal")
    os.truncate(wal, wal.stat().st_size // 2)
    with pytest.raises(CorruptStoreError, match=r"seq\.db-wal holds \d+ bytes"):
        SqliteSeqStore(db, SESSION)


def test_a_clean_close_leaves_nothing_to_check(tmp_path: Path) -> None:
    db = tmp_path / "seq.db"
    for expected in range(1, 6):
        with SqliteSeqStore(db, SESSION) as store:
            assert store.next_out() == expected
        assert not Path(str(db) + "-shm").exists()
