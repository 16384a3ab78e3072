"""Detects a SQLite database whose ``-wal`` was lost or cut short after a crash.

SQLite itself opens such a database at its last checkpoint, with no error: the
commits that lived only in the ``-wal`` are gone and a store would hand out
numbers the peer has already seen. The ``-shm`` file (the WAL index) outlives a
SIGKILLed writer and records, in its header, how many frames the log held
(``mxFrame``) and how many were already copied back into the database
(``nBackfill``, in the checkpoint info); see https://www.sqlite.org/walformat.html.
If it says frames were still waiting and the ``-wal`` is missing or too short
to hold them, committed transactions are lost.

Only that is detected. A ``-wal`` deleted together with its ``-shm``, a
``-wal`` with a byte changed (SQLite reads a frame that fails its checksum as
the end of the log), or a copy of the ``.db`` alone leave no trace.
"""

from __future__ import annotations

import os
import struct

from .errors import CorruptStoreError

# WalIndexHdr (48 bytes), its copy (48 bytes), then WalCkptInfo whose first field is nBackfill.
_HEADER_SIZE = 48
_READ_SIZE = 2 * _HEADER_SIZE + 4
_WAL_VERSION = 3007000
_WAL_HEADER_SIZE = 32
_FRAME_HEADER_SIZE = 24


def check_wal_not_lost(db: str) -> None:
    """Raise if ``db``'s ``-shm`` says committed frames are missing from its ``-wal``.

    Reads at most 100 bytes of ``db + "-shm"`` (twice, around the size of
    ``db + "-wal"``); takes no lock and changes nothing. A ``-shm`` that is
    missing, short, not initialised, of another version, or whose two header
    copies differ (a writer is updating it now), or that changed between the two
    reads, says nothing, and the call returns: only a consistent header that
    claims frames not yet checkpointed counts.

    Args:
        db: The database file's path.

    Raises:
        CorruptStoreError: The ``-wal`` file is missing, or shorter than the frames the
            ``-shm`` records as committed and not yet checkpointed. The message names
            the file and the fix.
    """
    wal, shm = db + "-wal", db + "-shm"
    head = _read_head(shm)
    if head is None or len(head) < _READ_SIZE:
        return
    if head[:_HEADER_SIZE] != head[_HEADER_SIZE : 2 * _HEADER_SIZE]:
        return
    # Native byte order: the -shm is shared memory, never moved between machines.
    version, _, _, is_init, _, page_field, max_frame = struct.unpack_from("=IIIBBHI", head)
    (backfilled,) = struct.unpack_from("=I", head, 2 * _HEADER_SIZE)
    if version != _WAL_VERSION or is_init != 1 or max_frame <= backfilled:
        return
    page_size = 65536 if page_field == 1 else page_field
    needed = _WAL_HEADER_SIZE + max_frame * (_FRAME_HEADER_SIZE + page_size)
    try:
        size: int | None = os.stat(wal).st_size
    except FileNotFoundError:
        size = None
    except OSError:
        return
    if size is not None and size >= needed:
        return
    # A live writer in another process may have checkpointed, truncated or restarted the log
    # between the two reads: only a header unchanged across the -wal's stat counts.
    if _read_head(shm) != head:
        return
    what = "is missing" if size is None else f"holds {size} bytes, not the {needed} it had"
    raise CorruptStoreError(
        f"{wal} {what}: its {shm} records {max_frame - backfilled} committed WAL frames not "
        f"yet written into {db}, so opening it would go back to an older state and reuse "
        "sequence numbers. Restore the -wal file from where it went (never delete one); if "
        f"it is gone for good, move {shm} aside and set the numbers above what the peer has "
        "seen with `fixseq set` (see the SQLite store's page, 'Never delete the -wal file')."
    )


def _read_head(shm: str) -> bytes | None:
    """The -shm's two header copies and nBackfill, or None if it cannot be read."""
    try:
        with open(shm, "rb") as file:
            return file.read(_READ_SIZE)
    except OSError:
        return None  # no -shm (a clean close removes it), or unreadable: nothing to say
