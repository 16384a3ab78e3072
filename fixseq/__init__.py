"""fixseq: a FIX session's sequence numbers, kept right.

Every store keeps two counters per session: the MsgSeqNum for the next
outbound message and the next inbound MsgSeqNum expected. The stored outbound
number may run ahead of what reached the wire but never behind; the inbound
mark may lag what the application took but never run ahead; and no store ever
silently starts again at 1.
"""

from ._core import SeqCounters as SeqCounters
from ._file import AsyncFileSeqStore as AsyncFileSeqStore
from ._file import FileSeqStore as FileSeqStore
from ._memory import AsyncMemorySeqStore as AsyncMemorySeqStore
from ._memory import MemorySeqStore as MemorySeqStore
from ._protocols import MAX_SEQ_NUM as MAX_SEQ_NUM
from ._protocols import AdminSeqStore as AdminSeqStore
from ._protocols import AsyncAdminSeqStore as AsyncAdminSeqStore
from ._protocols import AsyncSeqStore as AsyncSeqStore
from ._protocols import SeqState as SeqState
from ._protocols import SeqStore as SeqStore
from ._schedule import ResetSchedule as ResetSchedule
from ._sqlite import AsyncSqliteSeqStore as AsyncSqliteSeqStore
from ._sqlite import SqliteSeqStore as SqliteSeqStore
from ._sqlite import list_sessions as list_sessions
from ._twins import to_async as to_async
from ._urls import open_async_store as open_async_store
from ._urls import open_store as open_store
from ._version import __version__ as __version__
from .errors import CorruptStoreError as CorruptStoreError
from .errors import InvalidSeqNumError as InvalidSeqNumError
from .errors import SeqNumExhaustedError as SeqNumExhaustedError
from .errors import SeqStoreError as SeqStoreError
from .errors import StoreClosedError as StoreClosedError
from .errors import StoreForkedError as StoreForkedError
from .errors import StoreIOError as StoreIOError
from .errors import StoreLockedError as StoreLockedError

__all__ = [
    "MAX_SEQ_NUM",
    "AdminSeqStore",
    "AsyncAdminSeqStore",
    "AsyncFileSeqStore",
    "AsyncMemorySeqStore",
    "AsyncSeqStore",
    "AsyncSqliteSeqStore",
    "CorruptStoreError",
    "FileSeqStore",
    "InvalidSeqNumError",
    "MemorySeqStore",
    "ResetSchedule",
    "SeqCounters",
    "SeqNumExhaustedError",
    "SeqState",
    "SeqStore",
    "SeqStoreError",
    "SqliteSeqStore",
    "StoreClosedError",
    "StoreForkedError",
    "StoreIOError",
    "StoreLockedError",
    "__version__",
    "list_sessions",
    "open_async_store",
    "open_store",
    "to_async",
]
