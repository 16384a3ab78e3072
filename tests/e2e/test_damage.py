"""Damage between runs: the engine refuses to start where its own store would start at 1.

The engines' constructors create the stores (fixcore's SocketInitiator and
SocketAcceptor; SeqGuard given QuickFIX's settings), so nothing here needs a
socket: the error must come before any Logon could be sent.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from typing import TYPE_CHECKING, Any

import pytest
from engine_support import require

from fixseq import CorruptStoreError, SeqStoreError

require("fixcore", "fixcore")
require("quickfix", "quickfix")

import quickfix  # noqa: E402
from fixcore.application import Application  # noqa: E402
from fixcore.session.session_id import SessionID  # noqa: E402
from fixcore.session.session_settings import SessionSettings  # noqa: E402
from fixcore.store.file_store import FileStore  # noqa: E402
from fixcore.transport.acceptor import SocketAcceptor  # noqa: E402
from fixcore.transport.initiator import SocketInitiator  # noqa: E402

from fixseq.fixcore import StoreFactory  # noqa: E402
from fixseq.quickfix import SeqGuard  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

SID = SessionID("FIX.4.4", "BANK", "BROKER")


def fixcore_settings(role: str) -> SessionSettings:
    where = (
        "SocketConnectHost=127.0.0.1\nSocketConnectPort=1\n"
        if role == "initiator"
        else "SocketAcceptHost=127.0.0.1\nSocketAcceptPort=0\n"
    )
    return SessionSettings.from_string(
        f"[DEFAULT]\nConnectionType={role}\nHeartBtInt=30\n{where}"
        "[SESSION]\nBeginString=FIX.4.4\nSenderCompID=BANK\nTargetCompID=BROKER\n"
    )


def used_session(url: str) -> None:
    """Run a session's numbers up to 41/17 through the fixcore store, as an engine would."""

    async def run() -> None:
        factory = StoreFactory(url)
        store = factory.create(SID)
        store.set_next_sender_msg_seq_num(41)
        store.set_next_target_msg_seq_num(17)
        factory.close()

    asyncio.run(run())


def engine(role: str, url: str, **kwargs: Any) -> None:
    """Construct a fixcore engine on fixseq (this creates the stores)."""

    async def build() -> None:
        factory = StoreFactory(url, **kwargs)
        try:
            kind = SocketInitiator if role == "initiator" else SocketAcceptor
            eng = kind(fixcore_settings(role), factory.application(Application()), factory)
            (session,) = eng.sessions.values()
            assert (
                session._store.next_sender_msg_seq_num(),
                session._store.next_target_msg_seq_num(),
            ) == (41, 17)
        finally:
            factory.close()

    asyncio.run(build())


def truncate(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)


def empty(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(0)


def flip_header_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[20] ^= 0x01  # inside the session name, covered by the header CRC
    path.write_bytes(bytes(data))


def garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0:100] = os.urandom(100)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("role", ["initiator", "acceptor"])
@pytest.mark.parametrize("damage", [truncate, empty, flip_header_byte])
def test_damaged_file_store_stops_the_fixcore_engine(
    tmp_path: Path, role: str, damage: Callable[[Path], None]
) -> None:
    url = f"file:{tmp_path / 'stores'}"
    used_session(url)
    engine(role, url)  # undamaged: it starts at 41/17
    (path,) = (tmp_path / "stores").iterdir()
    damage(path)
    with pytest.raises(CorruptStoreError):
        engine(role, url)


def checkpointed(db: Path) -> None:
    """Fold the WAL into the database file, so damaging the file damages the state."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


@pytest.mark.parametrize("role", ["initiator", "acceptor"])
@pytest.mark.parametrize("damage", [truncate, garble])
def test_damaged_sqlite_store_stops_the_fixcore_engine(
    tmp_path: Path, role: str, damage: Callable[[Path], None]
) -> None:
    db = tmp_path / "seqs.db"
    url = f"sqlite:///{db}"
    used_session(url)
    engine(role, url)
    checkpointed(db)
    damage(db)
    with pytest.raises(CorruptStoreError):
        engine(role, url)


@pytest.mark.parametrize("loss", ["emptied", "deleted"])
def test_lost_sqlite_database_with_create_false_stops_the_fixcore_engine(
    tmp_path: Path, loss: str
) -> None:
    db = tmp_path / "seqs.db"
    url = f"sqlite:///{db}"
    used_session(url)
    engine("initiator", url, create=False)
    checkpointed(db)
    for path in tmp_path.glob("seqs.db*"):
        if loss == "deleted":
            path.unlink()
        else:
            empty(path)
    with pytest.raises(SeqStoreError):
        engine("initiator", url, create=False)
    assert [p.stat().st_size for p in tmp_path.glob("seqs.db*")] == (
        [] if loss == "deleted" else [0, 0, 0][: len(list(tmp_path.glob("seqs.db*")))]
    ), "a refused start must not create or change anything"


def test_fixcore_own_file_store_silently_starts_at_1_on_the_same_damage(tmp_path: Path) -> None:
    # The baseline this integration beats: fixcore's FileStore on an emptied file.
    store = FileStore(tmp_path, SID)
    store.set_next_sender_msg_seq_num(41)
    store.set_next_target_msg_seq_num(17)
    store.close()
    (seqnums,) = tmp_path.glob("*.seqnums")
    empty(seqnums)
    reopened = FileStore(tmp_path, SID)
    assert (reopened.next_sender_msg_seq_num(), reopened.next_target_msg_seq_num()) == (1, 1)
    reopened.close()


class NullApp(quickfix.Application):  # type: ignore[misc]
    """A QuickFIX application that does nothing."""

    def onCreate(self, sessionID: Any) -> None:
        pass

    def onLogon(self, sessionID: Any) -> None:
        pass

    def onLogout(self, sessionID: Any) -> None:
        pass

    def toAdmin(self, message: Any, sessionID: Any) -> None:
        pass

    def fromAdmin(self, message: Any, sessionID: Any) -> None:
        pass

    def toApp(self, message: Any, sessionID: Any) -> None:
        pass

    def fromApp(self, message: Any, sessionID: Any) -> None:
        pass


def quickfix_settings(tmp_path: Path) -> Any:
    cfg = tmp_path / "qf.cfg"
    cfg.write_text(
        "[DEFAULT]\nConnectionType=initiator\nStartTime=00:00:00\nEndTime=00:00:00\n"
        "HeartBtInt=30\nSocketConnectHost=127.0.0.1\nSocketConnectPort=1\nUseDataDictionary=N\n"
        f"FileStorePath={tmp_path / 'qfstore'}\n"
        "[SESSION]\nBeginString=FIX.4.4\nSenderCompID=BANK\nTargetCompID=BROKER\n"
    )
    return quickfix.SessionSettings(str(cfg))


@pytest.mark.parametrize("damage", [truncate, empty, flip_header_byte])
def test_damaged_file_store_stops_seqguard_before_quickfix_starts(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    url = f"file:{tmp_path / 'stores'}"
    settings = quickfix_settings(tmp_path)
    with SeqGuard(NullApp(), url, settings=settings) as guard:
        (session_id,) = settings.getSessions()
        guard.store(session_id).set_next_out(41)
    (path,) = (tmp_path / "stores").iterdir()
    damage(path)
    with pytest.raises(CorruptStoreError):
        SeqGuard(NullApp(), url, settings=settings)


def test_lost_sqlite_database_with_create_false_stops_seqguard(tmp_path: Path) -> None:
    db = tmp_path / "seqs.db"
    settings = quickfix_settings(tmp_path)
    with SeqGuard(NullApp(), f"sqlite:///{db}", settings=settings):
        pass
    for path in tmp_path.glob("seqs.db*"):
        path.unlink()
    with pytest.raises(SeqStoreError):
        SeqGuard(NullApp(), f"sqlite:///{db}", settings=settings, create=False)
    assert not db.exists()


QUICKFIX_RUN = """
import sys, quickfix as fix
settings = fix.SessionSettings(sys.argv[1])
(sid,) = settings.getSessions()

class App(fix.Application):
    def onCreate(self, s): pass
    def onLogon(self, s): pass
    def onLogout(self, s): pass
    def toAdmin(self, m, s): pass
    def fromAdmin(self, m, s): pass
    def toApp(self, m, s): pass
    def fromApp(self, m, s): pass

app = App()
engine = fix.SocketInitiator(app, fix.FileStoreFactory(settings), settings,
                             fix.ScreenLogFactory(False, False, False))
session = fix.Session.lookupSession(sid)
if sys.argv[2] == "set":
    session.setNextSenderMsgSeqNum(41)
    session.setNextTargetMsgSeqNum(17)
print(session.getExpectedSenderNum(), session.getExpectedTargetNum())
"""


def test_quickfix_own_file_store_silently_starts_at_1_on_an_emptied_file(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    # The baseline SeqGuard beats (and what the e2e scenarios do to the guarded
    # side's QuickFIX store after each kill). Each run is its own process:
    # QuickFIX allows one session object per id per process.
    import subprocess
    import sys

    quickfix_settings(tmp_path)

    def run(mode: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", QUICKFIX_RUN, str(tmp_path / "qf.cfg"), mode],
            env=child_env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout.strip()

    assert run("set") == "41 17"
    assert run("read") == "41 17"
    (seqnums,) = (tmp_path / "qfstore").glob("*.seqnums")
    empty(seqnums)
    assert run("read") == "1 1"
