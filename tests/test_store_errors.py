"""Opening a file or SQLite store that cannot be opened: the right error, naming the store.

Every case here is one an operator meets: an emptied database, a damaged schema byte, a
missing or unwritable directory, a file without permission, a dangling symbolic link, a
database the user may only read. Each raises a fixseq error (an ``OSError`` one for the OS's
refusals) that names the store's own path, never a hidden temporary file, and chains the cause.
The suite runs as root in CI, where permission bits do not bind: permission cases inject the
OS's refusal through the stores' OS calls, and a real unprivileged run uses ``runuser``.
"""

from __future__ import annotations

import errno
import os
import shutil
import site
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from fixseq import (
    CorruptStoreError,
    FileSeqStore,
    SeqState,
    SeqStoreError,
    SqliteSeqStore,
    StoreIOError,
    list_sessions,
    open_store,
)
from fixseq._file import read_file_state
from fixseq._urls import list_url_sessions, parse_url, read_sessions

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

SESSION = "FIX.4.4:BANK->BROKER"


def denying(path: Path | str, real: Callable[..., int]) -> Callable[..., int]:
    """``os.open`` that refuses ``path`` (and only it) as a file without permission would."""
    target = os.path.abspath(path)

    def open_(name: str, flags: int, mode: int = 0o777) -> int:
        if os.path.abspath(name) == target:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)
        return real(name, flags, mode)

    return open_


def assert_names_store(exc: BaseException, path: Path | str) -> None:
    text = str(exc)
    assert str(path) in text or os.path.abspath(path) in text, text
    assert "fixseq-tmp" not in text, text
    assert exc.__cause__ is not None


# -- 6: a 0-byte SQLite file is damage, not a new session ---------------------------------


@pytest.mark.parametrize("create", [True, False])
def test_an_empty_sqlite_file_is_corrupt_whatever_create_says(tmp_path: Path, create: bool) -> None:
    db = tmp_path / "seq.db"
    db.write_bytes(b"")
    with pytest.raises(CorruptStoreError, match="0 bytes") as info:
        SqliteSeqStore(db, SESSION, create=create)
    assert str(db) in str(info.value)
    assert db.read_bytes() == b""  # nothing written into it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seq.db"]


@pytest.mark.parametrize("url_tail", ["", "&create=1", "&create=0"])
def test_an_empty_sqlite_file_is_corrupt_through_a_url(tmp_path: Path, url_tail: str) -> None:
    db = tmp_path / "seq.db"
    db.write_bytes(b"")
    with pytest.raises(CorruptStoreError, match="0 bytes"):
        open_store(f"sqlite:///{db}?session={SESSION}{url_tail}")
    with pytest.raises(CorruptStoreError, match="0 bytes"):
        list_sessions(db)
    with pytest.raises(CorruptStoreError, match="0 bytes"):
        read_sessions(parse_url(f"sqlite:///{db}"))
    assert db.read_bytes() == b""


def test_sqlite_creation_never_shows_an_empty_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A crash (or a second opener) at any point of creation must never meet a 0-byte file
    # at the database's name: that would now refuse to open for ever.
    db = tmp_path / "seq.db"
    seen: list[int] = []
    real_connect: Any = sqlite3.connect

    def connect(*args: object, **kwargs: object) -> sqlite3.Connection:
        if db.exists():
            seen.append(db.stat().st_size)
        return cast("sqlite3.Connection", real_connect(*args, **kwargs))

    monkeypatch.setattr(sqlite3, "connect", connect)
    with SqliteSeqStore(db, SESSION) as store:
        assert store.next_out() == 1
    assert seen and 0 not in seen
    assert (db.stat().st_mode & 0o777) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if "fixseq-tmp" in p.name) == []


def test_sqlite_creation_that_fails_midway_leaves_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "seq.db"
    monkeypatch.setattr(os, "link", fail_with(errno.EIO))
    with pytest.raises(StoreIOError) as info:
        SqliteSeqStore(db, SESSION)
    assert info.value.errno == errno.EIO
    assert_names_store(info.value, db)
    assert list(tmp_path.iterdir()) == []  # neither the database nor a temporary file
    monkeypatch.undo()
    with SqliteSeqStore(db, SESSION) as store:  # a later attempt simply creates it
        assert store.snapshot() == SeqState(1, 1)


def test_sqlite_created_before_its_first_row_reopens_fine(tmp_path: Path) -> None:
    # The window between the file appearing and the session's row: the next opener adds it.
    db = tmp_path / "seq.db"
    with SqliteSeqStore(db, "other"):
        pass
    with SqliteSeqStore(db, SESSION) as store:
        assert store.next_out() == 1


def fail_with(err: int) -> Callable[..., None]:
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(err, os.strerror(err))

    return fail


# -- 7: a damaged schema byte ------------------------------------------------------------


def damaged_schema_copy(tmp_path: Path) -> Path:
    """A database whose sqlite_master holds a byte that is not UTF-8 where Python decodes it."""
    good = tmp_path / "good.db"
    with SqliteSeqStore(good, SESSION) as store:
        store.next_out()
    base = good.read_bytes()
    # The first printable byte (on page 1, the schema's page) whose damage makes Python's
    # UTF-8 decoding fail, as found by flipping each one in turn.
    for offset in range(100, 4096):
        if not 0x20 <= base[offset] <= 0x7E:
            continue
        damaged = bytearray(base)
        damaged[offset] = 0xFF
        bad = tmp_path / "bad.db"
        bad.write_bytes(bytes(damaged))
        conn = sqlite3.connect(f"file:{bad}?immutable=1", uri=True)
        try:
            # What fixseq reads while it opens: the schema rows and both tables' columns.
            conn.execute("SELECT lower(name), type, sql FROM sqlite_master").fetchall()
            conn.execute("PRAGMA table_info(fixseq_meta)").fetchall()
            conn.execute("PRAGMA table_info(fixseq_sessions)").fetchall()
        except UnicodeDecodeError:
            return bad
        except sqlite3.Error:
            pass
        finally:
            conn.close()
    raise AssertionError("no damaged byte reaches Python's decoder")


def test_a_damaged_schema_byte_is_corrupt_in_the_constructor_and_list_sessions(
    tmp_path: Path,
) -> None:
    bad = damaged_schema_copy(tmp_path)
    for attempt in (
        lambda: SqliteSeqStore(bad, SESSION),
        lambda: SqliteSeqStore(bad, SESSION, create=False),
        lambda: list_sessions(bad),
        lambda: read_sessions(parse_url(f"sqlite:///{bad}")),
    ):
        with pytest.raises(CorruptStoreError) as info:
            attempt()
        assert str(bad) in str(info.value)
        assert isinstance(info.value.__cause__, UnicodeDecodeError)


@pytest.mark.parametrize(
    "garbage",
    [
        "UPDATE fixseq_meta SET value = CAST(x'ff31' AS TEXT) WHERE key = 'format_version'",
        "INSERT INTO fixseq_meta VALUES (CAST(x'ff' AS TEXT), 'x')",
        "UPDATE fixseq_sessions SET created = CAST(x'c3' AS TEXT)",
        "UPDATE fixseq_sessions SET session = CAST(x'ff' AS TEXT)",
        "UPDATE fixseq_meta SET value = x'31' WHERE key = 'format_version'",
    ],
)
def test_garbage_in_fixseqs_tables_is_corrupt(tmp_path: Path, garbage: str) -> None:
    db = tmp_path / "seq.db"
    with SqliteSeqStore(db, SESSION):
        pass
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA ignore_check_constraints = ON")
    conn.execute(garbage)
    conn.close()
    for attempt in (
        lambda: SqliteSeqStore(db, SESSION, create=False).close(),
        lambda: list_sessions(db),
        lambda: read_sessions(parse_url(f"sqlite:///{db}")),
    ):
        try:
            attempt()
        except CorruptStoreError as exc:
            assert str(db) in str(exc)
        except SeqStoreError as exc:  # the session's row is not there any more: named
            assert "no session" in str(exc) and str(db) in str(exc)


def test_the_cli_reports_a_damaged_schema_in_one_line_with_exit_1(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    bad = damaged_schema_copy(tmp_path)
    for command in ("show", "sessions"):
        proc = subprocess.run(
            [sys.executable, "-m", "fixseq", command, f"sqlite:///{bad}"],
            env=child_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 1, proc.stderr
        assert proc.stdout == ""
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and str(bad) in lines[0] and "damaged" in lines[0], lines


# -- 8: a missing or unwritable directory, no permission ----------------------------------


def test_a_file_store_in_a_missing_directory_names_the_store(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "s.seq"
    with pytest.raises(StoreIOError) as info:
        FileSeqStore(path)
    assert info.value.errno == errno.ENOENT
    assert_names_store(info.value, path)
    assert "does not exist" in str(info.value)
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_a_sqlite_store_in_a_missing_directory_names_the_store(tmp_path: Path) -> None:
    db = tmp_path / "missing" / "s.db"
    with pytest.raises(StoreIOError) as info:
        SqliteSeqStore(db, SESSION)
    assert info.value.errno == errno.ENOENT
    assert_names_store(info.value, db)
    assert "does not exist" in str(info.value)


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_a_path_under_a_regular_file_is_a_store_io_error(tmp_path: Path, kind: str) -> None:
    (tmp_path / "plain").write_text("not a directory")
    path = tmp_path / "plain" / "s.db"
    with pytest.raises(StoreIOError) as info:
        if kind == "file":
            FileSeqStore(path)
        else:
            SqliteSeqStore(path, SESSION)
    assert info.value.errno == errno.ENOTDIR
    assert_names_store(info.value, path)


def test_a_file_store_in_a_read_only_directory_names_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.seq"
    real_open = os.open

    def open_(name: str, flags: int, mode: int = 0o777) -> int:
        if flags & os.O_CREAT:  # what a directory without write permission refuses
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)
        return real_open(name, flags, mode)

    monkeypatch.setattr(os, "open", open_)
    with pytest.raises(StoreIOError) as info:
        FileSeqStore(path)
    assert info.value.errno == errno.EACCES
    assert_names_store(info.value, path)
    assert "permission" in str(info.value).lower()
    assert list(tmp_path.iterdir()) == []


def test_a_sqlite_store_in_a_read_only_directory_names_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "s.db"
    real_open = os.open

    def open_(name: str, flags: int, mode: int = 0o777) -> int:
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)
        return real_open(name, flags, mode)

    monkeypatch.setattr(os, "open", open_)
    with pytest.raises(StoreIOError) as info:
        SqliteSeqStore(db, SESSION)
    assert info.value.errno == errno.EACCES
    assert_names_store(info.value, db)
    assert list(tmp_path.iterdir()) == []


def test_a_file_store_without_permission_is_a_store_io_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.seq"
    FileSeqStore(path).close()
    monkeypatch.setattr(os, "open", denying(path, os.open))
    for attempt in (lambda: FileSeqStore(path), lambda: read_file_state(path)):
        with pytest.raises(StoreIOError) as info:
            attempt()
        assert info.value.errno == errno.EACCES
        assert_names_store(info.value, path)
        assert "permission" in str(info.value).lower()
        assert isinstance(info.value.__cause__, PermissionError)


def test_a_sqlite_store_that_sqlite_cannot_open_is_a_store_io_error(tmp_path: Path) -> None:
    # A directory where the database should be: SQLite cannot open it (as root too).
    db = tmp_path / "s.db"
    db.mkdir()
    with pytest.raises(StoreIOError) as info:
        SqliteSeqStore(db, SESSION)
    assert_names_store(info.value, db)


def _runuser() -> list[str]:
    """The command prefix that runs this checkout's Python as the user nobody (or skip)."""
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root and runuser to run a command as the user nobody")
    # The venv's interpreter may live where nobody cannot reach (under /root): then the
    # system's python3 of the same version, with this venv's packages on its path.
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    candidates = [sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"]
    failures = []
    for python in candidates:
        if not os.path.exists(python):
            continue
        probe = subprocess.run(
            ["runuser", "-u", "nobody", "--", python, "-c", "import fixseq, anyio"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=_nobody_env(),
        )
        if probe.returncode == 0:
            return ["runuser", "-u", "nobody", "--", python]
        failures.append(probe.stderr.strip()[-200:])
    pytest.skip(f"the user nobody cannot run this checkout's fixseq here: {failures}")


def _nobody_env() -> dict[str, str]:
    paths = [str(Path(__file__).resolve().parents[1]), *site.getsitepackages()]
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join(paths),
        "HOME": "/",
    }


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the user nobody may enter (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="fixseq-errors-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_real_permission_errors_as_an_unprivileged_user(shared_dir: Path) -> None:
    python = _runuser()
    seq, db = shared_dir / "s.seq", shared_dir / "s.db"
    FileSeqStore(seq).close()
    SqliteSeqStore(db, SESSION).close()
    script = (
        "import sys, fixseq\n"
        "for make in (lambda: fixseq.FileSeqStore(sys.argv[1]),\n"
        "             lambda: fixseq.FileSeqStore(sys.argv[3]),\n"
        "             lambda: fixseq.SqliteSeqStore(sys.argv[2], 's')):\n"
        "    try:\n"
        "        make()\n"
        "    except fixseq.StoreIOError as exc:\n"
        "        print(exc.errno, exc)\n"
    )
    proc = subprocess.run(
        [*python, "-c", script, str(seq), str(db), str(shared_dir / "new.seq")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_nobody_env(),
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3, proc.stdout
    assert lines[0].startswith(f"{errno.EACCES} ") and str(seq) in lines[0]
    assert lines[1].startswith(f"{errno.EACCES} ") and str(shared_dir / "new.seq") in lines[1]
    assert "fixseq-tmp" not in lines[1]
    assert str(db) in lines[2]


# -- 9: read-only commands open SQLite read-only ---------------------------------------------


def snapshot_of_files(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir())}


@pytest.fixture
def closed_db(tmp_path: Path) -> Path:
    db = tmp_path / "seq.db"
    with SqliteSeqStore(db, SESSION) as store:
        store.next_out()
        store.observed_in(7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seq.db"]  # no -wal, no -shm
    return db


def test_show_and_sessions_write_nothing_to_a_closed_database(closed_db: Path) -> None:
    before = snapshot_of_files(closed_db.parent)
    [info] = read_sessions(parse_url(f"sqlite:///{closed_db}?session={SESSION}"))
    assert (info.next_out, info.next_in) == (2, 8)
    assert [i.session for i in read_sessions(parse_url(f"sqlite:///{closed_db}"))] == [SESSION]
    assert list_url_sessions(parse_url(f"sqlite:///{closed_db}")) == [SESSION]
    assert list_sessions(closed_db) == [SESSION]
    # Not a byte, not an mtime, no -wal or -shm left behind.
    assert snapshot_of_files(closed_db.parent) == before


def test_show_reads_a_database_an_engine_holds_open(closed_db: Path) -> None:
    with SqliteSeqStore(closed_db, SESSION) as engine:
        engine.next_out()  # in the -wal, not yet in the main file
        [info] = read_sessions(parse_url(f"sqlite:///{closed_db}?session={SESSION}"))
        assert info.next_out == 3
        assert list_sessions(closed_db) == [SESSION]
        assert engine.next_out() == 3


def test_read_only_commands_never_open_for_writing(
    closed_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uris: list[str] = []
    real_connect: Any = sqlite3.connect

    def connect(database: str, *args: object, **kwargs: object) -> sqlite3.Connection:
        uris.append(str(database))
        return cast("sqlite3.Connection", real_connect(database, *args, **kwargs))

    monkeypatch.setattr(sqlite3, "connect", connect)
    read_sessions(parse_url(f"sqlite:///{closed_db}?session={SESSION}"))
    read_sessions(parse_url(f"sqlite:///{closed_db}"))
    list_sessions(closed_db)
    assert uris and all("mode=ro" in uri for uri in uris), uris


def test_a_read_only_database_without_its_shm_reads_or_says_why(
    closed_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A -wal without its -shm (left by a crash) in a directory the reader cannot write:
    # SQLite cannot build the -shm, so the read fails with an error that says so.
    with SqliteSeqStore(closed_db, SESSION) as engine:
        engine.next_out()
        wal = closed_db.with_name("seq.db-wal").read_bytes()
    closed_db.with_name("seq.db-wal").write_bytes(wal)  # the -wal back, the -shm gone
    assert not closed_db.with_name("seq.db-shm").exists()
    real_connect: Any = sqlite3.connect

    def connect(database: str, *args: object, **kwargs: object) -> sqlite3.Connection:
        if "mode=ro" in str(database):
            raise sqlite3.OperationalError("unable to open database file")
        return cast("sqlite3.Connection", real_connect(database, *args, **kwargs))

    monkeypatch.setattr(sqlite3, "connect", connect)
    with pytest.raises(StoreIOError, match="-shm") as info:
        list_sessions(closed_db)
    assert str(closed_db) in str(info.value)


def test_show_and_sessions_as_a_user_who_can_only_read(shared_dir: Path) -> None:
    python = _runuser()
    db = shared_dir / "seq.db"
    with SqliteSeqStore(db, SESSION) as store:
        store.next_out()
    db.chmod(0o644)  # nobody may read it; the directory is root's
    before = snapshot_of_files(shared_dir)
    for args in (["show", f"sqlite:///{db}?session={SESSION}"], ["sessions", f"sqlite:///{db}"]):
        proc = subprocess.run(
            [*python, "-m", "fixseq", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=_nobody_env(),
        )
        assert proc.returncode == 0, proc.stderr
        assert "readonly" not in proc.stderr
    with SqliteSeqStore(db, SESSION) as engine:  # while an engine holds it: -wal and -shm
        engine.next_out()
        proc = subprocess.run(
            [*python, "-m", "fixseq", "show", f"sqlite:///{db}?session={SESSION}", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=_nobody_env(),
        )
        assert proc.returncode == 0, proc.stderr
        assert '"next_out": 3' in proc.stdout
    assert snapshot_of_files(shared_dir).keys() == before.keys()


# -- 10: a dangling symbolic link ---------------------------------------------------------------


@pytest.mark.parametrize("create", [True, False])
@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_a_dangling_symlink_says_what_it_is(tmp_path: Path, kind: str, create: bool) -> None:
    link = tmp_path / "s.store"
    target = tmp_path / "unmounted" / "s.store"
    link.symlink_to(target)
    with pytest.raises(SeqStoreError, match="dangling symbolic link") as info:
        if kind == "file":
            FileSeqStore(link, create=create)
        else:
            SqliteSeqStore(link, SESSION, create=create)
    assert str(link) in str(info.value) and str(target) in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.store"]  # nothing created


def test_a_dangling_symlink_in_read_only_commands(tmp_path: Path) -> None:
    link = tmp_path / "s.store"
    link.symlink_to(tmp_path / "gone")
    for attempt in (
        lambda: read_file_state(link),
        lambda: list_sessions(link),
        lambda: read_sessions(parse_url(f"sqlite:///{link}?session={SESSION}")),
    ):
        with pytest.raises(SeqStoreError, match="dangling symbolic link"):
            attempt()


def test_a_symlink_to_a_store_still_works(tmp_path: Path) -> None:
    real, link = tmp_path / "real.seq", tmp_path / "link.seq"
    FileSeqStore(real).close()
    link.symlink_to(real)
    with FileSeqStore(link) as store:
        assert store.next_out() == 1
