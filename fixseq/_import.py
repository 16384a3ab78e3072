"""Reading other engines' stores: the numbers a session moving to fixseq must carry over.

One pure parser per on-disk file (bytes in, numbers out, or
:class:`ForeignStoreError`), and a small I/O layer that finds a session's files
in an engine's store directory. The layouts, as the engines write them:

``quickfix`` (QuickFIX C++ ``FileStore``, also the Python bindings)
    ``PREFIX.seqnums``: ``"%010d : %010d"`` (1.15, 23 bytes) or ``"%020d : %020d"``
    (1.16 and later, 43 bytes), next sender then next target, no newline,
    rewritten in place; ``PREFIX.session``: the creation time,
    ``YYYYMMDD-HH:MM:SS[.sss]`` UTC. ``PREFIX`` is ``BEGIN-SENDER-TARGET[-QUALIFIER]``.
``quickfixj`` (QuickFIX/J ``FileStore`` or ``CachedFileStore``)
    ``FileStore``: ``PREFIX.senderseqnums`` and ``PREFIX.targetseqnums``, each
    ``DataOutput.writeUTF`` of the decimal number (a 2-byte big-endian length,
    then the digits) rewritten at offset 0 and never truncated, so bytes after
    the string may be left from a longer number (``readUTF`` ignores them, and
    so does this reader); ``CachedFileStore``: ``PREFIX.seqnums``,
    ``writeUTF("SENDER:TARGET")``. Both: ``PREFIX.session``,
    ``writeUTF("yyyyMMdd-HH:mm:ss.SSS")`` UTC. Numbers are Java ``int``.
``quickfixgo`` (QuickFIX/Go file store)
    ``PREFIX.senderseqnums`` and ``PREFIX.targetseqnums``: ``"%019d"``
    rewritten in place; ``PREFIX.session``: ``time.MarshalText`` (RFC 3339,
    nanoseconds, an offset).
``fixcore`` (fixcore-engine ``FileStore``)
    ``PREFIX.seqnums``: the lines ``sender=N``, ``target=N`` and
    ``creation=ISO-8601``, each ending in a newline, replaced atomically.

Each parser accepts exactly what its engine writes and its reader would take,
and refuses everything else (empty, truncated, non-digits, a sign, zero, a
number past the engine's or fixseq's range, a missing sibling): it never
guesses 1, which is what every one of these engines does with a damaged file.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re

from ._protocols import MAX_SEQ_NUM

__all__ = [
    "FORMATS",
    "ForeignStoreError",
    "ImportedSession",
    "find_sessions",
    "parse_fixcore_seqnums",
    "parse_java_utf",
    "parse_quickfix_seqnums",
    "parse_quickfixgo_seqnum",
    "parse_quickfixgo_session",
    "parse_quickfixj_cached_seqnums",
    "parse_quickfixj_seqnum",
    "parse_utc_stamp",
    "read_session",
    "session_prefix",
]

FORMATS = ("quickfix", "quickfixj", "quickfixgo", "fixcore")
JAVA_INT_MAX = 2**31 - 1
_MAX_FILE = 4096  # every file read here is a few dozen bytes
_UTC = datetime.timezone.utc
_DIGITS = re.compile(rb"[0-9]+")
_QF_SHORT = re.compile(rb"([0-9]{10}) : ([0-9]{10})")
_QF_LONG = re.compile(rb"([0-9]{20}) : ([0-9]{20})")
_STAMP = re.compile(
    r"([0-9]{8})-([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{3}|[0-9]{6}|[0-9]{9}))?"
)
_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})"
)
_SESSION_ID = re.compile(r"([^:]+):([^:]+)->([^:]+?)(?::([^:]+))?")
_JAVA_ILLEGAL = re.compile(r"[^a-zA-Z0-9.\-]")


class ForeignStoreError(ValueError):
    """An engine's store file that cannot be read exactly; nothing was imported.

    The message names the file and what is wrong with it.
    """


@dataclasses.dataclass(frozen=True)
class ImportedSession:
    """One session as an engine's store holds it.

    Attributes:
        name: The engine's file prefix, e.g. ``FIX.4.4-BANK-BROKER``.
        next_out: The next outbound MsgSeqNum (the engine's next sender number).
        next_in: The next expected inbound MsgSeqNum (the engine's next target number).
        created: The creation time the engine kept (aware UTC, to fixseq's
            microsecond precision), or ``None`` when it keeps none.
        files: The files the numbers were read from.
    """

    name: str
    next_out: int
    next_in: int
    created: datetime.datetime | None
    files: tuple[str, ...]


def _fail(path: str, problem: str) -> ForeignStoreError:
    return ForeignStoreError(f"{path}: {problem}; nothing was imported")


def _number(raw: bytes, path: str, what: str, limit: int) -> int:
    shown = raw[:40].decode("ascii", "backslashreplace")
    if not raw:
        raise _fail(path, f"{what} is empty")
    if raw[:1] == b"-":
        raise _fail(path, f"{what} is negative ({shown!r})")
    if _DIGITS.fullmatch(raw) is None:
        raise _fail(path, f"{what} is not a decimal number ({shown!r})")
    value = int(raw)
    if value == 0:
        raise _fail(path, f"{what} is 0: a MsgSeqNum starts at 1")
    if value > limit:
        raise _fail(path, f"{what} {value} is out of range (at most {limit})")
    return value


# -- pure parsers ---------------------------------------------------------------------


def parse_quickfix_seqnums(data: bytes, path: str) -> tuple[int, int]:
    """QuickFIX C++ ``.seqnums``: ``(next_out, next_in)``.

    Exactly 23 bytes (``%010d : %010d``, QuickFIX 1.15, C ``int`` numbers) or
    43 bytes (``%020d : %020d``, later versions, at most ``MAX_SEQ_NUM``).

    Raises:
        ForeignStoreError: Anything else.
    """
    for layout, limit in ((_QF_SHORT, JAVA_INT_MAX), (_QF_LONG, MAX_SEQ_NUM)):
        match = layout.fullmatch(data)
        if match is not None:
            return (
                _number(match[1], path, "the sender number", limit),
                _number(match[2], path, "the target number", limit),
            )
    if not data:
        raise _fail(path, "the file is empty")
    if b"-" in data:
        raise _fail(path, "a number is negative")
    raise _fail(
        path,
        f"{len(data)} bytes, not QuickFIX's 'NNNNNNNNNN : NNNNNNNNNN' (23 bytes) or its "
        "20-digit form (43 bytes): truncated or damaged",
    )


def parse_utc_stamp(text: str, path: str) -> datetime.datetime:
    """A FIX UTCTimestamp as QuickFIX C++ and QuickFIX/J write it: ``YYYYMMDD-HH:MM:SS[.fff]``.

    Raises:
        ForeignStoreError: Another shape, or no such date.
    """
    match = _STAMP.fullmatch(text)
    if match is None:
        raise _fail(path, f"creation time {text[:40]!r} is not YYYYMMDD-HH:MM:SS[.sss]")
    day, hour, minute, second, fraction = match.groups()
    try:
        value = datetime.datetime.strptime(f"{day}{hour}{minute}{second}", "%Y%m%d%H%M%S")
    except ValueError:
        raise _fail(path, f"creation time {text!r} is no such date") from None
    micros = int((fraction or "0").ljust(9, "0")[:6])
    return value.replace(microsecond=micros, tzinfo=_UTC)


def parse_java_utf(data: bytes, path: str) -> str:
    """The string ``DataOutput.writeUTF`` wrote at offset 0 (bytes after it are ignored).

    Raises:
        ForeignStoreError: Empty, truncated, or not ASCII (fixseq's strings are).
    """
    if not data:
        raise _fail(path, "the file is empty")
    if len(data) < 2:
        raise _fail(path, "truncated: 1 byte, not a Java writeUTF length")
    length = int.from_bytes(data[:2], "big")
    if length == 0:
        raise _fail(path, "holds an empty string")
    if len(data) < 2 + length:
        raise _fail(path, f"truncated: the string is {length} bytes, the file has {len(data) - 2}")
    raw = data[2 : 2 + length]
    if not raw.isascii():
        raise _fail(path, "the string is not ASCII")
    return raw.decode("ascii")


def parse_quickfixj_seqnum(data: bytes, path: str) -> int:
    """QuickFIX/J ``FileStore`` ``.senderseqnums`` or ``.targetseqnums``: one Java ``int``.

    Raises:
        ForeignStoreError: As :func:`parse_java_utf`, or not a number in 1..2**31-1.
    """
    return _number(parse_java_utf(data, path).encode(), path, "the number", JAVA_INT_MAX)


def parse_quickfixj_cached_seqnums(data: bytes, path: str) -> tuple[int, int]:
    """QuickFIX/J ``CachedFileStore`` ``.seqnums``: ``writeUTF("SENDER:TARGET")``.

    Raises:
        ForeignStoreError: As :func:`parse_java_utf`, no single ``:``, or a bad number.
    """
    text = parse_java_utf(data, path)
    parts = text.split(":")
    if len(parts) != 2:
        raise _fail(path, f"{text[:40]!r} is not SENDER:TARGET")
    return (
        _number(parts[0].encode(), path, "the sender number", JAVA_INT_MAX),
        _number(parts[1].encode(), path, "the target number", JAVA_INT_MAX),
    )


def parse_quickfixgo_seqnum(data: bytes, path: str) -> int:
    """QuickFIX/Go ``.senderseqnums`` or ``.targetseqnums``: ``%019d`` (trailing CR/LF allowed).

    Exactly 19 digits: Go writes no fewer, so fewer means a truncated file.

    Raises:
        ForeignStoreError: Anything else, or a number past ``MAX_SEQ_NUM``.
    """
    raw = data.strip(b"\r\n")
    if not raw:
        raise _fail(path, "the file is empty")
    if raw[:1] == b"-":
        raise _fail(path, "the number is negative")
    if _DIGITS.fullmatch(raw) and len(raw) != 19:
        raise _fail(path, f"{len(raw)} digits, not QuickFIX/Go's 19: truncated or damaged")
    return _number(raw, path, "the number", MAX_SEQ_NUM)


def parse_quickfixgo_session(data: bytes, path: str) -> datetime.datetime:
    """QuickFIX/Go ``.session``: Go's ``time.MarshalText`` (RFC 3339 with an offset).

    Nanoseconds are cut to microseconds (fixseq's precision).

    Raises:
        ForeignStoreError: Another shape (a truncated stamp loses its offset).
    """
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise _fail(path, "the creation time is not ASCII") from None
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise _fail(path, f"creation time {text[:40]!r} is not RFC 3339 with an offset")
    base, fraction, offset = match.groups()
    micros = (fraction or "").ljust(6, "0")[:6]
    iso = f"{base}.{micros}{'+00:00' if offset == 'Z' else offset}"
    try:
        return datetime.datetime.fromisoformat(iso).astimezone(_UTC)
    except ValueError:
        raise _fail(path, f"creation time {text!r} is no such date") from None


def parse_fixcore_seqnums(data: bytes, path: str) -> tuple[int, int, datetime.datetime]:
    """fixcore-engine ``.seqnums``: ``(next_out, next_in, created)``.

    Exactly the lines ``sender=N``, ``target=N`` and ``creation=ISO`` (with an
    offset), each once and each ending in a newline.

    Raises:
        ForeignStoreError: Anything else.
    """
    if not data:
        raise _fail(path, "the file is empty")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise _fail(path, "not text") from None
    if not text.endswith("\n"):
        raise _fail(path, "the last line has no newline: truncated")
    fields: dict[str, str] = {}
    for line in text[:-1].split("\n"):
        key, sep, value = line.partition("=")
        if not sep or key not in ("sender", "target", "creation"):
            raise _fail(path, f"unexpected line {line[:40]!r}")
        if key in fields:
            raise _fail(path, f"{key}= appears twice")
        fields[key] = value
    missing = [k for k in ("sender", "target", "creation") if k not in fields]
    if missing:
        raise _fail(path, f"no {'=, no '.join(missing)}= line: truncated or damaged")
    try:
        created = datetime.datetime.fromisoformat(fields["creation"])
    except ValueError:
        created = None
    if created is None or created.utcoffset() is None:
        raise _fail(path, f"creation {fields['creation'][:40]!r} is not ISO 8601 with an offset")
    return (
        _number(fields["sender"].encode(), path, "sender", MAX_SEQ_NUM),
        _number(fields["target"].encode(), path, "target", MAX_SEQ_NUM),
        created.astimezone(_UTC),
    )


# -- sessions and files ---------------------------------------------------------------

# The suffixes that mark a session of each format; a prefix found by any of them is a session.
_SUFFIXES = {
    "quickfix": (".seqnums", ".session"),
    "quickfixj": (".senderseqnums", ".targetseqnums", ".seqnums", ".session"),
    "quickfixgo": (".senderseqnums", ".targetseqnums", ".session"),
    "fixcore": (".seqnums",),
}


def session_prefix(session: str, fmt: str) -> str:
    """The engine's file prefix for ``--session``: ``BEGIN:SENDER->TARGET[:QUALIFIER]`` or a prefix.

    ``FIX.4.4:BANK->BROKER`` becomes ``FIX.4.4-BANK-BROKER`` (QuickFIX/J also
    replaces each character outside ``[A-Za-z0-9.-]`` with ``_``, as it does);
    anything else is taken as the prefix itself.
    """
    match = _SESSION_ID.fullmatch(session)
    if match is None:
        return session
    begin, sender, target, qualifier = match.groups()
    prefix = f"{begin}-{sender}-{target}" + (f"-{qualifier}" if qualifier else "")
    return _JAVA_ILLEGAL.sub("_", prefix) if fmt == "quickfixj" else prefix


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_FILE + 1)
    except FileNotFoundError:
        raise _fail(path, "missing (the engine writes it beside the others)") from None
    except OSError as exc:
        raise _fail(path, f"cannot be read: {exc.strerror}") from None
    if len(data) > _MAX_FILE:
        raise _fail(path, f"over {_MAX_FILE} bytes: not a sequence-number file")
    return data


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")


def _prefixes(fmt: str, directory: str) -> list[str]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        raise ForeignStoreError(f"{directory}: no such directory; nothing was imported") from None
    except NotADirectoryError:
        raise ForeignStoreError(
            f"{directory}: not a directory (give the engine's store directory)"
        ) from None
    found = set()
    for name in names:
        for suffix in _SUFFIXES[fmt]:
            if name.endswith(suffix) and len(name) > len(suffix):
                found.add(name[: -len(suffix)])
    return sorted(found)


def _load(fmt: str, directory: str, prefix: str) -> ImportedSession:
    base = os.path.join(directory, prefix)
    if fmt == "fixcore":
        path = base + ".seqnums"
        next_out, next_in, created = parse_fixcore_seqnums(_read(path), path)
        return ImportedSession(prefix, next_out, next_in, created, (path,))
    session_path = base + ".session"
    if fmt == "quickfix":
        path = base + ".seqnums"
        next_out, next_in = parse_quickfix_seqnums(_read(path), path)
        stamp = _read(session_path)
        try:
            text = stamp.decode("ascii")
        except UnicodeDecodeError:
            raise _fail(session_path, "the creation time is not ASCII") from None
        created = parse_utc_stamp(text, session_path)
        return ImportedSession(prefix, next_out, next_in, created, (path, session_path))
    sender, target = base + ".senderseqnums", base + ".targetseqnums"
    if fmt == "quickfixgo":
        next_out = parse_quickfixgo_seqnum(_read(sender), sender)
        next_in = parse_quickfixgo_seqnum(_read(target), target)
        created = parse_quickfixgo_session(_read(session_path), session_path)
        return ImportedSession(prefix, next_out, next_in, created, (sender, target, session_path))
    cached = base + ".seqnums"
    has_split = os.path.lexists(sender) or os.path.lexists(target)
    if has_split and os.path.lexists(cached):
        raise _fail(
            cached,
            "ambiguous: both a FileStore (.senderseqnums/.targetseqnums) and a "
            "CachedFileStore (.seqnums) for this session; remove the stale one",
        )
    created = parse_utc_stamp(parse_java_utf(_read(session_path), session_path), session_path)
    if has_split:
        next_out = parse_quickfixj_seqnum(_read(sender), sender)
        next_in = parse_quickfixj_seqnum(_read(target), target)
        return ImportedSession(prefix, next_out, next_in, created, (sender, target, session_path))
    next_out, next_in = parse_quickfixj_cached_seqnums(_read(cached), cached)
    return ImportedSession(prefix, next_out, next_in, created, (cached, session_path))


def find_sessions(fmt: str, directory: str) -> list[ImportedSession]:
    """Every session of format ``fmt`` in an engine's store directory, sorted by prefix.

    Raises:
        ValueError: ``fmt`` is not one of :data:`FORMATS`.
        ForeignStoreError: The directory is missing, or a session's files are
            damaged (the message names the file).
    """
    _check_format(fmt)
    return [_load(fmt, directory, prefix) for prefix in _prefixes(fmt, directory)]


def read_session(fmt: str, directory: str, session: str | None) -> ImportedSession:
    """The one session ``session`` names (or the only one there when ``None``).

    Raises:
        ValueError: ``fmt`` is not one of :data:`FORMATS`.
        ForeignStoreError: No such session, several and none named (ambiguous),
            or its files are missing or damaged.
    """
    _check_format(fmt)
    prefixes = _prefixes(fmt, directory)
    if session is None:
        if not prefixes:
            raise ForeignStoreError(f"{directory}: no {fmt} session files; nothing was imported")
        if len(prefixes) > 1:
            raise ForeignStoreError(
                f"{directory}: ambiguous, {len(prefixes)} sessions ({', '.join(prefixes)}): "
                "name one with --session; nothing was imported"
            )
        return _load(fmt, directory, prefixes[0])
    prefix = session_prefix(session, fmt)
    if prefix not in prefixes:
        known = ", ".join(prefixes) or "none"
        raise ForeignStoreError(
            f"{directory}: no {fmt} session {prefix!r} (found: {known}); nothing was imported"
        )
    return _load(fmt, directory, prefix)
