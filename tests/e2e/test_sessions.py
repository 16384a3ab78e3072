"""Real FIX sessions over loopback, the fixseq side SIGKILLed and restarted.

Each scenario (tests/e2e/_scenario.py) runs in a private network namespace
(``unshare --net``) whose only interface is loopback: QuickFIX 1.15's acceptor
binds every address and has no setting to bind 127.0.0.1 only, so the
namespace is what keeps every socket on loopback. Inside it, every
connection goes to 127.0.0.1 on a port the OS picked. The scenario kills
every process it started; this test kills the scenario's whole process group
if it overruns.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from engine_support import require

require("fixcore", "fixcore")
require("quickfix", "quickfix")

HERE = Path(__file__).resolve().parent
SCENARIO_TIMEOUT = 45.0


def run_scenario(
    tmp_path: Path,
    child_env: dict[str, str],
    *,
    engine: str,
    role: str,
    kill: str,
    url: str,
    seed: int,
    settle: float = 10.0,
) -> dict[str, Any]:
    unshare = shutil.which("unshare")
    assert unshare is not None, "util-linux's unshare is needed for a loopback-only namespace"
    argv = [unshare, "--net"]
    if os.geteuid() != 0:
        argv += ["--user", "--map-root-user"]
    argv += [
        sys.executable,
        str(HERE / "_scenario.py"),
        f"--engine={engine}",
        f"--role={role}",
        f"--kill={kill}",
        f"--url={url}",
        f"--dir={tmp_path}",
        f"--seed={seed}",
        f"--settle={settle}",
    ]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=child_env,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=SCENARIO_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"scenario overran {SCENARIO_TIMEOUT}s:\n{err[-4000:]}")
    finally:
        # Anything the scenario left behind (it should leave nothing).
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, f"scenario failed (seed {seed}):\n{err[-4000:]}"
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report


def check_session(report: dict[str, Any]) -> None:
    assert report["too_low"] == [], f"'MsgSeqNum too low' in a log (seed {report['seed']})"
    missing = sorted(set(report["peer_sent"]) - set(report["fixseq_recv"]))
    assert missing == [], f"peer messages that never reached the app: {missing}"
    assert len(report["peer_sent"]) > 10, "the peer hardly streamed: the scenario proved nothing"
    assert report["fixseq_sent"] > 10
    # The fixseq side logged on at least twice (before and after the kill), and
    # every Logon the peer received was numbered at least as it expected.
    assert len(report["peer_logons"]) >= 2 or len(report["fixseq_logons_out"]) >= 2
    for seq, expected in report["peer_logons"]:
        assert seq >= expected, f"Logon {seq} below the peer's expected {expected}"
    assert report["exit_codes"] == [0, 0]


CASES = [
    ("initiator", "random", "file"),
    ("initiator", "after-logon", "sqlite"),
    ("acceptor", "random", "sqlite"),
    ("acceptor", "after-logon", "file"),
]


def store_url(kind: str, tmp_path: Path) -> str:
    if kind == "file":
        return f"file:{tmp_path / 'stores'}"
    return f"sqlite:///{tmp_path / 'seqs.db'}"


@pytest.mark.parametrize(("role", "kill", "kind"), CASES)
def test_fixcore_on_fixseq_killed_and_restarted(
    tmp_path: Path, child_env: dict[str, str], role: str, kill: str, kind: str
) -> None:
    seed = CASES.index((role, kill, kind)) + 100
    report = run_scenario(
        tmp_path,
        child_env,
        engine="fixcore",
        role=role,
        kill=kill,
        url=store_url(kind, tmp_path),
        seed=seed,
    )
    check_session(report)


@pytest.mark.parametrize(("role", "kill", "kind"), CASES)
def test_quickfix_guarded_killed_and_restarted(
    tmp_path: Path, child_env: dict[str, str], role: str, kill: str, kind: str
) -> None:
    seed = CASES.index((role, kill, kind)) + 200
    report = run_scenario(
        tmp_path,
        child_env,
        engine="quickfix",
        role=role,
        kill=kill,
        url=store_url(kind, tmp_path),
        seed=seed,
    )
    # QuickFIX's own seqnums file was emptied after the kill (QuickFIX would
    # silently start at 1/1): the guard restored the numbers.
    assert report["wrecked_quickfix_files"] == 1
    check_session(report)


def test_the_checks_catch_a_store_that_starts_again_at_1(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    # The same scenario on memory: (what an emptied engine store does): the
    # restarted side logs on at 1 and the peer says "MsgSeqNum too low".
    report = run_scenario(
        tmp_path,
        child_env,
        engine="fixcore",
        role="acceptor",
        kill="random",
        url="memory:",
        seed=7,
        settle=2.0,
    )
    assert report["too_low"], "the memory store restarted at 1 and nobody complained?"
    with pytest.raises(AssertionError):
        check_session(report)


@pytest.mark.parametrize(
    ("engine", "role", "kind"),
    [
        ("fixcore", "initiator", "sqlite"),
        ("fixcore", "acceptor", "file"),
        ("quickfix", "initiator", "file"),
        ("quickfix", "acceptor", "sqlite"),
    ],
)
def test_crash_inside_from_app_redelivers_that_message(
    tmp_path: Path, child_env: dict[str, str], engine: str, role: str, kind: str
) -> None:
    # The fixseq side kills itself inside its application callback for message
    # N: N was taken by the engine but the callback never returned. After the
    # restart N must come again (a PossDup resend), not be skipped.
    report = run_scenario(
        tmp_path,
        child_env,
        engine=engine,
        role=role,
        kill="in-from-app",
        url=store_url(kind, tmp_path),
        seed=300 + len(engine) + len(role),
    )
    check_session(report)
    assert report["deliveries_of_that_message"][0] is False
    assert True in report["deliveries_of_that_message"][1:], (
        f"message {report['died_in_from_app_of']} was lost: delivered "
        f"{report['deliveries_of_that_message']}"
    )
