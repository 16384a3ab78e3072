"""``fixseq doctor``: each setting that loses acknowledged numbers is flagged, as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from url_support import pg_url

from fixseq import FileSeqStore, SqliteSeqStore, open_store
from fixseq import _doctor as doctor
from fixseq._urls import parse_url

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def run_doctor(env: dict[str, str], url: str, code: int) -> dict[str, dict[str, Any]]:
    """Run ``fixseq doctor URL --json``; return the checks by name."""
    proc = subprocess.run(
        [sys.executable, "-m", "fixseq", "doctor", url, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    report = json.loads(proc.stdout)
    assert report["ok"] is (code == 0)
    if code == 1:
        (line,) = proc.stderr.splitlines()
        assert line.startswith("fixseq: error: doctor: FAIL in ")
    else:
        assert proc.stderr == ""
    checks = {c["name"]: c for c in report["checks"]}
    for check in checks.values():
        assert check["level"] in ("OK", "WARN", "FAIL")
        assert check["fix"] or check["level"] == "OK", check
        assert "\n" not in check["detail"]
    return checks


def on_ram(path: Path) -> bool:
    mount = doctor.mount_of(str(path))
    return mount is not None and mount.fstype in ("tmpfs", "ramfs")


@pytest.fixture
def tmpfs_dir(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs mounted for the test (root only: CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    target = tmp_path / "ram"
    target.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(target)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs refused here: {mounted.stderr.strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_file_store_on_tmpfs_fails(tmpfs_dir: Path, child_env: dict[str, str]) -> None:
    with FileSeqStore(tmpfs_dir / "s.seq") as store:
        store.set_next_out(10)
    checks = run_doctor(child_env, f"file:{tmpfs_dir}/s.seq", 1)
    assert checks["file system"]["level"] == "FAIL" and "tmpfs" in checks["file system"]["detail"]
    assert checks["state"]["level"] == "OK" and "next out 10" in checks["state"]["detail"]


def test_healthy_file_store_warns_only_that_it_is_new(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    if on_ram(tmp_path):
        pytest.skip(f"{tmp_path} is on a RAM file system here")
    with FileSeqStore(tmp_path / "s.seq") as store:
        store.set_next_out(10)
    checks = run_doctor(child_env, f"file:{tmp_path}/s.seq", 0)  # WARN alone exits 0
    assert checks["created"]["level"] == "WARN" and "silent reset" in checks["created"]["detail"]
    for name in ("file system", "write barriers", "fsync", "permissions", "lock", "state"):
        assert checks[name]["level"] == "OK", checks[name]


def test_file_store_fsync_off_permissions_and_lock(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    path = tmp_path / "s.seq"
    with FileSeqStore(path) as store:
        store.set_next_out(10)
    os.chmod(path, 0o644)
    checks = run_doctor(child_env, f"file:{path}?fsync=0", 1)
    assert checks["fsync"]["level"] == "FAIL"
    assert checks["permissions"]["level"] == "WARN" and "0644" in checks["permissions"]["detail"]
    assert "chmod 600" in checks["permissions"]["fix"]
    os.chmod(path, 0o600)
    with FileSeqStore(path):
        checks = run_doctor(child_env, f"file:{path}?fsync=0", 1)
    assert checks["lock"]["level"] == "WARN"
    assert f"pid {os.getpid()}" in checks["lock"]["detail"]


def test_missing_store_fails_and_creates_nothing(tmp_path: Path, child_env: dict[str, str]) -> None:
    checks = run_doctor(child_env, f"file:{tmp_path}/none.seq", 1)
    assert checks["state"]["level"] == "FAIL"
    assert not (tmp_path / "none.seq").exists()


def test_sqlite_synchronous_normal_fails(tmp_path: Path, child_env: dict[str, str]) -> None:
    with SqliteSeqStore(tmp_path / "s.db", "S") as store:
        store.set_next_out(5)
    checks = run_doctor(child_env, f"sqlite:{tmp_path}/s.db?session=S&synchronous=NORMAL", 1)
    assert checks["synchronous"]["level"] == "FAIL"
    assert checks["journal mode"]["level"] == "OK" and checks["wal file"]["level"] == "OK"
    if not on_ram(tmp_path):
        checks = run_doctor(child_env, f"sqlite:{tmp_path}/s.db?session=S", 0)
        assert checks["synchronous"]["level"] == "OK"


def test_postgres_synchronous_commit_off_fails(child_env: dict[str, str]) -> None:
    session = f"doctor-{uuid.uuid4().hex}"
    url = pg_url(session=session)
    with open_store(url) as store:
        store.set_next_out(3)
    # The store's connections take the URL's libpq options: this one turns durability off.
    checks = run_doctor(child_env, pg_url(session=session, options="-c synchronous_commit=off"), 1)
    assert checks["synchronous_commit"]["level"] == "FAIL"
    assert checks["table"]["level"] == "OK"
    assert checks["state"]["level"] == "OK" and "next out 3" in checks["state"]["detail"]
    checks = run_doctor(child_env, url, 0)
    assert checks["synchronous_commit"]["level"] == "OK"
    for name in ("fsync", "full_page_writes", "server version", "data checksums"):
        assert name in checks
    assert checks["synchronous_standby_names"]["level"] == "WARN"


def test_postgres_missing_table_fails(child_env: dict[str, str]) -> None:
    checks = run_doctor(child_env, pg_url(session="x", table="no_such_fixseq_table"), 1)
    assert checks["table"]["level"] == "FAIL"


MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
40 27 8:2 / /data rw,relatime - ext4 /dev/sda2 rw,nobarrier
41 27 0:50 / /mnt/nas rw - nfs4 server:/export rw,vers=4.2
42 27 0:51 / /mnt/my\\040disk rw - xfs /dev/sdb1 rw
43 27 0:52 / /srv rw - overlay overlay rw
44 43 0:53 / /srv/ram rw - tmpfs tmpfs rw
"""


@pytest.mark.parametrize(
    ("path", "fstype", "point"),
    [
        ("/data/fix/s.seq", "ext4", "/data"),
        ("/mnt/nas/s.seq", "nfs4", "/mnt/nas"),
        ("/mnt/my disk/s.seq", "xfs", "/mnt/my disk"),
        ("/srv/x", "overlay", "/srv"),
        ("/srv/ram/x", "tmpfs", "/srv/ram"),
        ("/srvx", "ext4", "/"),
    ],
)
def test_mount_of(path: str, fstype: str, point: str, tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    mount = doctor.mount_of(path, str(info))
    assert mount is not None and (mount.fstype, mount.point) == (fstype, point)


@pytest.mark.parametrize(
    ("path", "file_levels", "sqlite_levels"),
    [
        ("/data/s", ("OK", "FAIL"), ("OK", "FAIL")),
        ("/mnt/nas/s", ("WARN", "OK"), ("FAIL", "OK")),
        ("/srv/s", ("WARN", "OK"), ("WARN", "OK")),
        ("/srv/ram/s", ("FAIL", "OK"), ("FAIL", "OK")),
    ],
)
def test_file_system_levels(
    path: str,
    file_levels: tuple[str, str],
    sqlite_levels: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    real = doctor.mount_of
    monkeypatch.setattr(doctor, "mount_of", lambda p: real(p, str(info)))
    for sqlite, levels in ((False, file_levels), (True, sqlite_levels)):
        checks = doctor._filesystem_checks(path, sqlite=sqlite)
        assert tuple(c.level for c in checks) == levels


def test_memory_url_is_a_usage_error(child_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fixseq", "doctor", "memory:"],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=60,
    )
    assert proc.returncode == 2 and "nothing to check" in proc.stderr
    with pytest.raises(ValueError, match="memory"):
        doctor.diagnose(parse_url("memory:"))
