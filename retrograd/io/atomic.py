"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never half of one.

The bytes go to a temporary file in the target's directory (same file system, so the rename is
atomic), are flushed and fsync'ed, then `os.replace` puts the file in place and the directory is
fsync'ed so the rename itself survives a power cut. If anything fails on the way the temporary
file is removed and the previous file, if any, is left untouched.
"""
from __future__ import annotations

import os
import tempfile

PathLike = str | os.PathLike

_umask: int | None = None


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (see the module docstring).

    The file gets the permissions of the file it replaces, or the usual ones for a new file
    (0o666 minus the umask). Checkpoints, CSV logs and plots are all written through here.

    >>> atomic_write_bytes("run/log.csv", b"epoch,loss\\n0,0.5\\n")
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path}: the directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    """`atomic_write_bytes` for text (newlines written as given, no translation)."""
    atomic_write_bytes(path, text.encode(encoding))


def _mode_for(path: str) -> int:
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        global _umask
        if _umask is None:  # os.umask can only be read by setting it; do it once
            _umask = os.umask(0o022)
            os.umask(_umask)
        return 0o666 & ~_umask


def _fsync_directory(directory: str) -> None:
    if os.name != "posix":  # Windows can't open a directory; its rename is durable enough
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on directories; the data itself is synced
        pass
    finally:
        os.close(fd)
