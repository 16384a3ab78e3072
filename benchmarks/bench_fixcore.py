"""fixcore on fixseq: application messages/s a fixcore initiator sends to a local acceptor.

Run from the repository root (needs the fixcore extra):
``python -m benchmarks.bench_fixcore [--rounds N] [--seconds S] [--json PATH]``.

Subject: the initiator's store is ``fixseq.fixcore.StoreFactory("file:DIR")``
(FileSeqStore, fsync on every message; message bodies kept in memory for
resends). Floor: fixcore's own ``FileStoreFactory(DIR)`` (fsync + rename of
the seqnums file on every message, and it also appends every message body
and an index line to disk, each fsynced). Both send the same News messages,
one awaited ``send_app`` after another, over 127.0.0.1 to a fixcore acceptor
on a memory store, in the same process, rounds interleaved.

Target (issue 9): fixseq at least 1.5x fixcore's FileStore in messages/s.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from fixcore.application import Application
from fixcore.message.message import Message
from fixcore.session.session_settings import SessionSettings
from fixcore.store.factory import FileStoreFactory, MemoryStoreFactory, StoreFactory
from fixcore.transport.acceptor import SocketAcceptor
from fixcore.transport.initiator import SocketInitiator

from benchmarks._harness import Bench, Pair, parse_args, run_pairs
from fixseq._fixcore_demo import free_port
from fixseq.fixcore import StoreFactory as SeqStoreFactory

if TYPE_CHECKING:
    from collections.abc import Callable

    from fixcore.session.session_id import SessionID


class _LogonWatch(Application):
    def __init__(self) -> None:
        self.logged_on = asyncio.Event()

    def on_logon(self, session_id: SessionID) -> None:
        self.logged_on.set()


def _settings(role: str, port: int) -> SessionSettings:
    sender, target = ("BANK", "BROKER") if role == "initiator" else ("BROKER", "BANK")
    where = (
        f"SocketConnectHost=127.0.0.1\nSocketConnectPort={port}\nReconnectInterval=1\n"
        if role == "initiator"
        else f"SocketAcceptHost=127.0.0.1\nSocketAcceptPort={port}\n"
    )
    return SessionSettings.from_string(
        # ResetOnLogon: every run starts a fresh session (the acceptor's memory store is new).
        f"[DEFAULT]\nConnectionType={role}\nHeartBtInt=30\nLogoutTimeout=1\nResetOnLogon=Y\n{where}"
        f"[SESSION]\nBeginString=FIX.4.4\nSenderCompID={sender}\nTargetCompID={target}\n"
    )


def _ignore_cancelled_connections(
    loop: asyncio.AbstractEventLoop, context: dict[str, object]
) -> None:
    # acceptor.stop() cancels its connection tasks on purpose, and CPython 3.11's
    # StreamReaderProtocol callback then calls task.exception() on a cancelled
    # task and reports the CancelledError as an error with a traceback. That is
    # the only report dropped here; anything else goes to the default handler.
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


async def stop_engines(initiator: SocketInitiator, acceptor: SocketAcceptor) -> None:
    """Stop both engines, printing nothing about the connections the stop cancels."""
    asyncio.get_running_loop().set_exception_handler(_ignore_cancelled_connections)
    await initiator.stop()
    await acceptor.stop()
    # Let the callbacks of the cancelled connection tasks run under our handler.
    for _ in range(3):
        await asyncio.sleep(0)


def sender(name: str, make_factory: Callable[[], StoreFactory]) -> Bench:
    """A Bench whose run(n) sends n News messages and returns the seconds they took."""

    def run(n: int) -> float:
        async def session() -> float:
            port = free_port()
            factory = make_factory()
            bank = _LogonWatch()
            app = factory.application(bank) if isinstance(factory, SeqStoreFactory) else bank
            acceptor = SocketAcceptor(
                _settings("acceptor", port), Application(), MemoryStoreFactory()
            )
            initiator = SocketInitiator(_settings("initiator", port), app, factory)
            await acceptor.start()
            await initiator.start()
            try:
                await asyncio.wait_for(bank.logged_on.wait(), 10)
                (sess,) = initiator.sessions.values()
                start = time.perf_counter()
                for _ in range(n):
                    news = Message()
                    news.header.set(35, "B")
                    news.set_field(148, "benchmark")
                    await sess.send_app(news)
                return time.perf_counter() - start
            finally:
                await stop_engines(initiator, acceptor)
                if isinstance(factory, SeqStoreFactory):
                    factory.close()
                else:
                    for s in initiator.sessions.values():
                        s.close()

        return asyncio.run(session())

    return Bench(name, run)


def main() -> None:
    args = parse_args(__doc__ or "")
    with tempfile.TemporaryDirectory(prefix="bench-fixcore-") as tmp:
        root = Path(tmp)
        subject = sender(
            "fixcore on FileSeqStore (fsync; bodies in memory)",
            lambda: SeqStoreFactory(f"file:{root / 'fixseq'}"),
        )
        floor = sender(
            "fixcore FileStore (fsync; also writes bodies)",
            lambda: FileStoreFactory(root / "fixcore"),
        )
        run_pairs(
            [Pair(subject, floor, max_time_ratio=1 / 1.5, target=">= 1.5x msgs/s")],
            title="fixcore initiator, app messages/s to a local acceptor",
            rounds=args.rounds,
            seconds=args.seconds,
            json_path=args.json,
        )


if __name__ == "__main__":
    main()
