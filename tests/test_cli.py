"""The ``fixseq`` command, driven as a subprocess (``python -m fixseq``) as operators run it."""

from __future__ import annotations

import datetime
import json
import os
import pty
import re
import subprocess
import sys
import textwrap
import uuid
from typing import TYPE_CHECKING, Any, cast

import pytest
from engine_support import require
from url_support import pg_url

from fixseq import MAX_SEQ_NUM, FileSeqStore, SqliteSeqStore, list_sessions

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


class Run:
    """Runs ``python -m fixseq ARGS`` in a working directory with the test's environment."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = {k: v for k, v in env.items() if k != "FIXSEQ_URL"}
        self.cwd = cwd

    def __call__(
        self,
        *args: str,
        stdin: str = "",
        code: int | None = 0,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "fixseq", *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            timeout=120,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        if code is not None:
            assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
        if proc.returncode != 0:
            # A failure ends with one line naming it (a usage error shows the usage first,
            # as argparse does), and prints nothing on stdout.
            lines = proc.stderr.strip().splitlines()
            assert lines, "a failure must say why"
            assert re.match(r"fixseq( [a-z]+)?: error: \S", lines[-1]), proc.stderr
            if proc.returncode == 1:  # one line (after reset's question, if it asked one)
                assert len(lines) == 1 or (len(lines) == 2 and "[y/N]" in lines[0]), proc.stderr
            if "--json" in args:  # the error as one JSON object, and nothing else
                error = json.loads(proc.stdout)
                assert error == {"error": error["error"], "exit": proc.returncode}, proc.stdout
            else:
                assert proc.stdout == "", proc.stdout
        return proc

    def json(self, *args: str, **kwargs: object) -> dict[str, object]:
        proc = self(*args, "--json", **kwargs)  # type: ignore[arg-type]
        lines = proc.stdout.splitlines()
        assert len(lines) == 1, "--json prints exactly one JSON object, on one line"
        obj = json.loads(lines[0])
        assert isinstance(obj, dict)
        return obj


@pytest.fixture
def fixseq_cmd(child_env: dict[str, str], tmp_path: Path) -> Run:
    return Run(child_env, tmp_path)


def _created(obj: dict[str, object]) -> datetime.datetime:
    created = obj["created"]
    assert isinstance(created, str)
    when = datetime.datetime.fromisoformat(created)
    assert when.utcoffset() == datetime.timedelta(0)
    return when


# -- file stores ------------------------------------------------------------------------


def test_file_set_show_reset(fixseq_cmd: Run, tmp_path: Path) -> None:
    url = f"file:{tmp_path}/engine.seq"
    # show creates nothing and says so.
    proc = fixseq_cmd("show", url, code=1)
    assert "no store at" in proc.stderr and "creates nothing" in proc.stderr
    assert not (tmp_path / "engine.seq").exists()

    # set creates a missing store.
    after = fixseq_cmd.json("set", url, "--next-out", "1005", "--next-in", "77", "--create")
    assert after["next_out"] == 1005 and after["next_in"] == 77
    assert after["url"] == url and after["session"] is None
    shown = fixseq_cmd.json("show", url)
    assert shown == after
    assert set(shown) == {"url", "session", "next_out", "next_in", "created"}
    created = _created(shown)

    text = fixseq_cmd("show", url).stdout
    assert "next out  1005" in text and "next in   77" in text

    proc = fixseq_cmd("set", url, "--next-in", "80")
    assert "next in   77 -> 80" in proc.stdout and "next out  1005 (unchanged)" in proc.stdout
    with FileSeqStore(tmp_path / "engine.seq") as store:
        assert store.snapshot() == (1005, 80)
        assert store.creation_time() == created  # set leaves the creation time alone

    reset = fixseq_cmd.json("reset", url, "--yes")
    assert (reset["next_out"], reset["next_in"]) == (1, 1)
    assert _created(reset) > created


def test_set_validates_before_opening(fixseq_cmd: Run, tmp_path: Path) -> None:
    url = f"file:{tmp_path}/a.seq"
    for value in ("0", "-3", str(MAX_SEQ_NUM + 1)):
        proc = fixseq_cmd("set", url, "--next-out", value, code=1)
        assert "invalid value" in proc.stderr and "--next-out" in proc.stderr
        proc = fixseq_cmd("set", url, "--next-in", value, code=1)
        assert "--next-in" in proc.stderr
    assert not (tmp_path / "a.seq").exists()  # refused before the store was opened
    fixseq_cmd("set", url, "--next-out", "abc", code=2)
    fixseq_cmd("set", url, "--next-out", "1.5", code=2)
    proc = fixseq_cmd("set", url, code=2)
    assert "--next-out N, --next-in N or both" in proc.stderr
    assert not (tmp_path / "a.seq").exists()
    top = fixseq_cmd.json("set", url, "--next-out", str(MAX_SEQ_NUM), "--create")
    assert top["next_out"] == MAX_SEQ_NUM


def _on_a_terminal(
    run: Run, *args: str, answer: str, code: int
) -> subprocess.CompletedProcess[str]:
    """Run with stdin a pseudo-terminal holding ``answer`` (EOF as ^D): reset asks only there."""
    controller, terminal = pty.openpty()
    try:
        os.write(controller, (answer or "\x04").encode())
        proc = subprocess.run(
            [sys.executable, "-m", "fixseq", *args],
            stdin=terminal,
            capture_output=True,
            text=True,
            cwd=run.cwd,
            env=run.env,
            timeout=120,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def test_reset_asks(fixseq_cmd: Run, tmp_path: Path) -> None:
    url = f"file:{tmp_path}/a.seq"
    fixseq_cmd("set", url, "--next-out", "50", "--next-in", "40", "--create")
    for answer in ("n\n", "no\n", "\n", "", "yess\n", "maybe\n"):
        proc = _on_a_terminal(fixseq_cmd, "reset", url, answer=answer, code=1)
        assert "[y/N]" in proc.stderr and "now next out 50, next in 40" in proc.stderr
        assert "left alone" in proc.stderr
        assert proc.stdout == ""
        assert fixseq_cmd.json("show", url)["next_out"] == 50
    proc = _on_a_terminal(fixseq_cmd, "reset", url, answer="Y\n", code=0)
    assert "next out 50 -> 1, next in 40 -> 1" in proc.stdout
    assert (fixseq_cmd.json("show", url)["next_out"], fixseq_cmd.json("show", url)["next_in"]) == (
        1,
        1,
    )
    fixseq_cmd("set", url, "--next-out", "9")
    _on_a_terminal(fixseq_cmd, "reset", url, answer=" yes \nextra\n", code=0)
    assert fixseq_cmd.json("show", url)["next_out"] == 1
    # Without a terminal (a pipe, as cron or a script gives): refused, one line, asks nothing.
    fixseq_cmd("set", url, "--next-out", "9")
    proc = fixseq_cmd("reset", url, stdin="y\n", code=1)
    assert "--yes" in proc.stderr and "[y/N]" not in proc.stderr
    assert fixseq_cmd.json("show", url)["next_out"] == 9


@pytest.fixture
def held_file(child_env: dict[str, str], tmp_path: Path) -> Iterator[Path]:
    """A file store another process (an 'engine') holds open at next_out 42, next_in 9."""
    path = tmp_path / "held.seq"
    code = textwrap.dedent(
        f"""
        import sys
        from fixseq import FileSeqStore
        with FileSeqStore({str(path)!r}) as store:
            store.set_next_out(42)
            store.observed_in(8)
            print("ready", flush=True)
            sys.stdin.read()
        """
    )
    engine = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env,
    )
    try:
        assert engine.stdout is not None and engine.stdin is not None
        assert engine.stdout.readline() == "ready\n"
        yield path
    finally:
        assert engine.stdin is not None
        engine.stdin.close()
        engine.wait(timeout=60)
        assert engine.stdout is not None
        engine.stdout.close()


def test_file_held_by_another_process(fixseq_cmd: Run, held_file: Path) -> None:
    url = f"file:{held_file}"
    # show reads without the writer's lock, while the engine runs.
    shown = fixseq_cmd.json("show", url)
    assert (shown["next_out"], shown["next_in"]) == (42, 9)
    # set and reset refuse, saying why; nothing changes.
    proc = fixseq_cmd("set", url, "--next-out", "1", code=1)
    assert "another process" in proc.stderr
    proc = fixseq_cmd("reset", url, "--yes", code=1)
    assert "another process" in proc.stderr
    shown = fixseq_cmd.json("show", url)
    assert (shown["next_out"], shown["next_in"]) == (42, 9)


def test_show_while_an_engine_writes(
    fixseq_cmd: Run, child_env: dict[str, str], tmp_path: Path
) -> None:
    # The engine hands out numbers as fast as it can; show, reading without the lock while
    # slots are being overwritten, always gets a whole state that never goes backwards.
    path = tmp_path / "busy.seq"
    code = textwrap.dedent(
        f"""
        import select, sys
        from fixseq import FileSeqStore
        with FileSeqStore({str(path)!r}, fsync=False) as store:
            store.next_out()
            print("ready", flush=True)
            while not select.select([sys.stdin], [], [], 0)[0]:
                for _ in range(100):
                    store.observed_in(store.next_out())
        """
    )
    engine = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env,
    )
    try:
        assert engine.stdout is not None and engine.stdin is not None
        assert engine.stdout.readline() == "ready\n"
        seen: list[tuple[int, int]] = []
        for _ in range(5):
            shown = fixseq_cmd.json("show", f"file:{path}")
            next_out, next_in = shown["next_out"], shown["next_in"]
            assert isinstance(next_out, int) and isinstance(next_in, int)
            seen.append((next_out, next_in))
    finally:
        assert engine.stdin is not None
        engine.stdin.write("stop\n")
        engine.stdin.close()
        engine.wait(timeout=60)
        assert engine.stdout is not None
        engine.stdout.close()
    assert engine.returncode == 0
    outs, ins = [s[0] for s in seen], [s[1] for s in seen]
    assert outs == sorted(outs) and ins == sorted(ins) and outs[-1] > outs[0], seen
    for next_out, next_in in seen:
        assert next_in <= next_out, seen  # every state the engine wrote has this shape


def test_file_session_name(fixseq_cmd: Run, tmp_path: Path) -> None:
    url = f"file:{tmp_path}/a.seq?session=FIX.4.4:A->B"
    made = fixseq_cmd.json("set", url, "--next-out", "3", "--create")
    assert made["session"] == "FIX.4.4:A->B"
    # Without session= in the URL, show and set report the name the file holds.
    assert fixseq_cmd.json("show", f"file:{tmp_path}/a.seq")["session"] == "FIX.4.4:A->B"
    assert fixseq_cmd.json("set", f"file:{tmp_path}/a.seq", "--next-in", "4")["session"] == (
        "FIX.4.4:A->B"
    )
    # A URL naming another session is refused by show as by set: never two sessions in one file.
    for args in (("show",), ("set", "--next-out", "9")):
        proc = fixseq_cmd(args[0], f"file:{tmp_path}/a.seq?session=other", *args[1:], code=1)
        assert "'other'" in proc.stderr and "FIX.4.4:A->B" in proc.stderr
    assert fixseq_cmd.json("show", url)["next_out"] == 3


def test_file_corrupt(fixseq_cmd: Run, tmp_path: Path) -> None:
    path = tmp_path / "bad.seq"
    path.write_bytes(b"this is not a fixseq file at all" * 4)
    url = f"file:{path}"
    for args in (("show", url), ("set", url, "--next-out", "5"), ("reset", url, "--yes")):
        proc = fixseq_cmd(*args, code=1)
        assert len(proc.stderr.strip().splitlines()) == 1
    assert path.read_bytes() == b"this is not a fixseq file at all" * 4


# -- SQLite stores ---------------------------------------------------------------------------


def test_sqlite_sessions_and_show_all(fixseq_cmd: Run, tmp_path: Path) -> None:
    db = tmp_path / "fix.db"
    base = f"sqlite:///{db.name}"
    proc = fixseq_cmd("sessions", base, code=1)
    assert "no store at" in proc.stderr
    fixseq_cmd("show", base, code=1)
    assert not db.exists()

    names = ["FIX.4.4:BANK->BROKER", "a+b c", "\N{CHART WITH UPWARDS TREND}"]
    encoded = ["FIX.4.4%3ABANK-%3EBROKER", "a+b%20c", "%F0%9F%93%88"]
    for n, enc in enumerate(encoded, start=1):
        fixseq_cmd("set", f"{base}?session={enc}", "--next-out", str(100 * n), "--create")
    assert list_sessions(db) == sorted(names)

    listed = fixseq_cmd.json("sessions", base)
    assert listed == {"url": base, "sessions": sorted(names)}
    assert fixseq_cmd("sessions", f"{base}?session=ignored").stdout.splitlines() == sorted(names)

    everything = fixseq_cmd.json("show", base)
    assert everything["url"] == base
    sessions = everything["sessions"]
    assert isinstance(sessions, list)
    assert [s["session"] for s in sessions] == sorted(names)
    by_name = {s["session"]: s for s in sessions}
    assert by_name["a+b c"]["next_out"] == 200 and by_name["a+b c"]["next_in"] == 1
    for entry in sessions:
        assert set(entry) == {"session", "next_out", "next_in", "created"}
        _created(entry)
    table = fixseq_cmd("show", base).stdout
    assert "FIX.4.4:BANK->BROKER" in table and "300" in table

    one = fixseq_cmd.json("show", f"{base}?session=a+b%20c")
    assert one["session"] == "a+b c" and one["next_out"] == 200

    # A session that is not there: show says so and creates nothing.
    proc = fixseq_cmd("show", f"{base}?session=nobody", code=1)
    assert proc.stderr.startswith("fixseq: error: ")
    assert list_sessions(db) == sorted(names)

    reset = fixseq_cmd.json("reset", f"{base}?session=a+b%20c", "--yes")
    assert (reset["next_out"], reset["next_in"]) == (1, 1)
    with SqliteSeqStore(db, "FIX.4.4:BANK->BROKER") as store:
        assert store.peek_out() == 100  # sessions are isolated


def test_sqlite_not_a_database(fixseq_cmd: Run, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database, just bytes" * 200)
    for args in (
        ("sessions", f"sqlite:{junk}"),
        ("show", f"sqlite:{junk}"),
        ("show", f"sqlite:{junk}?session=S"),
        ("set", f"sqlite:{junk}?session=S", "--next-out", "2"),
    ):
        fixseq_cmd(*args, code=1)
    assert junk.read_bytes() == b"not a database, just bytes" * 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.db"]


def test_sqlite_needs_a_session(fixseq_cmd: Run, tmp_path: Path) -> None:
    url = f"sqlite:{tmp_path}/fix.db"
    for args in (("set", url, "--next-out", "3"), ("reset", url, "--yes"), ("bench", url)):
        proc = fixseq_cmd(*args, code=2)
        assert "?session=NAME" in proc.stderr
    assert not (tmp_path / "fix.db").exists()


def test_sqlite_set_while_engine_runs(fixseq_cmd: Run, tmp_path: Path) -> None:
    # A SQLite store is shared: an operator may set it while an engine has it open.
    url = f"sqlite:{tmp_path}/fix.db?session=S"
    with SqliteSeqStore(tmp_path / "fix.db", "S") as engine:
        engine.next_out()
        fixseq_cmd("set", url, "--next-out", "500")
        assert engine.next_out() == 500


def test_default_url_and_env(fixseq_cmd: Run, tmp_path: Path) -> None:
    # No URL and no FIXSEQ_URL: sqlite:fixseq.db?session=default in the working directory.
    fixseq_cmd("show", code=1)
    fixseq_cmd("set", "--next-out", "7", "--create")
    assert list_sessions(tmp_path / "fixseq.db") == ["default"]
    assert fixseq_cmd.json("show")["next_out"] == 7
    assert fixseq_cmd.json("sessions")["sessions"] == ["default"]
    # FIXSEQ_URL overrides the default; an explicit URL overrides FIXSEQ_URL.
    env = {"FIXSEQ_URL": f"file:{tmp_path}/env.seq"}
    fixseq_cmd("set", "--next-in", "12", "--create", env=env)
    assert fixseq_cmd.json("show", env=env)["next_in"] == 12
    assert fixseq_cmd.json("show", "sqlite:fixseq.db?session=default", env=env)["next_in"] == 1
    proc = fixseq_cmd("reset", env=env, stdin="n\n", code=1)
    assert "env.seq" in proc.stderr


# -- usage errors, bad URLs ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("frobnicate",),
        ("show", "--bogus"),
        ("show", ""),
        ("show", "mysql://h/db"),
        ("show", "file:a.seq?fsync=2"),
        ("set", "sqlite:x.db?session=S&synchronous=FAST", "--next-out", "2"),
        ("sessions", "file:a.seq"),
        ("sessions", "memory:"),
        ("bench", "--seconds", "0"),
        ("bench", "--seconds", "-1"),
        ("bench", "--seconds", "soon"),
        ("bench", "redis:x"),
    ],
)
def test_usage_errors(fixseq_cmd: Run, tmp_path: Path, args: tuple[str, ...]) -> None:
    proc = fixseq_cmd(*args, code=2)
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines()[-1].startswith("fixseq")
    assert list(tmp_path.iterdir()) == []


def test_bad_url_from_env(fixseq_cmd: Run) -> None:
    proc = fixseq_cmd("show", env={"FIXSEQ_URL": "sqlite:x.db?bogus=1"}, code=2)
    assert "unknown parameter 'bogus'" in proc.stderr


def test_help_and_version(fixseq_cmd: Run) -> None:
    text = fixseq_cmd("--help").stdout
    for command in ("show", "set", "reset", "sessions", "bench", "demo"):
        assert command in text
    assert "_demo-engine" not in text
    assert fixseq_cmd("--version").stdout.startswith("fixseq ")
    assert "FIXSEQ_URL" in fixseq_cmd("show", "--help").stdout


def test_memory_url(fixseq_cmd: Run) -> None:
    shown = fixseq_cmd.json("show", "memory:")
    assert (shown["next_out"], shown["next_in"], shown["session"]) == (1, 1, None)


# -- demo and bench ---------------------------------------------------------------------------


def test_demo(fixseq_cmd: Run, tmp_path: Path) -> None:
    env = {"FIXSEQ_URL": f"file:{tmp_path}/real-engine.seq"}
    first = fixseq_cmd("demo", env=env).stdout
    assert "SIGKILL" in first and "restarts" in first and "carries on" in first
    assert not (tmp_path / "real-engine.seq").exists()  # FIXSEQ_URL is ignored
    assert list_sessions(tmp_path / "fixseq.db") == ["demo"]
    with SqliteSeqStore(tmp_path / "fixseq.db", "demo") as store:
        after_first = store.snapshot()
    assert after_first.next_out > 5 and after_first.next_in > 5
    second = fixseq_cmd("demo").stdout
    assert "earlier demo" in second
    with SqliteSeqStore(tmp_path / "fixseq.db", "demo") as store:
        after_second = store.snapshot()
    assert after_second.next_out > after_first.next_out
    assert after_second.next_in > after_first.next_in


def test_demo_with_real_fixcore_engines(fixseq_cmd: Run) -> None:
    require("fixcore", "fixcore")
    out = fixseq_cmd("demo", "--engine", "fixcore").stdout
    assert "killed with SIGKILL" in out
    assert re.search(r"restarted and logged on with MsgSeqNum \d+; BROKER accepted it", out)
    assert "Neither engine logged 'MsgSeqNum too low'." in out


def test_bench_group_json(fixseq_cmd: Run, tmp_path: Path) -> None:
    out = fixseq_cmd.json("bench", "memory:", "--group", "--seconds", "0.2")
    results = cast("list[dict[str, Any]]", out["results"])
    loads = [r.get("load") for r in results]
    assert loads == [
        None,
        "16 threads",
        "64 asyncio tasks",
        "16 threads on 16 sessions",
        "1 thread",
    ]
    for row in results[1:]:
        assert row["ops_per_s"] > 0 and row["floor_ops_per_s"] > 0 and row["ratio"] > 0
    assert "reserve=1000" in results[4]["url"]
    assert results[4]["floor"] == "FileSeqStore(fsync=False), 1 thread"
    table = fixseq_cmd("bench", "memory:", "--group", "--seconds", "0.2").stdout
    assert "[64 asyncio tasks]" in table and "same store, 1 task" in table


def test_bench_json(fixseq_cmd: Run, tmp_path: Path) -> None:
    out = fixseq_cmd.json("bench", "--seconds", "0.2")
    assert set(out) == {"seconds", "rounds", "machine", "results"}
    assert out["seconds"] == 0.2
    machine = out["machine"]
    assert isinstance(machine, dict)
    assert {"cpus", "platform", "python", "filesystem", "directory"} <= set(machine)
    results = out["results"]
    assert isinstance(results, list)
    assert [r["url"].split(":")[0] for r in results] == ["memory", "file", "file", "sqlite"]
    assert results[2]["url"].endswith("?fsync=0")
    for result in results:
        assert set(result) == {"url", "ops_per_s", "floor", "floor_ops_per_s", "ratio"}
        assert result["ops_per_s"] > 0 and result["floor_ops_per_s"] > 0 and result["ratio"] > 0
    assert [r["floor"] for r in results] == [
        "lock-guarded increment",
        "pwrite 32 B + fdatasync",
        "pwrite 32 B (no sync)",
        "sqlite3 UPDATE+COMMIT (WAL, FULL)",
    ]
    # The temporary directory is gone; nothing is left in the working directory.
    assert not os.path.exists(str(machine["directory"]))
    assert list(tmp_path.iterdir()) == []


def test_bench_named_urls_and_table(fixseq_cmd: Run, tmp_path: Path) -> None:
    url = f"sqlite:{tmp_path}/scratch.db?session=bench&synchronous=NORMAL"
    proc = fixseq_cmd("bench", "memory:", f"file:{tmp_path}/s.seq?fsync=0", url, "--seconds", "0.1")
    assert proc.stderr == ""  # progress only when stderr is a terminal
    lines = proc.stdout.splitlines()
    assert any(line.startswith("memory:") for line in lines)
    assert any("sqlite3 UPDATE+COMMIT (WAL, NORMAL)" in line for line in lines)
    # It consumed numbers from the scratch session, and left only the stores named.
    with SqliteSeqStore(tmp_path / "scratch.db", "bench") as store:
        assert store.peek_out() > 1
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("scratch.db")) == [
        "s.seq"
    ]


def test_bench_progress_on_a_terminal(child_env: dict[str, str], tmp_path: Path) -> None:
    # stderr is a pseudo-terminal: bench shows what it measures there, and stdout stays clean.
    import pty

    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "fixseq", "bench", "memory:", "--seconds", "0.1", "--json"],
            stdout=subprocess.PIPE,
            stderr=terminal,
            cwd=tmp_path,
            env=child_env,
            timeout=120,
            check=True,
        )
        os.close(terminal)
        terminal = -1
        seen = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(controller)
        if terminal != -1:
            os.close(terminal)
    assert b"measuring memory: beside lock-guarded increment: round 5/5" in seen
    assert json.loads(proc.stdout)["results"][0]["url"] == "memory:"


def test_bench_refuses_a_held_store(fixseq_cmd: Run, held_file: Path) -> None:
    proc = fixseq_cmd("bench", f"file:{held_file}", "--seconds", "0.1", code=1)
    assert "another process" in proc.stderr


# -- PostgreSQL (FIXSEQ_PG_DSN; required under CI=true) ---------------------------------------


def test_postgres_without_the_extra(child_env: dict[str, str], tmp_path: Path) -> None:
    # As on a machine without fixseq[postgres]: psycopg cannot be imported.
    code = (
        "import sys; sys.modules['psycopg'] = None; from fixseq.cli import main; "
        "sys.exit(main(['show', 'postgresql://fix:s3cret@127.0.0.1/db?session=S']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=child_env, cwd=tmp_path
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("fixseq: error: ") and len(proc.stderr.splitlines()) == 1
    assert "pip install 'fixseq[postgres]'" in proc.stderr and "s3cret" not in proc.stderr


def test_postgres_unreachable(fixseq_cmd: Run) -> None:
    pytest.importorskip("psycopg")
    # Nothing listens on port 1 of the loopback: refused at once, a store error.
    url = "postgresql://fix:s3cret@127.0.0.1:1/db?session=S&connect_timeout=5"
    for args in (("show", url), ("set", url, "--next-out", "2"), ("sessions", url)):
        proc = fixseq_cmd(*args, code=1)
        assert "s3cret" not in proc.stderr
    proc = fixseq_cmd("show", url.replace("connect_timeout", "connect_timeoutt"), code=2)
    assert "connect_timeoutt" in proc.stderr
    proc = fixseq_cmd("show", url + "&table=bad-name", code=2)
    assert "bad-name" in proc.stderr


def test_postgres(fixseq_cmd: Run) -> None:
    table = f"fixseq_test_cli_{uuid.uuid4().hex[:8]}"
    base = pg_url(table=table)
    one = pg_url(table=table, session="FIX.4.4:A->B")
    two = pg_url(table=table, session="second")
    try:
        assert fixseq_cmd.json("sessions", base)["sessions"] == []
        fixseq_cmd("show", one, code=1)
        assert fixseq_cmd.json("set", one, "--next-out", "1005", "--create")["next_out"] == 1005
        fixseq_cmd("set", two, "--next-in", "3", "--create")
        assert fixseq_cmd.json("sessions", base)["sessions"] == ["FIX.4.4:A->B", "second"]
        everything = fixseq_cmd.json("show", base)
        sessions = everything["sessions"]
        assert isinstance(sessions, list)
        assert [(s["session"], s["next_out"], s["next_in"]) for s in sessions] == [
            ("FIX.4.4:A->B", 1005, 1),
            ("second", 1, 3),
        ]
        fixseq_cmd("reset", one, stdin="n\n", code=1)
        assert fixseq_cmd.json("reset", one, "--yes")["next_out"] == 1
        bench = fixseq_cmd.json("bench", two, "--seconds", "0.1")
        results = bench["results"]
        assert isinstance(results, list)
        assert results[0]["floor"] == "psycopg UPDATE RETURNING (autocommit)"
    finally:
        import psycopg

        with psycopg.connect(os.environ["FIXSEQ_PG_DSN"], autocommit=True) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')
