"""What the engine integrations share: one store per FIX session, named losslessly.

An engine runs many sessions; an integration is configured with one URL that
names the store *without* a session (``sqlite:///fix.db``, ``file:seqs``) and
fills the session in for each FIX session it meets:

* ``sqlite:`` / ``postgresql:`` -- the session name is the full FIX session id
  (:func:`session_name`), written losslessly, so two sessions never share a row;
* ``file:DIR`` -- one file per session in ``DIR``, named by a readable slug and
  a short hash of the full id (:func:`session_file_name`); the full id is also
  stored in the file, so a file can never be opened for another session;
* ``memory:`` -- a fresh :class:`~fixseq.MemorySeqStore` per session (tests).

Nothing here imports an engine: :mod:`fixseq.fixcore` and :mod:`fixseq.quickfix`
both build on it.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, urlsplit

if TYPE_CHECKING:
    from ._protocols import AdminSeqStore

__all__ = ["check_engine_url", "open_session_store", "session_file_name", "session_name"]

_ESCAPES = str.maketrans({"%": "%25", ":": "%3A", ">": "%3E"})
_SLUG_JUNK = re.compile(r"[^A-Za-z0-9._]+")
_SCHEMES = ("memory", "file", "sqlite", "postgresql", "postgres")


def session_name(begin_string: str, sender_comp_id: str, target_comp_id: str, qualifier: str) -> str:
    """Return the fixseq session name of a FIX session id, losslessly.

    The form is QuickFIX's own ``BEGIN:SENDER->TARGET`` (``:QUALIFIER`` appended
    when there is one), with ``%``, ``:`` and ``>`` inside a field written as
    ``%25``, ``%3A`` and ``%3E``, so that the only ``:`` and ``>`` left are the
    separators: two different session ids never share a name.

    Args:
        begin_string: BeginString (8), e.g. ``"FIX.4.4"``.
        sender_comp_id: SenderCompID (49) of the local party.
        target_comp_id: TargetCompID (56) of the remote party.
        qualifier: The session qualifier, ``""`` for none.

    Returns:
        The session name, e.g. ``"FIX.4.4:BANK->BROKER"``.

    Raises:
        TypeError: A field is not a ``str``.
    """
    fields = (begin_string, sender_comp_id, target_comp_id, qualifier)
    for field in fields:
        if not isinstance(field, str):
            raise TypeError(f"session id fields must be str, not {type(field).__name__}")
    begin, sender, target, qual = (field.translate(_ESCAPES) for field in fields)
    name = f"{begin}:{sender}->{target}"
    return f"{name}:{qual}" if qual else name


def session_file_name(name: str) -> str:
    """Return the file name of session ``name`` in a ``file:DIR`` store.

    A readable slug (at most 64 characters: letters, digits, ``.`` and ``_``,
    each other run replaced by ``-``) and 16 hex digits of the SHA-256 of the
    full name, so two sessions never map to one file, whatever their ids.

    Args:
        name: A session name from :func:`session_name`.

    Returns:
        For example ``"FIX.4.4-BANK-BROKER.1f3a9c0b7d2e4f60.seq"``.
    """
    slug = _SLUG_JUNK.sub("-", name).strip("-")[:64] or "session"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{slug}.{digest}.seq"


def check_engine_url(url: str) -> str:
    """Check that ``url`` names a store for an engine integration, without a session.

    Args:
        url: ``memory:``, ``file:DIR``, ``sqlite:///PATH`` or ``postgresql://...``.

    Returns:
        The scheme, lower case (``"postgres"`` is returned as ``"postgresql"``).

    Raises:
        TypeError: ``url`` is not a ``str``.
        ValueError: The URL is empty, has an unknown scheme, or names a session
            (the integration fills in one per FIX session).
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    if not url:
        raise ValueError("empty store URL")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in _SCHEMES:
        raise ValueError(
            f"store URL {url!r}: unknown scheme {scheme!r}; "
            "use memory:, file:DIR, sqlite:///PATH or postgresql://..."
        )
    query = urlsplit(url).query
    if any(key == "session" for key, _ in parse_qsl(query, keep_blank_values=True)):
        raise ValueError(
            f"store URL {url!r} names a session; leave session= out: "
            "the integration names one session per FIX session id"
        )
    if scheme == "file" and not url[len("file:") :].split("?", 1)[0]:
        raise ValueError(f"store URL {url!r}: file: needs a directory")
    return "postgresql" if scheme == "postgres" else scheme


def _with_session(url: str, name: str) -> str:
    """Return ``url`` with ``session=NAME`` added to its query (percent-encoded)."""
    base, sep, query = url.partition("?")
    param = "session=" + quote(name, safe="")
    return f"{base}?{query}&{param}" if sep and query else f"{base}?{param}"


def open_session_store(url: str, name: str, *, create: bool = True) -> AdminSeqStore:
    """Open the store that ``url`` names for session ``name``.

    Args:
        url: A URL accepted by :func:`check_engine_url` (no ``session=``).
        name: The session name (:func:`session_name`).
        create: With ``False`` a missing store raises a ``SeqStoreError``
            instead of starting at 1 (ignored by ``memory:``).

    Returns:
        An open :class:`~fixseq.AdminSeqStore` for that one session.

    Raises:
        ValueError: The URL is malformed (see :func:`check_engine_url`).
        SeqStoreError: The store cannot be opened; ``CorruptStoreError`` when
            it exists but holds no valid state.
    """
    scheme = check_engine_url(url)
    if scheme == "memory":
        from ._memory import MemorySeqStore

        return MemorySeqStore()
    from ._urls import open_store

    if scheme == "file":
        from pathlib import Path

        from ._file import FileSeqStore
        from ._urls import parse_file_url

        directory, options = parse_file_url(url)
        Path(directory).mkdir(parents=True, exist_ok=True)
        return FileSeqStore(
            Path(directory) / session_file_name(name), **options, create=create, session=name
        )
    return open_store(_with_session(url, name), create=create)
