"""Durable file writes and the repository lock: nothing half-written, one writer at a time."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from adaptergit.errors import RepositoryBusy


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: Path, mode: int = 0o644) -> Iterator[tuple[Path, int]]:
    """Yield (temp path, fd) in `path`'s directory; on success fsync and rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        yield tmp, fd
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` so that readers see either the old or the whole new file."""
    with atomic_output(path, mode) as (_tmp, fd):
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]


def copy_file(src: Path, dst: Path, mode: int = 0o644) -> None:
    """Copy src to dst atomically, letting the kernel move the bytes (reflink, else sendfile)."""
    with atomic_output(dst, mode) as (_tmp, fd), open(src, "rb") as fin:
        try:
            fcntl.ioctl(fd, _FICLONE, fin.fileno())
        except OSError:
            _sendfile(fin.fileno(), fd)


_FICLONE = 0x40049409  # Linux ioctl: share the source's extents (btrfs, XFS); fails elsewhere


def _sendfile(src_fd: int, dst_fd: int) -> None:
    size = os.fstat(src_fd).st_size
    offset = 0
    while offset < size:
        sent = os.sendfile(dst_fd, src_fd, offset, size - offset)
        if sent == 0:
            raise OSError(errno.EIO, "short copy")
        offset += sent


class RepoLock:
    """An exclusive flock on a file: released by the kernel even if the holder is killed."""

    def __init__(self, path: Path, timeout: float | None = None) -> None:
        self.path = path
        env = os.environ.get("ADAPTERGIT_LOCK_TIMEOUT")
        self.timeout = (
            float(env) if timeout is None and env else (timeout if timeout is not None else 10.0)
        )
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = ""
                    with contextlib.suppress(OSError, ValueError):
                        holder = f"pid {int(os.pread(fd, 32, 0).decode().split()[0])}"
                    os.close(fd)
                    raise RepositoryBusy(self.path, holder) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RepoLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
