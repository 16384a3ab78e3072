"""One kill-and-restart FIX session between two real engines; prints a JSON report.

Run by tests/e2e/test_sessions.py inside a private network namespace whose
only interface is loopback (``unshare --net``), because QuickFIX 1.15's
acceptor cannot be told to bind 127.0.0.1 only; every connection goes to
127.0.0.1 on a port the OS picked. Everything this script starts is killed
in ``finally``.

The fixseq side (fixcore on a fixseq store, or QuickFIX guarded by SeqGuard)
and a QuickFIX peer on its own FileStore stream News to each other; the fixseq
side is SIGKILLed (at a random instant, or right after its Logon) and
restarted, streams again, both go quiet, and the initiator logs out.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

from fixseq._fixcore_demo import Child, free_port

HERE = Path(__file__).resolve().parent


def loopback_up() -> None:
    """Bring up lo in a fresh network namespace (SIOCGIFFLAGS / SIOCSIFFLAGS)."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, siocgifflags, request))[1]
        if not flags & iff_up:
            fcntl.ioctl(sock, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


def read_record(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # the last line of a killed writer may be cut
    return events


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=("fixcore", "quickfix"), required=True)
    parser.add_argument("--role", choices=("initiator", "acceptor"), required=True)
    parser.add_argument("--kill", choices=("random", "after-logon", "in-from-app"), required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--settle", type=float, default=10.0)
    args = parser.parse_args()
    loopback_up()
    rng = random.Random(args.seed)
    root = Path(args.dir)
    port = free_port()
    peer_role = "acceptor" if args.role == "initiator" else "initiator"
    us, them = ("BANK", "BROKER") if args.role == "initiator" else ("BROKER", "BANK")
    our_record, peer_record = root / "fixseq.jsonl", root / "peer.jsonl"

    def ours(die_in_from_app: int = 0) -> Child:
        extra = [f"--die-in-from-app={die_in_from_app}"] if die_in_from_app else []
        if args.engine == "fixcore":
            argv = [
                sys.executable,
                "-m",
                "fixseq._fixcore_demo",
                f"--role={args.role}",
                f"--port={port}",
                f"--url={args.url}",
                f"--sender={us}",
                f"--target={them}",
                f"--record={our_record}",
                *extra,
            ]
        else:
            argv = [
                sys.executable,
                str(HERE / "_quickfix_child.py"),
                f"--role={args.role}",
                f"--port={port}",
                f"--sender={us}",
                f"--target={them}",
                f"--dir={root / 'guarded'}",
                f"--record={our_record}",
                f"--guard={args.url}",
                *extra,
            ]
        return Child(argv)

    def peer() -> Child:
        return Child(
            [
                sys.executable,
                str(HERE / "_quickfix_child.py"),
                f"--role={peer_role}",
                f"--port={port}",
                f"--sender={them}",
                f"--target={us}",
                f"--dir={root / 'peer'}",
                f"--record={peer_record}",
            ]
        )

    children: list[Child] = []
    report: dict[str, Any] = {"seed": args.seed}
    die_at = rng.randint(20, 60) if args.kill == "in-from-app" else 0
    try:
        if args.role == "acceptor":
            children.append(ours(die_at))
            children[-1].wait_for("ready", 15)
            children.append(peer())
        else:
            children.append(peer())
            children[-1].wait_for("ready", 15)
            children.append(ours(die_at))
        the_peer = next(c for c in children if str(peer_record) in " ".join(c.argv))
        the_ours = children[-1] if the_peer is children[0] else children[0]
        if args.kill == "in-from-app":
            # It kills itself inside its from_app/fromApp for its die_at-th message.
            the_ours.proc.wait(20)
            recvs = [e for e in read_record(our_record) if e["ev"] == "recv"]
            report["died_in_from_app_of"] = recvs[-1]["seq"]
        elif args.kill == "random":
            the_ours.wait_for("logon", 15)
            delay = rng.uniform(0.2, 1.5)
            report["kill_after_s"] = delay
            time.sleep(delay)
        else:
            # Right after our Logon went out: the moment the peer has it.
            deadline = time.monotonic() + 15
            while not any(e["ev"] == "logon_in" for e in read_record(peer_record)):
                if time.monotonic() > deadline:
                    raise TimeoutError("the peer never received our Logon")
                time.sleep(0.002)
        the_ours.kill()
        report["killed_at"] = time.time()
        if args.engine == "quickfix":
            # QuickFIX's own store would now say 1/1 (it silently does so for an
            # empty, torn or garbled seqnums file): the guard must restore the numbers.
            wrecked = list((root / "guarded" / "store").glob("*.seqnums"))
            for path in wrecked:
                path.write_bytes(b"")
            report["wrecked_quickfix_files"] = len(wrecked)
        the_ours = ours()
        children.append(the_ours)
        the_ours.wait_for("logon", 20)
        time.sleep(rng.uniform(0.5, 1.0))
        for child in (the_ours, the_peer):
            child.send("quiet")
            child.wait_for("quiet", 10)
        # Everything the peer sent must reach our application (resends included).
        deadline = time.monotonic() + args.settle
        while time.monotonic() < deadline:
            sent = {e["seq"] for e in read_record(peer_record) if e["ev"] == "sent"}
            got = {e["seq"] for e in read_record(our_record) if e["ev"] == "recv"}
            if sent <= got:
                break
            time.sleep(0.1)
        initiator, acceptor = (
            (the_ours, the_peer) if args.role == "initiator" else (the_peer, the_ours)
        )
        initiator.send("logout")
        report["initiator_final"] = initiator.wait_for("stopped", 10)["state"]
        acceptor.send("logout")
        report["acceptor_final"] = acceptor.wait_for("stopped", 10)["state"]
        for child in (initiator, acceptor):
            report.setdefault("exit_codes", []).append(child.finish(5))
    except BaseException:
        # Dump every live child's threads (QuickFIX children register
        # faulthandler on SIGUSR1) so a hang can be diagnosed from stderr.
        for child in children:
            if child.proc.poll() is None and "_quickfix_child" in " ".join(child.argv):
                os.kill(child.proc.pid, signal.SIGUSR1)
        time.sleep(0.5)
        raise
    finally:
        for child in children:
            child.kill()
    peer_events = read_record(peer_record)
    our_events = read_record(our_record)
    if "died_in_from_app_of" in report:
        report["deliveries_of_that_message"] = [
            e["possdup"]
            for e in our_events
            if e["ev"] == "recv" and e["seq"] == report["died_in_from_app_of"]
        ]
    report["peer_sent"] = sorted({e["seq"] for e in peer_events if e["ev"] == "sent"})
    report["fixseq_recv"] = sorted({e["seq"] for e in our_events if e["ev"] == "recv"})
    report["fixseq_sent"] = len([e for e in our_events if e["ev"] == "sent"])
    report["possdup_recv"] = len([e for e in our_events if e["ev"] == "recv" and e["possdup"]])
    report["peer_logons"] = [
        [e["seq"], e["expected"]] for e in peer_events if e["ev"] == "logon_in"
    ]
    report["fixseq_logons_out"] = [e["seq"] for e in our_events if e["ev"] == "logon_out"]
    lines = [e.get("text", "") for e in our_events if e["ev"] in ("in", "out", "event")]
    for log in root.glob("*/log/*.log"):
        lines.extend(log.read_text(errors="replace").splitlines())
    report["log_lines"] = len(lines)
    report["too_low"] = [line for line in lines if "too low" in line.lower()]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
