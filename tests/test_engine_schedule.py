"""``StoreFactory(reset_schedule=...)``: fixcore sessions reset once per scheduled instant."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

import pytest
from engine_support import require

from fixseq import MemorySeqStore, ResetSchedule
from fixseq._schedule import reset_if_due
from fixseq._transfer import NewState, replace_state
from fixseq._urls import parse_url, read_sessions

if TYPE_CHECKING:
    from pathlib import Path

UTC = datetime.timezone.utc
OLD = datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_reset_if_due_resets_once() -> None:
    schedule = ResetSchedule.parse("17:00 America/New_York")
    with MemorySeqStore() as store:
        store.set_next_out(50)
        created = store.creation_time()
        before_instant = schedule.next_instant(created) - datetime.timedelta(seconds=1)
        assert not reset_if_due(store, schedule, before_instant)
        assert store.snapshot().next_out == 50
        after_instant = schedule.next_instant(created) + datetime.timedelta(seconds=1)
        assert reset_if_due(store, schedule, after_instant)
        assert store.snapshot().next_out == 1
        store.set_next_out(7)
        # Reset just now: every check before the next instant leaves it alone.
        reset_at = store.creation_time()
        for now in (reset_at, schedule.next_instant(reset_at) - datetime.timedelta(seconds=1)):
            assert not reset_if_due(store, schedule, now)
        assert store.snapshot().next_out == 7
        assert not reset_if_due(store, None)


def test_fixcore_factory_resets_an_old_session_once(tmp_path: Path) -> None:
    require("fixcore", "fixcore")
    from fixcore.session.session_id import SessionID

    from fixseq.fixcore import StoreFactory, fixcore_session_name

    session_id = SessionID("FIX.4.4", "BANK", "BROKER")
    url = f"sqlite:///{tmp_path}/fix.db"
    spec = parse_url(f"{url}?session={fixcore_session_name(session_id)}")
    replace_state(spec, lambda _: NewState(900, 800, OLD))
    with StoreFactory(url, reset_schedule="00:00 UTC") as factory:
        store = factory.create(session_id)
        assert store.next_sender_msg_seq_num() == 1 and store.next_target_msg_seq_num() == 1
        store.incr_next_sender_msg_seq_num()
    # A restart before the next midnight: created after the instant, so no second reset.
    with StoreFactory(url, reset_schedule=ResetSchedule.parse("00:00 UTC")) as factory:
        store = factory.create(session_id)
        assert store.next_sender_msg_seq_num() == 2
    # Without a schedule, an old session is left alone.
    replace_state(spec, lambda _: NewState(900, 800, OLD))
    with StoreFactory(url) as factory:
        assert factory.create(session_id).next_sender_msg_seq_num() == 900
    assert read_sessions(spec)[0].next_out == 900


def test_fixcore_factory_checks_the_schedule() -> None:
    require("fixcore", "fixcore")
    from fixseq.fixcore import StoreFactory

    with pytest.raises(ValueError, match="bad schedule"):
        StoreFactory("memory:", reset_schedule="25:00 UTC")
    with pytest.raises(TypeError, match="reset_schedule"):
        StoreFactory("memory:", reset_schedule=17)  # type: ignore[arg-type]
