"""Store URLs: one string names a store, the way SQLAlchemy takes a database URL.

The grammar (scheme names are case-insensitive; paths and session names are
percent-decoded only, so ``+`` stays ``+`` and a space is ``%20``)::

    memory:                                         a fresh MemorySeqStore
    file:PATH  file:/abs/path  file:///abs/path     FileSeqStore
        ?fsync=0|1  ?create=0|1  ?session=NAME  ?reserve=K
    sqlite:///relative/path.db?session=NAME         SqliteSeqStore (SQLAlchemy's forms)
    sqlite:////absolute/path.db?session=NAME
    sqlite:path.db?session=NAME
        &synchronous=OFF|NORMAL|FULL|EXTRA  &create=0|1  &reserve=K
    postgresql://user:password@host:port/db?session=NAME      PostgresSeqStore
        &table=NAME  &create=0|1  &reserve=K  &<libpq parameters>  (also postgres://,
                                                               postgresql+psycopg://)

This module is the operator layer: it turns a URL into constructor arguments
and calls the stores' public constructors; it holds no store logic.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from ._file import FileSeqStore, read_file_state
from ._memory import MemorySeqStore
from ._protocols import MAX_SEQ_NUM, AdminSeqStore, AsyncAdminSeqStore
from ._rules import check_reserve
from ._sqlite import SqliteSeqStore, list_sessions, read_session_states
from .errors import InvalidSeqNumError, SeqStoreError

if TYPE_CHECKING:
    import datetime
    from types import ModuleType

__all__ = [
    "SessionInfo",
    "StoreURL",
    "list_url_sessions",
    "open_async_store",
    "open_store",
    "parse_url",
    "read_sessions",
    "redact_url",
    "store_exists",
]

Kind = Literal["memory", "file", "sqlite", "postgresql"]

_SCHEMES: dict[str, Kind] = {
    "memory": "memory",
    "file": "file",
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "postgresql+psycopg": "postgresql",
}
_BOOLS = {"0": False, "1": True, "false": False, "true": True, "no": False, "yes": True}
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
# The parameters each scheme reads itself; a postgresql URL passes every other
# one on to libpq, which checks them (see _check_libpq).
_PARAMS: dict[Kind, tuple[str, ...]] = {
    "memory": (),
    "file": ("fsync", "create", "session", "reserve"),
    "sqlite": ("session", "synchronous", "create", "reserve"),
    "postgresql": ("session", "table", "create", "reserve"),
}
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL: what to open, before anything is opened.

    Attributes:
        url: The URL as given.
        kind: ``"memory"``, ``"file"``, ``"sqlite"`` or ``"postgresql"``.
        path: The decoded path of a file or SQLite store, else ``None``.
        conninfo: The libpq URL of a PostgreSQL store (fixseq's own parameters
            removed, libpq's kept as given), else ``None``.
        session: The decoded session name, or ``None`` when the URL has none.
        fsync: A file store's ``fsync`` argument.
        synchronous: A SQLite store's ``synchronous`` argument (upper case), or
            ``None`` for the store's default.
        table: A PostgreSQL store's table, or ``None`` for the store's default.
        create: The store's ``create`` argument, or ``None`` for its default.
        reserve: The store's ``reserve`` argument (outbound numbers per durable
            write; 1, the default, reserves none ahead).
    """

    url: str
    kind: Kind
    path: str | None = None
    conninfo: str | None = None
    session: str | None = None
    fsync: bool = True
    synchronous: str | None = None
    table: str | None = None
    create: bool | None = None
    reserve: int = 1

    def __repr__(self) -> str:
        # Never show a password, even in a traceback or a log line.
        return (
            f"StoreURL({redact_url(self.url)!r}, kind={self.kind!r}, path={self.path!r}, "
            f"session={self.session!r})"
        )


@dataclass(frozen=True)
class SessionInfo:
    """One session's counters as ``fixseq show`` reports them.

    Attributes:
        session: The session's name (``None`` for a memory store, or a file
            store created without one).
        next_out: The MsgSeqNum the next outbound message will carry.
        next_in: The next inbound MsgSeqNum expected.
        created: When the counters were created or last reset (aware UTC).
    """

    session: str | None
    next_out: int
    next_in: int
    created: datetime.datetime


def _bad(url: str, problem: str) -> ValueError:
    return ValueError(f"bad store URL {redact_url(url)!r}: {problem}")


def _decode(url: str, raw: str, what: str) -> str:
    if "%" in raw and re.search(r"%(?![0-9A-Fa-f]{2})", raw):
        raise _bad(url, f"{what} has a '%' that is not a %XX escape (write '%' as %25)")
    try:
        return urllib.parse.unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise _bad(url, f"{what} is not valid UTF-8 once percent-decoded") from None


def _split_query(url: str, query: str) -> list[tuple[str, str, str]]:
    """Return ``(decoded key, raw value, raw pair)`` for each ``key=value`` of ``query``."""
    pairs: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    if not query:
        return pairs
    for raw in query.split("&"):
        key_raw, eq, value = raw.partition("=")
        key = _decode(url, key_raw, "a parameter name")
        if not key:
            raise _bad(url, "empty parameter in the query (a stray '&' or '=')")
        if not eq:
            raise _bad(url, f"parameter {key!r} has no value (write {key}=VALUE)")
        if key in seen:
            raise _bad(url, f"parameter {key!r} is given twice")
        seen.add(key)
        pairs.append((key, value, raw))
    return pairs


def _bool(url: str, key: str, raw: str) -> bool:
    value = _BOOLS.get(_decode(url, raw, key).lower())
    if value is None:
        raise _bad(url, f"{key}={raw!r} is not a boolean (use 0 or 1)")
    return value


def parse_url(url: str) -> StoreURL:
    """Parse a store URL without opening anything.

    The session is optional here (``fixseq show`` lists every session of a
    database given without one); `open_store` requires it where the
    store does.

    Args:
        url: A store URL (see the module documentation for the grammar).

    Returns:
        The parsed URL.

    Raises:
        TypeError: ``url`` is not a ``str``.
        ValueError: The URL is empty, has an unknown scheme, a missing or empty
            path, an empty session, a bad or unknown parameter, a fragment, or
            a bad percent escape; the message names the problem.
    """
    if not isinstance(url, str):
        raise TypeError(f"a store URL must be a str, not {type(url).__name__}")
    if not url.strip():
        raise ValueError(
            "empty store URL: expected memory:, file:PATH, sqlite:PATH?session=NAME "
            "or postgresql://HOST/DB?session=NAME"
        )
    match = _SCHEME_RE.match(url)
    if match is None:
        raise _bad(url, "no scheme: expected memory:, file:, sqlite: or postgresql:")
    scheme = match.group(1).lower()
    kind = _SCHEMES.get(scheme)
    if kind is None:
        if scheme.startswith(("postgresql+", "postgres+")):
            raise _bad(
                url,
                f"driver {scheme.partition('+')[2]!r} is not supported (fixseq uses "
                "psycopg: write postgresql://)",
            )
        raise _bad(url, f"unknown scheme {scheme!r}: expected memory, file, sqlite or postgresql")
    rest = url[match.end() :]
    if "#" in rest:
        raise _bad(url, "a '#' starts a fragment, which store URLs do not have (write '#' as %23)")
    body, _, query = rest.partition("?")
    params = _split_query(url, query)
    allowed = _PARAMS[kind]
    if kind != "postgresql":
        for key, _, _ in params:
            if key not in allowed:
                accepts = ", ".join(allowed) if allowed else "no parameters"
                raise _bad(url, f"unknown parameter {key!r} ({scheme}: URLs take {accepts})")
    values = {key: value for key, value, _ in params if key in allowed}

    session: str | None = None
    if "session" in values:
        session = _decode(url, values["session"], "the session")
        if not session:
            raise _bad(url, "empty session name (session= needs a value)")
    create = _bool(url, "create", values["create"]) if "create" in values else None
    reserve = _reserve(url, values["reserve"]) if "reserve" in values else 1

    if kind == "memory":
        if body not in ("", "//"):
            raise _bad(url, "memory: takes no path")
        return StoreURL(url, kind)
    if kind == "file":
        path = _file_path(url, body)
        fsync = _bool(url, "fsync", values["fsync"]) if "fsync" in values else True
        return StoreURL(
            url, kind, path=path, session=session, fsync=fsync, create=create, reserve=reserve
        )
    if kind == "sqlite":
        path = _sqlite_path(url, body)
        synchronous = None
        if "synchronous" in values:
            synchronous = _decode(url, values["synchronous"], "synchronous").upper()
            if synchronous not in _SYNCHRONOUS:
                raise _bad(
                    url,
                    f"synchronous={values['synchronous']!r} is not one of "
                    f"{', '.join(_SYNCHRONOUS)}",
                )
        return StoreURL(
            url,
            kind,
            path=path,
            session=session,
            synchronous=synchronous,
            create=create,
            reserve=reserve,
        )
    # postgresql: everything but fixseq's own parameters goes to libpq untouched.
    if not body.startswith("//"):
        raise _bad(url, "expected postgresql://[user[:password]@][host][:port][/dbname]")
    table = None
    if "table" in values:
        table = _decode(url, values["table"], "the table")
        if not table:
            raise _bad(url, "empty table name (table= needs a value)")
    libpq = [raw for key, _, raw in params if key not in allowed]
    conninfo = "postgresql:" + body + ("?" + "&".join(libpq) if libpq else "")
    return StoreURL(
        url,
        kind,
        conninfo=conninfo,
        session=session,
        table=table,
        create=create,
        reserve=reserve,
    )


def _file_path(url: str, body: str) -> str:
    if body.startswith("//"):
        host, slash, path = body[2:].partition("/")
        if host not in ("", "localhost"):
            raise _bad(
                url,
                f"file URLs name a local path, not host {host!r} (write "
                "file:relative/path or file:///absolute/path)",
            )
        body = slash + path
    path = _decode(url, body, "the path")
    if path in ("", "/"):
        raise _bad(url, "missing path (write file:relative/path or file:///absolute/path)")
    if path.endswith("/"):
        raise _bad(url, "the path names a directory; a file store is one file")
    if "\0" in path:
        raise _bad(url, "the path contains NUL")
    return path


def _sqlite_path(url: str, body: str) -> str:
    # SQLAlchemy's reading: sqlite:///rel.db is "rel.db", sqlite:////abs.db is
    # "/abs.db"; sqlite:// and sqlite:/// (its in-memory forms) have no path.
    if body.startswith("//"):
        host, _, path = body[2:].partition("/")
        if host:
            raise _bad(
                url,
                f"sqlite URLs take no host ({host!r}): write sqlite:///relative.db "
                "or sqlite:////absolute.db",
            )
        body = path
    path = _decode(url, body, "the path")
    if not path:
        raise _bad(
            url,
            "missing database path (write sqlite:///relative.db?session=NAME or "
            "sqlite:////absolute.db?session=NAME)",
        )
    if path == ":memory:":
        raise _bad(url, "an in-memory database keeps nothing across processes: use memory:")
    if path.startswith("file:"):
        raise _bad(url, "SQLite URI filenames ('file:...') are not supported: give a plain path")
    if "\0" in path:
        raise _bad(url, "the path contains NUL")
    return path


def redact_url(url: str) -> str:
    """Return ``url`` with a password in it replaced by ``***``, for messages and output.

    Args:
        url: Any string; only a ``scheme://user:password@`` part and a
            ``password=`` query parameter are changed.

    Returns:
        The URL, safe to print.
    """
    url = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*:)[^/?#@]*@", r"\1***@", url)
    # libpq also takes the password as a query parameter.
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url)


def _postgres(spec: StoreURL) -> ModuleType:
    try:
        module = importlib.import_module("fixseq.postgres")
    except ImportError as exc:
        raise ImportError(
            f"{redact_url(spec.url)!r} needs the PostgreSQL extra: pip install 'fixseq[postgres]' "
            f"({exc})"
        ) from exc
    _check_libpq(spec)
    return module


def _check_libpq(spec: StoreURL) -> None:
    """Turn a parameter libpq does not know into the ValueError every bad URL gives."""
    import psycopg.conninfo  # present: fixseq.postgres imported it

    assert spec.conninfo is not None
    try:
        psycopg.conninfo.conninfo_to_dict(spec.conninfo)
    except psycopg.ProgrammingError as exc:
        raise _bad(spec.url, f"libpq rejects it: {str(exc).strip()}") from None


def _need_session(spec: StoreURL) -> str:
    if spec.session is None:
        raise _bad(spec.url, f"{spec.kind} URLs need ?session=NAME to open a store")
    return spec.session


class _Twinned(AdminSeqStore, Protocol):
    """A built-in store: admin-capable, with an async twin over the same counters."""

    def as_async(self) -> AsyncAdminSeqStore: ...


_MAX_DIGITS = 40  # far more than MAX_SEQ_NUM has (19)


def _reserve(url: str, value: str) -> int:
    """Parse ``reserve=K``: plain decimal digits, in range by the stores' own rule.

    Raises:
        ValueError: ``value`` is not plain decimal digits.
        InvalidSeqNumError: The number is outside ``1..MAX_SEQ_NUM`` (the
            stores' message, after the URL).
    """
    if not value.isascii() or not value.isdigit():
        raise _bad(url, f"reserve={value!r} is not a whole number of at least 1")
    digits = value.lstrip("0") or "0"
    try:
        # Far past the limit (and past what int() parses): the rule's refusal of any too large.
        return check_reserve(int(digits) if len(digits) <= _MAX_DIGITS else MAX_SEQ_NUM + 1)
    except InvalidSeqNumError as exc:
        problem = str(exc)
        if len(digits) > _MAX_DIGITS:
            problem = problem.rsplit(", got ", 1)[0] + f", got a number of {len(digits)} digits"
        raise InvalidSeqNumError(f"bad store URL {redact_url(url)!r}: {problem}") from None


def _open(spec: StoreURL, *, create: bool | None = None) -> _Twinned:
    """Call the store's constructor with what the URL says (``create`` overrides the URL's)."""
    if create is None:
        create = spec.create is not False  # every store's default: create a missing one
    if spec.kind == "memory":
        return MemorySeqStore()
    if spec.kind == "file":
        assert spec.path is not None
        return FileSeqStore(
            spec.path, fsync=spec.fsync, create=create, session=spec.session, reserve=spec.reserve
        )
    session = _need_session(spec)
    if spec.kind == "sqlite":
        assert spec.path is not None
        return SqliteSeqStore(
            spec.path,
            session,
            synchronous=spec.synchronous or "FULL",
            create=create,
            reserve=spec.reserve,
        )
    table = {} if spec.table is None else {"table": spec.table}
    store: _Twinned = _postgres(spec).PostgresSeqStore(
        spec.conninfo, session, create=create, reserve=spec.reserve, **table
    )
    return store


def open_store(url: str) -> AdminSeqStore:
    """Open the store a URL names: the blocking, admin-capable kind.

    `memory:` gives a fresh `MemorySeqStore`; `file:` a `FileSeqStore`;
    `sqlite:` a `SqliteSeqStore`; `postgresql:` a `fixseq.postgres.PostgresSeqStore`
    (the URL forms: [Operations](../operations.md#store-urls)). A missing
    store is created unless the URL says `create=0`.

    Args:
        url: A store URL, for example ``"sqlite:///fixseq.db?session=FIX.4.4:BANK->BROKER"``.

    Returns:
        The open store; close it (or use it as a context manager) when done.

    Raises:
        ValueError: The URL is bad (the message names the problem), or lacks
            the `session` a SQLite or PostgreSQL store needs.
        ImportError: A ``postgresql:`` URL without the ``fixseq[postgres]`` extra installed.
        SeqStoreError: The store's own errors (corrupt, locked, unreachable...).
    """
    return _open(parse_url(url))


def open_async_store(url: str) -> AsyncAdminSeqStore:
    """Open the store a URL names as its async twin (asyncio and trio).

    The store is opened synchronously, once, as each async store's constructor
    does; inside an event loop, ``await anyio.to_thread.run_sync(open_async_store, url)``
    opens it in a worker thread.

    Args:
        url: A store URL, as for [`open_store`][fixseq.open_store].

    Returns:
        The open async store; ``await store.aclose()`` (or ``async with``) when done.

    Raises:
        ValueError: As [`open_store`][fixseq.open_store].
        ImportError: As [`open_store`][fixseq.open_store].
        SeqStoreError: As [`open_store`][fixseq.open_store].
    """
    # Each async twin's constructor builds its sync store and wraps it; as_async() is that.
    return _open(parse_url(url)).as_async()


def list_url_sessions(spec: StoreURL) -> list[str]:
    """Return the sessions of the SQLite or PostgreSQL store ``spec`` names, sorted.

    Creates nothing.

    Raises:
        ValueError: ``spec`` is not a SQLite or PostgreSQL URL.
        SeqStoreError: The database does not exist or cannot be read.
    """
    if spec.kind == "sqlite":
        assert spec.path is not None
        return list_sessions(spec.path)
    if spec.kind == "postgresql":
        module = _postgres(spec)
        kwargs = {} if spec.table is None else {"table": spec.table}
        names: list[str] = module.list_sessions(spec.conninfo, **kwargs)
        return names
    raise _bad(
        spec.url,
        f"{spec.kind} stores hold one session; only sqlite: and postgresql: "
        "stores have sessions to list",
    )


def _info(store: AdminSeqStore, session: str | None) -> SessionInfo:
    state = store.snapshot()
    return SessionInfo(session, state.next_out, state.next_in, store.creation_time())


def read_sessions(spec: StoreURL) -> list[SessionInfo]:
    """Read the counters ``fixseq show`` prints, creating nothing and taking no writer's lock.

    A file store is read without its lock, so this works while an engine
    holds it; a SQLite database is opened read-only (it works for a user who
    may only read it). A SQLite or PostgreSQL URL without a session reads
    every session of the database.

    Raises:
        SeqStoreError: The store does not exist, is corrupt or cannot be reached.
    """
    if spec.kind == "memory":
        with MemorySeqStore() as store:
            return [_info(store, None)]
    if spec.kind == "file":
        assert spec.path is not None
        found = read_file_state(spec.path)
        if spec.session is not None and found.session != spec.session:
            # As opening the store would: a URL naming another session is a mistake.
            held = "no session name" if found.session is None else repr(found.session)
            raise SeqStoreError(
                f"{spec.path} holds {held}, not session {spec.session!r}: two sessions must "
                "never share one file"
            )
        return [SessionInfo(found.session, *found.state, found.created)]
    if spec.kind == "sqlite":
        # Read-only: no write, no WAL switch, no table or row made (a user who may only
        # read the database can still look at it).
        assert spec.path is not None
        return [
            SessionInfo(name, *state)
            for name, state in read_session_states(spec.path, spec.session)
        ]
    names = [spec.session] if spec.session is not None else list_url_sessions(spec)
    infos = []
    for name in names:
        with _open(dataclasses.replace(spec, session=name), create=False) as store:
            infos.append(_info(store, name))
    return infos


def store_exists(spec: StoreURL) -> bool | None:
    """Whether the file or database ``spec`` names exists (``None``: cannot tell from here)."""
    if spec.kind in ("file", "sqlite"):
        assert spec.path is not None
        return os.path.exists(spec.path)
    return None
