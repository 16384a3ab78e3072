"""``fixseq doctor``: every setting that decides whether an acknowledged number survives.

Each check gives OK, WARN or FAIL with the reason and the fix. FAIL means an
acknowledged number can be lost (and then reused) in a crash, a power cut or a
failover; WARN means it depends on something the doctor cannot see, or on
operating care. The checks per store kind:

* file: the file system of the directory (``/proc/self/mountinfo``: tmpfs and
  ramfs FAIL; overlay, NFS/CIFS and FUSE WARN), mount options that disable
  write barriers (``nobarrier``, ``barrier=0``: FAIL), ``fsync=0`` (FAIL),
  permissions broader than 0600 (WARN), and the process holding the lock
  (``/proc/locks``, its pid);
* SQLite: the same file-system checks (a network file system FAILs: SQLite's
  locking is not safe there), the journal mode, ``synchronous`` (the URL's,
  as the store uses it: NORMAL and OFF FAIL), the ``-wal`` file's size;
* PostgreSQL: ``fsync``, ``synchronous_commit``, ``full_page_writes``,
  ``synchronous_standby_names``, data checksums, the server version and the
  table's format;
* always: the store's state (as ``show``) and whether it was created in the
  last minutes (a session that should be old but was just created is the
  classic silent reset).

The doctor creates nothing and takes no lock.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import sqlite3
import stat
from typing import TYPE_CHECKING, Any, Literal

from . import cli
from ._urls import StoreURL, read_sessions, redact_url, store_exists
from .errors import SeqStoreError

if TYPE_CHECKING:
    import argparse

    import psycopg

__all__ = ["Check", "diagnose", "mount_of", "run_doctor"]

Level = Literal["OK", "WARN", "FAIL"]
RECENT = datetime.timedelta(minutes=10)
WAL_LIMIT = 64 * 1024 * 1024
_RAM_FS = ("tmpfs", "ramfs")
_NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "lustre")


@dataclasses.dataclass(frozen=True)
class Check:
    """One line of the report.

    Attributes:
        name: What was checked, e.g. ``"file system"``.
        level: ``"OK"``, ``"WARN"`` or ``"FAIL"``.
        detail: What was found, and why it matters.
        fix: What to do about it (empty when OK).
    """

    name: str
    level: Level
    detail: str
    fix: str = ""


@dataclasses.dataclass(frozen=True)
class Mount:
    """The mount a path lives on, from ``/proc/self/mountinfo``."""

    point: str
    fstype: str
    options: tuple[str, ...]


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    for code in ("040", "011", "012", "134"):
        field = field.replace("\\" + code, chr(int(code, 8)))
    return field


def mount_of(path: str, mountinfo: str = "/proc/self/mountinfo") -> Mount | None:
    """The mount ``path`` is on (the longest mount point above it, the last one mounted there).

    Returns ``None`` where there is no ``/proc`` (not Linux).
    """
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best: Mount | None = None
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 6 or len(tail) < 1:
            continue
        point = _unescape(fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if not inside or (best is not None and len(point) < len(best.point)):
            continue
        options = fields[5].split(",") + (tail[2].split(",") if len(tail) > 2 else [])
        best = Mount(point, tail[0], tuple(options))
    return best


def _filesystem_checks(directory: str, *, sqlite: bool) -> list[Check]:
    mount = mount_of(directory)
    if mount is None:
        return [Check("file system", "WARN", "unknown (no /proc/self/mountinfo)", "")]
    where = f"{directory} is on {mount.fstype} (mounted at {mount.point})"
    fstype = mount.fstype
    checks: list[Check]
    if fstype in _RAM_FS:
        checks = [
            Check(
                "file system",
                "FAIL",
                f"{where}: memory, so every number is lost at a reboot or power cut",
                "put the store on a disk file system (ext4, xfs)",
            )
        ]
    elif fstype in _NETWORK_FS or fstype.startswith("nfs"):
        checks = [
            Check(
                "file system",
                "FAIL" if sqlite else "WARN",
                f"{where}: a network file system; "
                + (
                    "SQLite's locking is not safe on it (sqlite.org/lockingv3.html)"
                    if sqlite
                    else "flock and fsync depend on the server and the mount options"
                ),
                "use a local disk" + ("" if sqlite else ", or a PostgreSQL store for two hosts"),
            )
        ]
    elif fstype == "overlay" or fstype.startswith("fuse"):
        checks = [
            Check(
                "file system",
                "WARN",
                f"{where}: "
                + (
                    "a container's writable layer, lost with the container"
                    if fstype == "overlay"
                    else "a FUSE file system, whose fsync is whatever its daemon does"
                ),
                "mount a volume on a local disk for the store",
            )
        ]
    else:
        checks = [Check("file system", "OK", where)]
    barrier_off = [o for o in mount.options if o in ("nobarrier", "barrier=0")]
    if barrier_off:
        checks.append(
            Check(
                "write barriers",
                "FAIL",
                f"mounted with {barrier_off[0]}: the disk may reorder or cache a synced write, "
                "so a power cut can lose it",
                f"remount {mount.point} without {barrier_off[0]}",
            )
        )
    else:
        checks.append(Check("write barriers", "OK", "no nobarrier or barrier=0 mount option"))
    return checks


def _mode_check(path: str) -> Check:
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError as exc:
        return Check("permissions", "WARN", f"cannot stat {path}: {exc.strerror}")
    if mode & 0o077:
        return Check(
            "permissions",
            "WARN",
            f"{path} is {mode:04o}: other users can read"
            + (" and change" if mode & 0o022 else "")
            + " it",
            f"chmod 600 {path}",
        )
    return Check("permissions", "OK", f"{path} is {mode:04o}")


def lock_holders(path: str, locks: str = "/proc/locks") -> list[int]:
    """The pids holding a lock on ``path``'s inode, from ``/proc/locks`` (Linux)."""
    try:
        info = os.stat(path)
        with open(locks, encoding="ascii", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    pids = []
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; a waiter's line has "->".
        if "->" in fields or len(fields) < 6:
            continue
        if fields[5] == wanted and fields[4].lstrip("-").isdigit():
            pids.append(int(fields[4]))
    return sorted(set(pids))


def _lock_check(path: str) -> Check:
    pids = [pid for pid in lock_holders(path) if pid > 0]
    if not pids:
        return Check("lock", "OK", "not held: no engine has the store open")
    named = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
                named.append(f"pid {pid} ({handle.read().strip()})")
        except OSError:
            named.append(f"pid {pid}")
    return Check(
        "lock",
        "WARN",
        f"held by {', '.join(named)}: set, reset, import and copy are refused while it runs",
        "stop that process before changing the store (fixseq show works while it runs)",
    )


def _file_checks(spec: StoreURL) -> list[Check]:
    assert spec.path is not None
    checks = _filesystem_checks(os.path.dirname(os.path.abspath(spec.path)), sqlite=False)
    if spec.fsync:
        checks.append(Check("fsync", "OK", "each change is synced before it is acknowledged"))
    else:
        checks.append(
            Check(
                "fsync",
                "FAIL",
                "fsync=0: a change survives a killed process, not a power cut or a kernel crash",
                "drop fsync=0 from the URL (or use reserve=K for speed, which stays durable)",
            )
        )
    if os.path.exists(spec.path):
        checks += [_mode_check(spec.path), _lock_check(spec.path)]
    return checks


def _sqlite_checks(spec: StoreURL) -> list[Check]:
    assert spec.path is not None
    checks = _filesystem_checks(os.path.dirname(os.path.abspath(spec.path)), sqlite=True)
    synchronous = spec.synchronous or "FULL"
    if synchronous in ("FULL", "EXTRA"):
        checks.append(Check("synchronous", "OK", f"synchronous={synchronous}"))
    else:
        checks.append(
            Check(
                "synchronous",
                "FAIL",
                f"synchronous={synchronous}: a commit survives a killed process but not a power "
                "cut, so the last numbers handed out can be handed out again",
                "drop synchronous= from the URL (FULL is the default)",
            )
        )
    if not os.path.exists(spec.path):
        return checks
    checks.append(_mode_check(spec.path))
    try:
        uri = "file:" + os.path.abspath(spec.path) + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=5.0)
        try:
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        checks.append(Check("journal mode", "FAIL", f"cannot read the database: {exc}"))
        return checks
    if mode == "wal":
        checks.append(Check("journal mode", "OK", "WAL"))
    elif mode in ("memory", "off"):
        checks.append(
            Check(
                "journal mode",
                "FAIL",
                f"journal_mode={mode}: a crash mid-commit can corrupt the database",
                "open it once with fixseq, which sets WAL",
            )
        )
    else:
        checks.append(
            Check("journal mode", "WARN", f"journal_mode={mode}", "open it with fixseq (WAL)")
        )
    wal = spec.path + "-wal"
    size = os.path.getsize(wal) if os.path.exists(wal) else 0
    if size > WAL_LIMIT:
        checks.append(
            Check(
                "wal file",
                "WARN",
                f"{wal} is {size // (1024 * 1024)} MiB: checkpoints are not keeping up (a "
                "reader holding a snapshot?)",
                "end long-running readers; PRAGMA wal_checkpoint(TRUNCATE)",
            )
        )
    else:
        checks.append(Check("wal file", "OK", f"{size} bytes"))
    return checks


def _setting(conn: psycopg.Connection[Any], name: str) -> str:
    row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
    return "" if row is None else str(row[0])


def _postgres_checks(spec: StoreURL) -> list[Check]:
    try:
        import psycopg
        from psycopg import sql
    except ImportError:
        return [Check("server", "FAIL", "psycopg is missing", "pip install 'fixseq[postgres]'")]
    assert spec.conninfo is not None
    checks: list[Check] = []
    try:
        with psycopg.connect(spec.conninfo, autocommit=True) as conn:
            settings = {
                name: _setting(conn, name)
                for name in (
                    "fsync",
                    "synchronous_commit",
                    "full_page_writes",
                    "synchronous_standby_names",
                    "data_checksums",
                    "server_version_num",
                    "server_version",
                )
            }
            table = spec.table or "fixseq_sessions"
            ident = sql.Identifier(*table.split("."))
            row = conn.execute(
                "SELECT obj_description(to_regclass(%s), 'pg_class'), to_regclass(%s) IS NOT NULL",
                (ident.as_string(conn), ident.as_string(conn)),
            ).fetchone()
    except psycopg.Error as exc:
        return [Check("server", "FAIL", f"cannot connect: {exc}".strip(), "check the URL")]
    bad = "an acknowledged number can be lost"
    if settings["fsync"] == "off":
        checks.append(Check("fsync", "FAIL", f"fsync=off: {bad} at a power cut", "set fsync=on"))
    else:
        checks.append(Check("fsync", "OK", "fsync=on"))
    commit = settings["synchronous_commit"]
    standbys = settings["synchronous_standby_names"]
    if commit == "off":
        checks.append(
            Check(
                "synchronous_commit",
                "FAIL",
                f"synchronous_commit=off: the server acknowledges before the WAL is flushed; "
                f"{bad} at a server crash",
                "set synchronous_commit=on (server, role, database or the URL's options)",
            )
        )
    elif commit in ("local", "remote_write") and standbys:
        checks.append(
            Check(
                "synchronous_commit",
                "WARN",
                f"synchronous_commit={commit}: the standby may not have the change on disk; "
                f"{bad} at a failover",
                "set synchronous_commit=on or remote_apply",
            )
        )
    else:
        checks.append(Check("synchronous_commit", "OK", f"synchronous_commit={commit}"))
    if settings["full_page_writes"] == "off":
        checks.append(
            Check(
                "full_page_writes",
                "FAIL",
                "full_page_writes=off: a page torn by a power cut cannot be repaired",
                "set full_page_writes=on",
            )
        )
    else:
        checks.append(Check("full_page_writes", "OK", "on"))
    if standbys:
        checks.append(Check("synchronous_standby_names", "OK", repr(standbys)))
    else:
        checks.append(
            Check(
                "synchronous_standby_names",
                "WARN",
                f"empty: no standby confirms a commit, so a failover to a standby {bad}",
                "name a synchronous standby, or never fail over to an asynchronous one",
            )
        )
    if settings["data_checksums"] == "on":
        checks.append(Check("data checksums", "OK", "on"))
    else:
        checks.append(
            Check(
                "data checksums",
                "WARN",
                "off: a damaged page is read without an error",
                "initdb --data-checksums, or pg_checksums --enable (server stopped)",
            )
        )
    version = int(settings["server_version_num"])
    if version < 130000:
        checks.append(
            Check(
                "server version",
                "WARN",
                f"PostgreSQL {settings['server_version']}: out of support",
                "upgrade PostgreSQL",
            )
        )
    else:
        checks.append(Check("server version", "OK", f"PostgreSQL {settings['server_version']}"))
    comment, exists = (row[0], bool(row[1])) if row is not None else (None, False)
    if not exists:
        checks.append(
            Check(
                "table",
                "FAIL",
                f"no table {table}",
                "check table= in the URL; fixseq creates it on first open",
            )
        )
    elif comment == "fixseq sessions table, format 1":
        checks.append(Check("table", "OK", f"{table}: fixseq format 1"))
    else:
        checks.append(
            Check(
                "table",
                "FAIL",
                f"{table} has no fixseq format marker ({comment!r})",
                "name fixseq's table with table=",
            )
        )
    return checks


def _state_checks(spec: StoreURL, now: datetime.datetime) -> list[Check]:
    try:
        if store_exists(spec) is False:
            raise SeqStoreError(f"no store at {spec.path}")
        infos = read_sessions(spec)
    except (SeqStoreError, OSError, ImportError) as exc:
        return [Check("state", "FAIL", str(exc), "check the URL, or restore the store")]
    if len(infos) != 1:
        return [Check("state", "OK", f"{len(infos)} sessions (name one with ?session=)")]
    info = infos[0]
    checks = [
        Check(
            "state",
            "OK",
            f"next out {info.next_out}, next in {info.next_in}, created "
            f"{cli._created_text(info.created)}",
        )
    ]
    age = now - info.created
    if age < RECENT:
        checks.append(
            Check(
                "created",
                "WARN",
                f"created {int(age.total_seconds())} s ago: if this session should be older, it "
                "was reset or recreated (the classic silent reset)",
                "compare with the peer's numbers before the next Logon",
            )
        )
    else:
        checks.append(Check("created", "OK", f"{cli._created_text(info.created)}"))
    return checks


def diagnose(spec: StoreURL, now: datetime.datetime | None = None) -> list[Check]:
    """Every check for the store ``spec`` names (nothing is created or locked).

    Raises:
        ValueError: A memory URL (it keeps nothing to check).
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if spec.kind == "memory":
        raise ValueError("a memory: store keeps nothing across a crash: nothing to check")
    if spec.kind == "file":
        kind_checks = _file_checks(spec)
    elif spec.kind == "sqlite":
        kind_checks = _sqlite_checks(spec)
    else:
        kind_checks = _postgres_checks(spec)
    # One line each: a driver's message may hold newlines.
    return [
        dataclasses.replace(c, detail=" ".join(c.detail.split()))
        for c in _state_checks(spec, now) + kind_checks
    ]


def run_doctor(args: argparse.Namespace) -> int:
    """The ``fixseq doctor`` command: print the checks; exit 1 exactly when one is FAIL."""
    url = cli._url(args)
    spec = cli._parse(url)
    try:
        checks = diagnose(spec)
    except ValueError as exc:
        raise cli.UsageError(str(exc)) from None
    failed = any(c.level == "FAIL" for c in checks)
    if args.json:
        cli._emit_json(
            {
                "url": redact_url(url),
                "ok": not failed,
                "checks": [dataclasses.asdict(c) for c in checks],
            }
        )
    else:
        print(f"store     {redact_url(url)}")
        width = max(len(c.name) for c in checks)
        for check in checks:
            print(f"{check.level:<4}  {check.name:<{width}}  {check.detail}")
            if check.fix:
                print(f"{'':<4}  {'':<{width}}  fix: {check.fix}")
    if failed:
        names = ", ".join(c.name for c in checks if c.level == "FAIL")
        raise cli.StoreFailure(f"doctor: FAIL in {names} (see the fix beside each)")
    return 0
