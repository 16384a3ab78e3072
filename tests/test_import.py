"""``fixseq import``: each engine's real store, then every damaged variant, refused.

QuickFIX (the Python bindings, C++ FileStore) and fixcore-engine write their
stores here for real; QuickFIX/J and QuickFIX/Go do not install from PyPI, so
their files are byte-exact fixtures of what their writers produce
(``writeUTF`` and ``%019d``, see fixseq/_import.py).
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from engine_support import require

from fixseq import cli
from fixseq._import import (
    ForeignStoreError,
    find_sessions,
    parse_quickfix_seqnums,
    read_session,
    session_prefix,
)
from fixseq._urls import parse_url, read_sessions

if TYPE_CHECKING:
    from pathlib import Path

UTC = datetime.timezone.utc
PREFIX = "FIX.4.4-BANK-BROKER"


def java_utf(text: str) -> bytes:
    raw = text.encode("ascii")
    return len(raw).to_bytes(2, "big") + raw


# Each format's files for next out 1234, next in 56, as its engine writes them.
VALID: dict[str, dict[str, bytes]] = {
    "quickfix": {".seqnums": b"0000001234 : 0000000056", ".session": b"20261203-16:30:18"},
    "quickfixj": {
        ".senderseqnums": java_utf("1234"),
        # A shorter number written over a longer one leaves the old tail: readUTF ignores it.
        ".targetseqnums": java_utf("56") + b"789",
        ".session": java_utf("20261203-16:30:18.250"),
    },
    "quickfixgo": {
        ".senderseqnums": b"%019d" % 1234,
        ".targetseqnums": b"%019d" % 56,
        ".session": b"2026-12-03T16:30:18.250000999Z",
    },
    "fixcore": {
        ".seqnums": b"sender=1234\ntarget=56\ncreation=2026-12-03T16:30:18.250000+00:00\n",
    },
}
CREATED = {
    "quickfix": datetime.datetime(2026, 12, 3, 16, 30, 18, tzinfo=UTC),
    "quickfixj": datetime.datetime(2026, 12, 3, 16, 30, 18, 250000, tzinfo=UTC),
    "quickfixgo": datetime.datetime(2026, 12, 3, 16, 30, 18, 250000, tzinfo=UTC),
    "fixcore": datetime.datetime(2026, 12, 3, 16, 30, 18, 250000, tzinfo=UTC),
}
# Where each format keeps each number, and how it writes a given value there.
NUMBER_FILES: dict[str, list[tuple[str, bytes]]] = {
    "quickfix": [(".seqnums", b"%s : 0000000056"), (".seqnums", b"0000001234 : %s")],
    "quickfixj": [(".senderseqnums", b"%s"), (".targetseqnums", b"%s")],
    "quickfixgo": [(".senderseqnums", b"%s"), (".targetseqnums", b"%s")],
    "fixcore": [
        (".seqnums", b"sender=%s\ntarget=56\ncreation=2026-12-03T16:30:18+00:00\n"),
        (".seqnums", b"sender=1234\ntarget=%s\ncreation=2026-12-03T16:30:18+00:00\n"),
    ],
}


def write(directory: Path, files: dict[str, bytes], prefix: str = PREFIX) -> None:
    directory.mkdir(exist_ok=True)
    for suffix, data in files.items():
        (directory / f"{prefix}{suffix}").write_bytes(data)


def number_variant(fmt: str, index: int, digits: bytes) -> dict[str, bytes]:
    """The valid files with one number replaced by ``digits``, written as the engine would."""
    suffix, template = NUMBER_FILES[fmt][index]
    if fmt == "quickfixj":
        data = java_utf(digits.decode())
    elif fmt == "quickfix" and digits.isdigit() and len(digits) <= 10:
        data = template % digits.rjust(10, b"0")
    elif fmt == "quickfixgo" and digits.isdigit():
        data = digits.rjust(19, b"0")
    else:
        data = template % digits
    return {**VALID[fmt], suffix: data}


def run_import(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def dest_state(url: str) -> tuple[int, int, datetime.datetime]:
    info = read_sessions(parse_url(url))[0]
    return info.next_out, info.next_in, info.created


# -- the real engines ---------------------------------------------------------------------


def test_quickfix_bindings_filestore(tmp_path: Path, child_env: dict[str, str]) -> None:
    """A FileStore the QuickFIX bindings wrote, imported with the command as an operator runs it."""
    quickfix = require("quickfix", "quickfix")
    store_dir = tmp_path / "qf"
    session_id = quickfix.SessionID("FIX.4.4", "BANK", "BROKER")
    settings = quickfix.SessionSettings()
    dictionary = quickfix.Dictionary()
    dictionary.setString("ConnectionType", "initiator")
    dictionary.setString("FileStorePath", str(store_dir))
    settings.set(session_id, dictionary)
    factory = quickfix.FileStoreFactory(settings)
    store = factory.create(session_id)
    store.setNextSenderMsgSeqNum(4321)
    store.setNextTargetMsgSeqNum(99)
    factory.destroy(store)
    stamp = (store_dir / f"{PREFIX}.session").read_text()
    created = datetime.datetime.strptime(stamp[:17], "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)

    dest = f"sqlite:{tmp_path}/fixseq.db?session=FIX.4.4:BANK->BROKER"
    proc = subprocess.run(
        [sys.executable, "-m", "fixseq", "import", "quickfix", str(store_dir), dest,
         "--session", "FIX.4.4:BANK->BROKER", "--json"],
        capture_output=True, text=True, env=child_env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["next_out"] == 4321
    assert dest_state(dest) == (4321, 99, created)
    listed = find_sessions("quickfix", str(store_dir))
    assert [(s.name, s.next_out, s.next_in) for s in listed] == [(PREFIX, 4321, 99)]


def test_fixcore_filestore(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require("fixcore", "fixcore")
    from fixcore.session.session_id import SessionID
    from fixcore.store.file_store import FileStore

    store = FileStore(tmp_path / "fc", SessionID("FIX.4.4", "BANK", "BROKER"))
    store.set_next_sender_msg_seq_num(777)
    store.set_next_target_msg_seq_num(888)
    created = store.get_creation_time().astimezone(UTC)
    store.close()
    dest = f"file:{tmp_path}/fixseq.seq"
    code, _, err = run_import(["import", "fixcore", str(tmp_path / "fc"), dest], capsys)
    assert code == 0, err
    assert dest_state(dest) == (777, 888, created)


def test_quickfix_current_layout_with_20_digit_fields(tmp_path: Path) -> None:
    write(
        tmp_path,
        {".seqnums": b"%020d : %020d" % (2**63 - 1, 3), ".session": b"20261203-16:30:18.123"},
    )
    found = read_session("quickfix", str(tmp_path), None)
    assert (found.next_out, found.next_in) == (2**63 - 1, 3)
    assert found.created == datetime.datetime(2026, 12, 3, 16, 30, 18, 123000, tzinfo=UTC)


def test_quickfixj_cached_filestore(tmp_path: Path) -> None:
    write(
        tmp_path,
        {".seqnums": java_utf("1234:56") + b"99", ".session": VALID["quickfixj"][".session"]},
    )
    found = read_session("quickfixj", str(tmp_path), "FIX.4.4:BANK->BROKER")
    assert (found.next_out, found.next_in) == (1234, 56)


@pytest.mark.parametrize("fmt", list(VALID))
def test_each_format_imports_exactly(
    fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "engine", VALID[fmt])
    dest = f"file:{tmp_path}/d.seq"
    code, out, err = run_import(["import", fmt, str(tmp_path / "engine"), dest], capsys)
    assert code == 0, err
    assert dest_state(dest) == (1234, 56, CREATED[fmt])
    assert "imported  next out 1234, next in 56" in out


# -- damage: every variant refused, the destination unchanged -------------------------------


def damaged(fmt: str) -> list[tuple[str, dict[str, bytes]]]:
    """Every damaged variant of a format's valid files, named."""
    cases: list[tuple[str, dict[str, bytes]]] = []
    for suffix, data in VALID[fmt].items():
        cases.append((f"empty {suffix}", {**VALID[fmt], suffix: b""}))
        cases.append((f"missing {suffix}", {k: v for k, v in VALID[fmt].items() if k != suffix}))
        end = len(data)
        if fmt == "quickfixj" and suffix == ".targetseqnums":
            end = 4  # the tail after the string is ignored, as readUTF does
        for cut in range(1, end):
            cases.append((f"{suffix} cut at {cut}", {**VALID[fmt], suffix: data[:cut]}))
    for index in range(2):
        for label, digits in [
            ("zero", b"0"),
            ("negative", b"-5"),
            ("non-digits", b"12x4"),
            ("spaces", b" 1234"),
            ("2**63", str(2**63).encode()),
        ]:
            cases.append((f"number {index} {label}", number_variant(fmt, index, digits)))
    if fmt in ("quickfix", "quickfixj"):
        # Their engines keep numbers in a Java or C int: 2**31 is past what they wrote.
        cases.append(("2**31", number_variant(fmt, 0, str(2**31).encode())))
    return cases


ALL_DAMAGED = [(fmt, name, files) for fmt in VALID for name, files in damaged(fmt)]


@pytest.mark.parametrize("fmt", list(VALID))
def test_every_damaged_variant_is_refused_and_nothing_written(
    fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = f"sqlite:{tmp_path}/d.db?session=S"
    code, _, err = run_import(
        ["import", "fixcore", str(_seeded(tmp_path)), dest, "--session", "FIX.4.2-X-Y"], capsys
    )
    assert code == 0, err
    before = dest_state(dest)
    cases = damaged(fmt)
    assert len(cases) > 20
    for number, (name, files) in enumerate(cases):
        engine = tmp_path / f"engine-{number}"
        write(engine, files)
        code, out, err = run_import(["import", fmt, str(engine), dest, "--yes"], capsys)
        lines = err.strip().splitlines()
        assert code == 1, (name, out, err)
        assert len(lines) == 1 and lines[0].startswith("fixseq: error: "), (name, err)
        assert str(engine) in lines[0] and "nothing was imported" in lines[0], (name, err)
        assert out == ""
        assert dest_state(dest) == before, name


def _seeded(tmp_path: Path) -> Path:
    engine = tmp_path / "seed"
    write(
        engine,
        {".seqnums": b"sender=5\ntarget=6\ncreation=2020-01-01T00:00:00+00:00\n"},
        "FIX.4.2-X-Y",
    )
    return engine


@pytest.mark.parametrize("fmt", list(VALID))
def test_damage_refused_by_the_command_as_a_subprocess(
    fmt: str, tmp_path: Path, child_env: dict[str, str]
) -> None:
    dest = f"file:{tmp_path}/d.seq"
    for label, digits in [("zero", b"0"), ("negative", b"-1"), ("2**63", str(2**63).encode())]:
        engine = tmp_path / f"engine-{label}"
        write(engine, number_variant(fmt, 1, digits))
        proc = subprocess.run(
            [sys.executable, "-m", "fixseq", "import", fmt, str(engine), dest, "--yes"],
            capture_output=True, text=True, env=child_env, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 1, (label, proc.stderr)
        assert len(proc.stderr.splitlines()) == 1 and str(engine) in proc.stderr
        assert not (tmp_path / "d.seq").exists()


def test_ambiguous_quickfixj_stores_are_refused(tmp_path: Path) -> None:
    write(tmp_path, {**VALID["quickfixj"], ".seqnums": java_utf("1:1")})
    with pytest.raises(ForeignStoreError, match="ambiguous"):
        read_session("quickfixj", str(tmp_path), None)


def test_ambiguous_directory_and_unknown_session(tmp_path: Path) -> None:
    write(tmp_path, VALID["quickfixgo"])
    write(tmp_path, VALID["quickfixgo"], "FIX.4.2-OTHER-PEER")
    with pytest.raises(ForeignStoreError, match=r"ambiguous.*--session"):
        read_session("quickfixgo", str(tmp_path), None)
    with pytest.raises(ForeignStoreError, match=r"no quickfixgo session 'FIX.4.4-NOPE-X'"):
        read_session("quickfixgo", str(tmp_path), "FIX.4.4:NOPE->X")
    assert read_session("quickfixgo", str(tmp_path), "FIX.4.2-OTHER-PEER").next_out == 1234
    with pytest.raises(ForeignStoreError, match="no such directory"):
        read_session("quickfix", str(tmp_path / "missing"), None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ForeignStoreError, match="no quickfix session files"):
        read_session("quickfix", str(tmp_path / "empty"), None)


def test_session_prefixes() -> None:
    assert session_prefix("FIX.4.4:BANK->BROKER", "quickfix") == PREFIX
    assert session_prefix("FIX.4.4:BANK->BROKER:q1", "quickfixgo") == f"{PREFIX}-q1"
    assert session_prefix("FIX.4.4:BA#NK->BROKER", "quickfixj") == "FIX.4.4-BA_NK-BROKER"
    assert session_prefix(PREFIX, "fixcore") == PREFIX


def test_quickfix_layouts_are_exact() -> None:
    assert parse_quickfix_seqnums(b"0000000002 : 0000000003", "f") == (2, 3)
    for data in [b"0000000002 : 0000000003\n", b"2 : 3", b"00000000002 : 0000000003"]:
        with pytest.raises(ForeignStoreError, match=r"^f: "):
            parse_quickfix_seqnums(data, "f")
