"""The ``fixseq`` command: look at and repair live stores without writing Python.

Commands (``fixseq COMMAND --help`` for each)::

    fixseq show     [URL] [--json]                   both counters and the creation time
    fixseq set      [URL] [--next-out N] [--next-in N] [--create] [--json]
    fixseq reset    [URL] [--yes] [--create] [--json]  both counters to 1
    fixseq sessions [URL] [--json]                   the sessions of a SQLite/PostgreSQL store
    fixseq bench    [URL ...] [--seconds S] [--json] next_out ops/s beside its raw floor
    fixseq demo                                      a simulated engine life, a crash, a restart

The URL defaults to ``$FIXSEQ_URL``, else ``sqlite:fixseq.db?session=default``.
Exit status: 0 success, 2 usage error (bad arguments or a bad URL), 1 store
error (missing, corrupt, locked, unreachable, an invalid value, a declined
reset), with a one-line message on stderr and no traceback; with ``--json``
on the command line an error also prints one JSON object
``{"error": MESSAGE, "exit": STATUS}`` on stdout. ``set`` and ``reset`` create
nothing unless ``--create`` is given: a typo in a path or a session name is an
error naming the close matches, never a new store.

Built on `argparse` rather than click or typer: the standard library is
enough for six subcommands, and fixseq keeps anyio as its only runtime
dependency.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from typing import TYPE_CHECKING, NoReturn

from . import MAX_SEQ_NUM, SeqStoreError, StoreLockedError, __version__
from ._bench import (
    Floor,
    lock_floor,
    machine,
    measure,
    psycopg_floor,
    pwrite_floor,
    report_table,
    sqlite_floor,
)
from ._urls import (
    SessionInfo,
    StoreURL,
    _open,
    list_url_sessions,
    open_store,
    parse_url,
    read_sessions,
    redact_url,
    store_exists,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from . import AdminSeqStore

__all__ = ["main"]

DEFAULT_URL = "sqlite:fixseq.db?session=default"
DEMO_URL = "sqlite:fixseq.db?session=demo"
ENV_URL = "FIXSEQ_URL"
BENCH_ROUNDS = 5


class UsageError(Exception):
    """The command line is wrong: exit status 2."""


class StoreFailure(Exception):
    """The store said no, or is not there: exit status 1."""


# -- helpers ------------------------------------------------------------------


def _url(args: argparse.Namespace) -> str:
    url: str | None = args.url
    if url is None:
        url = os.environ.get(ENV_URL) or DEFAULT_URL
    return url


def _parse(url: str) -> StoreURL:
    try:
        return parse_url(url)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _need_session(spec: StoreURL, command: str) -> None:
    if spec.kind in ("sqlite", "postgresql") and spec.session is None:
        raise UsageError(
            f"{command} needs one session: add ?session=NAME to {redact_url(spec.url)!r} "
            "(fixseq sessions lists them)"
        )


def _close_matches(word: str, candidates: Sequence[str]) -> str:
    """`` (did you mean 'X'?)`` naming the candidates closest to ``word``, or ``""``."""
    found = difflib.get_close_matches(word, candidates, n=3, cutoff=0.6)
    if not found:
        return ""
    return " (did you mean " + " or ".join(repr(name) for name in found) + "?)"


def _near_files(path: str) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return ""
    return _close_matches(os.path.basename(path), names)


def _need_existing(spec: StoreURL, command: str, fix: str = "") -> None:
    if store_exists(spec) is False:
        assert spec.path is not None
        raise StoreFailure(
            f"no store at {spec.path!r} ({command} creates nothing{fix}){_near_files(spec.path)}"
        )


def _need_target(spec: StoreURL, command: str, fix: str = " without --create") -> None:
    """Refuse, naming the close matches, when the store or session ``spec`` names is missing.

    A SQLite or PostgreSQL session is looked for among the database's (or
    table's) sessions; a file or database path in its directory.

    Raises:
        StoreFailure: Nothing is there to change (``command`` creates nothing, ``fix`` says
            what would).
    """
    _need_existing(spec, command, fix)
    if spec.kind in ("sqlite", "postgresql") and spec.session is not None:
        names = list_url_sessions(spec)
        if spec.session not in names:
            raise StoreFailure(
                f"no session {spec.session!r} in {redact_url(spec.url)} ({command} creates "
                f"nothing{fix}){_close_matches(spec.session, names)}"
            )


def _iso(when: datetime.datetime) -> str:
    # Always with microseconds, so every "created" has one shape.
    return when.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")


def _state_json(url: str, info: SessionInfo) -> dict[str, object]:
    return {
        "url": redact_url(url),
        "session": info.session,
        "next_out": info.next_out,
        "next_in": info.next_in,
        "created": _iso(info.created),
    }


_printed_json = [False]  # a command's own --json object went out: no second object after it


def _emit_json(obj: object) -> None:
    print(json.dumps(obj))
    _printed_json[0] = True


def _age(when: datetime.datetime) -> str:
    seconds = int((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds())
    if seconds < -1:  # a PostgreSQL server's clock may run a little ahead of ours
        return "in the future: check the clocks"
    seconds = max(seconds, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _created_text(when: datetime.datetime) -> str:
    utc = when.astimezone(datetime.timezone.utc)
    return f"{utc:%Y-%m-%d %H:%M:%S.%f} UTC ({_age(utc)})"


def _printable(name: str) -> str:
    """A session name as it is, or quoted when it holds control characters (never raw)."""
    return name if name.isprintable() else repr(name)


def _print_state(url: str, info: SessionInfo) -> None:
    print(f"store     {redact_url(url)}")
    if info.session is not None:
        print(f"session   {_printable(info.session)}")
    print(f"next out  {info.next_out}  (our next message carries MsgSeqNum {info.next_out})")
    print(f"next in   {info.next_in}  (we expect the peer's next message to carry {info.next_in})")
    print(f"created   {_created_text(info.created)}")


def _print_table(headers: list[str], rows: list[list[str]], right: set[int]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        padded = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    print(line(headers))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))


def _read_one(spec: StoreURL) -> SessionInfo:
    infos = read_sessions(spec)
    assert len(infos) == 1
    return infos[0]


def _open_writer(
    url: str, spec: StoreURL, *, create: bool = True, command: str = ""
) -> AdminSeqStore:
    """Open a store to change it; a file store an engine holds gets the operator's hint.

    With ``create`` false (set and reset without ``--create``) a missing store
    or session is a `StoreFailure` naming the close matches, and the store is
    opened with ``create=False``, so nothing is made even in a race.
    """
    if not create:
        _need_target(spec, command)
    try:
        return _open(spec, create=create)
    except StoreLockedError as exc:
        if spec.kind != "file":
            raise
        raise StoreFailure(
            f"{exc}: another process (an engine?) holds this file store; stop it first "
            "(fixseq show works while it runs)"
        ) from exc


def _session_of(store: AdminSeqStore, spec: StoreURL) -> str | None:
    """The session name as the store holds it (a file store's own name), as show reports it."""
    name = getattr(store, "session", None)
    return name if isinstance(name, str) else spec.session


def _creating(args: argparse.Namespace, spec: StoreURL) -> bool:
    """Whether set/reset may create a missing store: ``--create``, or ``create=1`` in the URL."""
    return bool(args.create) or spec.create is True


def _check_value(name: str, value: int | None) -> None:
    if value is not None and not 1 <= value <= MAX_SEQ_NUM:
        raise StoreFailure(f"invalid value: {name} must be in 1..{MAX_SEQ_NUM}, got {value}")


# -- commands -----------------------------------------------------------------


def cmd_show(args: argparse.Namespace) -> int:
    """``fixseq show``: print the counters, reading without the writer's lock."""
    url = _url(args)
    spec = _parse(url)
    _need_existing(spec, "show")
    infos = read_sessions(spec)
    listing = spec.kind in ("sqlite", "postgresql") and spec.session is None
    if args.json:
        if listing:
            _emit_json(
                {
                    "url": redact_url(url),
                    "sessions": [
                        {k: v for k, v in _state_json(url, i).items() if k != "url"} for i in infos
                    ],
                }
            )
        else:
            _emit_json(_state_json(url, infos[0]))
        return 0
    if not listing:
        _print_state(url, infos[0])
        return 0
    print(f"store     {redact_url(url)}")
    if not infos:
        print("no sessions")
        return 0
    rows = [
        [_printable(i.session or ""), str(i.next_out), str(i.next_in), _created_text(i.created)]
        for i in infos
    ]
    _print_table(["session", "next out", "next in", "created"], rows, right={1, 2})
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    """``fixseq set``: an operator's override of one or both counters."""
    if args.next_out is None and args.next_in is None:
        raise UsageError("set needs --next-out N, --next-in N or both")
    _check_value("--next-out", args.next_out)
    _check_value("--next-in", args.next_in)
    url = _url(args)
    spec = _parse(url)
    _need_session(spec, "set")
    with _open_writer(url, spec, create=_creating(args, spec), command="set") as store:
        before = store.snapshot()
        if args.next_out is not None:
            store.set_next_out(args.next_out)
        if args.next_in is not None:
            store.set_next_in(args.next_in)
        after = store.snapshot()
        info = SessionInfo(_session_of(store, spec), *after, store.creation_time())
    if args.json:
        _emit_json(_state_json(url, info))
        return 0
    print(f"store     {redact_url(url)}")
    for name, old, new in (
        ("next out", before.next_out, after.next_out),
        ("next in ", before.next_in, after.next_in),
    ):
        print(f"{name}  {old} -> {new}" if old != new else f"{name}  {new} (unchanged)")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    """``fixseq reset``: both counters to 1 (asks first unless --yes)."""
    url = _url(args)
    spec = _parse(url)
    _need_session(spec, "reset")
    create = _creating(args, spec)
    if not create:
        _need_target(spec, "reset")
    if not args.yes:
        if sys.stdin is None or sys.stdin.closed or not sys.stdin.isatty():
            # Never read an answer from a pipe or /dev/null: a script must say --yes.
            raise StoreFailure(
                f"not reset: no terminal to ask on; pass --yes to reset {redact_url(url)} "
                "without asking"
            )
        if store_exists(spec) is False:
            now = "no store there yet: it will be created"
        else:
            try:
                info = _read_one(spec)
                now = f"now next out {info.next_out}, next in {info.next_in}"
            except SeqStoreError as exc:
                now = f"current state unreadable: {exc}"
        sys.stderr.write(
            f"Reset {redact_url(url)} to next out 1, next in 1 ({now})? "
            "The peer must reset too (Logon with ResetSeqNumFlag=Y). [y/N] "
        )
        sys.stderr.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise StoreFailure("not reset: the store was left alone")
    with _open_writer(url, spec, create=create, command="reset") as store:
        before = store.snapshot()
        store.reset()
        after = store.snapshot()
        info = SessionInfo(_session_of(store, spec), *after, store.creation_time())
    if args.json:
        _emit_json(_state_json(url, info))
        return 0
    print(f"store     {redact_url(url)}")
    print(f"reset     next out {before.next_out} -> 1, next in {before.next_in} -> 1")
    print(f"created   {_created_text(info.created)}")
    return 0


def cmd_sessions(args: argparse.Namespace) -> int:
    """``fixseq sessions``: list the sessions a SQLite or PostgreSQL store holds."""
    url = _url(args)
    spec = _parse(url)
    if spec.kind not in ("sqlite", "postgresql"):
        raise UsageError(
            f"{spec.kind} stores hold one session; sessions lists sqlite: and postgresql: stores"
        )
    _need_existing(spec, "sessions")
    names = list_url_sessions(spec)
    if args.json:
        _emit_json({"url": redact_url(url), "sessions": names})
        return 0
    for name in names:
        print(_printable(name))
    return 0


def _floor_for(spec: StoreURL) -> Floor:
    if spec.kind == "memory":
        return lock_floor()
    if spec.kind == "file":
        assert spec.path is not None
        return pwrite_floor(os.path.dirname(os.path.abspath(spec.path)), sync=spec.fsync)
    if spec.kind == "sqlite":
        assert spec.path is not None
        return sqlite_floor(
            os.path.dirname(os.path.abspath(spec.path)), synchronous=spec.synchronous or "FULL"
        )
    assert spec.conninfo is not None
    return psycopg_floor(spec.conninfo)


def _default_bench_urls(directory: str) -> list[str]:
    quoted = urllib.parse.quote(directory)
    return [
        "memory:",
        f"file:{quoted}/bench.seq",
        f"file:{quoted}/bench-nosync.seq?fsync=0",
        f"sqlite:{quoted}/bench.db?session=bench",
    ]


def cmd_bench(args: argparse.Namespace) -> int:
    """``fixseq bench``: next_out ops/s of each store beside its raw floor."""
    seconds: float = args.seconds  # argparse checked it is positive and finite
    scratch: str | None = None
    progress = _progress_printer()
    try:
        if args.urls:
            urls: list[str] = list(args.urls)
            specs = [_parse(u) for u in urls]
            for spec in specs:
                _need_session(spec, "bench")
            paths = [s.path for s in specs if s.path is not None]
            directory = (
                os.path.dirname(os.path.abspath(paths[0])) if paths else tempfile.gettempdir()
            )
        else:
            scratch = tempfile.mkdtemp(prefix="fixseq-bench-")
            urls = _default_bench_urls(scratch)
            specs = [_parse(u) for u in urls]
            directory = scratch
        info = machine(directory)
        results: list[dict[str, object]] = []
        for url, spec in zip(urls, specs, strict=True):
            results.append(_bench_one(url, spec, seconds, progress))
        if args.group:
            results.extend(_bench_group(urls, specs, directory, seconds, progress))
    finally:
        if progress is not None:
            progress("")  # clear the status line, before any error message too
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        _emit_json(
            {"seconds": seconds, "rounds": BENCH_ROUNDS, "machine": info, "results": results}
        )
        return 0
    print("fixseq bench: next_out() beside its raw floor, measured interleaved in one run")
    print(
        f"({BENCH_ROUNDS} rounds, {seconds:g} s per store; medians; ratio = the store's "
        "ops/s over its floor's)"
    )
    print(
        f"machine: {info['cpus']} CPUs, {info['platform']}, {info['implementation']} "
        f"{info['python']}, SQLite {info['sqlite']}"
    )
    print(f"directory: {info['directory']} ({info['filesystem']})")
    if info["filesystem"] in ("tmpfs", "ramfs"):
        print("  note: a RAM file system: fdatasync costs nothing here; set TMPDIR to a disk")
    print()
    for line in report_table(results, str(info["directory"])):
        print(line)
    return 0


def _bench_group(
    urls: list[str],
    specs: list[StoreURL],
    directory: str,
    seconds: float,
    progress: Callable[[str], None] | None,
) -> list[dict[str, object]]:
    """The --group rows, on scratch stores in a fresh folder inside ``directory``."""
    from ._bench_group import group_rows

    postgres = next((u for u, s in zip(urls, specs, strict=True) if s.kind == "postgresql"), None)
    scratch = tempfile.mkdtemp(prefix="fixseq-bench-group-", dir=directory)
    try:
        return group_rows(scratch, seconds, postgres_url=postgres, progress=progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _bench_one(
    url: str, spec: StoreURL, seconds: float, progress: Callable[[str], None] | None
) -> dict[str, object]:
    if progress is not None:
        progress(f"opening {redact_url(url)}")
    with _open_writer(url, spec) as store:
        floor = _floor_for(spec)
        try:
            report = None
            if progress is not None:
                printer = progress

                def report(round_no: int) -> None:
                    printer(
                        f"measuring {redact_url(url)} beside {floor.name}: "
                        f"round {round_no}/{BENCH_ROUNDS}"
                    )

            result = measure(
                store.next_out, floor.op, seconds=seconds, rounds=BENCH_ROUNDS, progress=report
            )
        finally:
            floor.close()
    return {
        "url": redact_url(url),
        "ops_per_s": round(result.ops_per_s, 1),
        "floor": floor.name,
        "floor_ops_per_s": round(result.floor_ops_per_s, 1),
        "ratio": round(result.ratio, 3),
    }


def _progress_printer() -> Callable[[str], None] | None:
    """A one-line status on stderr, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        return None
    width = [0]

    def show(text: str) -> None:
        # "\r" and padding overwrite the previous status; "" clears the line.
        text = text[: max(20, shutil.get_terminal_size().columns - 1)]
        pad = " " * max(0, width[0] - len(text))
        sys.stderr.write("\r" + text + pad + ("\r" if not text else ""))
        sys.stderr.flush()
        width[0] = len(text)

    return show


# -- demo -------------------------------------------------------------------------

# What the simulated engine does before it is killed: (direction, message type, detail).
# "stamp" takes an outbound number for a message the crash stops before it is sent.
_FIRST_LIFE = [
    ("out", "Logon", "HeartBtInt=30"),
    ("in", "Logon", "HeartBtInt=30"),
    ("out", "NewOrderSingle", "ClOrdID=ORD-1 BUY 100 ACME @ 12.50"),
    ("in", "ExecutionReport", "ClOrdID=ORD-1 New"),
    ("in", "ExecutionReport", "ClOrdID=ORD-1 Filled 100 @ 12.50"),
    ("out", "NewOrderSingle", "ClOrdID=ORD-2 SELL 40 ACME @ 12.80"),
    ("in", "ExecutionReport", "ClOrdID=ORD-2 New"),
    ("stamp", "NewOrderSingle", "ClOrdID=ORD-3 BUY 10 ACME @ 12.60 (numbered, not yet sent)"),
]
_ARROWS = {
    "out": "-> sent    ",
    "in": "<- received",
    "stamp": "   numbered",
    "resend": "-> resent  ",
}


def _message_line(direction: str, seq_num: int, msg_type: str, detail: str) -> str:
    return f"     {_ARROWS[direction]}  34={seq_num:<5} {msg_type:<19} {detail}".rstrip()


def cmd_demo_engine(args: argparse.Namespace) -> int:
    """The engine ``fixseq demo`` starts and kills: it reports each step on stdout."""
    with open_store(args.url) as store:
        state = store.snapshot()
        print(f"open {state.next_out} {state.next_in}", flush=True)
        peer = state.next_in  # the peer's next MsgSeqNum, as the peer would send it
        for step, (direction, _, _) in enumerate(_FIRST_LIFE):
            if direction in ("out", "stamp"):
                seq_num = store.next_out()  # durable before the message may leave
            else:
                seq_num, peer = peer, peer + 1
                store.observed_in(seq_num)  # after the application took it
            print(f"step {step} {seq_num}", flush=True)
        print("idle", flush=True)
        sys.stdin.read()  # wait, store open, until the demo kills this process
    return 0


def _child_env() -> dict[str, str]:
    # The engine process must import the very fixseq this demo runs from.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return env


def _first_life(url: str, existed: bool) -> tuple[int, int, int]:
    """Run the engine in a child process, kill it; return (last sent, last stamped, last taken)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fixseq", _DEMO_ENGINE, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_child_env(),
    )
    watchdog = threading.Timer(60, proc.kill)  # never hang on a stuck child
    watchdog.start()
    last = {"out": 0, "stamp": 0, "in": 0}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            word, *rest = line.split()
            if word == "open":
                earlier = " (left there by an earlier demo: it carries on)" if existed else ""
                print(f"   pid {proc.pid}: next out {rest[0]}, next in {rest[1]}{earlier}")
            elif word == "step":
                direction, msg_type, detail = _FIRST_LIFE[int(rest[0])]
                seq_num = int(rest[1])
                print(_message_line(direction, seq_num, msg_type, detail))
                last[direction] = seq_num
            elif word == "idle":
                break
        else:
            proc.wait()
            assert proc.stderr is not None
            message = proc.stderr.read().strip().splitlines()
            raise StoreFailure(
                "the demo engine stopped early: " + (message[-1] if message else "no message")
            )
        print(
            f"\n2. The engine is killed with SIGKILL (pid {proc.pid}) before ORD-3 leaves:\n"
            "   no close(), no flush, no clean shutdown, as a crash or a power cut would leave it."
        )
        proc.kill()
        proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
    print(f"   exit status {proc.returncode}\n")
    return last["out"], last["stamp"], last["in"]


def _demo_fixcore() -> int:
    """``fixseq demo --engine fixcore``: two real engines, one killed and restarted."""
    # The one place the operator layer reaches an integration: imported here, at the
    # point of use, so the command works without the fixcore extra for everything else.
    from .fixcore import run_demo

    try:
        run_demo()
    except RuntimeError as exc:
        return _fail(1, str(exc))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """``fixseq demo``: a short simulated engine life, a crash and a restart."""
    if args.engine == "fixcore":
        return _demo_fixcore()
    url = DEMO_URL  # never $FIXSEQ_URL: the demo must not advance a real session
    spec = _parse(url)
    where = os.path.abspath(spec.path or "")
    existed = bool(store_exists(spec)) and "demo" in list_url_sessions(spec)
    print("fixseq demo: a FIX session's sequence numbers through a crash")
    print(f"store: {url}  (file {where})\n")
    print("1. An engine process starts, opens the store and trades; each number is stored")
    print("   before its message may leave, each inbound one after the application took it.")
    sent, stamped, taken = _first_life(url, existed)

    print("3. The engine restarts and opens the same store.")
    with open_store(url) as store:
        state = store.snapshot()
        if state.next_out <= stamped or state.next_in <= taken:
            raise StoreFailure("the store lost an acknowledged change across the crash")
        print(
            f"   next out {state.next_out}: past {sent}, the last message sent, and past "
            f"{stamped}, numbered for ORD-3 but never sent;"
        )
        print(f"   next in {state.next_in}: just past {taken}, the last message taken.")
        print("   No number is reused, and none taken is asked for again.")
        peer = state.next_in

        def receive(msg_type: str, detail: str = "") -> None:
            nonlocal peer
            store.observed_in(peer)
            print(_message_line("in", peer, msg_type, detail))
            peer += 1

        def send(msg_type: str, detail: str = "") -> None:
            print(_message_line("out", store.next_out(), msg_type, detail))

        send("Logon", "HeartBtInt=30")
        receive("Logon", "HeartBtInt=30")
        receive(
            "ResendRequest",
            f"BeginSeqNo={stamped} EndSeqNo={stamped} (the peer never got {stamped})",
        )
        print(
            _message_line(
                "resend",
                stamped,
                "SequenceReset",
                f"GapFillFlag=Y NewSeqNo={stamped + 1} PossDupFlag=Y (ORD-3 is stale: "
                "fill the gap)",
            )
        )
        receive("ExecutionReport", "ClOrdID=ORD-2 Filled 40 @ 12.80")
        send("Logout")
        receive("Logout")
        final = store.snapshot()
    print("   A gap is repaired by a GapFill; a reused number would have been a logout.\n")
    print("4. A clean logout; the store is closed.")
    print(
        f"   {os.path.basename(where)} keeps session 'demo' at next out {final.next_out}, "
        f"next in {final.next_in}.\n"
    )
    print("Look at it, set it, reset it:")
    print(f"   fixseq show '{url}'")
    print(f"   fixseq set '{url}' --next-out 1005")
    print(f"   fixseq reset '{url}'")
    print("Run fixseq demo again: it carries on from there.")
    return 0


# -- the parser --------------------------------------------------------------------


class _UsageExit(SystemExit):
    """argparse's usage error, carrying its message for the ``--json`` error object."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse's own format (usage, then "prog: error: ..."), exit status 2.
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise _UsageExit(message)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _seq_arg(text: str) -> int:
    # ASCII digits only (an optional "-" reaches the range check): int() would also take
    # full-width digits, "1_000", "+5" and " 5", none of which an operator means as a MsgSeqNum.
    if re.fullmatch(r"-?[0-9]+", text) is None:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r} (ASCII digits only)")
    return int(text)


_CREATE_HELP = "create the store or session if it is missing (otherwise an error)"
_DEMO_ENGINE = "_demo-engine"  # the child cmd_demo starts: no subcommand, so never listed


def _demo_engine_parser() -> argparse.ArgumentParser:
    engine = _Parser(prog=f"fixseq {_DEMO_ENGINE}")
    engine.add_argument("url")
    engine.set_defaults(func=cmd_demo_engine)
    return engine


def build_parser() -> argparse.ArgumentParser:
    """Return the ``fixseq`` argument parser."""
    url_help = (
        f"store URL (default: ${ENV_URL}, else {DEFAULT_URL}); e.g. file:engine.seq, "
        "sqlite:///fixseq.db?session=NAME, postgresql://user@host/db?session=NAME"
    )
    parser = _Parser(
        prog="fixseq",
        description="Look at and repair a FIX session's sequence numbers in a fixseq store.",
        epilog="Exit status: 0 success, 1 store error, 2 usage error. Docs: the Operations "
        "page of the fixseq documentation (operations).",
    )
    parser.add_argument("--version", action="version", version=f"fixseq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    show = sub.add_parser(
        "show",
        help="print both counters and the creation time",
        description="Print both counters and the creation time; a sqlite: or postgresql: "
        "URL without session= prints every session. Works while an engine holds the store; "
        "creates nothing.",
    )
    show.add_argument("url", nargs="?", metavar="URL", help=url_help)
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(func=cmd_show)

    set_ = sub.add_parser(
        "set",
        help="set the next outbound and/or inbound number",
        description="Operator override: make N the next outbound (--next-out) and/or the next "
        "expected inbound (--next-in) number. Creates nothing unless --create: a missing "
        "store or session is an error naming the close matches. Refused while an engine "
        "holds a file store.",
    )
    set_.add_argument("url", nargs="?", metavar="URL", help=url_help)
    set_.add_argument("--next-out", type=_seq_arg, metavar="N", help="next MsgSeqNum to send")
    set_.add_argument("--next-in", type=_seq_arg, metavar="N", help="next MsgSeqNum expected")
    set_.add_argument("--create", action="store_true", help=_CREATE_HELP)
    set_.add_argument("--json", action="store_true", help="print the new state as JSON")
    set_.set_defaults(func=cmd_set)

    reset = sub.add_parser(
        "reset",
        help="set both counters to 1",
        description="Set both counters to 1 and the creation time to now (a daily reset, "
        "or before a Logon with ResetSeqNumFlag=Y). Asks first on a terminal; without one "
        "(cron, a pipe) it needs --yes. Creates nothing unless --create.",
    )
    reset.add_argument("url", nargs="?", metavar="URL", help=url_help)
    reset.add_argument("-y", "--yes", action="store_true", help="do not ask")
    reset.add_argument("--create", action="store_true", help=_CREATE_HELP)
    reset.add_argument("--json", action="store_true", help="print the new state as JSON")
    reset.set_defaults(func=cmd_reset)

    sessions = sub.add_parser(
        "sessions",
        help="list the sessions of a sqlite: or postgresql: store",
        description="List the sessions a SQLite database or PostgreSQL table holds, "
        "sorted by name. Creates nothing.",
    )
    sessions.add_argument("url", nargs="?", metavar="URL", help=url_help)
    sessions.add_argument("--json", action="store_true", help="print one JSON object")
    sessions.set_defaults(func=cmd_sessions)

    bench = sub.add_parser(
        "bench",
        help="next_out ops/s of stores beside their raw floors",
        description="Measure next_out() ops/s of each store named beside its raw floor, "
        "interleaved in the same run. It consumes numbers from each URL: name scratch "
        "sessions only. Default: memory, file with and without fsync, and sqlite, in a "
        "temporary directory.",
    )
    bench.add_argument("urls", nargs="*", metavar="URL", help="stores to measure")
    bench.add_argument(
        "--seconds",
        type=_positive_float,
        default=2.0,
        metavar="S",
        help="time per store, both sides together (default 2; fractions allowed)",
    )
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument(
        "--group",
        action="store_true",
        help="also measure group commit and reservation on scratch stores: 16 threads and "
        "64 asyncio tasks on one file store, 16 threads on 16 SQLite sessions, reserve=1000 "
        "beside fsync=0, and 8 threads on the first postgresql URL named, each beside the "
        "same store used by one caller",
    )
    bench.set_defaults(func=cmd_bench)

    demo = sub.add_parser(
        "demo",
        help="a simulated engine life with a crash, in ./fixseq.db",
        description=f"Run a short simulated engine life on {DEMO_URL} in the working "
        f"directory (never ${ENV_URL}): messages out and in, a crash, a restart that "
        "carries on.",
    )
    demo.add_argument(
        "--engine",
        choices=("simulated", "fixcore"),
        default="simulated",
        help="simulated (default): one engine process on ./fixseq.db; fixcore: two real "
        "fixcore-engine sessions over 127.0.0.1 on fixseq stores in a temporary directory, "
        "one SIGKILLed and restarted (needs fixseq[fixcore])",
    )
    demo.set_defaults(func=cmd_demo)

    from ._cli_ops import register  # import, copy, doctor, reset --if-created-before, audit

    register(sub, url_help)
    return parser


def _fail(code: int, message: str, *, as_json: bool = False) -> int:
    """Print the one error line on stderr (and, with ``--json``, the error object on stdout)."""
    text = " ".join(message.split()) or "unknown error"
    print(f"fixseq: error: {text}", file=sys.stderr)
    if as_json:
        _emit_json_error(text, code)
    return code


def _emit_json_error(text: str, code: int) -> None:
    # stdout holds exactly one JSON object: a command that printed its own before failing
    # (doctor's report, then its FAIL) has said it there already.
    if _printed_json[0]:
        return
    with contextlib.suppress(OSError):  # a reader that went away gets no object
        _emit_json({"error": text, "exit": code})
        sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fixseq`` command and return its exit status.

    Args:
        argv: The arguments (without the program name); ``None`` means ``sys.argv[1:]``.

    Returns:
        0 on success, 1 on a store error, 2 on a usage error.
    """
    words = list(sys.argv[1:] if argv is None else argv)
    _printed_json[0] = False
    as_json = "--json" in words
    hidden = bool(words) and words[0] == _DEMO_ENGINE
    parser = _demo_engine_parser() if hidden else build_parser()
    try:
        args = parser.parse_args(words[1:] if hidden else words)
    except _UsageExit as exc:
        if as_json:
            _emit_json_error(" ".join(exc.message.split()), 2)
        return 2
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 2
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UsageError as exc:
        return _fail(2, str(exc), as_json=as_json)
    except StoreFailure as exc:
        return _fail(1, str(exc), as_json=as_json)
    except (SeqStoreError, OSError) as exc:
        # Every store problem (corrupt, locked, I/O, unreachable, a file's OS error), and
        # StoreLockedError / StoreIOError are OSErrors too: exit 1, never 2.
        if isinstance(exc, BrokenPipeError):
            # The reader went away (fixseq show | head): nothing more to say.
            with contextlib.suppress(OSError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            return 1
        return _fail(1, str(exc) or type(exc).__name__, as_json=as_json)
    except ValueError as exc:
        # Raised by a store's constructor (or libpq) about an argument the URL gave it;
        # parse_url's own message already starts "bad store URL".
        text = str(exc)
        if not text.startswith("bad store URL"):
            text = f"bad store URL: {text}"
        return _fail(2, text, as_json=as_json)
    except KeyboardInterrupt:
        return _fail(130, "interrupted", as_json=as_json)
    except ImportError as exc:
        return _fail(1, str(exc), as_json=as_json)
    except Exception as exc:  # one line, never a traceback, for an operator at 3 a.m.
        return _fail(1, f"{type(exc).__name__}: {exc}", as_json=as_json)
