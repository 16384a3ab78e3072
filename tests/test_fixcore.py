"""fixseq.fixcore: the store's rules in-process, naming, URLs, and a real loopback session."""

from __future__ import annotations

import asyncio
import datetime
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from engine_support import require
from hypothesis import given
from hypothesis import strategies as st

from fixseq import MemorySeqStore, SeqStoreError, StoreClosedError
from fixseq._engines import check_engine_url, open_session_store, session_file_name, session_name

require("fixcore", "fixcore")

from fixcore.application import Application  # noqa: E402
from fixcore.message.message import Message  # noqa: E402
from fixcore.session.session_id import SessionID  # noqa: E402
from fixcore.session.session_settings import SessionSettings  # noqa: E402
from fixcore.transport.acceptor import SocketAcceptor  # noqa: E402
from fixcore.transport.initiator import SocketInitiator  # noqa: E402

from fixseq.fixcore import SeqMessageStore, StoreFactory, fixcore_session_name  # noqa: E402

if TYPE_CHECKING:
    from pathlib import Path

SID = SessionID("FIX.4.4", "BANK", "BROKER")
fields = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)


# -- naming --------------------------------------------------------------------------


def test_session_name_is_quickfix_form() -> None:
    assert fixcore_session_name(SID) == "FIX.4.4:BANK->BROKER"
    assert fixcore_session_name(SessionID("FIX.4.2", "A", "B", "q")) == "FIX.4.2:A->B:q"


@given(st.tuples(fields, fields, fields, fields), st.tuples(fields, fields, fields, fields))
def test_session_names_are_lossless(a: tuple[str, ...], b: tuple[str, ...]) -> None:
    # Two different session ids never share a name, whatever their characters.
    if a != b:
        assert session_name(*a) != session_name(*b)
        assert session_file_name(session_name(*a)) != session_file_name(session_name(*b))


def test_tricky_ids_that_a_naive_join_would_merge() -> None:
    assert session_name("FIX.4.4", "A-", ">B", "") != session_name("FIX.4.4", "A->", "B", "")
    assert session_name("F", "A:B", "C", "") != session_name("F", "A", "B", "C")
    assert session_name("F", "A", "B", "") != session_name("F", "A", "B:", "")


@given(st.tuples(fields, fields, fields, fields))
def test_file_names_are_safe(ids: tuple[str, str, str, str]) -> None:
    name = session_file_name(session_name(*ids))
    assert "/" not in name and "\0" not in name and not name.startswith(".")
    assert len(name.encode()) < 100


def test_session_name_rejects_non_str() -> None:
    with pytest.raises(TypeError):
        session_name("FIX.4.4", "A", 3, "")  # type: ignore[arg-type]


# -- URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["file:seqs?session=x", "sqlite:///fix.db?session=FIX.4.4:A->B", "memory:?session=a"]
)
def test_url_with_a_session_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="session"):
        StoreFactory(url)


@pytest.mark.parametrize("url", ["", "nope:x", "sqlite:", "file:"])
def test_bad_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        StoreFactory(url)


def test_max_bodies_is_checked() -> None:
    with pytest.raises(ValueError):
        StoreFactory("memory:", max_bodies=-1)
    with pytest.raises(TypeError):
        StoreFactory("memory:", max_bodies=2.5)  # type: ignore[arg-type]


def test_file_url_directory_may_end_in_a_slash(tmp_path: Path) -> None:
    with StoreFactory(f"file:{tmp_path / 'd'}/") as factory:
        factory.create(SID)
    (path,) = (tmp_path / "d").iterdir()
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o700
    assert path.stat().st_mode & 0o777 == 0o600


def test_file_url_stores_the_full_session_id(tmp_path: Path) -> None:
    factory = StoreFactory(f"file:{tmp_path}")
    factory.create(SID)
    factory.close()
    (path,) = tmp_path.iterdir()
    assert path.name.startswith("FIX.4.4-BANK-BROKER.")
    assert b"FIX.4.4:BANK->BROKER" in path.read_bytes()
    # The stored id is checked: the file cannot be opened for another session.
    with pytest.raises(SeqStoreError):
        from fixseq import FileSeqStore

        FileSeqStore(path, session="FIX.4.4:BANK->OTHER")


def test_sqlite_url_names_each_session_losslessly(tmp_path: Path) -> None:
    from fixseq import list_sessions

    factory = StoreFactory(f"sqlite:///{tmp_path / 'fix.db'}")
    factory.create(SID)
    factory.create(SessionID("FIX.4.4", "BANK", "BROKER", "two"))
    factory.close()
    assert list_sessions(tmp_path / "fix.db") == [
        "FIX.4.4:BANK->BROKER",
        "FIX.4.4:BANK->BROKER:two",
    ]


def test_postgresql_url_names_each_session_losslessly() -> None:
    from postgres_support import unique
    from url_support import pg_url

    from fixseq._urls import list_url_sessions, parse_url

    url = pg_url(table=unique("fixcore"))
    tricky = SessionID("FIX.4.4", "A->", "B:c", "q%1")
    with StoreFactory(url) as factory:
        factory.create(SID).set_next_sender_msg_seq_num(41)
        factory.create(tricky).set_next_target_msg_seq_num(17)
    assert list_url_sessions(parse_url(url)) == [
        "FIX.4.4:A-%3E->B%3Ac:q%251",
        "FIX.4.4:BANK->BROKER",
    ]
    with StoreFactory(url, create=False) as factory:
        assert factory.create(SID).next_sender_msg_seq_num() == 41
        assert factory.create(tricky).next_target_msg_seq_num() == 17
        with pytest.raises(SeqStoreError):
            factory.create(SessionID("FIX.4.4", "BANK", "NOBODY"))


def test_create_false_refuses_a_missing_store(tmp_path: Path) -> None:
    with pytest.raises(SeqStoreError):
        StoreFactory(f"sqlite:///{tmp_path / 'fix.db'}", create=False).create(SID)
    with pytest.raises(SeqStoreError):
        StoreFactory(f"file:{tmp_path / 'd'}", create=False).create(SID)
    assert list(tmp_path.iterdir()) == []


def test_one_open_store_per_session() -> None:
    factory = StoreFactory("memory:")
    store = factory.create(SID)
    with pytest.raises(ValueError):
        factory.create(SID)
    store.close()
    assert factory.create(SID) is factory.store(SID)
    factory.close()


def test_open_session_store_memory_is_fresh_per_session() -> None:
    spec = check_engine_url("memory:")
    a, b = open_session_store(spec, "a"), open_session_store(spec, "b")
    a.next_out()
    assert (a.peek_out(), b.peek_out()) == (2, 1)


# -- the store's rules ----------------------------------------------------------------


def test_outbound_is_durable_before_the_engine_sends() -> None:
    seq = MemorySeqStore(5, 3)
    store = SeqMessageStore(seq)
    assert store.next_sender_msg_seq_num() == 5
    asyncio.run(store.aincr_next_sender_msg_seq_num())
    assert (store.next_sender_msg_seq_num(), seq.peek_out()) == (6, 6)
    store.incr_next_sender_msg_seq_num()
    assert (store.next_sender_msg_seq_num(), seq.peek_out()) == (7, 7)
    store.set_next_sender_msg_seq_num(100)
    assert seq.peek_out() == 100


def test_outbound_never_falls_behind_the_wire_when_the_store_is_moved_back() -> None:
    seq = MemorySeqStore(10, 1)
    store = SeqMessageStore(seq)
    seq.set_next_out(3)  # an operator moves it back while the engine stamps 10
    asyncio.run(store.aincr_next_sender_msg_seq_num())
    assert seq.peek_out() == 11
    assert store.next_sender_msg_seq_num() == 11


def test_inbound_is_durable_only_after_the_callback_returned() -> None:
    seq = MemorySeqStore(1, 7)
    store = SeqMessageStore(seq)

    async def scenario() -> None:
        await store.aincr_next_target_msg_seq_num()  # fixcore takes 7 ...
        assert store.next_target_msg_seq_num() == 8  # ... and expects 8 next,
        assert seq.current_in() == 7  # but a kill now re-delivers 7.
        store._callback_returned(7)  # from_app(7) returned
        await asyncio.sleep(0)
        await store._flush_task  # type: ignore[misc]
        assert seq.current_in() == 8

    asyncio.run(scenario())


def test_unwrapped_app_the_next_message_settles_the_previous() -> None:
    seq = MemorySeqStore(1, 1)
    store = SeqMessageStore(seq)

    async def scenario() -> None:
        await store.aincr_next_target_msg_seq_num()  # 1 taken, pending
        assert seq.current_in() == 1
        await store.aincr_next_target_msg_seq_num()  # 2 taken: 1 was dispatched
        assert seq.current_in() == 2

    asyncio.run(scenario())
    store.close()  # 2's callback never returned: it stays pending
    assert seq.closed


def test_callback_for_another_number_changes_nothing() -> None:
    seq = MemorySeqStore(1, 4)
    store = SeqMessageStore(seq)

    async def scenario() -> None:
        await store.aincr_next_target_msg_seq_num()
        store._callback_returned(9)
        await asyncio.sleep(0)
        assert seq.current_in() == 4

    asyncio.run(scenario())


def test_gap_fill_becomes_durable_after_its_from_admin() -> None:
    seq = MemorySeqStore(1, 10)
    store = SeqMessageStore(seq)

    async def scenario() -> None:
        await store.aincr_next_target_msg_seq_num()  # SequenceReset-GapFill 10
        store.set_next_target_msg_seq_num(20)  # NewSeqNo=20
        assert store.next_target_msg_seq_num() == 20
        await asyncio.sleep(0)
        assert seq.current_in() == 10
        store._callback_returned(10)
        await asyncio.sleep(0)
        await store._flush_task  # type: ignore[misc]
        assert seq.current_in() == 20

    asyncio.run(scenario())


def test_logon_increment_and_hard_reset_are_durable_at_once_without_a_loop() -> None:
    seq = MemorySeqStore(1, 5)
    store = SeqMessageStore(seq)
    store.incr_next_target_msg_seq_num()
    assert seq.current_in() == 6
    store.set_next_target_msg_seq_num(30)
    assert seq.current_in() == 30
    store.set_next_target_msg_seq_num(12)  # an operator's override may go down
    assert seq.current_in() == 12


def test_a_flush_computed_before_a_reset_never_lands_after_it() -> None:
    # The inbound flush runs in a worker thread; fixcore may call reset() on
    # the loop thread meanwhile. The reset must win: a stale mark written
    # after it would have fixseq expect 15 from a peer that restarts at 1.
    import threading

    seq = MemorySeqStore(1, 10)
    store = SeqMessageStore(seq)
    writing, go = threading.Event(), threading.Event()
    observed_in = seq.observed_in

    def slow_observed_in(seq_num: int) -> None:
        writing.set()
        go.wait(10)
        observed_in(seq_num)

    seq.observed_in = slow_observed_in  # type: ignore[method-assign]
    store._safe_in = 15  # messages up to 14 were taken and their callbacks returned
    flush = threading.Thread(target=store._flush_in)
    flush.start()
    assert writing.wait(10)
    reset = threading.Thread(target=store.reset)
    reset.start()
    reset.join(0.3)  # with the lock the reset waits for the flush in progress
    go.set()
    flush.join(10)
    reset.join(10)
    assert seq.snapshot() == (1, 1)
    assert store.next_target_msg_seq_num() == 1


def test_message_bodies_are_bounded_and_in_memory() -> None:
    store = SeqMessageStore(MemorySeqStore(), max_bodies=3)
    for n in range(1, 6):
        asyncio.run(store.aset(n, b"m%d" % n))
    assert store.get(1, 10) == [b"m3", b"m4", b"m5"]
    assert store.get(4, 4) == [b"m4"]
    assert store.get(1, 2) == []
    store.set(9, b"m9")
    assert store.get(1, 2**40) == [b"m4", b"m5", b"m9"]
    none = SeqMessageStore(MemorySeqStore(), max_bodies=0)
    none.set(1, b"x")
    assert none.get(1, 1) == []


def test_reset_and_creation_time_come_from_fixseq() -> None:
    old = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    seq = MemorySeqStore(50, 60, created_at=old)
    store = SeqMessageStore(seq)
    store.set(49, b"body")
    assert store.get_creation_time() == old
    store.reset()
    assert seq.snapshot() == (1, 1)
    assert (store.next_sender_msg_seq_num(), store.next_target_msg_seq_num()) == (1, 1)
    assert store.get(1, 100) == []
    reset_at = seq.creation_time()
    assert reset_at > old
    store.set_creation_time(datetime.datetime(1999, 1, 1, tzinfo=datetime.timezone.utc))
    assert store.get_creation_time() == reset_at == seq.creation_time()
    with pytest.raises(ValueError):
        store.set_creation_time(datetime.datetime(1999, 1, 1))
    with pytest.raises(TypeError):
        store.set_creation_time("now")  # type: ignore[arg-type]


def test_refresh_reads_an_operators_change() -> None:
    seq = MemorySeqStore(3, 4)
    store = SeqMessageStore(seq)
    seq.set_next_out(1005)
    seq.set_next_in(77)
    assert store.next_sender_msg_seq_num() == 3
    store.refresh()
    assert (store.next_sender_msg_seq_num(), store.next_target_msg_seq_num()) == (1005, 77)


def test_close_closes_the_fixseq_store() -> None:
    seq = MemorySeqStore()
    store = SeqMessageStore(seq)
    store.close()
    store.close()
    assert seq.closed
    with pytest.raises(StoreClosedError):
        store.incr_next_sender_msg_seq_num()


# -- extras and imports ------------------------------------------------------------------


def test_import_fixseq_imports_no_engine(child_env: dict[str, str]) -> None:
    code = (
        "import sys, fixseq; print(sorted(m for m in ('fixcore', 'quickfix') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=child_env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("module", "engine", "extra"),
    [("fixcore", "fixcore", "fixseq[fixcore]"), ("quickfix", "quickfix", "fixseq[quickfix]")],
)
def test_missing_engine_names_the_extra(
    child_env: dict[str, str], module: str, engine: str, extra: str
) -> None:
    code = f"import sys; sys.modules[{engine!r}] = None\nimport fixseq.{module}"
    out = subprocess.run(
        [sys.executable, "-c", code], env=child_env, capture_output=True, text=True
    )
    assert out.returncode != 0
    assert "ImportError" in out.stderr and extra in out.stderr


# -- a real session over loopback, in-process -------------------------------------------------


class Recording(Application):
    def __init__(self) -> None:
        self.received: list[int] = []
        self.logged_on = asyncio.Event()
        self.logged_out = asyncio.Event()

    def on_logon(self, session_id: SessionID) -> None:
        self.logged_out.clear()
        self.logged_on.set()

    def on_logout(self, session_id: SessionID) -> None:
        self.logged_on.clear()
        self.logged_out.set()

    def from_app(self, message: Message, session_id: SessionID) -> None:
        self.received.append(int(message.header.get(34)))


def settings(role: str, port: int) -> SessionSettings:
    sender, target = ("BANK", "BROKER") if role == "initiator" else ("BROKER", "BANK")
    where = (
        f"SocketConnectHost=127.0.0.1\nSocketConnectPort={port}\nReconnectInterval=1\n"
        if role == "initiator"
        else f"SocketAcceptHost=127.0.0.1\nSocketAcceptPort={port}\n"
    )
    return SessionSettings.from_string(
        f"[DEFAULT]\nConnectionType={role}\nHeartBtInt=30\nLogoutTimeout=2\n{where}"
        f"[SESSION]\nBeginString=FIX.4.4\nSenderCompID={sender}\nTargetCompID={target}\n"
    )


async def one_session(root: Path, port: int, messages: int) -> tuple[Recording, Recording]:
    accept_factory = StoreFactory(f"file:{root / 'broker'}")
    init_factory = StoreFactory(f"sqlite:///{root / 'bank.db'}")
    broker, bank = Recording(), Recording()
    acceptor = SocketAcceptor(
        settings("acceptor", port), accept_factory.application(broker), accept_factory
    )
    initiator = SocketInitiator(
        settings("initiator", port), init_factory.application(bank), init_factory
    )
    await acceptor.start()
    await initiator.start()
    try:
        await asyncio.wait_for(bank.logged_on.wait(), 10)
        (session,) = initiator.sessions.values()
        for _ in range(messages):
            news = Message()
            news.header.set(35, "B")
            news.set_field(148, "hello")
            await session.send_app(news)
        await initiator.logout()
        await asyncio.wait_for(bank.logged_out.wait(), 10)
    finally:
        await initiator.stop()
        await acceptor.stop()
        init_factory.close()
        accept_factory.close()
    return broker, bank


def test_loopback_session_continues_after_a_restart(tmp_path: Path) -> None:
    from fixseq._fixcore_demo import free_port

    port = free_port()
    broker, _ = asyncio.run(one_session(tmp_path, port, 5))
    assert broker.received == [2, 3, 4, 5, 6]
    broker, _ = asyncio.run(one_session(tmp_path, port, 3))
    # Logon 8 (after Logout 7), then the News: the numbers went on, not back to 1.
    assert broker.received == [9, 10, 11]
    bank = open_session_store(
        check_engine_url(f"sqlite:///{tmp_path / 'bank.db'}"), "FIX.4.4:BANK->BROKER", create=False
    )
    assert bank.snapshot() == (13, 5)  # BROKER sent Logon 1, Logout 2, Logon 3, Logout 4
    bank.close()


def test_demo_runs_to_completion(tmp_path: Path) -> None:
    import io

    from fixseq.fixcore import run_demo

    out = io.StringIO()
    run_demo(tmp_path, out=out)
    text = out.getvalue()
    assert "killed with SIGKILL" in text
    assert "Neither engine logged 'MsgSeqNum too low'." in text
    lines = text.splitlines()
    killed = next(line for line in lines if "killed with SIGKILL" in line)
    restarted = next(line for line in lines if "restarted" in line)
    stored_out = int(killed.split("next outbound ")[1].split(",")[0])
    logon_seq = int(restarted.split("MsgSeqNum ")[1].split(";")[0])
    assert logon_seq == stored_out  # it logged on exactly where its store said
