"""``fixseq reset --if-created-before``, ``import``, ``copy`` and the audit line (subprocesses)."""

from __future__ import annotations

import datetime
import json
import re
import sqlite3
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from url_support import pg_url

from fixseq import FileSeqStore, open_store
from fixseq._transfer import NewState, replace_state
from fixseq._urls import parse_url, read_sessions

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

UTC = datetime.timezone.utc
OLD = datetime.datetime(2020, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def fixseq(
    env: dict[str, str], cwd: Path, *args: str, code: int = 0, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "fixseq", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={k: v for k, v in env.items() if k != "FIXSEQ_URL"},
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    if code != 0:
        lines = proc.stderr.strip().splitlines()
        assert re.match(r"fixseq( [a-z]+)?: error: \S", lines[-1]), proc.stderr
        assert proc.stdout == ""
        if code == 1:
            assert len(lines) == 1, proc.stderr
    return proc


def audit_lines(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    found = []
    for line in proc.stderr.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            assert isinstance(record, dict)
            found.append(record)
    return found


def seed(url: str, next_out: int, next_in: int, created: datetime.datetime) -> None:
    """Give a store a state with an old creation time (no public API sets one)."""
    replace_state(parse_url(url), lambda _: NewState(next_out, next_in, created))


def state(url: str) -> tuple[int, int, datetime.datetime]:
    info = read_sessions(parse_url(url))[0]
    return info.next_out, info.next_in, info.created


@pytest.fixture(params=["file", "sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of each stored kind, for a store that does not exist yet."""
    kind = request.param
    if kind == "file":
        return f"file:{tmp_path}/s.seq"
    if kind == "sqlite":
        return f"sqlite:{tmp_path}/s.db?session=FIX.4.4:BANK->BROKER"
    return pg_url(session=f"ops-{uuid.uuid4().hex}")


# -- reset --if-created-before ------------------------------------------------------------


def test_scheduled_reset_is_idempotent(url: str, tmp_path: Path, child_env: dict[str, str]) -> None:
    seed(url, 500, 400, OLD)
    first = fixseq(
        child_env,
        tmp_path,
        "reset",
        url,
        "--if-created-before",
        "00:00 UTC",
        "--yes",
        "--reason",
        "daily reset",
    )
    assert "reset     next out 500 -> 1, next in 400 -> 1" in first.stdout
    (record,) = audit_lines(first)
    assert first.stderr.count("\n") == 1
    assert record["audit"] == "reset" and record["reason"] == "daily reset"
    assert record["old"]["next_out"] == 500 and record["new"]["next_out"] == 1
    assert state(url)[:2] == (1, 1)
    # The engine carries on; the next cron run, before the next midnight, changes nothing.
    with open_store(url) as store:
        for _ in range(6):
            store.next_out()
    second = fixseq(
        child_env, tmp_path, "reset", url, "--if-created-before", "00:00 UTC", "--yes", "--json"
    )
    assert second.stderr == ""  # no change, no audit line
    shown = json.loads(second.stdout)
    assert shown["reset"] is False and shown["next_out"] == 7
    assert state(url)[0] == 7


def test_scheduled_reset_without_a_terminal_needs_yes(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    url = f"file:{tmp_path}/s.seq"
    seed(url, 9, 8, OLD)
    proc = fixseq(child_env, tmp_path, "reset", url, "--if-created-before", "Sun 17:00 UTC", code=1)
    assert "--yes" in proc.stderr
    assert state(url) == (9, 8, OLD)


def test_scheduled_reset_not_due_needs_no_yes(tmp_path: Path, child_env: dict[str, str]) -> None:
    url = f"file:{tmp_path}/s.seq"
    with FileSeqStore(url[5:]) as store:
        store.set_next_out(42)  # created just now: after any past instant
    proc = fixseq(child_env, tmp_path, "reset", url, "--if-created-before", "23:59 Asia/Tokyo")
    assert "not due" in proc.stdout and proc.stderr == ""
    assert state(url)[0] == 42


@pytest.mark.parametrize(
    "schedule", ["17:00", "25:00 UTC", "17:00 Nowhere/City", "Someday 17:00 UTC"]
)
def test_scheduled_reset_bad_schedule_is_a_usage_error(
    schedule: str, tmp_path: Path, child_env: dict[str, str]
) -> None:
    fixseq(
        child_env,
        tmp_path,
        "reset",
        f"file:{tmp_path}/s.seq",
        "--if-created-before",
        schedule,
        code=2,
    )
    assert not (tmp_path / "s.seq").exists()


def test_scheduled_reset_of_a_new_sqlite_store_sets_wal(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    url = f"sqlite:{tmp_path}/new.db?session=S"
    seed(url, 4, 4, OLD)  # the database file is made by the atomic write itself
    conn = sqlite3.connect(tmp_path / "new.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert oct((tmp_path / "new.db").stat().st_mode & 0o777) == "0o600"


def test_scheduled_reset_of_a_missing_store_is_refused(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    proc = fixseq(
        child_env,
        tmp_path,
        "reset",
        f"file:{tmp_path}/s.seq",
        "--if-created-before",
        "00:00 UTC",
        "--yes",
        code=1,
    )
    assert "nothing to reset" in proc.stderr
    assert not (tmp_path / "s.seq").exists()


def test_two_hosts_running_the_reset_at_once_reset_once(
    url: str, tmp_path: Path, child_env: dict[str, str]
) -> None:
    seed(url, 300, 200, OLD)
    command = [
        sys.executable,
        "-m",
        "fixseq",
        "reset",
        url,
        "--if-created-before",
        "00:00 UTC",
        "--yes",
    ]
    procs = [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        # A file store admits one opener: a run that meets another's lock is refused (exit
        # 1, nothing changed); on SQLite and PostgreSQL the later runs wait, find it not due.
        if url.startswith("file:") and proc.returncode == 1:
            assert "held by another process" in err and "not reset" in err, err
        else:
            assert proc.returncode == 0, results
    records = [line for _, err in results for line in err.splitlines() if line.startswith("{")]
    assert len(records) == 1, results
    assert state(url)[:2] == (1, 1)


# -- set and reset audit lines ---------------------------------------------------------------


def test_set_and_reset_print_one_audit_line(
    url: str, tmp_path: Path, child_env: dict[str, str]
) -> None:
    seed(url, 10, 20, OLD)
    proc = fixseq(child_env, tmp_path, "set", url, "--next-out", "15", "--reason", "ticket 7")
    (record,) = audit_lines(proc)
    assert proc.stderr.count("\n") == 1
    assert record["audit"] == "set" and record["reason"] == "ticket 7"
    assert (record["old"]["next_out"], record["new"]["next_out"]) == (10, 15)
    assert record["new"]["next_in"] == 20
    proc = fixseq(child_env, tmp_path, "reset", url, "--yes")
    (record,) = audit_lines(proc)
    assert "reason" not in record
    assert (record["old"]["next_in"], record["new"]["next_in"]) == (20, 1)


def test_audit_line_redacts_the_password(child_env: dict[str, str], tmp_path: Path) -> None:
    url = pg_url(session=f"ops-{uuid.uuid4().hex}")
    if "@" not in url or ":" not in url.split("@")[0].split("//")[1]:
        url = url.replace("postgresql://", "postgresql://fixseq_nobody:s3cret@", 1)
        proc = fixseq(child_env, tmp_path, "set", url, "--next-out", "3", "--create", code=1)
        assert "s3cret" not in proc.stderr
        return
    proc = fixseq(child_env, tmp_path, "set", url, "--next-out", "3", "--create")
    (record,) = audit_lines(proc)
    assert "s3cret" not in proc.stderr and record["store"] != url


# -- import -----------------------------------------------------------------------------------


def write_fixcore(directory: Path, prefix: str, text: str) -> None:
    directory.mkdir(exist_ok=True)
    (directory / f"{prefix}.seqnums").write_text(text)


def test_import_into_each_kind(url: str, tmp_path: Path, child_env: dict[str, str]) -> None:
    engine = tmp_path / "engine"
    write_fixcore(
        engine,
        "FIX.4.4-BANK-BROKER",
        "sender=1001\ntarget=77\ncreation=2026-11-30T22:00:01.500000+00:00\n",
    )
    proc = fixseq(
        child_env, tmp_path, "import", "fixcore", str(engine), url, "--json", "--reason", "move"
    )
    shown = json.loads(proc.stdout)
    assert (shown["next_out"], shown["next_in"]) == (1001, 77)
    created = datetime.datetime(2026, 11, 30, 22, 0, 1, 500000, tzinfo=UTC)
    assert state(url) == (1001, 77, created)
    (record,) = audit_lines(proc)
    assert record["audit"] == "import" and record["old"] is None
    assert record["source"]["session"] == "FIX.4.4-BANK-BROKER"
    # A second import onto numbers is refused without --yes, and changes nothing.
    write_fixcore(
        engine, "FIX.4.4-BANK-BROKER", "sender=5\ntarget=6\ncreation=2026-12-01T00:00:00+00:00\n"
    )
    proc = fixseq(child_env, tmp_path, "import", "fixcore", str(engine), url, code=1)
    assert "--yes" in proc.stderr and "1001" in proc.stderr
    assert state(url) == (1001, 77, created)
    fixseq(child_env, tmp_path, "import", "fixcore", str(engine), url, "--yes")
    assert state(url)[:2] == (5, 6)


def test_import_list(tmp_path: Path, child_env: dict[str, str]) -> None:
    engine = tmp_path / "engine"
    write_fixcore(engine, "FIX.4.4-A-B", "sender=3\ntarget=4\ncreation=2026-11-30T22:00:00+00:00\n")
    write_fixcore(engine, "FIX.4.2-C-D", "sender=5\ntarget=6\ncreation=2026-11-30T22:00:00+00:00\n")
    proc = fixseq(child_env, tmp_path, "import", "--list", "fixcore", str(engine), "--json")
    listed = json.loads(proc.stdout)["sessions"]
    assert [(s["session"], s["next_out"], s["next_in"]) for s in listed] == [
        ("FIX.4.2-C-D", 5, 6),
        ("FIX.4.4-A-B", 3, 4),
    ]
    text = fixseq(child_env, tmp_path, "import", "--list", "fixcore", str(engine)).stdout
    assert "FIX.4.4-A-B" in text and "FIX.4.2-C-D" in text
    # Two sessions and none named: ambiguous, nothing written.
    dest = f"file:{tmp_path}/d.seq"
    proc = fixseq(child_env, tmp_path, "import", "fixcore", str(engine), dest, code=1)
    assert "ambiguous" in proc.stderr and "--session" in proc.stderr
    assert not (tmp_path / "d.seq").exists()
    fixseq(child_env, tmp_path, "import", "fixcore", str(engine), dest, "--session", "FIX.4.4:A->B")
    assert state(dest)[:2] == (3, 4)


def test_import_refusal_leaves_the_destination_unchanged(
    url: str, tmp_path: Path, child_env: dict[str, str]
) -> None:
    seed(url, 1, 1, OLD)  # an empty session: an import may fill it without --yes
    engine = tmp_path / "engine"
    write_fixcore(
        engine, "FIX.4.4-BANK-BROKER", "sender=12\ntarget=0\ncreation=2026-11-30T22:00:00+00:00\n"
    )
    proc = fixseq(child_env, tmp_path, "import", "fixcore", str(engine), url, "--yes", code=1)
    assert "FIX.4.4-BANK-BROKER.seqnums" in proc.stderr and "0" in proc.stderr
    assert state(url) == (1, 1, OLD)


def test_import_usage_errors(tmp_path: Path, child_env: dict[str, str]) -> None:
    fixseq(child_env, tmp_path, "import", "quickfix", str(tmp_path), code=2)
    fixseq(child_env, tmp_path, "import", "nosuch", str(tmp_path), "file:x.seq", code=2)
    fixseq(child_env, tmp_path, "import", "--list", "quickfix", str(tmp_path), "file:x.seq", code=2)
    fixseq(child_env, tmp_path, "import", "quickfix", str(tmp_path), "memory:", code=2)


# -- copy -------------------------------------------------------------------------------------

KINDS: list[Callable[[Path], str]] = [
    lambda p: f"file:{p}/c.seq",
    lambda p: f"sqlite:{p}/c.db?session=S",
    lambda p: pg_url(session=f"ops-{uuid.uuid4().hex}"),
]


@pytest.mark.parametrize("source_kind", range(3), ids=["file", "sqlite", "postgresql"])
def test_copy_between_every_pair_of_kinds(
    source_kind: int, url: str, tmp_path: Path, child_env: dict[str, str]
) -> None:
    (tmp_path / "src").mkdir()
    source = KINDS[source_kind](tmp_path / "src")
    seed(source, 8001, 9001, OLD)
    proc = fixseq(child_env, tmp_path, "copy", source, url, "--json")
    assert state(url) == (8001, 9001, OLD)
    (record,) = audit_lines(proc)
    assert record["audit"] == "copy" and record["new"]["next_out"] == 8001
    assert json.loads(proc.stdout)["next_in"] == 9001
    # Onto numbers: refused without --yes; with it, replaced.
    seed(source, 8100, 9100, OLD)
    proc = fixseq(child_env, tmp_path, "copy", source, url, code=1)
    assert "--yes" in proc.stderr
    assert state(url)[:2] == (8001, 9001)
    fixseq(child_env, tmp_path, "copy", source, url, "--yes")
    assert state(url)[:2] == (8100, 9100)


def test_copy_refuses_a_file_source_an_engine_holds(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    source = f"file:{tmp_path}/engine.seq"
    dest = f"sqlite:{tmp_path}/d.db?session=S"
    with FileSeqStore(tmp_path / "engine.seq") as held:
        held.set_next_out(77)
        proc = fixseq(child_env, tmp_path, "copy", source, dest, code=1)
    assert "running engine" in proc.stderr
    assert not (tmp_path / "d.db").exists()


def test_copy_refuses_a_file_destination_an_engine_holds(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    source = f"sqlite:{tmp_path}/s.db?session=S"
    seed(source, 5, 5, OLD)
    with FileSeqStore(tmp_path / "engine.seq") as held:
        held.set_next_out(77)
        proc = fixseq(
            child_env, tmp_path, "copy", source, f"file:{tmp_path}/engine.seq", "--yes", code=1
        )
        assert "another process" in proc.stderr
        assert held.snapshot().next_out == 77
    assert state(f"file:{tmp_path}/engine.seq")[0] == 77


def test_copy_usage_errors(tmp_path: Path, child_env: dict[str, str]) -> None:
    fixseq(child_env, tmp_path, "copy", "memory:", f"file:{tmp_path}/d.seq", code=2)
    fixseq(child_env, tmp_path, "copy", f"file:{tmp_path}/d.seq", f"file:{tmp_path}/d.seq", code=2)
    fixseq(child_env, tmp_path, "copy", f"sqlite:{tmp_path}/s.db", f"file:{tmp_path}/d.seq", code=2)
    proc = fixseq(
        child_env, tmp_path, "copy", f"file:{tmp_path}/none.seq", f"file:{tmp_path}/d.seq", code=1
    )
    assert not (tmp_path / "d.seq").exists() and "none.seq" in proc.stderr
