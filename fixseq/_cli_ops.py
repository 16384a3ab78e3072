"""The operator's commands for adopting and running fixseq: import, copy, doctor, scheduled resets.

``register(sub, url_help)`` adds them to ``fixseq``'s subcommands, and adds
``--if-created-before`` and ``--reason`` to ``reset`` and ``--reason`` to
``set``. Every change a command makes (set, reset, import, copy) prints
exactly one JSON object line on stderr, the audit record: the store (its
password redacted), the session, the old and the new numbers and creation
times, and the ``--reason`` when given. Errors follow ``fixseq``'s rules: exit
1 for a store error, 2 for a usage error, one line naming the problem and the fix.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from . import cli
from ._file import FileSeqStore
from ._import import FORMATS, ForeignStoreError, ImportedSession, find_sessions, read_session
from ._schedule import ResetSchedule
from ._transfer import NewState, replace_state
from ._urls import SessionInfo, StoreURL, read_sessions, redact_url
from .errors import SeqStoreError, StoreLockedError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

__all__ = ["register"]

_UTC = datetime.timezone.utc


# -- the audit line -------------------------------------------------------------------


def _state(info: SessionInfo | None) -> dict[str, object] | None:
    if info is None:
        return None
    return {"next_out": info.next_out, "next_in": info.next_in, "created": cli._iso(info.created)}


def audit(
    command: str,
    url: str,
    before: SessionInfo | None,
    after: SessionInfo | None,
    reason: str | None,
    **extra: object,
) -> None:
    """Print the one JSON audit line of a change on stderr."""
    either = after or before
    session = either.session if either is not None else None
    record: dict[str, object] = {
        "audit": command,
        "at": cli._iso(datetime.datetime.now(_UTC)),
        "store": redact_url(url),
        "session": session,
        "old": _state(before),
        "new": _state(after),
        **extra,
    }
    if reason is not None:
        record["reason"] = reason
    sys.stderr.write(json.dumps(record) + "\n")
    sys.stderr.flush()


def _read_quietly(spec: StoreURL) -> SessionInfo | None:
    try:
        infos = read_sessions(spec)
    except (SeqStoreError, OSError, ValueError, ImportError):
        return None
    return infos[0] if len(infos) == 1 else None


def _audited(command: str, handler: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """Wrap set/reset: their own handler makes the change, this prints the audit line."""

    def run(args: argparse.Namespace) -> int:
        url = cli._url(args)
        spec = cli._parse(url)
        before = _read_quietly(spec) if spec.kind != "memory" else None
        code = handler(args)
        if code == 0:
            after = _read_quietly(spec) if spec.kind != "memory" else None
            audit(command, url, before, after, args.reason)
        return code

    return run


# -- the destination check ------------------------------------------------------------


def _refuse_unless_empty(url: str, yes: bool) -> Callable[[SessionInfo | None], None]:
    def check(current: SessionInfo | None) -> None:
        if current is None or yes or (current.next_out, current.next_in) == (1, 1):
            return
        raise cli.StoreFailure(
            f"{redact_url(url)} already holds a session at next out {current.next_out}, "
            f"next in {current.next_in}: nothing was written; add --yes to replace it"
        )

    return check


def _destination(url: str) -> StoreURL:
    spec = cli._parse(url)
    if spec.kind == "memory":
        raise cli.UsageError("a memory: destination ends with the command: name a stored URL")
    cli._need_session(spec, "the destination")
    return spec


def _write(
    url: str, spec: StoreURL, state: NewState, yes: bool
) -> tuple[SessionInfo | None, SessionInfo]:
    check = _refuse_unless_empty(url, yes)

    def decide(current: SessionInfo | None) -> NewState:
        check(current)
        return state

    try:
        before, after = replace_state(spec, decide)
    except StoreLockedError as exc:
        raise cli.StoreFailure(f"{exc}; nothing was written") from exc
    assert after is not None
    return before, after


def _print_change(url: str, before: SessionInfo | None, after: SessionInfo, what: str) -> None:
    print(f"store     {redact_url(url)}")
    if after.session is not None:
        print(f"session   {cli._printable(after.session)}")
    if before is not None:
        print(f"was       next out {before.next_out}, next in {before.next_in}")
    print(f"{what:<9} next out {after.next_out}, next in {after.next_in}")
    print(f"created   {cli._created_text(after.created)}")


# -- import ---------------------------------------------------------------------------


def _imported_json(found: ImportedSession) -> dict[str, object]:
    return {
        "session": found.name,
        "next_out": found.next_out,
        "next_in": found.next_in,
        "created": None if found.created is None else cli._iso(found.created),
        "files": list(found.files),
    }


def cmd_import(args: argparse.Namespace) -> int:
    """``fixseq import``: carry an engine's numbers over into a fixseq store."""
    fmt: str = args.format
    directory: str = args.path
    if args.list:
        if args.dest is not None or args.session is not None:
            raise cli.UsageError("import --list FORMAT PATH takes no DEST_URL and no --session")
        try:
            found = find_sessions(fmt, directory)
        except ForeignStoreError as exc:
            raise cli.StoreFailure(str(exc)) from None
        if args.json:
            cli._emit_json(
                {"format": fmt, "path": directory, "sessions": [_imported_json(f) for f in found]}
            )
            return 0
        if not found:
            print(f"no {fmt} sessions in {directory}")
            return 0
        rows = [
            [
                cli._printable(f.name),
                str(f.next_out),
                str(f.next_in),
                "-" if f.created is None else cli._created_text(f.created),
            ]
            for f in found
        ]
        cli._print_table(["session", "next out", "next in", "created"], rows, right={1, 2})
        return 0
    if args.dest is None:
        raise cli.UsageError("import needs FORMAT PATH DEST_URL (or --list FORMAT PATH)")
    spec = _destination(args.dest)
    try:
        found_one = read_session(fmt, directory, args.session)
    except ForeignStoreError as exc:
        raise cli.StoreFailure(str(exc)) from None
    state = NewState(found_one.next_out, found_one.next_in, found_one.created)
    before, after = _write(args.dest, spec, state, args.yes)
    source = {"format": fmt, "path": os.path.abspath(directory), "session": found_one.name}
    audit("import", args.dest, before, after, args.reason, source=source)
    if args.json:
        cli._emit_json({**cli._state_json(args.dest, after), "source": source})
        return 0
    print(f"from      {fmt} {os.path.join(directory, found_one.name)}.*")
    _print_change(args.dest, before, after, "imported")
    return 0


# -- copy -----------------------------------------------------------------------------


def cmd_copy(args: argparse.Namespace) -> int:
    """``fixseq copy``: one session from one store to another, of any kinds."""
    source = cli._parse(args.src)
    if source.kind == "memory":
        raise cli.UsageError("a memory: source holds nothing: name a stored URL")
    cli._need_session(source, "copy")
    spec = _destination(args.dest)
    if redact_url(args.src) == redact_url(args.dest):
        raise cli.UsageError("copy needs two different stores")
    if source.kind == "file":
        assert source.path is not None
        try:
            held = FileSeqStore(source.path, create=False, session=source.session)
        except StoreLockedError as exc:
            raise cli.StoreFailure(
                f"{exc}: the source is held by a running engine (another process holds its "
                "lock); stop it first, so the numbers cannot move on after the copy"
            ) from exc
        # The source stays open, locked, until the destination is written.
        with held:
            state = held.snapshot()
            copied = NewState(state.next_out, state.next_in, held.creation_time())
            before, after = _write(args.dest, spec, copied, args.yes)
    else:
        info = read_sessions(source)[0]
        copied = NewState(info.next_out, info.next_in, info.created)
        before, after = _write(args.dest, spec, copied, args.yes)
    audit("copy", args.dest, before, after, args.reason, source=redact_url(args.src))
    if args.json:
        cli._emit_json({**cli._state_json(args.dest, after), "source": redact_url(args.src)})
        return 0
    print(f"from      {redact_url(args.src)}")
    _print_change(args.dest, before, after, "copied")
    return 0


# -- reset --if-created-before ---------------------------------------------------------


def _scheduled_reset(args: argparse.Namespace) -> int:
    try:
        schedule = ResetSchedule.parse(args.if_created_before)
    except ValueError as exc:
        raise cli.UsageError(str(exc)) from None
    url = cli._url(args)
    spec = cli._parse(url)
    if spec.kind == "memory":
        raise cli.UsageError("a memory: store ends with the command: nothing to reset")
    cli._need_session(spec, "reset")
    now = datetime.datetime.now(_UTC)
    last, following = schedule.last_instant(now), schedule.next_instant(now)
    # As a plain reset: a missing store or session is an error naming the close matches
    # (a scheduled reset never creates one, --create or not: there is nothing to reset).
    cli._need_target(spec, "reset --if-created-before", ": nothing to reset")
    current = read_sessions(spec)[0]
    due = schedule.is_due(current.created, now)
    if due and not args.yes:
        if not sys.stdin.isatty():
            raise cli.StoreFailure(
                "not reset: no terminal to ask on; add --yes to reset without asking (cron)"
            )
        sys.stderr.write(
            f"Reset {redact_url(url)} to next out 1, next in 1 (now next out "
            f"{current.next_out}, next in {current.next_in}; created before {cli._iso(last)})? "
            "[y/N] "
        )
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            raise cli.StoreFailure("not reset: the store was left alone")

    def decide(found: SessionInfo | None) -> NewState | None:
        # Decided again under the store's exclusion: a second host's cron run that got
        # here first has reset it already, and this run then leaves it alone.
        if found is None:
            raise cli.StoreFailure(f"no session at {redact_url(url)}: nothing to reset")
        return NewState(1, 1) if schedule.is_due(found.created, now) else None

    before: SessionInfo | None = current
    after: SessionInfo | None = None
    if due:
        try:
            before, after = replace_state(spec, decide)
        except StoreLockedError as exc:
            raise cli.StoreFailure(f"{exc}; not reset") from exc
    if after is not None:
        audit("reset", url, before, after, args.reason, schedule=str(schedule))
    shown = after or before
    assert shown is not None
    if args.json:
        cli._emit_json(
            {
                **cli._state_json(url, shown),
                "reset": after is not None,
                "schedule": str(schedule),
                "last_scheduled": cli._iso(last),
                "next_scheduled": cli._iso(following),
            }
        )
        return 0
    print(f"store     {redact_url(url)}")
    if after is not None and before is not None:
        print(f"reset     next out {before.next_out} -> 1, next in {before.next_in} -> 1")
        print(f"          (created {cli._iso(before.created)}, before {cli._iso(last)})")
    else:
        print(f"not due   created {cli._created_text(shown.created)},")
        print(f"          not before the last scheduled reset {cli._iso(last)} ({schedule})")
    print(f"next      {cli._iso(following)}")
    return 0


def _reset_handler(original: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    plain = _audited("reset", original)

    def run(args: argparse.Namespace) -> int:
        if args.if_created_before is not None:
            return _scheduled_reset(args)
        return plain(args)

    return run


# -- doctor ---------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    """``fixseq doctor``: the settings that decide whether an acknowledged number survives."""
    from ._doctor import run_doctor

    return run_doctor(args)


# -- registration ---------------------------------------------------------------------

_REASON_HELP = "why: recorded in the JSON audit line on stderr"


def register(sub: argparse._SubParsersAction[Any], url_help: str) -> None:
    """Add import, copy and doctor, and the scheduled-reset and audit options of set and reset."""
    set_ = sub.choices["set"]
    set_.add_argument("--reason", metavar="TEXT", help=_REASON_HELP)
    set_.set_defaults(func=_audited("set", set_.get_default("func")))

    reset = sub.choices["reset"]
    reset.add_argument(
        "--if-created-before",
        metavar="SCHEDULE",
        help="reset only if the store was created before the most recent 'HH:MM ZONE' or "
        "'Sun HH:MM ZONE' (IANA zone) instant: safe to run twice, from cron on both hosts",
    )
    reset.add_argument("--reason", metavar="TEXT", help=_REASON_HELP)
    reset.set_defaults(func=_reset_handler(reset.get_default("func")))

    imp = sub.add_parser(
        "import",
        help="carry another engine's numbers over into a fixseq store",
        description="Read a session's numbers and creation time from a QuickFIX, QuickFIX/J, "
        "QuickFIX/Go or fixcore-engine store directory and write them to DEST_URL in one "
        "atomic change. Anything damaged or ambiguous is refused and nothing is written. "
        "With --list, print the sessions found.",
    )
    imp.add_argument("format", choices=FORMATS, metavar="FORMAT", help=", ".join(FORMATS))
    imp.add_argument("path", metavar="PATH", help="the engine's store directory")
    imp.add_argument("dest", nargs="?", metavar="DEST_URL", help=url_help)
    imp.add_argument(
        "--session",
        metavar="ID",
        help="BEGINSTRING:SENDER->TARGET or the engine's file prefix (FIX.4.4-BANK-BROKER); "
        "needed when PATH holds more than one session",
    )
    imp.add_argument("--list", action="store_true", help="list the sessions in PATH")
    imp.add_argument("-y", "--yes", action="store_true", help="replace a session with numbers")
    imp.add_argument("--json", action="store_true", help="print one JSON object")
    imp.add_argument("--reason", metavar="TEXT", help=_REASON_HELP)
    imp.set_defaults(func=cmd_import)

    copy = sub.add_parser(
        "copy",
        help="copy a session between stores of any kinds",
        description="Copy next out, next in and the creation time from SRC_URL to DEST_URL "
        "in one atomic change on the destination. A file source is read under its lock "
        "(refused while an engine holds it). A destination with numbers is refused unless "
        "--yes.",
    )
    copy.add_argument("src", metavar="SRC_URL", help="the store to copy from")
    copy.add_argument("dest", metavar="DEST_URL", help="the store to copy to")
    copy.add_argument("-y", "--yes", action="store_true", help="replace a session with numbers")
    copy.add_argument("--json", action="store_true", help="print one JSON object")
    copy.add_argument("--reason", metavar="TEXT", help=_REASON_HELP)
    copy.set_defaults(func=cmd_copy)

    doctor = sub.add_parser(
        "doctor",
        help="check that acknowledged numbers survive a crash, a power cut and a failover",
        description="Report each setting of the store a URL names that decides whether an "
        "acknowledged number survives a process crash, a power cut and a failover: OK, WARN "
        "or FAIL with the reason and the fix. Exit 1 when anything is FAIL. Creates nothing.",
    )
    doctor.add_argument("url", nargs="?", metavar="URL", help=url_help)
    doctor.add_argument("--json", action="store_true", help="print one JSON object")
    doctor.set_defaults(func=cmd_doctor)
