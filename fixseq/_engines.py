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

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ._urls import StoreURL, _open, parse_url, redact_url

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._protocols import AdminSeqStore

__all__ = [
    "check_engine_url",
    "close_all",
    "open_session_store",
    "session_file_name",
    "session_name",
]

_ESCAPES = str.maketrans({"%": "%25", ":": "%3A", ">": "%3E"})
_SLUG_JUNK = re.compile(r"[^A-Za-z0-9._]+")


def session_name(
    begin_string: str, sender_comp_id: str, target_comp_id: str, qualifier: str
) -> str:
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
    slug = _SLUG_JUNK.sub("-", name).strip("-.")[:64] or "session"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{slug}.{digest}.seq"


def check_engine_url(url: str) -> StoreURL:
    """Parse a URL naming a store for an engine integration, without a session.

    Args:
        url: ``memory:``, ``file:DIR``, ``sqlite:///PATH`` or ``postgresql://...``
            (the grammar of :func:`fixseq.open_store`, without ``session=``).

    Returns:
        The parsed URL.

    Raises:
        TypeError: ``url`` is not a ``str``.
        ValueError: The URL is malformed (see :func:`fixseq.open_store`) or
            names a session (the integration fills in one per FIX session).
    """
    if isinstance(url, str) and url[:5].lower() == "file:":
        # file:DIR/ names the same directory as file:DIR (a file store URL
        # may not end in "/", but here the path is a directory).
        base, sep, query = url.partition("?")
        stripped = base.rstrip("/")
        if len(stripped) > len("file:") and stripped.lower() not in ("file:", "file:/"):
            url = stripped + sep + query
    spec = parse_url(url)
    if spec.session is not None:
        raise ValueError(
            f"store URL {redact_url(url)!r} names a session; leave session= out: "
            "the integration names one session per FIX session id"
        )
    return spec


def open_session_store(spec: StoreURL, name: str, *, create: bool | None = None) -> AdminSeqStore:
    """Open the store that ``spec`` names for session ``name``.

    Args:
        spec: A URL parsed by :func:`check_engine_url`.
        name: The session name (:func:`session_name`).
        create: ``False``: a missing store raises a ``SeqStoreError`` instead
            of starting at 1; ``True``: it is created; ``None``: as the URL
            says (``create=0|1``), else created.

    Returns:
        An open :class:`~fixseq.AdminSeqStore` for that one session (a fresh
        :class:`~fixseq.MemorySeqStore` for ``memory:``).

    Raises:
        SeqStoreError: The store cannot be opened; ``CorruptStoreError`` when
            it exists but holds no valid state.
    """
    if spec.kind == "file":
        assert spec.path is not None
        directory = Path(spec.path)
        if create is not False and spec.create is not False:
            # Owner-only, like the store files (0600) it will hold.
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        spec = dataclasses.replace(spec, path=str(directory / session_file_name(name)))
    return _open(dataclasses.replace(spec, session=name), create=create)


class _Closable(Protocol):
    def close(self) -> None: ...


def close_all(stores: Iterable[_Closable]) -> None:
    """Close every store, then raise the first error any close raised (if one did)."""
    errors: list[Exception] = []
    for store in stores:
        try:
            store.close()
        except Exception as exc:  # close them all, then report the first
            errors.append(exc)
    if errors:
        raise errors[0]
