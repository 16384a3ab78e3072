"""A kit run, a demo and a benchmark print only their own story (issue 15, item 21).

Each runs as a user would, in a child process outside pytest, and its stderr is
checked: the kit's damage group must not flood it with the file store's warning
for every slot it damaged on purpose (and must give the loggers back as they
were), the fixcore demo must not print the engine's "message not sent" noise,
and the fixcore benchmark must not print a CancelledError traceback at shutdown.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

KIT_RUN = textwrap.dedent(
    """
    import itertools, logging, sys
    from fixseq import FileSeqStore
    from fixseq.testing import check_seq_store

    directory = sys.argv[1]
    names = itertools.count()
    file_log = logging.getLogger("fixseq.file")
    file_log.setLevel(logging.INFO)  # the user's own level: the kit must give it back

    def make() -> FileSeqStore:
        return FileSeqStore(f"{directory}/s{next(names)}.seq")

    def reopen(store: FileSeqStore) -> FileSeqStore:
        store.close()
        return FileSeqStore(store.path)

    check_seq_store(make, reopen=reopen, files=lambda s: [s.path], groups=["damage"])
    assert file_log.level == logging.INFO, file_log.level
    assert not logging.getLogger("fixseq").disabled
    print("kit done")
    """
)


def _run(args: list[str], env: dict[str, str], cwd: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def test_the_kit_damages_a_file_store_without_a_warning_per_slot(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    done = _run([sys.executable, "-c", KIT_RUN, str(tmp_path)], child_env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "kit done"
    assert done.stderr == ""


def test_the_kit_leaves_a_store_warning_outside_damage_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Silenced only while the kit damages: the same logger speaks again after.
    from fixseq.testing._damage import quiet_store_loggers

    with quiet_store_loggers():
        logging.getLogger("fixseq.file").warning("hidden")
    logging.getLogger("fixseq.file").warning("shown")
    assert [r.getMessage() for r in caplog.records] == ["shown"]


def test_the_fixcore_demo_prints_only_its_story(tmp_path: Path, child_env: dict[str, str]) -> None:
    # BROKER streams while BANK is killed: fixcore warns "send_fn is None" for the
    # messages it cannot send, which the demo keeps in its record, not on stderr.
    pytest.importorskip("fixcore")
    for _ in range(3):  # the warning came in most runs, not all
        done = _run(
            [sys.executable, "-m", "fixseq", "demo", "--engine", "fixcore"], child_env, tmp_path
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        assert "Neither engine logged 'MsgSeqNum too low'" in done.stdout


def test_the_demo_records_the_engine_warnings_instead(tmp_path: Path) -> None:
    pytest.importorskip("fixcore")
    from fixseq import _fixcore_demo

    record = tmp_path / "record.log"
    saved = [
        (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate)
        for n in ("fixcore", "fixseq")
    ]
    try:
        _fixcore_demo._record_engine_logs(_fixcore_demo._Recorder(str(record)))
        logging.getLogger("fixcore.session.session").warning("send_fn is None")
    finally:
        for name, (handlers, propagate) in zip(("fixcore", "fixseq"), saved, strict=True):
            logging.getLogger(name).handlers[:] = handlers
            logging.getLogger(name).propagate = propagate
    assert '"ev": "engine_log"' in record.read_text()
    assert "send_fn is None" in record.read_text()


def test_the_fixcore_benchmark_shuts_down_without_a_traceback(child_env: dict[str, str]) -> None:
    pytest.importorskip("fixcore")
    for _ in range(2):  # a few tracebacks came in every run before
        done = _run(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_fixcore",
                "--rounds",
                "1",
                "--seconds",
                "0.05",
            ],
            child_env,
            REPO_ROOT,
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr.splitlines() == ["  round 1/1 done"], done.stderr
        assert "fixcore on FileSeqStore" in done.stdout
