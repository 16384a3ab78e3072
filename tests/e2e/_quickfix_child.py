"""A QuickFIX engine run as a child process by the e2e scenarios.

On QuickFIX's own FileStore (the independent peer), or with ``--guard URL``
guarded by :class:`fixseq.quickfix.SeqGuard` (the side that gets killed).
While logged on it streams News (35=B); stdin commands ``quiet`` and
``logout`` as in :mod:`fixseq._fixcore_demo`; events on stdout as JSON lines;
sent/received application messages and inbound Logons appended to
``--record`` with one ``write`` each (SIGKILL-safe).
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import queue
import signal
import sys
import threading
import time
from typing import Any

import quickfix as fix


class Recorder:
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def __call__(self, **event: Any) -> None:
        os.write(self._fd, (json.dumps(event) + "\n").encode())


def say(**event: Any) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _get(fields: Any, tag: int, default: str = "") -> str:
    return str(fields.getField(tag)) if fields.isSetField(tag) else default


class StreamingApp(fix.Application):  # type: ignore[misc]
    def __init__(self, record: Recorder) -> None:
        super().__init__()
        self.record = record
        self.die_at = 0
        self.received = 0
        self.logged_on = threading.Event()
        self.logged_out = threading.Event()

    def onCreate(self, sessionID: Any) -> None:
        pass

    def onLogon(self, sessionID: Any) -> None:
        self.logged_out.clear()
        self.logged_on.set()
        say(ev="logon")

    def onLogout(self, sessionID: Any) -> None:
        self.logged_on.clear()
        self.logged_out.set()
        say(ev="logout")

    def toAdmin(self, message: Any, sessionID: Any) -> None:
        header = message.getHeader()
        if _get(header, 35) == "A":
            self.record(ev="logon_out", seq=int(_get(header, 34)))

    def fromAdmin(self, message: Any, sessionID: Any) -> None:
        header = message.getHeader()
        if _get(header, 35) == "A":
            session = fix.Session.lookupSession(sessionID)
            self.record(
                ev="logon_in", seq=int(_get(header, 34)), expected=session.getExpectedTargetNum()
            )

    def toApp(self, message: Any, sessionID: Any) -> None:
        header = message.getHeader()
        if _get(header, 43, "N") != "Y":
            self.record(ev="sent", seq=int(_get(header, 34)))

    def fromApp(self, message: Any, sessionID: Any) -> None:
        header = message.getHeader()
        self.record(ev="recv", seq=int(_get(header, 34)), possdup=_get(header, 43, "N") == "Y")
        self.received += 1
        if self.received == self.die_at:
            # A crash inside the application's callback, after it saw the message.
            os.kill(os.getpid(), signal.SIGKILL)


def config(args: argparse.Namespace) -> str:
    if args.role == "initiator":
        where = f"SocketConnectHost=127.0.0.1\nSocketConnectPort={args.port}\nReconnectInterval=1\n"
    else:
        # QuickFIX 1.15 has no SocketAcceptAddress: it binds every address, so
        # the scenarios run it in a network namespace whose only interface is lo.
        where = f"SocketAcceptPort={args.port}\nSocketReuseAddress=Y\n"
    return (
        "[DEFAULT]\n"
        f"ConnectionType={args.role}\nStartTime=00:00:00\nEndTime=00:00:00\n"
        "HeartBtInt=30\nLogonTimeout=5\nLogoutTimeout=2\nUseDataDictionary=N\n"
        f"FileStorePath={args.dir}/store\nFileLogPath={args.dir}/log\n{where}"
        "[SESSION]\n"
        f"BeginString=FIX.4.4\nSenderCompID={args.sender}\nTargetCompID={args.target}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=("initiator", "acceptor"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sender", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--guard")
    parser.add_argument("--interval", type=float, default=0.005)
    parser.add_argument("--die-in-from-app", type=int, default=0, metavar="K")
    args = parser.parse_args()
    faulthandler.register(signal.SIGUSR1)
    os.makedirs(args.dir, exist_ok=True)
    cfg = os.path.join(args.dir, "session.cfg")
    with open(cfg, "w") as fh:
        fh.write(config(args))
    settings = fix.SessionSettings(cfg)
    (session_id,) = settings.getSessions()
    app = StreamingApp(Recorder(args.record))
    app.die_at = args.die_in_from_app
    engine_app: Any = app
    guard = None
    if args.guard:
        from fixseq.quickfix import SeqGuard

        try:
            guard = SeqGuard(app, args.guard, settings=settings)
        except Exception as exc:
            say(ev="error", type=type(exc).__name__, text=str(exc))
            sys.exit(1)
        engine_app = guard
    store = fix.FileStoreFactory(settings)
    log = fix.FileLogFactory(settings)
    kind = fix.SocketInitiator if args.role == "initiator" else fix.SocketAcceptor
    engine = kind(engine_app, store, settings, log)
    engine.start()
    say(ev="ready")
    commands: queue.Queue[str] = queue.Queue()

    def read_commands() -> None:
        for line in sys.stdin:
            commands.put(line.strip())
        commands.put("logout")

    threading.Thread(target=read_commands, daemon=True).start()
    streaming = args.interval > 0
    while True:
        try:
            command = commands.get(timeout=args.interval if streaming else None)
        except queue.Empty:
            command = ""
        if command:
            if command == "quiet":
                streaming = False
                say(ev="quiet")
                continue
            if command == "logout":
                break
        if streaming and app.logged_on.is_set():
            news = fix.Message()
            news.getHeader().setField(fix.BeginString("FIX.4.4"))
            news.getHeader().setField(fix.MsgType("B"))
            news.setField(fix.Headline(f"{args.sender} {time.time_ns()}"))
            fix.Session.sendToTarget(news, session_id)
    session = fix.Session.lookupSession(session_id)
    if session is not None and session.isLoggedOn():
        session.logout()
        app.logged_out.wait(5)
    state = [session.getExpectedSenderNum(), session.getExpectedTargetNum()] if session else []
    engine.stop()
    if guard is not None:
        guard.close()
    say(ev="stopped", state=state)


if __name__ == "__main__":
    main()
