"""FileSeqStore and AsyncFileSeqStore: creation, reopen, session names, locking, failed I/O.

Crash safety (SIGKILL) is in test_file_crash.py, damaged files in
test_file_damage.py. Faults are injected by monkeypatching the ``os``
functions the store looks up at call time.
"""

from __future__ import annotations

import datetime
import errno
import os
import signal
import stat
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import pytest

from fixseq import (
    MAX_SEQ_NUM,
    AdminSeqStore,
    AsyncAdminSeqStore,
    AsyncFileSeqStore,
    CorruptStoreError,
    FileSeqStore,
    InvalidSeqNumError,
    SeqNumExhaustedError,
    SeqState,
    SeqStoreError,
    StoreClosedError,
    StoreIOError,
    StoreLockedError,
)
from fixseq._file import FileState, read_file_state
from fixseq._fileformat import FILE_SIZE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "FIX.4.4-SENDER-TARGET.seq"


@pytest.fixture
def store(path: Path) -> Iterator[FileSeqStore]:
    with FileSeqStore(path) as opened:
        yield opened


def failing(err: int) -> Callable[..., object]:
    def fail(*args: object) -> object:
        raise OSError(err, os.strerror(err))

    return fail


# -- creation and reopen ---------------------------------------------------------


def test_a_new_file_holds_one_and_one_is_0600_and_leaves_no_temp_file(
    path: Path, store: FileSeqStore
) -> None:
    assert store.snapshot() == SeqState(1, 1)
    assert (store.peek_out(), store.current_in()) == (1, 1)
    info = path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_size == FILE_SIZE
    assert os.listdir(path.parent) == [path.name]
    assert isinstance(store, AdminSeqStore)
    assert store.path == str(path) and store.fsync is True and store.session is None


def test_the_file_is_0600_whatever_the_umask(path: Path) -> None:
    old = os.umask(0o277)  # would leave the owner without write permission
    try:
        FileSeqStore(path).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_every_change_and_the_creation_time_survive_a_reopen(path: Path) -> None:
    with FileSeqStore(path) as store:
        assert [store.next_out() for _ in range(5)] == [1, 2, 3, 4, 5]
        store.observed_in(9)
        created = store.creation_time()
    with FileSeqStore(path) as store:
        assert store.snapshot() == SeqState(6, 10)
        assert store.creation_time() == created
        store.set_next_out(100)
        store.set_next_in(3)
    with FileSeqStore(path) as store:
        assert store.snapshot() == SeqState(100, 3)
        assert store.creation_time() == created
        store.reset()
        reset_at = store.creation_time()
        assert reset_at > created
    with FileSeqStore(path) as store:
        assert store.snapshot() == SeqState(1, 1)
        assert store.creation_time() == reset_at  # to the microsecond
        assert store.creation_time().tzinfo is datetime.timezone.utc


def test_a_store_at_the_limit_stays_exhausted_after_a_reopen(path: Path) -> None:
    with FileSeqStore(path) as store:
        store.set_next_out(MAX_SEQ_NUM)
        assert store.next_out() == MAX_SEQ_NUM
    with FileSeqStore(path) as store:
        assert store.peek_out() == MAX_SEQ_NUM + 1
        with pytest.raises(SeqNumExhaustedError):
            store.next_out()
        store.set_next_out(7)
        assert store.next_out() == 7


def test_create_false_refuses_a_missing_file_and_creates_nothing(path: Path) -> None:
    with pytest.raises(SeqStoreError, match="create=False") as info:
        FileSeqStore(path, create=False)
    assert isinstance(info.value.__cause__, FileNotFoundError)
    assert os.listdir(path.parent) == []
    FileSeqStore(path).close()
    with FileSeqStore(path, create=False) as store:
        assert store.snapshot() == SeqState(1, 1)


def test_an_existing_empty_file_is_corrupt_and_left_alone(path: Path) -> None:
    path.write_bytes(b"")
    with pytest.raises(CorruptStoreError, match="empty"):
        FileSeqStore(path)
    assert path.read_bytes() == b""
    with pytest.raises(CorruptStoreError):
        read_file_state(path)


def test_a_file_that_is_not_a_store_is_corrupt(path: Path) -> None:
    path.write_bytes(b"00000000000000000006 : 00000000000000000003")  # QuickFIX's format
    with pytest.raises(CorruptStoreError):
        FileSeqStore(path)
    path.write_bytes(b"\0" * FILE_SIZE)
    with pytest.raises(CorruptStoreError, match="magic"):
        FileSeqStore(path)


def test_a_newer_format_version_is_refused_with_a_clear_message(path: Path) -> None:
    FileSeqStore(path).close()
    image = bytearray(path.read_bytes())
    image[8] = 2
    path.write_bytes(bytes(image))
    with pytest.raises(CorruptStoreError, match="format version 2"):
        FileSeqStore(path)


def test_a_stale_temp_file_from_a_crashed_creation_never_blocks_an_open(path: Path) -> None:
    stale = path.parent / f".{path.name}.0123456789abcdef.fixseq-tmp"
    stale.write_bytes(b"half")
    with FileSeqStore(path) as store:
        assert store.next_out() == 1
    with FileSeqStore(path) as store:
        assert store.next_out() == 2
    assert stale.read_bytes() == b"half"  # ignored, never read


def test_creation_syncs_the_file_then_the_directory_and_links_without_replacing(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fdatasync, real_fsync, real_link, real_unlink = os.fdatasync, os.fsync, os.link, os.unlink

    def fdatasync(fd: int) -> None:
        events.append("sync file")
        real_fdatasync(fd)

    def fsync(fd: int) -> None:
        events.append("sync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def link(src: str, dst: str) -> None:
        assert os.path.getsize(src) == FILE_SIZE  # written in full before it appears
        events.append("link")
        real_link(src, dst)

    def unlink(name: str) -> None:
        events.append("unlink temp")
        real_unlink(name)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(os, "unlink", unlink)
    FileSeqStore(path).close()
    # The directory sync covers both the new name and the temporary one's removal.
    assert events == ["sync file", "link", "unlink temp", "sync dir"]


def test_a_creation_race_keeps_the_first_file(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FileSeqStore(path) as first:
        first.next_out()
    real_open = os.open
    missing = [True]

    def open_(name: str, flags: int, mode: int = 0o777) -> int:
        if missing and name == str(path):
            # As if another process created the file right after this check.
            missing.clear()
            raise FileNotFoundError(errno.ENOENT, "not there yet")
        return real_open(name, flags, mode)

    dir_syncs: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        dir_syncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "fsync", fsync)
    with FileSeqStore(path) as second:
        assert second.next_out() == 2  # the existing file, not a new one at 1
    assert sorted(os.listdir(path.parent)) == [path.name]
    # Its creator may have died before syncing the directory: synced again.
    assert len(dir_syncs) == 1


def test_a_file_system_without_hard_links_falls_back_to_rename(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "link", failing(errno.EPERM))
    with FileSeqStore(path) as store:
        assert store.next_out() == 1
    assert os.listdir(path.parent) == [path.name]


# -- session names ----------------------------------------------------------------


def test_the_session_name_is_stored_and_checked(path: Path) -> None:
    name = "FIX.4.4:SENDER/SUB/LOC->TARGET/SUB/LOC:qualifier é"
    with FileSeqStore(path, session=name) as store:
        assert store.session == name
        store.next_out()
    assert read_file_state(path).session == name
    with FileSeqStore(path) as store:  # None skips the check
        assert store.session == name
    with pytest.raises(SeqStoreError, match=r"FIX\.4\.4:OTHER") as info:
        FileSeqStore(path, session="FIX.4.4:OTHER")
    assert name in str(info.value)
    with FileSeqStore(path, session=name) as store:  # the failed open held nothing
        assert store.peek_out() == 2


def test_a_file_without_a_name_is_not_any_named_session(path: Path) -> None:
    FileSeqStore(path).close()
    with pytest.raises(SeqStoreError, match="no session name"):
        FileSeqStore(path, session="A")


@pytest.mark.parametrize(
    ("session", "error"),
    [
        (b"A", TypeError),
        (1, TypeError),
        ("", ValueError),
        ("x" * 1025, ValueError),
        ("a\x00b", ValueError),
        ("\ud800", ValueError),
    ],
)
def test_a_bad_session_name_is_refused_before_anything_is_created(
    path: Path, session: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        FileSeqStore(path, session=session)  # type: ignore[arg-type]
    assert not path.exists()


def test_the_longest_session_name_fits(path: Path) -> None:
    name = "é" * 512  # 1024 UTF-8 bytes
    FileSeqStore(path, session=name).close()
    assert read_file_state(path).session == name


# -- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"path": 3}, TypeError),
        ({"path": b"/tmp/x"}, TypeError),
        ({"path": ""}, ValueError),
        ({"fsync": 1}, TypeError),
        ({"create": None}, TypeError),
        ({"reserve": 0}, ValueError),
        ({"reserve": 2.0}, TypeError),
        ({"reserve": True}, TypeError),
    ],
)
def test_bad_arguments_raise_and_create_nothing(
    tmp_path: Path, kwargs: dict[str, object], error: type[Exception]
) -> None:
    kwargs = {"path": tmp_path / "s.seq", **kwargs}
    with pytest.raises(error):
        FileSeqStore(**kwargs)  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


def test_a_rejected_call_writes_nothing(
    store: FileSeqStore, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.next_out()
    before = path.read_bytes()
    monkeypatch.setattr(os, "pwrite", failing(errno.EIO))  # any write would fail the store
    for bad in (0, -1, MAX_SEQ_NUM + 1, True, 1.0, "2", None):
        with pytest.raises((TypeError, InvalidSeqNumError)):
            store.observed_in(bad)  # type: ignore[arg-type]
        with pytest.raises((TypeError, InvalidSeqNumError)):
            store.set_next_out(bad)  # type: ignore[arg-type]
        with pytest.raises((TypeError, InvalidSeqNumError)):
            store.set_next_in(bad)  # type: ignore[arg-type]
    assert path.read_bytes() == before
    monkeypatch.undo()
    assert store.next_out() == 2  # and the store carries on


def test_a_directory_or_a_missing_directory_is_a_store_io_error(tmp_path: Path) -> None:
    # An OSError still (StoreIOError is one), with the OS's errno, naming the store's path.
    with pytest.raises(StoreIOError) as info:
        FileSeqStore(tmp_path)
    assert info.value.errno == errno.EISDIR and str(tmp_path) in str(info.value)
    assert isinstance(info.value.__cause__, IsADirectoryError)
    with pytest.raises(StoreIOError) as info:
        FileSeqStore(tmp_path / "no" / "such.seq")
    assert info.value.errno == errno.ENOENT and "does not exist" in str(info.value)


# -- write-ahead and the syncs -------------------------------------------------------


def test_each_change_is_synced_before_it_is_acknowledged(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileSeqStore(path)
    synced: list[FileState] = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        real(fd)
        synced.append(read_file_state(path))

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    for _ in range(5):
        n = store.next_out()
        assert synced[-1].state.next_out == n + 1
    store.observed_in(40)
    assert synced[-1].state == SeqState(6, 41)
    store.observed_in(12)  # below the mark: nothing to write
    assert len(synced) == 6  # one sync per acknowledged change
    store.set_next_out(50)  # past the newest slot's out_limit: written to both slots
    assert synced[-1].state == SeqState(50, 41)
    assert len(synced) == 8
    store.set_next_in(20)  # lowers the inbound mark: written to both slots
    assert synced[-1].state == SeqState(50, 20)
    assert len(synced) == 10
    store.next_out()
    assert len(synced) == 11
    store.close()


def test_fsync_false_never_syncs_a_change_but_syncs_on_close(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    FileSeqStore(path).close()
    syncs: list[int] = []
    monkeypatch.setattr(os, "fdatasync", syncs.append)
    monkeypatch.setattr(os, "fsync", syncs.append)
    store = FileSeqStore(path, fsync=False)
    assert store.fsync is False
    for _ in range(10):
        store.next_out()
    store.observed_in(3)
    assert syncs == []
    assert read_file_state(path).state == SeqState(11, 4)  # in the page cache already
    store.close()
    assert len(syncs) == 1


def test_concurrent_threads_get_unique_numbers_and_share_syncs(path: Path) -> None:
    threads, per_thread = 16, 50
    taken: list[list[int]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)
    with FileSeqStore(path) as store:

        def work(index: int) -> None:
            start.wait()
            for _ in range(per_thread):
                taken[index].append(store.next_out())
                store.observed_in(len(taken[index]))

        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    numbers = sorted(n for chunk in taken for n in chunk)
    assert numbers == list(range(1, threads * per_thread + 1))
    with FileSeqStore(path) as store:
        assert store.snapshot() == SeqState(threads * per_thread + 1, per_thread + 1)


def test_reserve_skips_at_most_the_reserved_block_after_a_kill_and_none_after_close(
    path: Path,
) -> None:
    with FileSeqStore(path, reserve=10) as store:
        numbers = [store.next_out() for _ in range(25)]
        on_disk = read_file_state(path).state.next_out  # what a SIGKILL now would leave
        assert numbers[-1] < on_disk <= numbers[-1] + 10
    assert read_file_state(path).state.next_out == 26  # a clean close writes the exact value


# -- one writer -----------------------------------------------------------------------


def test_a_second_opener_in_this_process_is_locked_out(path: Path, store: FileSeqStore) -> None:
    with pytest.raises(StoreLockedError) as info:
        FileSeqStore(path)
    assert isinstance(info.value, OSError) and isinstance(info.value, SeqStoreError)
    with pytest.raises(StoreLockedError):
        FileSeqStore(os.path.relpath(path))  # another spelling, the same file
    assert read_file_state(path).state == SeqState(1, 1)  # readers need no lock
    store.next_out()
    store.close()
    with FileSeqStore(path) as again:
        assert again.next_out() == 2


def test_the_flock_itself_locks_out_a_second_open_file(
    path: Path, store: FileSeqStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fixseq._file as file_module

    monkeypatch.setattr(file_module, "_open_files", set())  # forget the in-process registry
    with pytest.raises(StoreLockedError, match="another open store"):
        FileSeqStore(path)


HOLDER = """
import sys
from fixseq import FileSeqStore
store = FileSeqStore(sys.argv[1])
store.next_out()
print("ready", flush=True)
sys.stdin.read()
"""


def test_another_process_is_locked_out_and_the_lock_dies_with_it(
    path: Path, child_env: dict[str, str]
) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=child_env,
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == b"ready\n"
            with pytest.raises(StoreLockedError):
                FileSeqStore(path)
            assert read_file_state(path).state == SeqState(2, 1)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=60)
    with FileSeqStore(path) as store:  # no stale lock after a crash
        assert store.next_out() == 2


def test_a_dropped_store_gives_its_lock_back(path: Path) -> None:
    store = FileSeqStore(path)
    store.next_out()
    del store  # no close(): the last reference goes
    with FileSeqStore(path) as again:
        assert again.next_out() == 2


# -- failed I/O -----------------------------------------------------------------------


@pytest.mark.parametrize(("os_name", "err"), [("pwrite", errno.ENOSPC), ("fdatasync", errno.EIO)])
def test_a_failed_write_or_sync_stops_the_store_until_reopened(
    path: Path, monkeypatch: pytest.MonkeyPatch, os_name: str, err: int
) -> None:
    store = FileSeqStore(path)
    assert [store.next_out() for _ in range(3)] == [1, 2, 3]
    store.observed_in(5)
    with monkeypatch.context() as patch:
        patch.setattr(os, os_name, failing(err))
        with pytest.raises(StoreIOError) as info:
            store.next_out()  # 4 is not handed out
    assert info.value.errno == err
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == err
    # The OS works again, but the page cache is not to be trusted: fail-stop.
    for call in (store.next_out, store.peek_out, store.snapshot, lambda: store.observed_in(9)):
        with pytest.raises(StoreIOError):
            call()
    with pytest.raises(StoreLockedError):
        FileSeqStore(path)  # still held until closed
    store.close()
    store.close()
    with pytest.raises(StoreClosedError):
        store.next_out()
    with FileSeqStore(path) as again:
        state = again.snapshot()
        assert state.next_out in (4, 5)  # 1..3 never reused; 4 skipped at most
        assert state.next_in == 6


def test_a_failure_between_the_two_writes_of_a_lowering_change_is_safe(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileSeqStore(path)
    store.next_out()
    store.observed_in(50)
    real = os.pwrite
    calls = [0]

    def second_fails(fd: int, data: bytes, offset: int) -> int:
        calls[0] += 1
        if calls[0] == 2:
            raise OSError(errno.EIO, "bad sector")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", second_fails)
    with pytest.raises(StoreIOError):
        store.set_next_in(10)
    store.close()
    monkeypatch.undo()
    with FileSeqStore(path) as again:
        assert again.snapshot() in (SeqState(2, 51), SeqState(2, 10))


def test_short_writes_are_completed(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    FileSeqStore(path).close()
    real = os.pwrite

    def one_byte(fd: int, data: bytes, offset: int) -> int:
        return real(fd, bytes(data[:1]), offset)

    monkeypatch.setattr(os, "pwrite", one_byte)
    with FileSeqStore(path) as store:
        store.next_out()
        store.observed_in(4)
    monkeypatch.undo()
    assert read_file_state(path).state == SeqState(2, 5)


def test_a_pwrite_that_writes_nothing_is_an_error(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileSeqStore(path)
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: 0)
    with pytest.raises(StoreIOError):
        store.next_out()
    store.close()


@pytest.mark.parametrize(
    ("os_name", "err"),
    [("pwrite", errno.ENOSPC), ("fdatasync", errno.EIO), ("link", errno.EIO)],
)
def test_a_failed_creation_leaves_no_file_and_no_temp_file(
    path: Path, monkeypatch: pytest.MonkeyPatch, os_name: str, err: int
) -> None:
    monkeypatch.setattr(os, os_name, failing(err))
    with pytest.raises(StoreIOError) as info:
        FileSeqStore(path)
    assert info.value.errno == err
    assert os.listdir(path.parent) == []


def test_a_failed_directory_sync_at_creation_is_reported(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "fsync", failing(errno.EIO))
    with pytest.raises(StoreIOError):
        FileSeqStore(path)
    monkeypatch.undo()
    with FileSeqStore(path) as store:  # the file itself is whole
        assert store.snapshot() == SeqState(1, 1)


def test_a_failed_sync_on_closing_an_unsynced_store_is_reported_and_still_closes(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileSeqStore(path, fsync=False)
    store.next_out()
    monkeypatch.setattr(os, "fdatasync", failing(errno.EIO))
    with pytest.raises(StoreIOError):
        store.close()
    assert store.closed
    monkeypatch.undo()
    FileSeqStore(path).close()  # the lock was released


def test_a_failed_read_at_open_is_a_store_io_error(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    FileSeqStore(path).close()
    monkeypatch.setattr(os, "pread", failing(errno.EIO))
    with pytest.raises(StoreIOError):
        FileSeqStore(path)
    with pytest.raises(StoreIOError):
        read_file_state(path)
    monkeypatch.undo()
    FileSeqStore(path).close()  # the failed open released its lock


# -- read_file_state ------------------------------------------------------------------


def test_read_file_state_creates_nothing_and_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SeqStoreError, match="no file store"):
        read_file_state(tmp_path / "missing.seq")
    assert os.listdir(tmp_path) == []
    with pytest.raises(TypeError):
        read_file_state(5)  # type: ignore[arg-type]


def test_read_file_state_sees_a_live_writer_consistently(path: Path) -> None:
    stop = threading.Event()
    with FileSeqStore(path, fsync=False) as store:

        def write() -> None:
            while not stop.is_set():
                store.next_out()

        writer = threading.Thread(target=write)
        writer.start()
        try:
            seen = [read_file_state(path).state.next_out for _ in range(300)]
        finally:
            stop.set()
            writer.join()
        final = store.peek_out()
    assert seen == sorted(seen) and seen[-1] <= final


# -- the async twin ---------------------------------------------------------------------


def test_the_twins_share_one_file_and_one_closed_state(path: Path, store: FileSeqStore) -> None:
    twin = store.as_async()
    assert isinstance(twin, AsyncFileSeqStore) and isinstance(twin, AsyncAdminSeqStore)
    assert twin.as_sync() is store and twin.wrapped is store and twin.path == store.path
    store.close()
    assert twin.as_sync().closed


def test_the_async_twin_has_every_public_name_of_the_sync_store(store: FileSeqStore) -> None:
    def public(cls: type) -> set[str]:
        return {name for name in dir(cls) if not name.startswith("_")}

    renamed = {"close": "aclose", "as_async": "as_sync"}
    sync_names = {renamed.get(name, name) for name in public(FileSeqStore)} - {"closed"}
    async_names = public(AsyncFileSeqStore) - {"wrapped", "open"}
    assert sync_names == async_names
    # Static typing: mypy checks these assignments against the protocols.
    admin: AdminSeqStore = store
    twin: AsyncAdminSeqStore = store.as_async()
    assert admin is twin.as_sync()  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_the_async_store_round_trips(path: Path) -> None:
    async with await AsyncFileSeqStore.open(path, session="S") as store:
        assert [await store.next_out() for _ in range(3)] == [1, 2, 3]
        await store.observed_in(7)
        await store.set_next_in(8)
        assert await store.snapshot() == SeqState(4, 8)
        created = await store.creation_time()
        with pytest.raises(StoreLockedError):
            await AsyncFileSeqStore.open(path)
    async with AsyncFileSeqStore(path, create=False, session="S") as store:
        assert (await store.peek_out(), await store.current_in()) == (4, 8)
        assert await store.creation_time() == created
        await store.set_next_out(20)
        await store.reset()
        assert await store.snapshot() == SeqState(1, 1)
    with pytest.raises(StoreClosedError):
        await store.next_out()


@pytest.mark.anyio
async def test_async_io_runs_in_a_worker_thread_never_on_the_event_loop(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await AsyncFileSeqStore.open(path)
    loop_thread = threading.get_ident()
    in_sync = threading.Event()
    release = threading.Event()
    real = os.fdatasync

    def gated(fd: int) -> None:
        assert threading.get_ident() != loop_thread
        in_sync.set()
        assert release.wait(30)  # deadlocks (and fails) if the loop is blocked here
        real(fd)

    monkeypatch.setattr(os, "fdatasync", gated)
    taken: list[int] = []
    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:

            async def take() -> None:
                taken.append(await store.next_out())

            group.start_soon(take)
            await anyio.to_thread.run_sync(in_sync.wait)
            # The sync is in progress and this coroutine still runs: the loop is free.
            release.set()
    assert taken == [1]
    monkeypatch.undo()
    await store.aclose()


@pytest.mark.anyio
async def test_async_bad_input_and_failures_surface_as_in_sync(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(TypeError):
        await AsyncFileSeqStore.open(path, fsync="yes")  # type: ignore[arg-type]
    with pytest.raises(SeqStoreError):
        await AsyncFileSeqStore.open(path, create=False)
    store = await AsyncFileSeqStore.open(path)
    with pytest.raises(InvalidSeqNumError):
        await store.observed_in(0)
    monkeypatch.setattr(os, "fdatasync", failing(errno.EIO))
    with pytest.raises(StoreIOError):
        await store.next_out()
    monkeypatch.undo()
    await store.aclose()
    async with AsyncFileSeqStore(path) as again:
        assert await again.peek_out() in (1, 2)


def test_groups_of_a_steady_size_are_written_once_each(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The core's group commit hands _persist states that jump by a group's size;
    # out_limit leaves room for the next group, so only the first is written twice.
    store = FileSeqStore(path, fsync=False)
    writes: list[int] = []
    real = os.pwrite

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        writes.append(offset)
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    created = store._created
    for group in range(1, 6):
        store._persist(1 + 16 * group, 1, created)
    assert len(writes) == 2 + 4
    store._persist(1 + 16 * 5 + 300, 1, created)  # a jump past any group: twice
    store._persist(1 + 16 * 5 + 301, 1, created)  # then steady again: once
    assert len(writes) == 6 + 2 + 1
    # Room for groups decays once they stop: a lone sender is soon back to a
    # headroom of one (a damaged slot then costs exactly one skipped number).
    for group in (16, 16, 16):
        store._persist(store._written[0] + 1 + group, 1, created)
    for _ in range(40):
        store._persist(store._written[0] + 2, 1, created)
    last_out, _, _, out_limit = store._written
    assert out_limit == last_out + 1
    monkeypatch.undo()
    store.close()
