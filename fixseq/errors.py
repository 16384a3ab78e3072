"""The one error hierarchy of fixseq.

Every error fixseq raises on purpose is a [`SeqStoreError`][fixseq.SeqStoreError]; each subclass
also subclasses the builtin a caller would already catch:

    Exception
    └── SeqStoreError
        ├── InvalidSeqNumError      (also ValueError)   a seq num < 1 or > MAX_SEQ_NUM
        ├── SeqNumExhaustedError    (also OverflowError) next_out would pass MAX_SEQ_NUM
        ├── StoreClosedError        (also RuntimeError)  a call after close()
        ├── StoreForkedError        (also RuntimeError)  a call in a fork()ed child of its opener
        ├── CorruptStoreError                            a store exists but holds no valid state
        ├── StoreLockedError        (also OSError)       another open store holds the backing file
        └── StoreIOError            (also OSError)       an OS error while making a change durable

A value that is not an ``int`` where a seq num is expected raises the builtin
`TypeError`, as Python itself does for a wrong argument type.
"""

from __future__ import annotations

__all__ = [
    "CorruptStoreError",
    "InvalidSeqNumError",
    "SeqNumExhaustedError",
    "SeqStoreError",
    "StoreClosedError",
    "StoreForkedError",
    "StoreIOError",
    "StoreLockedError",
]


class SeqStoreError(Exception):
    """Base class of every error a fixseq store raises on purpose."""


class InvalidSeqNumError(SeqStoreError, ValueError):
    """A sequence number below 1 or above ``MAX_SEQ_NUM`` was given.

    The call that raised it changed nothing.
    """


class SeqNumExhaustedError(SeqStoreError, OverflowError):
    """``next_out()`` would hand out a number above ``MAX_SEQ_NUM``.

    The counter stays where it was; only ``reset()`` or ``set_next_out()``
    lets the store hand out numbers again.
    """


class StoreClosedError(SeqStoreError, RuntimeError):
    """The store (or its twin, which shares its closed state) was closed."""


class StoreForkedError(SeqStoreError, RuntimeError):
    """The store was opened in another process: this one is a ``fork()`` of it.

    A forked child inherits the parent's open stores: its copy of a counter, a
    reserved block, a file lock, a database connection. Using any of them from
    the child would hand out numbers the parent hands out too, so in the child
    every call raises this error, naming both processes, and ``close()`` there
    writes nothing and releases nothing the parent still holds. Open a new
    store in the child (once the parent has closed its own, for a file store).
    """


class CorruptStoreError(SeqStoreError):
    """The store exists but holds no valid state.

    fixseq never silently starts again at 1: an operator must look at the store
    and repair it on purpose. The message ends with the steps that work: move
    the damaged file aside (kept for the post-mortem), then recreate the store
    with ``fixseq set URL --create --next-out N --next-in M``, the numbers agreed
    with the peer (``set`` and ``reset`` on the damaged file fail as opening it does).
    """


class StoreLockedError(SeqStoreError, OSError):
    """Another open store, in this process or another, holds the backing file."""


class StoreIOError(SeqStoreError, OSError):
    """An OS error while making a change durable; the ``OSError`` is chained.

    The change was not acknowledged (no number was handed out), and the store
    refuses every later call until it is closed and opened again: after a
    failed sync the page cache can no longer be trusted. A store whose
    database server holds the truth (PostgreSQL) raises it for a lost
    connection too, and does not stop: its next call reconnects.
    """


def repair_steps(path: str, scheme: str) -> str:
    """The end of a damaged store file's `CorruptStoreError` message: the repair that works.

    Args:
        path: The damaged file (a file store, or a SQLite database).
        scheme: ``"file"`` or ``"sqlite"``, the URL scheme ``fixseq set`` opens it with.

    Returns:
        The steps, as shell commands an operator runs with N, M (and NAME) filled in.
    """
    # Imported here: errors is the bottom of the package and needs nothing at import time.
    import shlex
    import urllib.parse

    url = f"{scheme}:{urllib.parse.quote(path, safe='/')}?session=NAME"
    aside = shlex.quote(path + ".damaged")
    extra = " (its -wal and -shm files likewise, if present)" if scheme == "sqlite" else ""
    each = "for each session, " if scheme == "sqlite" else ""
    return (
        f"to repair: agree the numbers with the peer, mv {shlex.quote(path)} {aside}{extra}, "
        f"then {each}fixseq set {shlex.quote(url)} --create --next-out N --next-in M "
        "(NAME: the session the engine opens"
        + (")" if scheme == "sqlite" else "; leave ?session=NAME out if it opens none)")
    )
