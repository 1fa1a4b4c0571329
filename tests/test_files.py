"""Tests for jaxnet_lite.files.atomic_open: errors that name the caller's file, and orphaned temporaries."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from jaxnet_lite import files
from jaxnet_lite.files import atomic_open

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "JAX_PLATFORMS": "cpu",
       "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}

fcntl = pytest.importorskip("fcntl", reason="PIDs and flock are checked on POSIX only")


def _write(path: Path, data: bytes = b"new") -> None:
    with atomic_open(path) as f:
        f.write(data)


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _temporaries(directory: Path) -> set[Path]:
    return set(directory.glob(".*.tmp"))


def _assert_names_only_target(err: BaseException, path: Path) -> None:
    """The message names the caller's path and never the hidden temporary."""
    message = str(err)
    assert f"'{path}'" in message, message
    assert ".tmp" not in message, message


def _dead_pid() -> int:
    """The PID of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _temp_name(target: str, pid: int, host: str | None = None) -> str:
    """A temporary's name as `atomic_open` makes it for a writer with `pid`."""
    return f".{target}.{host or files._host_tag()}-{pid}-abcd_123.tmp"


# ------------------------------------------------------------------ errors


def test_unwritable_directory_names_the_target(tmp_path, monkeypatch):
    path = tmp_path / "w.npz"

    def denied(dir, prefix, suffix):  # what mkstemp raises in a read-only directory
        tmp = os.path.join(dir, prefix + "x1y2z3w4" + suffix)
        raise PermissionError(errno.EACCES, "Permission denied", tmp)

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(PermissionError, match="Permission denied") as info:
        _write(path)
    _assert_names_only_target(info.value, path)
    assert info.value.errno == errno.EACCES and f"'{tmp_path}'" in str(info.value)


@pytest.mark.skipif(os.name == "posix" and os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_directory_names_the_target(tmp_path):
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(PermissionError) as info:
            _write(tmp_path / "w.npz")
    finally:
        tmp_path.chmod(0o755)
    _assert_names_only_target(info.value, tmp_path / "w.npz")
    assert _listing(tmp_path) == []


def test_existing_directory_is_refused_before_writing(tmp_path, monkeypatch):
    target = tmp_path / "out"
    (target / "inside").mkdir(parents=True)
    created = []
    real_mkstemp = tempfile.mkstemp
    monkeypatch.setattr(tempfile, "mkstemp", lambda **kw: created.append(kw) or real_mkstemp(**kw))
    with pytest.raises(IsADirectoryError, match="it is a directory") as info:
        _write(target)
    _assert_names_only_target(info.value, target)
    assert created == [] and _listing(tmp_path) == ["out"] and _listing(target) == ["inside"]


def test_parent_that_is_a_file_names_the_target(tmp_path):
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" / "w.npz"
    with pytest.raises(OSError, match="cannot create the folder") as info:
        _write(path)
    _assert_names_only_target(info.value, path)


def _fail_in_block(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with atomic_open(path) as f:
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")


def _fail_in_fsync(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    _write(path)


def _fail_in_replace(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def io_error(src, dst):
        raise OSError(errno.EIO, "Input/output error", src, dst)

    monkeypatch.setattr(os, "replace", io_error)
    _write(path)


@pytest.mark.parametrize("fail", [_fail_in_block, _fail_in_fsync, _fail_in_replace])
def test_failed_disk_write_names_the_target_and_keeps_the_old_file(tmp_path, monkeypatch, fail):
    path = tmp_path / "w.npz"
    path.write_bytes(b"old")
    with pytest.raises(OSError) as info:
        fail(path, monkeypatch)
    monkeypatch.undo()
    _assert_names_only_target(info.value, path)
    assert info.value.errno in (errno.ENOSPC, errno.EIO)
    assert path.read_bytes() == b"old" and _listing(tmp_path) == ["w.npz"]


# ------------------------------------------------------------------ orphans


def test_orphans_of_the_target_are_removed_and_nothing_else(tmp_path):
    dead, stale = _dead_pid(), time.time() - files.ORPHAN_AGE_S - 60
    names = {
        "dead": _temp_name("w.npz", dead),
        "own": _temp_name("w.npz", os.getpid()),  # a live writer in this process
        "parent": _temp_name("w.npz", os.getppid()),  # a live writer in another process
        "locked": _temp_name("w.npz", _dead_pid()),  # PID gone, lock held: another PID namespace
        "old_style": ".w.npz.k2j4_x9q.tmp",  # mkstemp name, unwritten for an hour
        "fresh_old_style": ".w.npz.p0o9i8u7.tmp",
        "other_host": _temp_name("w.npz", dead, host="0badc0de"),
        "stale_other_host": _temp_name("w.npz", dead, host="0badc0df"),
        "other_target": _temp_name("w.npz.bak", dead),
        "not_a_temp": ".w.npz.notes",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"partial")
    for key in ("old_style", "stale_other_host"):
        os.utime(tmp_path / names[key], (stale, stale))
    fd = os.open(tmp_path / names["locked"], os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        _write(tmp_path / "w.npz")
    finally:
        os.close(fd)
    removed = {"dead", "old_style", "stale_other_host"}
    assert _listing(tmp_path) == sorted(["w.npz", *(n for k, n in names.items() if k not in removed)])
    assert (tmp_path / "w.npz").read_bytes() == b"new"


def test_a_live_writer_in_this_process_keeps_its_temporary(tmp_path):
    path = tmp_path / "w.npz"
    (tmp_path / _temp_name("w.npz", _dead_pid())).write_bytes(b"orphan")
    before = _temporaries(tmp_path)
    with atomic_open(path) as outer:
        outer.write(b"outer")
        (own,) = _temporaries(tmp_path) - before
        _write(path, b"inner")  # a second save of the same file while the first is still writing
        assert own.exists() and path.read_bytes() == b"inner"
    assert path.read_bytes() == b"outer" and _listing(tmp_path) == ["w.npz"]


_LIVE_WRITER = """
import sys
from jaxnet_lite.files import atomic_open

with atomic_open(sys.argv[1]) as f:
    f.write(b"from the other process")
    f.flush()
    print("writing", flush=True)
    sys.stdin.readline()  # stay mid-write until the test says go
print("done", flush=True)
"""


def test_a_live_writer_in_another_process_keeps_its_temporary(tmp_path):
    path = tmp_path / "w.npz"
    orphan = tmp_path / _temp_name("w.npz", _dead_pid())
    orphan.write_bytes(b"orphan")
    proc = subprocess.Popen([sys.executable, "-c", _LIVE_WRITER, str(path)], env=ENV, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == "writing", proc.stderr.read()
        (theirs,) = _temporaries(tmp_path) - {orphan}
        _write(path, b"ours")
        assert theirs.exists() and not orphan.exists()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "done"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()
    assert path.read_bytes() == b"from the other process" and _listing(tmp_path) == ["w.npz"]
