"""fixseq.quickfix: SeqGuard's rules, driven through a real (unstarted) QuickFIX session.

The QuickFIX initiator is built but never started: building it creates the
session (so ``onCreate`` runs and ``Session.lookupSession`` works) without
opening a socket. The callbacks are then called as QuickFIX calls them.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest
from engine_support import require

from fixseq import MemorySeqStore, SeqStoreError

require("quickfix", "quickfix")

import quickfix  # noqa: E402

from fixseq.quickfix import SeqGuard, quickfix_session_name  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


class UserApp(quickfix.Application):  # type: ignore[misc]
    """The user's application: records what it saw; can be told to raise."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, int]] = []
        self.fail = False

    def _note(self, what: str, message: Any) -> None:
        self.seen.append((what, int(message.getHeader().getField(34))))
        if self.fail:
            raise RuntimeError("the application failed")

    def onCreate(self, sessionID: Any) -> None:
        self.seen.append(("create", 0))

    def onLogon(self, sessionID: Any) -> None:
        pass

    def onLogout(self, sessionID: Any) -> None:
        pass

    def toAdmin(self, message: Any, sessionID: Any) -> None:
        self._note("toAdmin", message)

    def fromAdmin(self, message: Any, sessionID: Any) -> None:
        self._note("fromAdmin", message)

    def toApp(self, message: Any, sessionID: Any) -> None:
        self._note("toApp", message)

    def fromApp(self, message: Any, sessionID: Any) -> None:
        self._note("fromApp", message)


def settings_file(tmp_path: Path) -> Any:
    cfg = tmp_path / "qf.cfg"
    cfg.write_text(
        "[DEFAULT]\nConnectionType=initiator\nStartTime=00:00:00\nEndTime=00:00:00\n"
        "HeartBtInt=30\nSocketConnectHost=127.0.0.1\nSocketConnectPort=1\nUseDataDictionary=N\n"
        f"FileStorePath={tmp_path / 'qfstore'}\n"
        "[SESSION]\nBeginString=FIX.4.4\nSenderCompID=BANK\nTargetCompID=BROKER\n"
    )
    return quickfix.SessionSettings(str(cfg))


class Rig:
    def __init__(self, tmp_path: Path, url: str) -> None:
        self.settings = settings_file(tmp_path)
        (self.sid,) = self.settings.getSessions()
        self.app = UserApp()
        self.guard = SeqGuard(self.app, url, settings=self.settings)
        self.engine: Any = None

    def build(self) -> Any:
        """Build QuickFIX on its own FileStore (not started: no socket)."""
        self.engine = quickfix.SocketInitiator(
            self.guard,
            quickfix.FileStoreFactory(self.settings),
            self.settings,
            quickfix.ScreenLogFactory(False, False, False),
        )
        return quickfix.Session.lookupSession(self.sid)

    @property
    def store(self) -> Any:
        return self.guard.store(self.sid)

    def message(self, msg_type: str, seq: int, **fields: str) -> Any:
        message = quickfix.Message()
        header = message.getHeader()
        header.setField(8, "FIX.4.4")
        header.setField(35, msg_type)
        header.setField(34, str(seq))
        for tag, value in fields.items():
            message.setField(int(tag.lstrip("t")), value)
        return message


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(tmp_path, f"file:{tmp_path / 'stores'}")
    yield rig
    rig.guard.close()


def test_session_name() -> None:
    sid = quickfix.SessionID("FIX.4.4", "BANK", "BROKER", "q:1")
    assert quickfix_session_name(sid) == "FIX.4.4:BANK->BROKER:q%3A1"


def test_url_with_session_is_refused() -> None:
    with pytest.raises(ValueError, match="session"):
        SeqGuard(UserApp(), "sqlite:///x.db?session=a")


def test_on_create_restores_fixseq_numbers_over_quickfix_own(rig: Rig) -> None:
    rig.store.set_next_out(41)
    rig.store.set_next_in(17)
    session = rig.build()  # QuickFIX's own FileStore is new: it says 1/1
    assert (session.getExpectedSenderNum(), session.getExpectedTargetNum()) == (41, 17)
    assert rig.app.seen == [("create", 0)]


def test_outbound_is_durable_before_send_and_never_moves_back(rig: Rig) -> None:
    rig.build()
    rig.guard.toApp(rig.message("B", 1), rig.sid)
    assert rig.store.peek_out() == 2
    rig.guard.toAdmin(rig.message("0", 2), rig.sid)
    assert rig.store.peek_out() == 3
    rig.guard.toApp(rig.message("B", 1, t43="Y"), rig.sid)  # a resend of 1
    assert rig.store.peek_out() == 3
    assert [what for what, _ in rig.app.seen[1:]] == ["toApp", "toAdmin", "toApp"]


def test_do_not_send_records_nothing(rig: Rig) -> None:
    rig.build()
    rig.app.fail = True
    with pytest.raises(RuntimeError):
        rig.guard.toApp(rig.message("B", 1), rig.sid)
    assert rig.store.peek_out() == 1


def test_inbound_recorded_only_after_the_callback_returned(rig: Rig) -> None:
    session = rig.build()
    rig.app.fail = True
    with pytest.raises(RuntimeError):
        rig.guard.fromApp(rig.message("B", 1), rig.sid)
    assert rig.store.current_in() == 1  # the callback did not return: 1 comes back
    rig.app.fail = False
    rig.guard.fromApp(rig.message("B", 1), rig.sid)
    assert rig.store.current_in() == 2
    session.setNextTargetMsgSeqNum(2)  # QuickFIX advances after the callback
    rig.guard.fromAdmin(rig.message("0", 2), rig.sid)
    assert rig.store.current_in() == 3


def test_logon_above_expected_records_nothing(rig: Rig) -> None:
    session = rig.build()
    session.setNextTargetMsgSeqNum(10)
    rig.store.set_next_in(10)
    rig.guard.fromAdmin(rig.message("A", 25), rig.sid)  # 10..24 still to come
    assert rig.store.current_in() == 10
    rig.guard.fromApp(rig.message("B", 30), rig.sid)
    assert rig.store.current_in() == 10


def test_sequence_reset_records_new_seq_no(rig: Rig) -> None:
    session = rig.build()
    session.setNextTargetMsgSeqNum(5)
    rig.store.set_next_in(5)
    rig.guard.fromAdmin(rig.message("4", 5, t123="Y", t36="9"), rig.sid)  # GapFill 5..8
    assert rig.store.current_in() == 9
    session.setNextTargetMsgSeqNum(9)
    rig.guard.fromAdmin(rig.message("4", 3, t36="20"), rig.sid)  # hard reset forward
    assert rig.store.current_in() == 20
    session.setNextTargetMsgSeqNum(20)
    rig.guard.fromAdmin(rig.message("4", 1, t36="7"), rig.sid)  # QuickFIX rejects going back
    assert rig.store.current_in() == 20
    rig.guard.fromAdmin(rig.message("4", 99, t123="Y", t36="120"), rig.sid)  # gap-fill too high
    assert rig.store.current_in() == 20


def test_reset_seq_num_flag_resets_once_per_exchange_initiator(rig: Rig) -> None:
    session = rig.build()
    rig.store.set_next_out(500)
    rig.store.set_next_in(400)
    session.setNextSenderMsgSeqNum(1)  # QuickFIX resets before its Logon 141=Y
    session.setNextTargetMsgSeqNum(1)
    rig.guard.toAdmin(rig.message("A", 1, t141="Y"), rig.sid)
    assert rig.store.snapshot() == (2, 1)
    session.setNextSenderMsgSeqNum(2)
    rig.guard.fromAdmin(rig.message("A", 1, t141="Y"), rig.sid)  # the reply also carries 141=Y
    assert rig.store.snapshot() == (2, 2)  # not reset again: Logon 1 went out


def test_reset_seq_num_flag_resets_once_per_exchange_acceptor(rig: Rig) -> None:
    session = rig.build()
    rig.store.set_next_out(500)
    rig.store.set_next_in(400)
    session.setNextSenderMsgSeqNum(1)  # QuickFIX resets on the peer's 141=Y
    session.setNextTargetMsgSeqNum(1)
    rig.guard.fromAdmin(rig.message("A", 1, t141="Y"), rig.sid)
    assert rig.store.snapshot() == (1, 2)
    session.setNextTargetMsgSeqNum(2)
    rig.guard.toAdmin(rig.message("A", 1, t141="Y"), rig.sid)  # our reply
    assert rig.store.snapshot() == (2, 2)


def test_scheduled_reset_is_detected_by_a_logon_at_1(rig: Rig) -> None:
    session = rig.build()
    rig.store.set_next_out(500)
    rig.store.set_next_in(400)
    created = rig.store.creation_time()
    session.setNextSenderMsgSeqNum(1)  # QuickFIX's new session period: no callback
    session.setNextTargetMsgSeqNum(1)
    rig.guard.toAdmin(rig.message("A", 1), rig.sid)
    assert rig.store.snapshot() == (2, 1)
    assert rig.store.creation_time() > created


def test_a_plain_logon_does_not_reset(rig: Rig) -> None:
    session = rig.build()
    rig.store.set_next_out(500)
    rig.store.set_next_in(400)
    session.setNextSenderMsgSeqNum(500)
    session.setNextTargetMsgSeqNum(400)
    rig.guard.toAdmin(rig.message("A", 500), rig.sid)
    assert rig.store.snapshot() == (501, 400)


def test_callbacks_from_many_threads(tmp_path: Path) -> None:
    # QuickFIX calls toApp from its session thread and from every sendToTarget
    # caller. Without the guard's per-session lock, a thread that read the
    # store before another's update would move the outbound number back.
    rig = Rig(tmp_path, "memory:")
    rig.build()
    store = rig.store
    lowered: list[tuple[int, int]] = []
    set_next_out = store.set_next_out

    def checked_set_next_out(seq_num: int) -> None:
        current = store.peek_out()
        if seq_num < current:
            lowered.append((seq_num, current))
        set_next_out(seq_num)

    store.set_next_out = checked_set_next_out
    threads, per_thread = 8, 300
    barrier = threading.Barrier(threads)
    messages = [
        [rig.message("B", 1 + n + threads * k) for k in range(per_thread)] for n in range(threads)
    ]

    def send(mine: list[Any]) -> None:
        barrier.wait()
        for message in mine:
            rig.guard.toApp(message, rig.sid)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        workers = [threading.Thread(target=send, args=(m,)) for m in messages]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(old)
        rig.guard.close()
    assert lowered == [], "the outbound number was moved back"
    assert store.closed


def test_a_slow_thread_cannot_move_outbound_back(tmp_path: Path) -> None:
    # The interleaving the per-session lock exists for, forced: thread A has
    # read the store for its message 5 when thread B stamps and records 9. B
    # must wait for A (with the lock it cannot start until A is done), or A's
    # late write of 6 would put the store behind 9, a number already sent.
    rig = Rig(tmp_path, "memory:")
    rig.build()
    store = rig.store
    a_has_read, b_done = threading.Event(), threading.Event()
    peek_out = store.peek_out
    lowered: list[tuple[int, int]] = []
    set_next_out = store.set_next_out

    def slow_peek_out() -> int:
        value: int = peek_out()
        if threading.current_thread().name == "A":
            a_has_read.set()
            b_done.wait(0.5)  # with the lock B never gets here first
        return value

    def checked_set_next_out(seq_num: int) -> None:
        if seq_num < peek_out():
            lowered.append((seq_num, peek_out()))
        set_next_out(seq_num)

    store.peek_out = slow_peek_out
    store.set_next_out = checked_set_next_out

    def b() -> None:
        rig.guard.toApp(rig.message("B", 9), rig.sid)
        b_done.set()

    thread_a = threading.Thread(
        target=rig.guard.toApp, args=(rig.message("B", 5), rig.sid), name="A"
    )
    thread_b = threading.Thread(target=b, name="B")
    thread_a.start()
    assert a_has_read.wait(10)
    thread_b.start()
    thread_a.join(10)
    thread_b.join(10)
    assert lowered == []
    assert peek_out() == 10
    rig.guard.close()


def test_settings_open_every_store_up_front(tmp_path: Path) -> None:
    with pytest.raises(SeqStoreError):
        SeqGuard(
            UserApp(),
            f"sqlite:///{tmp_path / 'none.db'}",
            settings=settings_file(tmp_path),
            create=False,
        )
    with SeqGuard(UserApp(), "memory:", settings=settings_file(tmp_path)) as guard:
        (sid,) = settings_file(tmp_path).getSessions()
        assert isinstance(guard.store(sid), MemorySeqStore)
