"""fixcore-engine on fixseq: a ``StoreFactory`` whose stores keep their numbers in fixseq.

Install with ``pip install 'fixseq[fixcore]'`` (brings ``fixcore-engine``,
Python 3.11+). One line swaps fixcore's own store for fixseq::

    from fixseq.fixcore import StoreFactory

    factory = StoreFactory("sqlite:///fix.db", create=False)
    initiator = SocketInitiator(settings, factory.application(app), factory)

What each store does:

* Every sequence-number method of fixcore's ``MessageStore`` delegates to the
  fixseq store of that FIX session: next, incr and set for sender and target,
  the creation time, reset and refresh. The awaited hot path
  (``aincr_next_sender_msg_seq_num``, ``aincr_next_target_msg_seq_num``) runs
  on the store's async twin, so the event loop never waits for a disk.
* fixcore advances the inbound number *before* it calls the application's
  ``from_app``. Here inbound number N becomes durable only after the
  application's callback for message N has returned (the application passed
  to the engine is wrapped by :meth:`StoreFactory.application`), so a crash in
  between re-delivers N as a PossDup resend instead of losing it.
* Message bodies for resends are kept in memory only, the most recent
  ``max_bodies`` of them. A ResendRequest for anything older, or from before a
  restart, is answered by fixcore with SequenceReset-GapFill (fixcore does that
  for every number its store has no body for).
* A store that is damaged raises :class:`~fixseq.CorruptStoreError` from the
  ``SocketInitiator`` / ``SocketAcceptor`` constructor, which creates the
  stores: the engine never logs on with numbers made up from a broken file.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

try:
    from fixcore.application import Application
    from fixcore.store.base import MessageStore
    from fixcore.store.factory import StoreFactory as _FixcoreStoreFactory
except ImportError as exc:  # pragma: no cover - exercised without the extra only
    raise ImportError(
        "fixseq.fixcore needs fixcore-engine (Python 3.11+): pip install 'fixseq[fixcore]'"
    ) from exc

from ._engines import check_engine_url, close_all, open_session_store, session_name
from ._rules import check_created_at, check_seq_num
from ._schedule import ResetSchedule, reset_if_due
from ._twins import offload, to_async

if TYPE_CHECKING:
    import datetime
    import os
    from types import TracebackType
    from typing import TextIO

    from fixcore.message.message import Message
    from fixcore.session.session_id import SessionID
    from typing_extensions import Self

    from ._protocols import AdminSeqStore, AsyncAdminSeqStore

__all__ = [
    "SeqApplication",
    "SeqMessageStore",
    "StoreFactory",
    "fixcore_session_name",
    "run_demo",
]

logger = logging.getLogger("fixseq.fixcore")

_TAG_MSG_SEQ_NUM = 34


def fixcore_session_name(session_id: SessionID) -> str:
    """Return the fixseq session name of a fixcore ``SessionID`` (lossless).

    Args:
        session_id: The fixcore session id.

    Returns:
        For example ``"FIX.4.4:BANK->BROKER"``; see :func:`fixseq._engines.session_name`.
    """
    return session_name(
        session_id.begin_string,
        session_id.sender_comp_id,
        session_id.target_comp_id,
        session_id.qualifier,
    )


class SeqMessageStore(MessageStore):
    """fixcore's ``MessageStore`` for one session, its numbers kept in a fixseq store.

    Built by :class:`StoreFactory`; use it directly only to put a store you
    opened yourself under fixcore.

    Args:
        store: The session's open fixseq store; this object closes it.
        max_bodies: How many recent outbound message bodies to keep in memory
            for resends (0 keeps none: every resend becomes a gap fill).

    Raises:
        TypeError: ``max_bodies`` is not an ``int``.
        ValueError: ``max_bodies`` is negative.
        StoreClosedError: ``store`` is closed.
    """

    def __init__(self, store: AdminSeqStore, *, max_bodies: int = 10_000) -> None:
        if type(max_bodies) is not int:
            raise TypeError(f"max_bodies must be an int, not {type(max_bodies).__name__}")
        if max_bodies < 0:
            raise ValueError(f"max_bodies must be >= 0, got {max_bodies}")
        as_async = getattr(store, "as_async", None)
        self._seq = store
        self._aseq: AsyncAdminSeqStore = as_async() if callable(as_async) else to_async(store)
        self._max_bodies = max_bodies
        self._bodies: dict[int, bytes] = {}
        # Serialises the inbound flush (run in a worker thread) with reset and
        # refresh, so a flush computed before a reset can never land after it.
        self._lock = threading.Lock()
        self._closed = False
        self._wrapped = False
        self._flush_task: asyncio.Task[None] | None = None
        self._flush_again = False
        self._load()

    def _load(self) -> None:
        next_out, next_in = self._seq.snapshot()
        # fixcore reads both numbers on every message; they are cached here
        # (this session is the only writer) and every change goes to fixseq.
        self._out = next_out
        self._view_in = next_in  # what fixcore expects next
        self._safe_in = next_in  # what may be made durable: every callback below it returned
        self._durable_in = next_in
        self._in_flight: int | None = None

    # -- message bodies (memory only, bounded) --------------------------------

    def get(self, begin_seq: int, end_seq: int) -> list[bytes]:
        """Return the bodies still held in memory for ``begin_seq..end_seq``, in order.

        Args:
            begin_seq: The first MsgSeqNum of the range.
            end_seq: The last MsgSeqNum of the range (inclusive).

        Returns:
            The raw messages held; numbers without a body are left out, and
            fixcore gap-fills them.
        """
        bodies = self._bodies
        return [bodies[seq] for seq in sorted(s for s in bodies if begin_seq <= s <= end_seq)]

    def set(self, seq_num: int, message: bytes) -> None:
        """Keep ``message`` for resends, dropping the oldest beyond ``max_bodies``.

        Args:
            seq_num: The MsgSeqNum the message was sent with.
            message: The raw message, as sent.
        """
        if self._max_bodies == 0:
            return
        bodies = self._bodies
        bodies.pop(seq_num, None)
        bodies[seq_num] = message
        while len(bodies) > self._max_bodies:
            del bodies[next(iter(bodies))]

    async def aset(self, seq_num: int, message: bytes) -> None:
        """As :meth:`set` (memory only: nothing to wait for)."""
        self.set(seq_num, message)

    # -- outbound ---------------------------------------------------------------

    def next_sender_msg_seq_num(self) -> int:
        """Return the MsgSeqNum the next outbound message gets."""
        return self._out

    def incr_next_sender_msg_seq_num(self) -> None:
        """Advance the outbound number by one, durably (blocks for the write)."""
        self._took_out(self._seq.next_out())

    async def aincr_next_sender_msg_seq_num(self) -> None:
        """Advance the outbound number by one on the async twin.

        fixcore awaits this after stamping the message and before writing it
        to the socket, so the number is durable before it reaches the wire.
        """
        self._took_out(await self._aseq.next_out())

    def _took_out(self, taken: int) -> None:
        stamped = self._out
        if taken < stamped:
            # Someone moved the store back under us; the wire already carries
            # `stamped`, and outbound must never be behind the wire.
            self._seq.set_next_out(stamped + 1)
            taken = stamped
        self._out = taken + 1

    def set_next_sender_msg_seq_num(self, seq_num: int) -> None:
        """Make ``seq_num`` the next outbound number (an operator's override), durably.

        Args:
            seq_num: The next MsgSeqNum to send, in ``1..MAX_SEQ_NUM``.

        Raises:
            TypeError: ``seq_num`` is not an ``int``.
            InvalidSeqNumError: ``seq_num`` is out of range.
        """
        self._seq.set_next_out(seq_num)
        self._out = seq_num

    # -- inbound ----------------------------------------------------------------

    def next_target_msg_seq_num(self) -> int:
        """Return the next inbound MsgSeqNum fixcore expects."""
        return self._view_in

    def incr_next_target_msg_seq_num(self) -> None:
        """Take the expected inbound message without a callback pending.

        fixcore calls this for a Logon (after ``from_admin`` returned) and for
        an undecodable message it rejects; the advance is made durable at once
        (in a worker thread when an event loop runs).
        """
        self._in_flight = None
        self._view_in += 1
        self._safe_in = self._view_in
        self._flush_soon()

    async def aincr_next_target_msg_seq_num(self) -> None:
        """Take inbound message N = the expected number; N stays pending.

        fixcore awaits this just before it dispatches message N. Everything
        before N has been dispatched (fixcore handles one message at a time),
        so it is made durable here on the async twin; N itself becomes durable
        once its callback returned (:meth:`SeqApplication.from_app`) or when
        the next message is taken.
        """
        taken = self._view_in
        self._in_flight = taken
        self._safe_in = taken
        self._view_in = taken + 1
        await self._aflush()

    def set_next_target_msg_seq_num(self, seq_num: int) -> None:
        """Make ``seq_num`` the next expected inbound number.

        A GapFill arrives as a pending message: the new number becomes durable
        after its ``from_admin`` returned. Otherwise it is made durable at once
        (in a worker thread when an event loop runs).

        Args:
            seq_num: The next inbound MsgSeqNum expected, in ``1..MAX_SEQ_NUM``.

        Raises:
            TypeError: ``seq_num`` is not an ``int``.
            InvalidSeqNumError: ``seq_num`` is out of range.
        """
        seq_num = check_seq_num(seq_num)
        self._view_in = seq_num
        if self._in_flight is None:
            self._safe_in = seq_num
        else:
            self._safe_in = min(self._safe_in, seq_num)
        self._flush_soon()

    def _callback_returned(self, seq_num: int) -> None:
        """The application's callback for inbound ``seq_num`` returned."""
        if self._in_flight == seq_num:
            self._in_flight = None
            self._safe_in = self._view_in
            self._flush_soon()

    def _flush_in(self) -> None:
        """Make the inbound mark durable up to ``_safe_in`` (any thread)."""
        with self._lock:
            if self._closed:
                return
            target = self._safe_in
            if target > self._durable_in:
                self._seq.observed_in(target - 1)
            elif target < self._durable_in:
                self._seq.set_next_in(target)
            self._durable_in = target

    async def _aflush(self) -> None:
        if self._safe_in != self._durable_in:
            await offload(self._flush_in)

    def _flush_soon(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush_in()
            return
        if self._flush_task is not None and not self._flush_task.done():
            self._flush_again = True
            return
        self._flush_task = loop.create_task(self._background_flush())

    async def _background_flush(self) -> None:
        try:
            while True:
                self._flush_again = False
                await self._aflush()
                if not self._flush_again:
                    return
        except Exception:
            # The store has fail-stopped (StoreIOError) or is unreachable: the
            # next outbound number fails too and fixcore drops the session.
            logger.exception("fixseq: could not make the inbound number durable")

    # -- creation time, reset, refresh -------------------------------------------

    def get_creation_time(self) -> datetime.datetime:
        """Return the creation time, read back from fixseq (aware UTC)."""
        return self._seq.creation_time()

    def set_creation_time(self, when: datetime.datetime) -> None:
        """Accept fixcore's creation time and keep fixseq's own.

        fixcore calls this right after :meth:`reset`, with the current time;
        fixseq sets the creation time itself in the same atomic step as the
        reset, and that time serves. :meth:`get_creation_time` always reads
        back from fixseq.

        Raises:
            TypeError: ``when`` is not a ``datetime``.
            ValueError: ``when`` is naive.
        """
        check_created_at(when)

    def reset(self) -> None:
        """Set both numbers to 1 and the creation time to now, durably; drop the bodies."""
        with self._lock:
            self._seq.reset()
            self._bodies.clear()
            self._out = self._view_in = self._safe_in = self._durable_in = 1
            self._in_flight = None

    def refresh(self) -> None:
        """Read both numbers back from fixseq (after an operator's ``fixseq set``)."""
        with self._lock:
            self._load()

    # -- lifetime -------------------------------------------------------------------

    @property
    def wrapped(self) -> AdminSeqStore:
        """The fixseq store this one delegates to."""
        return self._seq

    def close(self) -> None:
        """Make the inbound mark durable as far as it is safe, then close the fixseq store.

        A message whose callback has not returned stays pending (it comes back
        as a resend after a restart). A second call does nothing.
        """
        if self._closed:
            return
        try:
            self._flush_in()
        finally:
            with self._lock:
                self._closed = True
            self._seq.close()

    def __repr__(self) -> str:
        return f"<SeqMessageStore out={self._out} in={self._view_in} over {self._seq!r}>"


class SeqApplication(Application):
    """A fixcore ``Application`` that wraps yours and tells the stores when a callback returned.

    Made by :meth:`StoreFactory.application`; pass it to the engine in place
    of your own application. Each callback is your application's; after your
    ``from_app`` / ``from_admin`` for inbound message N returned, N may be
    made durable. If your callback raises, N stays pending (fixcore logs the
    error and goes on; N becomes durable when the next message is taken).
    Attributes this class does not define are looked up on your application.

    Args:
        app: Your fixcore application.
        factory: The :class:`StoreFactory` the engine uses.
    """

    def __init__(self, app: Application, factory: StoreFactory) -> None:
        self._app = app
        self._factory = factory

    @property
    def app(self) -> Application:
        """Your application."""
        return self._app

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # never recurse before __init__ set _app (copy, pickle)
            raise AttributeError(name)
        return getattr(self._app, name)

    def on_create(self, session_id: SessionID) -> None:
        """Mark the session's store as wrapped, then call yours."""
        store = self._factory.store(session_id)
        if store is not None:
            store._wrapped = True
        self._app.on_create(session_id)

    def on_logon(self, session_id: SessionID) -> None:
        """Call yours."""
        self._app.on_logon(session_id)

    def on_logout(self, session_id: SessionID) -> None:
        """Call yours."""
        self._app.on_logout(session_id)

    def to_admin(self, message: Message, session_id: SessionID) -> None:
        """Call yours."""
        self._app.to_admin(message, session_id)

    def to_app(self, message: Message, session_id: SessionID) -> None:
        """Call yours."""
        self._app.to_app(message, session_id)

    def from_admin(self, message: Message, session_id: SessionID) -> None:
        """Call yours; once it returned, the message may be made durable."""
        self._app.from_admin(message, session_id)
        self._returned(message, session_id)

    def from_app(self, message: Message, session_id: SessionID) -> None:
        """Call yours; once it returned, the message may be made durable."""
        self._app.from_app(message, session_id)
        self._returned(message, session_id)

    def _returned(self, message: Message, session_id: SessionID) -> None:
        store = self._factory.store(session_id)
        if store is None:
            return
        try:
            seq_num = int(message.header.get_or(_TAG_MSG_SEQ_NUM, "0"))
        except ValueError:
            return
        store._callback_returned(seq_num)


class StoreFactory(_FixcoreStoreFactory):
    """A fixcore ``StoreFactory`` keeping each session's numbers in the fixseq store ``url`` names.

    One fixseq store per FIX session: for ``sqlite:`` and ``postgresql:`` URLs
    the session name is the full FIX session id (lossless); for ``file:DIR``
    one file per session in ``DIR``, named by a readable slug and a hash of the
    id, with the id stored in the file; ``memory:`` keeps nothing (tests).

    Pass the factory as ``store_factory=`` and ``factory.application(app)`` as
    the application. Close the factory after ``engine.stop()`` (fixcore does
    not close the stores of a stopped engine), or use it as a context manager.

    Args:
        url: The store, without ``session=``: ``file:DIR``, ``sqlite:///PATH``,
            ``postgresql://...`` or ``memory:``.
        create: With ``False`` a session whose store is missing raises a
            ``SeqStoreError`` instead of starting at 1. Recommended once the
            sessions exist: an emptied or deleted database is otherwise
            indistinguishable from a new one. ``None`` (the default): as the
            URL says (``create=0``), else a missing store is created.
        max_bodies: Outbound message bodies kept in memory per session for
            resends; older ones are gap-filled.
        reset_schedule: A [`ResetSchedule`][fixseq.ResetSchedule] (or its text,
            ``"17:00 America/New_York"``): when fixcore opens a session's store
            (the engine starts), a store created before the most recent
            scheduled instant is reset first, as ``fixseq reset
            --if-created-before`` would; a restart after the reset does not
            reset again. ``None`` (the default): no scheduled reset here.

    Raises:
        TypeError: ``url`` is not a ``str`` or ``max_bodies`` not an ``int``, or
            ``reset_schedule`` is neither a ``ResetSchedule``, a ``str`` nor ``None``.
        ValueError: The URL is malformed or names a session; ``max_bodies`` < 0;
            ``reset_schedule`` text is not a schedule.
    """

    def __init__(
        self,
        url: str,
        *,
        create: bool | None = None,
        max_bodies: int = 10_000,
        reset_schedule: ResetSchedule | str | None = None,
    ) -> None:
        if isinstance(reset_schedule, str):
            reset_schedule = ResetSchedule.parse(reset_schedule)
        elif reset_schedule is not None and not isinstance(reset_schedule, ResetSchedule):
            raise TypeError(
                f"reset_schedule must be a ResetSchedule, a str or None, not "
                f"{type(reset_schedule).__name__}"
            )
        self._reset_schedule = reset_schedule
        self._spec = check_engine_url(url)
        if type(max_bodies) is not int:
            raise TypeError(f"max_bodies must be an int, not {type(max_bodies).__name__}")
        if max_bodies < 0:
            raise ValueError(f"max_bodies must be >= 0, got {max_bodies}")
        self._url = url
        self._create = create
        self._max_bodies = max_bodies
        self._stores: dict[SessionID, SeqMessageStore] = {}
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The store URL, without a session."""
        return self._url

    def create(self, session_id: SessionID) -> SeqMessageStore:
        """Open the fixseq store of ``session_id`` (fixcore calls this per session).

        Args:
            session_id: The FIX session.

        Returns:
            The session's store, over a fixseq store opened for it.

        Raises:
            CorruptStoreError: The session's store exists but is damaged.
            SeqStoreError: It cannot be opened (missing with ``create=False``,
                locked by another process, unreachable).
            ValueError: The session already has an open store from this factory.
        """
        with self._lock:
            current = self._stores.get(session_id)
            if current is not None and not current._closed:
                raise ValueError(f"session {session_id} already has an open store")
            seq = open_session_store(
                self._spec, fixcore_session_name(session_id), create=self._create
            )
            try:
                reset_if_due(seq, self._reset_schedule)
                store = SeqMessageStore(seq, max_bodies=self._max_bodies)
            except BaseException:
                seq.close()
                raise
            self._stores[session_id] = store
            return store

    def store(self, session_id: SessionID) -> SeqMessageStore | None:
        """Return the store created for ``session_id``, or ``None``.

        Args:
            session_id: The FIX session.

        Returns:
            The store :meth:`create` made for it (open or closed), or ``None``.
        """
        return self._stores.get(session_id)

    def application(self, app: Application) -> SeqApplication:
        """Wrap your application so inbound numbers become durable after your callbacks.

        Args:
            app: Your fixcore ``Application``.

        Returns:
            The application to pass to ``SocketInitiator`` / ``SocketAcceptor``.
        """
        return SeqApplication(app, self)

    def close(self) -> None:
        """Close every store this factory created; a second call does nothing."""
        with self._lock:
            stores = list(self._stores.values())
        close_all(stores)

    def __enter__(self) -> Self:
        """Return the factory."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close every store."""
        self.close()


def run_demo(directory: str | os.PathLike[str] | None = None, *, out: TextIO | None = None) -> None:
    """Two fixcore engines on fixseq stores over 127.0.0.1; one is SIGKILLed and restarted.

    What ``fixseq demo --engine fixcore`` runs. An acceptor (BROKER) and an
    initiator (BANK), each a child process on its own ``file:`` store in
    ``directory``, stream News to each other; BANK is killed with SIGKILL
    mid-stream, its numbers are read back from its store and printed, it is
    restarted, logs on where it left off, and both log out.

    Args:
        directory: Where the stores and logs go; ``None``: a temporary directory.
        out: Where to print (default ``sys.stdout``).

    Raises:
        RuntimeError: An engine failed or did not log on in time.
    """
    from ._fixcore_demo import run_demo as run

    run(directory, out=out)
