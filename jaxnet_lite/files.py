"""Atomic file writes: a reader sees the old file or the complete new one, never a partial one.

Errors name the file the caller asked for, never the hidden temporary it is written through, and a
temporary left behind by a writer that was killed outright is removed by the next write of that file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows: no advisory locks (an open file cannot be deleted there anyway)
    fcntl = None  # type: ignore[assignment]

__all__ = ["atomic_open", "new_file_mode", "ORPHAN_AGE_S"]

ORPHAN_AGE_S = 3600.0
"""A temporary whose writer cannot be checked is removed once it has not been written for this long."""

_TAG = re.compile(r"(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)-[0-9a-z_]{8}")  # ours: host, writer PID, random
_OLD_TAG = re.compile(r"[0-9a-z_]{8}")  # tempfile.mkstemp's random part alone (files from older versions)


def new_file_mode(path: Path) -> int:
    """Keep an overwritten file's mode; otherwise 0o666 minus the umask (what `open` would give)."""
    with contextlib.suppress(OSError):
        return path.stat().st_mode & 0o777
    umask = 0o022
    with contextlib.suppress(OSError, ValueError, StopIteration):
        status = Path("/proc/self/status").read_text().splitlines()
        umask = int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    return 0o666 & ~umask


# ------------------------------------------------------------------ errors


def _is_temporary(filename: str | os.PathLike, path: Path) -> bool:
    """Whether `filename` names a hidden temporary of `path` (which means nothing to the caller)."""
    name = Path(os.fspath(filename)).name
    return name.startswith(f".{path.name}.") and name.endswith(".tmp")


def _reason(err: OSError, path: Path) -> str:
    """What went wrong: the system's words, and the file concerned unless it is our temporary."""
    if err.strerror is None:
        return str(err)
    if err.filename is not None and not _is_temporary(err.filename, path):
        return f"{err.strerror}: '{os.fspath(err.filename)}'"
    return err.strerror


def _renamed(err: OSError, message: str) -> OSError:
    """An error of the same class and errno as `err` whose message is `message`."""
    try:
        new = type(err)(message)
    except Exception:  # a subclass with another signature
        new = OSError(message)
    new.errno = err.errno
    return new


@contextlib.contextmanager
def _naming(path: Path, step: str) -> Iterator[None]:
    """Re-raise an OSError from `step` as one that names the caller's `path` (class and errno kept)."""
    try:
        yield
    except OSError as err:
        new = _renamed(err, f"Cannot write '{path}': {step} ({_reason(err, path)}).")
        raise new.with_traceback(err.__traceback__) from None


def _refuse_directory(path: Path) -> None:
    """Fail before writing anything when `path` is a directory (the final rename would fail)."""
    if path.is_dir() and not path.is_symlink():  # a symlink is replaced, as `os.replace` does
        err = IsADirectoryError(errno.EISDIR, "Is a directory")
        raise _renamed(err, f"Cannot write '{path}': it is a directory.")


# ---------------------------------------------------------------- orphans


def _host_tag() -> str:
    """8 hex digits naming this machine, so a PID is only ever checked on the host that wrote it."""
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def _pid_running(pid: int) -> bool:
    """Whether process `pid` exists on this machine (zombies and other users' processes count)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone, or a number no PID can be
        return False
    except OSError:  # e.g. PermissionError: it exists, owned by someone else
        return True
    return True


def _locked(tmp: Path) -> bool:
    """Whether a process holds the writer's lock on `tmp`; the kernel drops it when the writer dies."""
    if fcntl is None:
        return False
    try:
        fd = os.open(tmp, os.O_RDWR)
    except OSError:
        return False  # no lock evidence either way: the PID decides
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False  # locks unsupported on this filesystem: the PID decides
    finally:
        os.close(fd)
    return False


def _idle_for(tmp: Path) -> float:
    """Seconds since `tmp` was last written (0 when it cannot be read)."""
    try:
        return time.time() - tmp.stat().st_mtime
    except OSError:
        return 0.0


def _orphaned(tmp: Path, tag: str) -> bool:
    """Whether the temporary `tmp` (named `.{target}.{tag}.tmp`) was left by a writer that is gone."""
    ours = _TAG.fullmatch(tag)
    if ours and ours["host"] == _host_tag() and os.name == "posix":
        return not _pid_running(int(ours["pid"])) and not _locked(tmp)
    if ours or _OLD_TAG.fullmatch(tag):  # another host, or no PID: go by age
        return _idle_for(tmp) > ORPHAN_AGE_S
    return False  # not a temporary of this target (e.g. `.w.npz.<tag>.tmp` while writing `w`)


def _remove_orphans(path: Path) -> None:
    """Delete the temporaries of `path` whose writers died mid-write; failures are ignored."""
    prefix = f".{path.name}."
    with contextlib.suppress(OSError):
        for name in os.listdir(path.parent):
            if name.startswith(prefix) and name.endswith(".tmp"):
                tmp = path.parent / name
                if _orphaned(tmp, name[len(prefix):-len(".tmp")]):
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)


def _hold_lock(fd: int) -> None:
    """Lock our temporary so that no cleaner treats it as orphaned while we write (best effort)."""
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


# ------------------------------------------------------------------ write


def _sync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable where the platform supports it."""
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces `path` only when the block finishes without error.

    The data goes to a hidden temporary `.{name}.{host}-{pid}-{random}.tmp` in the same directory (so
    `os.replace` is atomic), is fsync'ed, then renamed over `path`, and the rename is made durable. Parent
    directories are created. On any error, Ctrl-C included, the temporary is removed and `path` is left as
    it was; an OSError (from this function or from the block) is re-raised with its class and errno but a
    message naming `path`.

    A writer killed outright (kill -9, power loss) leaves its temporary; each write first removes the
    temporaries of the same `path` whose writer is gone: on POSIX, made on this host by a process that no
    longer exists (`os.kill(pid, 0)`) and not locked (every writer holds an flock on its temporary until it
    closes it; the kernel releases it when the writer dies, so a PID seen from another PID namespace cannot
    fool the check). Temporaries from another host or system, or named without a PID (older versions), are
    removed only when unwritten for `ORPHAN_AGE_S`. A live writer's temporary, in this process or another,
    is never removed; at worst, a writer stalled for longer than that loses its save with an error, never
    its target.
    """
    path = Path(path)
    _refuse_directory(path)
    with _naming(path, f"cannot create the folder '{path.parent}'"):
        path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(path)
    with _naming(path, f"cannot create a file in '{path.parent}'"):
        prefix = f".{path.name}.{_host_tag()}-{os.getpid()}-"
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    try:
        with _naming(path, "writing failed"):
            with os.fdopen(fd, "wb") as f:
                _hold_lock(fd)
                yield f
                f.flush()
                os.fsync(f.fileno())
        with _naming(path, "replacing it failed"):
            os.chmod(tmp_name, new_file_mode(path))  # mkstemp makes it private
            os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _sync_directory(path.parent)
