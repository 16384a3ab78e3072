"""fork(): the open stores a forked child inherits, and what the child does with them.

A store registers itself when it opens and unregisters when it closes; the
child's at-fork hook calls ``_mark_forked()`` on every store it inherited, so
the store refuses every later call (``StoreForkedError``) and its close writes
and releases nothing that belongs to the parent.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Protocol

__all__ = ["ForkAware", "keep_forever", "register_open", "unregister_open"]


class ForkAware(Protocol):
    """What the at-fork hook needs of an open store."""

    def _mark_forked(self) -> None:
        """Turn this store (inherited by a forked child) into the forked state."""


# -- fork() -----------------------------------------------------------------------
#
# A forked child inherits copies of the parent's open stores: counters, reserved
# blocks, file descriptors, database connections. Each open store is listed here
# (weakly, by id: a subclass need not be hashable), and the child's at-fork hook
# turns each into the "forked" state, so no call (not even one served from a block
# in memory) costs an os.getpid() compare: the hook sets the core's fast-path
# limits to 0 and the slow path raises.
_OPEN_STORES: weakref.WeakValueDictionary[int, ForkAware] = weakref.WeakValueDictionary()
_OPEN_STORES_LOCK = threading.Lock()
# The stores a forked child inherited, referenced for ever (see _keep_forever).
_INHERITED: list[object] = []


def keep_forever(obj: object) -> None:
    """Never let ``obj`` be deallocated in this (forked) process.

    Deallocating an inherited sqlite3 or psycopg connection does what close()
    does: SQLite may checkpoint and delete the parent's -wal, libpq sends a
    Terminate message on the parent's socket. A reference from a module list
    lasts until interpreter shutdown, which clears modules; one reference taken
    at the C level is never given back, so the object outlives even that.
    """
    _INHERITED.append(obj)
    try:
        import ctypes

        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
    except Exception:  # pragma: no cover - no ctypes: the module list still holds it
        pass


def _after_fork_in_child() -> None:
    global _OPEN_STORES_LOCK
    # Only the forking thread runs in the child: a lock another thread of the
    # parent held at the fork would never be released. Nothing here takes one.
    _OPEN_STORES_LOCK = threading.Lock()
    inherited = list(_OPEN_STORES.values())
    _OPEN_STORES.clear()
    for store in inherited:
        store._mark_forked()


def register_open(store: ForkAware) -> None:
    """List ``store`` (weakly) as open in this process."""
    with _OPEN_STORES_LOCK:
        _OPEN_STORES[id(store)] = store


def unregister_open(store: ForkAware) -> None:
    """Drop ``store`` from the open list (it closed)."""
    with _OPEN_STORES_LOCK:
        _OPEN_STORES.pop(id(store), None)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
