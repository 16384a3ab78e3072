"""QuickFIX guarded by fixseq: an ``Application`` that keeps QuickFIX's numbers right.

Install with ``pip install 'fixseq[quickfix]'``. QuickFIX's Python bindings
cannot take a store written in Python (SWIG builds directors only for
``Application`` and the logs), so fixseq guards QuickFIX's sequence numbers
from the application callbacks instead::

    from fixseq.quickfix import SeqGuard

    settings = quickfix.SessionSettings("client.cfg")
    guard = SeqGuard(MyApp(), "sqlite:///fix.db", settings=settings)
    initiator = quickfix.SocketInitiator(
        guard, quickfix.FileStoreFactory(settings), settings, quickfix.ScreenLogFactory(settings)
    )

What the guard does, per session:

* ``onCreate``: sets QuickFIX's next sender and target numbers from fixseq,
  so a QuickFIX store file that was emptied, torn or reset can no longer take
  the session back to 1.
* ``toAdmin`` / ``toApp``: QuickFIX has stamped MsgSeqNum N and not yet
  sent; the guard makes "next outbound is N + 1" durable first. Outbound never
  moves backwards, so a resend of an old number changes nothing.
* ``fromAdmin`` / ``fromApp``: after your callback for inbound N returned,
  records N (a SequenceReset records its NewSeqNo), never beyond the number
  QuickFIX itself is at (QuickFIX calls ``fromAdmin`` for a Logon numbered
  above the expected one before it asks for the gap; that Logon records
  nothing).
* Resets: a Logon with ResetSeqNumFlag=Y, and QuickFIX's own resets
  (scheduled session start, ResetOnLogon/Logout/Disconnect; QuickFIX has no
  callback for them: the guard sees a Logon while QuickFIX is back at 1/1),
  reset the fixseq store once per Logon exchange, not once per Logon message.
* QuickFIX calls the callbacks from several threads; each session's updates
  run under one lock.

QuickFIX's own ``MessageStoreFactory`` (any of them) still keeps the message
bodies for resends.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

try:
    import quickfix as _fix
except ImportError as exc:  # pragma: no cover - exercised without the extra only
    raise ImportError(
        "fixseq.quickfix needs QuickFIX's Python bindings: pip install 'fixseq[quickfix]'"
    ) from exc

from ._engines import check_engine_url, close_all, open_session_store, session_name

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

    from ._protocols import AdminSeqStore

__all__ = ["SeqGuard", "quickfix_session_name"]

_MSG_SEQ_NUM = 34
_MSG_TYPE = 35
_NEW_SEQ_NO = 36
_GAP_FILL_FLAG = 123
_RESET_SEQ_NUM_FLAG = 141
_LOGON = "A"
_SEQUENCE_RESET = "4"


def quickfix_session_name(session_id: Any) -> str:
    """Return the fixseq session name of a ``quickfix.SessionID`` (lossless).

    Args:
        session_id: The QuickFIX session id.

    Returns:
        For example ``"FIX.4.4:BANK->BROKER"``, the form ``SessionID.toString()``
        uses, with ``%``, ``:`` and ``>`` inside a field escaped.
    """
    return session_name(
        str(session_id.getBeginString().getString()),
        str(session_id.getSenderCompID().getString()),
        str(session_id.getTargetCompID().getString()),
        str(session_id.getSessionQualifier()),
    )


def _field(fields: Any, tag: int) -> str | None:
    return str(fields.getField(tag)) if fields.isSetField(tag) else None


class _Guarded:
    """One session's fixseq store and the lock its compound updates run under."""

    __slots__ = ("lock", "store")

    def __init__(self, store: AdminSeqStore) -> None:
        self.store = store
        self.lock = threading.Lock()


class SeqGuard(_fix.Application):  # type: ignore[misc]
    """A ``quickfix.Application`` that wraps yours and keeps each session's numbers in fixseq.

    Pass it to ``SocketInitiator`` / ``SocketAcceptor`` in place of your
    application; every callback calls yours, and the guard keeps the numbers
    (see the module documentation for what each callback does).

    Args:
        app: Your ``quickfix.Application``.
        url: The store, without ``session=``: ``file:DIR``, ``sqlite:///PATH``,
            ``postgresql://...`` or ``memory:``. One fixseq session per
            QuickFIX session, named by its full session id.
        settings: QuickFIX's ``SessionSettings``. When given, every configured
            session's store is opened now, so a damaged store raises before
            QuickFIX starts. Otherwise each opens in ``onCreate``, where an
            error ends the process (the QuickFIX bindings exit on an exception
            they do not map).
        create: With ``False`` a session whose store is missing raises a
            ``SeqStoreError`` instead of starting at 1 (recommended once the
            sessions exist); ``None``: as the URL says, else created.

    Raises:
        TypeError: ``url`` is not a ``str``.
        ValueError: The URL is malformed or names a session.
        CorruptStoreError: With ``settings``: a session's store is damaged.
        SeqStoreError: With ``settings``: a store cannot be opened.
    """

    def __init__(
        self,
        app: Any,
        url: str,
        *,
        settings: Any | None = None,
        create: bool | None = None,
    ) -> None:
        _fix.Application.__init__(self)
        self._spec = check_engine_url(url)
        self._app = app
        self._create = create
        self._lock = threading.Lock()
        self._sessions: dict[str, _Guarded] = {}
        if settings is not None:
            try:
                for session_id in settings.getSessions():
                    self._guarded(session_id)
            except BaseException:
                self.close()
                raise

    @property
    def app(self) -> Any:
        """Your application."""
        return self._app

    def _guarded(self, session_id: Any) -> _Guarded:
        name = quickfix_session_name(session_id)
        with self._lock:
            guarded = self._sessions.get(name)
            if guarded is None:
                guarded = _Guarded(open_session_store(self._spec, name, create=self._create))
                self._sessions[name] = guarded
            return guarded

    def store(self, session_id: Any) -> AdminSeqStore:
        """Return the fixseq store of a QuickFIX session (opened if need be).

        Args:
            session_id: A ``quickfix.SessionID``.

        Returns:
            The session's open fixseq store (the guard closes it).

        Raises:
            SeqStoreError: The store cannot be opened.
        """
        return self._guarded(session_id).store

    # -- QuickFIX callbacks ---------------------------------------------------------

    def onCreate(self, sessionID: Any) -> None:
        """Set QuickFIX's next numbers from fixseq, then call yours."""
        guarded = self._guarded(sessionID)
        with guarded.lock:
            next_out, next_in = guarded.store.snapshot()
            session = _fix.Session.lookupSession(sessionID)
            if session is not None:
                session.setNextSenderMsgSeqNum(next_out)
                session.setNextTargetMsgSeqNum(next_in)
        self._app.onCreate(sessionID)

    def onLogon(self, sessionID: Any) -> None:
        """Call yours."""
        self._app.onLogon(sessionID)

    def onLogout(self, sessionID: Any) -> None:
        """Call yours."""
        self._app.onLogout(sessionID)

    def toAdmin(self, message: Any, sessionID: Any) -> None:
        """Call yours, then make the outbound number durable before QuickFIX sends."""
        self._app.toAdmin(message, sessionID)
        self._outbound(message, sessionID)

    def toApp(self, message: Any, sessionID: Any) -> None:
        """Call yours (``DoNotSend`` passes through), then make the number durable."""
        self._app.toApp(message, sessionID)
        self._outbound(message, sessionID)

    def fromAdmin(self, message: Any, sessionID: Any) -> None:
        """Call yours; once it returned, record the inbound number."""
        self._app.fromAdmin(message, sessionID)
        self._inbound(message, sessionID)

    def fromApp(self, message: Any, sessionID: Any) -> None:
        """Call yours; once it returned, record the inbound number."""
        self._app.fromApp(message, sessionID)
        self._inbound(message, sessionID)

    # -- the rules ---------------------------------------------------------------------

    def _reset_if_quickfix_did(self, guarded: _Guarded, message: Any, session: Any) -> None:
        """On a Logon: reset fixseq if this exchange resets and fixseq has not yet.

        QuickFIX resets its numbers on a Logon with ResetSeqNumFlag=Y and at
        the start of a scheduled session (no callback); either way a Logon
        then passes while QuickFIX is at 1/1. Both Logons of one exchange
        carry the flag: the second finds fixseq at most at 2/2, already reset
        for this exchange, and must not reset again (the first Logon's number
        was used).
        """
        flagged = (_field(message, _RESET_SEQ_NUM_FLAG) or "N").upper() == "Y"
        at_start = (
            session is not None
            and session.getExpectedSenderNum() == 1
            and session.getExpectedTargetNum() == 1
        )
        if not (flagged or at_start):
            return
        next_out, next_in = guarded.store.snapshot()
        if next_out <= 2 and next_in <= 2:
            return
        guarded.store.reset()

    def _outbound(self, message: Any, session_id: Any) -> None:
        header = message.getHeader()
        seq_text = _field(header, _MSG_SEQ_NUM)
        if seq_text is None:
            return
        seq_num = int(seq_text)
        guarded = self._guarded(session_id)
        with guarded.lock:
            if _field(header, _MSG_TYPE) == _LOGON:
                self._reset_if_quickfix_did(
                    guarded, message, _fix.Session.lookupSession(session_id)
                )
            store = guarded.store
            if store.peek_out() <= seq_num:
                store.set_next_out(seq_num + 1)

    def _inbound(self, message: Any, session_id: Any) -> None:
        header = message.getHeader()
        seq_text = _field(header, _MSG_SEQ_NUM)
        if seq_text is None:
            return
        seq_num = int(seq_text)
        msg_type = _field(header, _MSG_TYPE)
        guarded = self._guarded(session_id)
        with guarded.lock:
            session = _fix.Session.lookupSession(session_id)
            if msg_type == _LOGON:
                self._reset_if_quickfix_did(guarded, message, session)
            # QuickFIX calls fromAdmin/fromApp before it advances to seq_num + 1.
            expected = session.getExpectedTargetNum() if session is not None else seq_num
            store = guarded.store
            if msg_type == _SEQUENCE_RESET:
                new_text = _field(message, _NEW_SEQ_NO)
                new_seq_no = int(new_text) if new_text is not None else 0
                gap_fill = (_field(message, _GAP_FILL_FLAG) or "N").upper() == "Y"
                if gap_fill and seq_num <= expected:
                    store.observed_in(max(seq_num, new_seq_no - 1))
                elif not gap_fill and new_seq_no > expected:
                    # QuickFIX applies a hard reset only when it moves forward.
                    store.observed_in(new_seq_no - 1)
                return
            if seq_num <= expected:
                store.observed_in(seq_num)

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Close every session's store (after the engine stopped); a second call does nothing."""
        with self._lock:
            sessions = list(self._sessions.values())
        close_all(guarded.store for guarded in sessions)

    def __enter__(self) -> Self:
        """Return the guard."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close every session's store."""
        self.close()
