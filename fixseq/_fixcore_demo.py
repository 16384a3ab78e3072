"""A fixcore engine on a fixseq store, run as a child process: the demo and the e2e sessions.

``python -m fixseq._fixcore_demo --role initiator --port P --url URL ...`` runs
one fixcore engine over 127.0.0.1 whose stores come from
:class:`fixseq.fixcore.StoreFactory`. While logged on it streams News (35=B)
messages; it reads commands on stdin (``quiet``: stop streaming; ``logout``:
log out and exit) and reports on stdout, one JSON object a line. Every
application message it receives, every one it sends and every engine event is
appended to ``--record`` with one ``write`` each, so a SIGKILL loses none of
what was written.

:func:`run_demo` drives two of them: the ``fixseq demo --engine fixcore`` command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from fixcore.application import Application
from fixcore.log.base import Log, LogFactory
from fixcore.message.message import Message
from fixcore.session.session_settings import SessionSettings
from fixcore.transport.acceptor import SocketAcceptor
from fixcore.transport.initiator import SocketInitiator

from ._engines import check_engine_url, open_session_store
from .fixcore import StoreFactory, fixcore_session_name

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fixcore.session.session_id import SessionID

__all__ = ["run_demo"]


class _Recorder:
    """Appends one JSON line per event with a single ``os.write`` (SIGKILL-safe)."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def __call__(self, **event: Any) -> None:
        os.write(self._fd, (json.dumps(event) + "\n").encode())


class _RecordLog(Log):
    def __init__(self, record: _Recorder) -> None:
        self._record = record

    def on_incoming(self, message: str) -> None:
        self._record(ev="in", text=message)

    def on_outgoing(self, message: str) -> None:
        self._record(ev="out", text=message)

    def on_event(self, text: str) -> None:
        self._record(ev="event", text=text)


class _RecordLogFactory(LogFactory):
    def __init__(self, record: _Recorder) -> None:
        self._record = record

    def create(self, session_id: SessionID) -> Log:
        return _RecordLog(self._record)


class _RecordHandler(logging.Handler):
    """Sends the engine's own log records to the record file, not to the demo's stderr.

    The engine warns about what a demo does on purpose (a peer killed
    mid-stream: "send_fn is None — message not sent"); the demo prints only
    its story, and the record keeps the warnings for anyone who looks.
    """

    def __init__(self, record: _Recorder) -> None:
        super().__init__()
        self._record = record

    def emit(self, record: logging.LogRecord) -> None:
        self._record(ev="engine_log", level=record.levelname, text=record.getMessage())


def _record_engine_logs(record: _Recorder) -> None:
    """Route the ``fixcore`` and ``fixseq`` loggers of this child into ``record`` only."""
    for name in ("fixcore", "fixseq"):
        logger = logging.getLogger(name)
        logger.addHandler(_RecordHandler(record))
        logger.propagate = False


def _say(**event: Any) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class _StreamingApp(Application):
    def __init__(self, record: _Recorder, die_in_from_app: int = 0) -> None:
        self._record = record
        self._die_at = die_in_from_app
        self._received = 0
        self.logged_out = asyncio.Event()

    def on_logon(self, session_id: SessionID) -> None:
        self.logged_out.clear()
        _say(ev="logon")

    def on_logout(self, session_id: SessionID) -> None:
        self.logged_out.set()
        _say(ev="logout")

    def to_admin(self, message: Message, session_id: SessionID) -> None:
        if message.msg_type == "A":
            self._record(ev="logon_out", seq=int(message.header.get(34)))

    def to_app(self, message: Message, session_id: SessionID) -> None:
        if message.header.get_or(43, "N") != "Y":
            self._record(ev="sent", seq=int(message.header.get(34)))

    def from_app(self, message: Message, session_id: SessionID) -> None:
        self._record(
            ev="recv",
            seq=int(message.header.get(34)),
            possdup=message.header.get_or(43, "N") == "Y",
        )
        self._received += 1
        if self._received == self._die_at:
            # A crash inside the application's callback, after it saw the message.
            os.kill(os.getpid(), signal.SIGKILL)


def _settings(role: str, port: int, sender: str, target: str) -> SessionSettings:
    where = (
        f"SocketConnectHost=127.0.0.1\nSocketConnectPort={port}\nReconnectInterval=1\n"
        if role == "initiator"
        else f"SocketAcceptHost=127.0.0.1\nSocketAcceptPort={port}\n"
    )
    return SessionSettings.from_string(
        "[DEFAULT]\n"
        f"ConnectionType={role}\nHeartBtInt=30\nLogonTimeout=5\nLogoutTimeout=2\n"
        "UseDataDictionary=N\n"
        f"{where}"
        "[SESSION]\n"
        f"BeginString=FIX.4.4\nSenderCompID={sender}\nTargetCompID={target}\n"
    )


def _read_commands(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str]) -> None:
    """Feed stdin lines to the loop; a daemon thread, so it never holds up exit."""
    for line in sys.stdin:
        loop.call_soon_threadsafe(queue.put_nowait, line.strip())
    loop.call_soon_threadsafe(queue.put_nowait, "logout")


async def _run_engine(args: argparse.Namespace) -> None:
    record = _Recorder(args.record)
    _record_engine_logs(record)
    app = _StreamingApp(record, args.die_in_from_app)
    factory = StoreFactory(args.url, create=False if args.no_create else None)
    settings = _settings(args.role, args.port, args.sender, args.target)
    engine: SocketInitiator | SocketAcceptor
    if args.role == "initiator":
        engine = SocketInitiator(
            settings, factory.application(app), factory, _RecordLogFactory(record)
        )
    else:
        engine = SocketAcceptor(
            settings, factory.application(app), factory, _RecordLogFactory(record)
        )
    await engine.start()
    (session,) = engine.sessions.values()
    _say(ev="ready")
    queue: asyncio.Queue[str] = asyncio.Queue()
    threading.Thread(
        target=_read_commands, args=(asyncio.get_running_loop(), queue), daemon=True
    ).start()
    streaming = args.interval > 0
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                command = await asyncio.wait_for(queue.get(), args.interval if streaming else None)
                if command == "quiet":
                    streaming = False
                    _say(ev="quiet")
                    continue
                if command == "logout":
                    break
            if streaming and session.is_logged_on:
                news = Message()
                news.header.set(35, "B")
                news.set_field(148, f"{args.sender} {time.time_ns()}")
                try:
                    await session.send_app(news)
                except ConnectionError:
                    pass  # the peer dropped the connection: the initiator reconnects
        if session.is_logged_on:
            await session.send_logout()
            # Wait for the peer's Logout (or fixcore's LogoutTimeout) before stopping.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(app.logged_out.wait(), 5)
        await engine.stop()
        store = factory.store(session.session_id)
        assert store is not None
        store.close()  # makes the inbound mark durable as far as it is safe
        with open_session_store(
            check_engine_url(args.url), fixcore_session_name(session.session_id), create=False
        ) as reopened:
            state = list(reopened.snapshot())
        _say(ev="stopped", state=state)
    finally:
        factory.close()


def child_main(argv: Sequence[str] | None = None) -> None:
    """Run one fixcore engine on a fixseq store (the demo's and the e2e tests' child)."""
    parser = argparse.ArgumentParser(prog="python -m fixseq._fixcore_demo")
    parser.add_argument("--role", choices=("initiator", "acceptor"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--sender", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--interval", type=float, default=0.005)
    parser.add_argument("--no-create", action="store_true")
    parser.add_argument("--die-in-from-app", type=int, default=0, metavar="K")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_run_engine(args))
    except Exception as exc:
        _say(ev="error", type=type(exc).__name__, text=str(exc))
        sys.exit(1)


# -- the demo ---------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that the OS just picked (and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Child:
    """A child engine process read line by line, with a deadline on every wait."""

    def __init__(self, argv: list[str], *, env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        # Read the pipe's bytes directly: a buffered readline() reads ahead,
        # and select() cannot see lines already sitting in that buffer.
        self._fd = self.proc.stdout.fileno()
        self._pending = b""
        self.events: list[dict[str, Any]] = []

    def _next_line(self, deadline: float) -> bytes | None:
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self._fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._fd, 65536)
            if not chunk:
                return b""
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line + b"\n"

    def wait_for(self, ev: str, timeout: float) -> dict[str, Any]:
        """Return the next event named ``ev``; raise TimeoutError or RuntimeError."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._next_line(deadline)
            if line is None:
                raise TimeoutError(f"no {ev!r} from {self.argv!r} in {timeout}s")
            if not line:
                raise RuntimeError(f"child exited ({self.proc.wait()}) before {ev!r}")
            event: dict[str, Any] = json.loads(line)
            self.events.append(event)
            if event.get("ev") == "error":
                raise RuntimeError(f"child failed: {event['type']}: {event['text']}")
            if event.get("ev") == ev:
                return event

    def send(self, command: str) -> None:
        """Write one command line to the child (ignored if it is gone)."""
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()

    def kill(self) -> None:
        """SIGKILL the child and reap it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.close()

    def finish(self, timeout: float) -> int:
        """Close its stdin, wait for it to exit; SIGKILL it after ``timeout``. Return its code."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.wait()
        self.close()
        return code

    def close(self) -> None:
        """Close the pipes."""
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _child_argv(
    role: str, port: int, url: str, sender: str, target: str, record: Path
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fixseq._fixcore_demo",
        f"--role={role}",
        f"--port={port}",
        f"--url={url}",
        f"--sender={sender}",
        f"--target={target}",
        f"--record={record}",
        "--interval=0.01",
    ]


def _events(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))  # a killed writer's last line may be cut
    return events


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
    return env


def run_demo(directory: str | os.PathLike[str] | None = None, *, out: TextIO | None = None) -> None:
    """Two fixcore engines on fixseq stores over 127.0.0.1; one is SIGKILLed and restarted.

    The ``fixseq demo --engine fixcore`` command. An acceptor (BROKER) and an
    initiator (BANK), each a child process on its own ``file:`` store in
    ``directory``, stream News to each other; the initiator is killed with
    SIGKILL mid-stream, its numbers are printed from its store, it is
    restarted, logs on where it left off, and both log out.

    Args:
        directory: Where the stores go; ``None`` uses a fresh temporary directory.
        out: Where to print (default ``sys.stdout``).

    Raises:
        RuntimeError: An engine failed or did not log on in time.
    """
    from ._engines import session_name

    print_to = out if out is not None else sys.stdout

    def say(text: str) -> None:
        print_to.write(text + "\n")
        print_to.flush()

    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="fixseq-demo-"))
        root = Path(directory)
        port = free_port()
        bank_url, broker_url = f"file:{root / 'bank'}", f"file:{root / 'broker'}"
        bank_name = session_name("FIX.4.4", "BANK", "BROKER", "")
        env = _child_env()

        def bank_numbers() -> str:
            with open_session_store(check_engine_url(bank_url), bank_name, create=False) as store:
                next_out, next_in = store.snapshot()
            return f"next outbound {next_out}, next inbound expected {next_in}"

        children: list[Child] = []
        try:
            broker = Child(
                _child_argv("acceptor", port, broker_url, "BROKER", "BANK", root / "broker.log"),
                env=env,
            )
            children.append(broker)
            broker.wait_for("ready", 20)
            say(f"BROKER (fixcore acceptor, {broker_url}) listening on 127.0.0.1:{port}")
            bank = Child(
                _child_argv("initiator", port, bank_url, "BANK", "BROKER", root / "bank.log"),
                env=env,
            )
            children.append(bank)
            bank.wait_for("logon", 20)
            say(f"BANK (fixcore initiator, {bank_url}) logged on; both stream News")
            time.sleep(random.uniform(0.8, 1.5))
            bank.kill()
            say(f"BANK killed with SIGKILL mid-stream. Its store says: {bank_numbers()}")
            bank = Child(
                _child_argv("initiator", port, bank_url, "BANK", "BROKER", root / "bank.log"),
                env=env,
            )
            children.append(bank)
            bank.wait_for("logon", 20)
            logons = [e["seq"] for e in _events(root / "bank.log") if e["ev"] == "logon_out"]
            say(f"BANK restarted and logged on with MsgSeqNum {logons[-1]}; BROKER accepted it")
            time.sleep(0.5)
            bank.send("logout")
            bank.wait_for("stopped", 20)
            broker.send("logout")
            broker.wait_for("stopped", 20)
            say(f"Both logged out. BANK's store now says: {bank_numbers()}")
            too_low = [
                e["text"]
                for log in ("bank.log", "broker.log")
                for e in _events(root / log)
                if "too low" in e.get("text", "").lower()
            ]
            if too_low:
                say(f"'MsgSeqNum too low' was logged {len(too_low)} time(s): {too_low[0]}")
            else:
                say("Neither engine logged 'MsgSeqNum too low'.")
        finally:
            for child in children:
                child.finish(5) if child.proc.poll() is not None else child.kill()


if __name__ == "__main__":
    child_main()
